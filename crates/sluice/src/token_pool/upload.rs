//! What `POST /api/upload-token` accepts: one or more upstream tokens, each a bare token or a
//! Qwen OAuth credential JSON (`access_token`, `refresh_token`, `token_type`, `resource_url`,
//! `expiry_date` in Unix milliseconds).
//!
//! Body forms: a credential object; `{"token": "…"}`; `{"tokens": [ … ]}`; an array of tokens
//! and/or credential objects; a JSON string; or plain text with one token per line.

use serde_json::Value;

/// Most tokens one upload may add.
pub const MAX_TOKENS_PER_UPLOAD: usize = 1000;
/// Longest token accepted (JWTs are a few KiB at most).
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// One token as uploaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upload {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: Option<String>,
    pub resource_url: Option<String>,
    pub expiry_date: Option<u64>,
}

/// Parses an upload body; the error says what is wrong without repeating a token. A
/// `resource_url` must name a host of `allowed` (`token-pool.resource-url-hosts`).
pub fn parse(body: &[u8], allowed: &[String]) -> Result<Vec<Upload>, String> {
    let mut out = Vec::new();
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => collect(&value, &mut out, 0)?,
        Err(_) => {
            let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text")?;
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                out.push(Upload {
                    access_token: line.to_string(),
                    ..Upload::default()
                });
            }
        }
    }
    if out.is_empty() {
        return Err(
            "no token found: send a token, {\"token\": …}, {\"tokens\": […]} or a Qwen credential JSON with access_token"
                .into(),
        );
    }
    if out.len() > MAX_TOKENS_PER_UPLOAD {
        return Err(format!("at most {MAX_TOKENS_PER_UPLOAD} tokens per upload"));
    }
    for (i, upload) in out.iter().enumerate() {
        check_token(&upload.access_token).map_err(|e| format!("token {}: {e}", i + 1))?;
        if let Some(refresh) = &upload.refresh_token {
            check_token(refresh).map_err(|e| format!("token {}: refresh_token {e}", i + 1))?;
        }
        if let Some(resource) = &upload.resource_url {
            super::check_resource_url(resource, allowed)
                .map_err(|e| format!("token {}: resource_url {e}", i + 1))?;
        }
    }
    Ok(out)
}

fn collect(value: &Value, out: &mut Vec<Upload>, depth: u8) -> Result<(), String> {
    if depth > 3 {
        return Err("the body nests too deeply".into());
    }
    match value {
        Value::String(token) => out.push(Upload {
            access_token: token.trim().to_string(),
            ..Upload::default()
        }),
        Value::Array(items) => {
            for item in items {
                collect(item, out, depth + 1)?;
            }
        }
        Value::Object(object) => {
            if let Some(access) = object.get("access_token") {
                for name in ["refresh_token", "token_type", "resource_url"] {
                    if object
                        .get(name)
                        .is_some_and(|v| !v.is_null() && !v.is_string())
                    {
                        return Err(format!("{name} must be a string"));
                    }
                }
                let text = |name: &str| {
                    object
                        .get(name)
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                };
                let access = access
                    .as_str()
                    .ok_or("access_token must be a string")?
                    .trim()
                    .to_string();
                let expiry_date = match object.get("expiry_date") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or("expiry_date must be Unix milliseconds")?),
                };
                out.push(Upload {
                    access_token: access,
                    refresh_token: text("refresh_token"),
                    token_type: text("token_type"),
                    resource_url: text("resource_url"),
                    expiry_date,
                });
            } else if let Some(token) = object.get("token") {
                collect(token, out, depth + 1)?;
            } else if let Some(tokens) = object.get("tokens") {
                collect(tokens, out, depth + 1)?;
            } else {
                return Err(
                    "an object must have access_token (Qwen credential), token or tokens".into(),
                );
            }
        }
        _ => return Err("tokens must be strings or credential objects".into()),
    }
    Ok(())
}

fn check_token(token: &str) -> Result<(), &'static str> {
    if token.is_empty() {
        return Err("is empty");
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err("is too long");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_allowing(body: &[u8]) -> Result<Vec<Upload>, String> {
        parse(body, &["portal.qwen.ai".to_string()])
    }

    fn tokens(body: &str) -> Vec<String> {
        parse(body.as_bytes(), &[])
            .unwrap()
            .into_iter()
            .map(|u| u.access_token)
            .collect()
    }

    #[test]
    fn every_body_form() {
        assert_eq!(tokens("abc"), ["abc"]);
        assert_eq!(tokens("a\n\n b \n"), ["a", "b"]);
        assert_eq!(tokens(r#""abc""#), ["abc"]);
        assert_eq!(tokens(r#"{"token":"abc"}"#), ["abc"]);
        assert_eq!(
            tokens(r#"{"tokens":["a",{"access_token":"b"}]}"#),
            ["a", "b"]
        );
        assert_eq!(tokens(r#"["a","b"]"#), ["a", "b"]);
        let creds = parse_allowing(
            br#"{"access_token":"at","refresh_token":"rt","token_type":"Bearer","resource_url":"portal.qwen.ai","expiry_date":1760000000000}"#,
        )
        .unwrap();
        assert_eq!(
            creds[0],
            Upload {
                access_token: "at".into(),
                refresh_token: Some("rt".into()),
                token_type: Some("Bearer".into()),
                resource_url: Some("portal.qwen.ai".into()),
                expiry_date: Some(1_760_000_000_000),
            }
        );
    }

    #[test]
    fn bad_bodies_say_why_without_the_token() {
        for (body, why) in [
            ("", "no token found"),
            ("[]", "no token found"),
            (r#"{"nope":1}"#, "access_token"),
            ("[1]", "strings or credential objects"),
            (r#"{"access_token":"with space"}"#, "printable"),
            (
                r#"{"access_token":"a","expiry_date":"soon"}"#,
                "milliseconds",
            ),
            (
                r#"{"access_token":"a","resource_url":"a b/c"}"#,
                "resource_url",
            ),
            (
                r#"{"access_token":"a","refresh_token":5}"#,
                "refresh_token must be a string",
            ),
        ] {
            let err = parse_allowing(body.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
            assert!(!err.contains("with space"), "{err}");
        }
    }
}
