//! The providers' OAuth constants: token endpoints, public client ids, refresh leads.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which provider an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Claude,
    Codex,
    Gemini,
    Qwen,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Claude, Kind::Codex, Kind::Gemini, Kind::Qwen];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Claude => "claude",
            Kind::Codex => "codex",
            Kind::Gemini => "gemini",
            Kind::Qwen => "qwen",
        }
    }

    /// How long before expiry an access token is refreshed: Claude 4 h (of ~8 h), Codex 5 days
    /// (of ~10), Google 5 min (of 1 h), Qwen 20 min (CPA's leads).
    pub fn default_lead(self) -> Duration {
        match self {
            Kind::Claude => Duration::from_secs(4 * 3600),
            Kind::Codex => Duration::from_secs(5 * 24 * 3600),
            Kind::Gemini => Duration::from_secs(5 * 60),
            Kind::Qwen => Duration::from_secs(20 * 60),
        }
    }

    /// How a refresh request is encoded.
    pub fn body_format(self) -> BodyFormat {
        match self {
            Kind::Claude | Kind::Codex => BodyFormat::Json,
            Kind::Gemini | Kind::Qwen => BodyFormat::Form,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown provider `{s}` (claude, codex, gemini or qwen)"))
    }
}

/// A refresh request's body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}

/// Where and as whom an account's tokens are exchanged and refreshed.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub token_url: String,
    pub client_id: String,
    /// Google's installed-app secret (public by design); none elsewhere.
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Claude Code's public client id.
pub const CLAUDE_CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
/// Claude's token endpoint (since 2026-08-03).
pub const CLAUDE_TOKEN_URL: &str = "https://platform.claude.com/v1/oauth/token";
/// Codex CLI's public client id.
pub const CODEX_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// OpenAI's token endpoint.
pub const CODEX_TOKEN_URL: &str = "https://auth.openai.com/oauth/token";
/// Gemini CLI's installed-app client.
pub const GEMINI_CLIENT_ID: &str =
    "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com";
/// Gemini CLI's installed-app secret (public by design: an installed app cannot keep one).
pub const GEMINI_CLIENT_SECRET: &str = "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";
/// Google's token endpoint.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Qwen Code's public client id.
pub const QWEN_CLIENT_ID: &str = "f0304373b74a44d2b584a3fb70ca9e56";
/// Qwen's token endpoint.
pub const QWEN_TOKEN_URL: &str = "https://chat.qwen.ai/api/v1/oauth2/token";

impl Endpoints {
    /// The provider's real endpoints and client.
    pub fn defaults(kind: Kind) -> Self {
        let (token_url, client_id, client_secret) = match kind {
            Kind::Claude => (CLAUDE_TOKEN_URL, CLAUDE_CLIENT_ID, None),
            Kind::Codex => (CODEX_TOKEN_URL, CODEX_CLIENT_ID, None),
            Kind::Gemini => (
                GOOGLE_TOKEN_URL,
                GEMINI_CLIENT_ID,
                Some(GEMINI_CLIENT_SECRET),
            ),
            Kind::Qwen => (QWEN_TOKEN_URL, QWEN_CLIENT_ID, None),
        };
        Self {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.map(String::from),
        }
    }
}
