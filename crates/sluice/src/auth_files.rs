//! OAuth token files in `auth-dir` (seed 003's auth files): their names, the token shapes
//! Sluice accepts (Claude, Codex, Qwen, Gemini), storing them privately, and the provider each
//! one becomes.
//!
//! `Runtime::build` reads the directory through [`providers`], so start-up, reload and an
//! upload or delete through the management API all load the pool the same way.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::{Config, ModelConfig, ProviderConfig, ProviderKind};
use crate::settings::{
    CLAUDE_BASE_URL, CLAUDE_MODELS, CODEX_MODELS, GEMINI_MODELS, QWEN_MODELS, auth_dir,
};

/// Longest file name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Largest token file accepted, in bytes.
pub const MAX_FILE_SIZE: usize = 256 * 1024;
/// The Codex (ChatGPT account) Responses endpoint.
pub const CODEX_OAUTH_BASE_URL: &str = "https://chatgpt.com/backend-api/codex";
/// Qwen's fallback when a token file names no `resource_url`.
pub const QWEN_FALLBACK_BASE_URL: &str = "https://dashscope.aliyuncs.com/compatible-mode/v1";
/// The beta flags Claude Code sends with OAuth access tokens (`oauth-2025-04-20` is required).
const CLAUDE_OAUTH_BETA: &str = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14";
/// Claude Code's User-Agent.
const CLAUDE_CODE_USER_AGENT: &str = "claude-cli/2.1.220 (external, cli)";

/// Which account a token file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Claude,
    Codex,
    Qwen,
    Gemini,
}

/// A validated token file.
#[derive(Clone)]
pub struct TokenFile {
    pub kind: TokenKind,
    access_token: String,
    /// Upstream API root, from `resource_url` (Qwen) or an explicit `base_url`.
    base_url: Option<String>,
    account_id: Option<String>,
    /// Gemini: the Code Assist project (`project_id`).
    project_id: Option<String>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Checks an auth file name: a plain `*.json` name, no directories, no hidden files.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_NAME_LEN {
        return Err("the name is too long (at most 128 bytes)");
    }
    let Some(stem) = name.strip_suffix(".json") else {
        return Err("the name must end with .json");
    };
    if stem.is_empty() || name.starts_with('.') || name.contains("..") {
        return Err("the name must be a plain file name");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c))
    {
        return Err("the name may hold only letters, digits and . _ - @ +");
    }
    Ok(())
}

/// Parses and validates a token file's contents.
pub fn parse(bytes: &[u8]) -> Result<TokenFile, String> {
    if bytes.len() > MAX_FILE_SIZE {
        return Err(format!("larger than {MAX_FILE_SIZE} bytes"));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let text = |key: &str| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{key}` must be a string")),
        }
    };
    let nested_token = obj.get("token").and_then(Value::as_object);
    let kind = match text("type")?.as_deref() {
        Some("claude") => TokenKind::Claude,
        Some("codex") => TokenKind::Codex,
        Some("qwen") => TokenKind::Qwen,
        Some("gemini") => TokenKind::Gemini,
        Some(other) => {
            return Err(format!(
                "unknown token type `{other}` (expected claude, codex, qwen or gemini)"
            ));
        }
        // Qwen Code's own credential file has no type, but a resource_url.
        None if obj.contains_key("resource_url") => TokenKind::Qwen,
        None if nested_token.is_some() => TokenKind::Gemini,
        None => {
            return Err(
                "not a known token file: no `type` (claude, codex, qwen or gemini)".to_string(),
            );
        }
    };
    let access_token = match (kind, nested_token) {
        (TokenKind::Gemini, Some(token)) => match token.get("access_token") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`token.access_token` must be a string".into()),
            None => text("access_token")?,
        },
        _ => text("access_token")?,
    }
    .filter(|t| !t.trim().is_empty())
    .ok_or_else(|| "`access_token` is missing or empty".to_string())?;
    if http::HeaderValue::from_str(&access_token).is_err() {
        return Err("`access_token` holds characters a header cannot carry".into());
    }
    for key in [
        "refresh_token",
        "email",
        "expired",
        "last_refresh",
        "id_token",
    ] {
        text(key)?;
    }
    if let Some(v) = obj.get("expiry_date")
        && !v.is_number()
    {
        return Err("`expiry_date` must be a number (milliseconds)".into());
    }
    let project_id = text("project_id")?.filter(|p| !p.trim().is_empty());
    if kind == TokenKind::Gemini && project_id.is_none() {
        return Err(
            "a gemini token file needs `project_id`, the account's Code Assist project (`sluice login gemini` finds it)"
                .into(),
        );
    }
    let explicit = text("base_url")?.map(|u| upstream_root(&u)).transpose()?;
    let base_url = match (kind, explicit) {
        (_, Some(url)) => Some(url),
        (TokenKind::Qwen, None) => match text("resource_url")? {
            Some(r) if !r.trim().is_empty() => Some(format!("{}/v1", upstream_root(&r)?)),
            _ => None,
        },
        _ => None,
    };
    Ok(TokenFile {
        kind,
        access_token,
        base_url,
        // The ChatGPT account: the file's `account_id`, else the id_token's claim.
        account_id: text("account_id")?.filter(|a| !a.is_empty()).or_else(|| {
            text("id_token")
                .ok()
                .flatten()
                .and_then(|t| sluice_oauth::jwt::codex_identity(&t).account_id)
        }),
        project_id,
    })
}

/// Checks an endpoint URL the way token files' upstream roots are checked.
pub fn check_upstream_url(text: &str) -> Result<(), String> {
    upstream_root(text).map(|_| ())
}

/// An upstream root from a host (`portal.qwen.ai`) or URL: HTTPS, or plain HTTP only to this
/// machine (so a token never travels in the clear over a network).
fn upstream_root(text: &str) -> Result<String, String> {
    let text = text.trim().trim_end_matches('/');
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("https://{text}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|_| format!("`{text}` is not a host name or URL"))?;
    let Some(host) = url.host_str() else {
        return Err(format!("`{text}` has no host"));
    };
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || !url.username().is_empty() || url.query().is_some() {
        return Err(format!(
            "`{text}` must be an https:// address (http:// only to this machine), without credentials or query"
        ));
    }
    Ok(with_scheme)
}

impl TokenFile {
    /// The OAuth provider of this token.
    pub fn oauth_kind(&self) -> sluice_oauth::Kind {
        match self.kind {
            TokenKind::Claude => sluice_oauth::Kind::Claude,
            TokenKind::Codex => sluice_oauth::Kind::Codex,
            TokenKind::Qwen => sluice_oauth::Kind::Qwen,
            TokenKind::Gemini => sluice_oauth::Kind::Gemini,
        }
    }

    /// The provider this token serves as, named after its file.
    pub fn provider(&self, file_name: &str) -> ProviderConfig {
        self.provider_at(file_name, None)
    }

    /// [`TokenFile::provider`], with `base` (`oauth.<provider>.base-url`) as the upstream root
    /// when the file names none.
    pub fn provider_at(&self, file_name: &str, base: Option<&str>) -> ProviderConfig {
        let models = |names: &[&str]| -> Vec<ModelConfig> {
            names
                .iter()
                .map(|n| ModelConfig {
                    name: (*n).to_string(),
                    alias: None,
                    ..Default::default()
                })
                .collect()
        };
        let bearer = format!("Bearer {}", self.access_token);
        let mut headers = std::collections::BTreeMap::new();
        let (kind, platform, default_base, api_keys, model_list) = match self.kind {
            TokenKind::Claude => {
                headers.insert("authorization".to_string(), bearer);
                headers.insert("anthropic-beta".to_string(), CLAUDE_OAUTH_BETA.to_string());
                headers.insert(
                    "anthropic-dangerous-direct-browser-access".into(),
                    "true".into(),
                );
                headers.insert("x-app".into(), "cli".into());
                headers.insert("user-agent".into(), CLAUDE_CODE_USER_AGENT.into());
                (
                    ProviderKind::Anthropic,
                    "claude-official",
                    CLAUDE_BASE_URL,
                    vec![],
                    CLAUDE_MODELS,
                )
            }
            TokenKind::Codex => {
                if let Some(account) = &self.account_id {
                    headers.insert("chatgpt-account-id".to_string(), account.clone());
                }
                (
                    ProviderKind::Codex,
                    "codex",
                    CODEX_OAUTH_BASE_URL,
                    vec![self.access_token.clone()],
                    CODEX_MODELS,
                )
            }
            TokenKind::Qwen => (
                ProviderKind::OpenaiCompatible,
                "qwen",
                QWEN_FALLBACK_BASE_URL,
                vec![self.access_token.clone()],
                QWEN_MODELS,
            ),
            TokenKind::Gemini => {
                headers.insert("authorization".to_string(), bearer);
                (
                    ProviderKind::GeminiCodeAssist,
                    "gemini",
                    sluice_oauth::login::CODE_ASSIST_URL,
                    vec![],
                    GEMINI_MODELS,
                )
            }
        };
        ProviderConfig {
            name: format!("auth-file:{file_name}"),
            kind,
            platform: Some(platform.to_string()),
            base_url: self
                .base_url
                .clone()
                .or_else(|| base.map(String::from))
                .unwrap_or_else(|| default_base.to_string()),
            api_keys,
            models: models(model_list),
            headers,
            timeouts: Default::default(),
            project: self.project_id.clone(),
            auth_file: Some(file_name.to_string()),
            ..Default::default()
        }
    }
}

/// One file of the auth directory, as listed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuthFileInfo {
    pub name: String,
    pub size: u64,
    /// Last modification, RFC 3339 (UTC).
    pub modtime: String,
    /// The token kind, when the file is a valid token file.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<TokenKind>,
    /// The account's refresh state: `active`, `refresh_backoff` or `needs_relogin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it needs a re-login, or why its last refresh failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// When its access token expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// When it was last refreshed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
}

/// The `*.json` files of the auth directory with plain names, sorted by name.
pub fn list(dir: &Path) -> std::io::Result<Vec<AuthFileInfo>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if check_name(&name).is_err() || !meta.is_file() {
            continue;
        }
        let modtime = meta
            .modified()
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_default();
        let kind = read(dir, &name)
            .ok()
            .and_then(|b| parse(&b).ok())
            .map(|t| t.kind);
        files.push(AuthFileInfo {
            name,
            size: meta.len(),
            modtime,
            kind,
            status: None,
            status_message: None,
            expires_at: None,
            last_refresh: None,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Writes a token file atomically with mode 0600 (the directory is created 0700).
pub fn store(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::store::private::create_dir(dir)?;
    sluice_oauth::store::write_private(&dir.join(name), bytes)
}

/// The path of a (checked) auth file name.
pub fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Reads a token file, never through a symbolic link (someone who can place a link in
/// `auth-dir` must not make the management API serve `/etc/shadow` or another file the
/// gateway's user can read) and only a regular file of at most [`MAX_FILE_SIZE`] bytes. A link
/// or anything that is not a regular file reads as `NotFound`, as the listing skips it too.
pub fn read(dir: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        // NONBLOCK: opening a FIFO planted in the directory must not hang the request.
        let flags = (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits();
        std::os::unix::fs::OpenOptionsExt::custom_flags(
            &mut options,
            i32::try_from(flags).unwrap_or_default(),
        );
    }
    let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
    let file = match options.open(path_of(dir, name)) {
        Ok(file) => file,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(not_found());
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).min(MAX_FILE_SIZE));
    file.take(MAX_FILE_SIZE as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The providers of every valid token file in the config's `auth-dir`. Invalid files are
/// skipped with a warning naming the file (never its contents).
pub fn providers(config: &Config) -> Vec<ProviderConfig> {
    let dir = auth_dir(config);
    let Ok(files) = list(&dir) else {
        return Vec::new();
    };
    files
        .into_iter()
        .filter_map(|info| {
            let bytes = read(&dir, &info.name).ok()?;
            match parse(&bytes) {
                Ok(token) => {
                    let oauth = config.oauth.provider(token.oauth_kind());
                    // Code Assist's traffic goes where its project was discovered, unless
                    // `base-url` says otherwise.
                    let base = oauth.base_url.as_deref().or(match token.kind {
                        TokenKind::Gemini => oauth.code_assist_url.as_deref(),
                        _ => None,
                    });
                    Some(token.provider_at(&info.name, base))
                }
                Err(reason) => {
                    tracing::warn!(file = %info.name, %reason, "auth file skipped: fix or delete it");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names() {
        for ok in ["acc1.json", "user@example.com.json", "claude-a_b+c.json"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../x.json",
            "a/b.json",
            "a\\b.json",
            ".json",
            ".hidden.json",
            "a..json",
            "x.txt",
            "x.json.bak",
            "x y.json",
            "",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&format!("{}.json", "a".repeat(200))).is_err());
    }

    #[test]
    fn token_shapes() {
        let claude = parse(br#"{"type":"claude","access_token":"at","refresh_token":"rt","email":"a@b","expired":"2030-01-01T00:00:00Z"}"#).unwrap();
        let p = claude.provider("c.json");
        assert_eq!(p.kind, ProviderKind::Anthropic);
        assert_eq!(p.headers["authorization"], "Bearer at");
        assert_eq!(p.headers["anthropic-beta"], CLAUDE_OAUTH_BETA);
        assert!(p.api_keys.is_empty());
        assert!(format!("{claude:?}").find("at\"").is_none());

        let qwen = parse(br#"{"access_token":"q","refresh_token":"r","token_type":"Bearer","resource_url":"portal.qwen.ai","expiry_date":1760000000000}"#).unwrap();
        assert_eq!(qwen.kind, TokenKind::Qwen);
        let p = qwen.provider("q.json");
        assert_eq!(p.base_url, "https://portal.qwen.ai/v1");
        assert_eq!(p.api_keys, ["q"]);
        assert_eq!(p.name, "auth-file:q.json");

        let gemini = parse(br#"{"type":"gemini","token":{"access_token":"g","refresh_token":"r","expiry":"x"},"project_id":"p"}"#).unwrap();
        let p = gemini.provider("g.json");
        assert_eq!(p.headers["authorization"], "Bearer g");
        assert_eq!(p.kind, ProviderKind::GeminiCodeAssist);
        assert_eq!(p.project.as_deref(), Some("p"));
        assert_eq!(p.base_url, sluice_oauth::login::CODE_ASSIST_URL);
        assert_eq!(p.platform(), "gemini");

        let codex = parse(br#"{"type":"codex","access_token":"c","account_id":"acct"}"#).unwrap();
        let p = codex.provider("x.json");
        assert_eq!(p.base_url, CODEX_OAUTH_BASE_URL);
        assert_eq!(p.headers["chatgpt-account-id"], "acct");

        for bad in [
            &b"not json"[..],
            br#"[1]"#,
            br#"{"type":"claude"}"#,
            br#"{"type":"claude","access_token":""}"#,
            br#"{"type":"dropbox","access_token":"x"}"#,
            br#"{"access_token":"x"}"#,
            br#"{"type":"claude","access_token":"x","email":5}"#,
            br#"{"type":"gemini","token":{"access_token":"g"}}"#,
            br#"{"type":"qwen","access_token":"x","resource_url":"http://evil.example"}"#,
            br#"{"type":"qwen","access_token":"x","resource_url":"https://u:p@host"}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let local =
            parse(br#"{"type":"qwen","access_token":"x","resource_url":"http://127.0.0.1:9"}"#)
                .unwrap();
        assert_eq!(local.provider("l.json").base_url, "http://127.0.0.1:9/v1");
    }

    #[test]
    fn stored_privately_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let auths = dir.path().join("auths");
        store(&auths, "a.json", br#"{"type":"codex","access_token":"c"}"#).unwrap();
        store(&auths, "a.json", br#"{"type":"claude","access_token":"c"}"#).unwrap();
        std::fs::write(auths.join("notes.txt"), "x").unwrap();
        let files = list(&auths).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].kind, Some(TokenKind::Claude));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(auths.join("a.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
