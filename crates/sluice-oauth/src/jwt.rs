//! Reading (never verifying) the claims of a JWT: Codex's id_token names the ChatGPT account,
//! its access token carries `exp`.

use base64::Engine;
use serde_json::Value;

/// The payload of a JWT, decoded without verification.
pub fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// `exp` in unix seconds.
pub fn exp(token: &str) -> Option<i64> {
    claims(token)?.get("exp")?.as_i64()
}

/// What an OpenAI id_token says about the account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodexIdentity {
    pub account_id: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
}

/// The ChatGPT account of an id_token: `https://api.openai.com/auth`.`chatgpt_account_id`,
/// `chatgpt_plan_type`, and the top-level `email`.
pub fn codex_identity(id_token: &str) -> CodexIdentity {
    let Some(claims) = claims(id_token) else {
        return CodexIdentity::default();
    };
    let auth = claims.get("https://api.openai.com/auth");
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    CodexIdentity {
        account_id: text(auth.and_then(|a| a.get("chatgpt_account_id"))),
        email: text(claims.get("email")),
        plan: text(auth.and_then(|a| a.get("chatgpt_plan_type"))),
    }
}

/// An unsigned JWT (`alg: none`) carrying `claims`: what the fakes mint.
pub fn unsigned(claims: &Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_codex_claims() {
        let token = unsigned(&json!({
            "email": "a@b.c", "exp": 42,
            "https://api.openai.com/auth": {"chatgpt_account_id": "acct-1", "chatgpt_plan_type": "pro"}
        }));
        assert_eq!(exp(&token), Some(42));
        let id = codex_identity(&token);
        assert_eq!(id.account_id.as_deref(), Some("acct-1"));
        assert_eq!(id.email.as_deref(), Some("a@b.c"));
        assert_eq!(id.plan.as_deref(), Some("pro"));
        assert_eq!(codex_identity("not a jwt"), CodexIdentity::default());
        assert_eq!(exp("a.%%%.c"), None);
    }
}
