//! Signing accounts in through the management API (CLIProxyAPI's shape, research §8), so the
//! dashboard and remote operators can add accounts:
//!
//! - `GET /anthropic-auth-url?accept-risk=true`, `/codex-auth-url`, `/gemini-cli-auth-url` →
//!   `{"status":"ok","url","state"}`: a PKCE sign-in with a fresh single-use state, open for
//!   15 minutes. Claude's needs the explicit opt-in (the subscription is the user's own).
//! - `POST /oauth-callback {"provider","redirect_url"}` (or `"code"` + `"state"`): the pasted
//!   redirect (Claude's `code#state` included); the state must name a waiting sign-in of that
//!   provider. The exchange (and Gemini's project discovery) runs on its own; the token file is
//!   written 0600 into `auth-dir` and loaded.
//! - `GET /get-auth-status?state=` → `{"status":"wait"}`, `{"status":"ok","file"}` or
//!   `{"status":"error","error"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use sluice_oauth::Kind;
use sluice_oauth::login::{Pasted, parse_pasted};
use utoipa::PartialSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};

use super::ManagementError;
use super::api::Api;
use super::openapi::{Body, Op, Reply};
use crate::gateway::AppState;
use crate::oauth::login::{self as flow, Ctx, Finish, LoginStatus};

type Handled = Result<Response, ManagementError>;

impl Api {
    /// The sign-in endpoints.
    pub(super) fn oauth_logins(self) -> Self {
        let started: RefOr<Schema> = ObjectBuilder::new()
            .property("status", String::schema())
            .property("url", String::schema())
            .property("state", String::schema())
            .required("status")
            .required("url")
            .required("state")
            .into();
        let status: RefOr<Schema> = ObjectBuilder::new()
            .property("status", String::schema())
            .property("file", String::schema())
            .property("error", String::schema())
            .required("status")
            .into();
        let callback: RefOr<Schema> = ObjectBuilder::new()
            .property("provider", String::schema())
            .property("redirect_url", String::schema())
            .property("code", String::schema())
            .property("state", String::schema())
            .required("provider")
            .into();
        let url_op = |path: &str, summary: &str| {
            Op::get(path, summary, Reply::json(started.clone())).query(
                "accept-risk",
                false,
                bool::schema(),
            )
        };
        self.route(
            "/anthropic-auth-url",
            get(|s, q| auth_url(s, q, Kind::Claude)),
            vec![url_op(
                "/anthropic-auth-url",
                "Start a Claude sign-in (PKCE); requires accept-risk=true: the subscription is the user's own",
            )],
        )
        .route(
            "/codex-auth-url",
            get(|s, q| auth_url(s, q, Kind::Codex)),
            vec![url_op(
                "/codex-auth-url",
                "Start a Codex (ChatGPT) sign-in (PKCE); paste the redirect URL to /oauth-callback",
            )],
        )
        .route(
            "/gemini-cli-auth-url",
            get(|s, q| auth_url(s, q, Kind::Gemini)),
            vec![url_op(
                "/gemini-cli-auth-url",
                "Start a Gemini Code Assist sign-in (PKCE user code); post the code with the state to /oauth-callback",
            )],
        )
        .route(
            "/oauth-callback",
            post(oauth_callback),
            vec![
                Op::write(
                    "post",
                    "/oauth-callback",
                    "Finish a sign-in with the pasted redirect URL (or code and state)",
                    Body::json(callback),
                )
                .not_found(),
            ],
        )
        .route(
            "/get-auth-status",
            get(auth_status),
            vec![
                Op::get(
                    "/get-auth-status",
                    "Where a sign-in stands: wait, ok (with the file) or error",
                    Reply::json(status),
                )
                .query("state", true, String::schema())
                .not_found(),
            ],
        )
    }
}

fn query_map(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ManagementError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ManagementError::bad_query("invalid query").because(e.body_text()))
}

async fn auth_url(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    kind: Kind,
) -> Handled {
    let query = query_map(query)?;
    let accepted = match query.get("accept-risk").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ManagementError::bad_query("invalid accept-risk")
                .because("accept-risk is true or false"));
        }
    };
    if kind == Kind::Claude && !accepted {
        return Err(ManagementError::bad_query("accept-risk required")
            .because(crate::cli::login::CLAUDE_RISK.replace("--accept-risk", "accept-risk=true")));
    }
    let config = app.runtime.load().config.clone();
    let ctx = Ctx::new(&config, kind)
        .map_err(|e| ManagementError::internal("cannot start the sign-in").because(e))?;
    let (url, state) = app
        .management
        .logins
        .start(ctx, flow::DEFAULT_TIMEOUT)
        .map_err(|e| ManagementError::internal("cannot start the sign-in").because(e))?;
    Ok(axum::Json(json!({"status": "ok", "url": url, "state": state})).into_response())
}

fn provider(name: &str) -> Option<Kind> {
    match name {
        "anthropic" | "claude" => Some(Kind::Claude),
        "codex" | "openai" => Some(Kind::Codex),
        "gemini" | "gemini-cli" | "google" => Some(Kind::Gemini),
        _ => None,
    }
}

/// The `state` of a pasted callback, even one carrying an OAuth error.
fn state_of(text: &str) -> Option<String> {
    let query = text.split_once('?').map_or(text, |(_, q)| q);
    query
        .split(['&', '#'])
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "state")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

async fn oauth_callback(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let body: Value = serde_json::from_slice(&body).map_err(|_| {
        ManagementError::invalid_body().because("a JSON object {provider, redirect_url}")
    })?;
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let kind = field("provider").and_then(provider).ok_or_else(|| {
        ManagementError::invalid_body()
            .because("`provider` is anthropic, codex or gemini (gemini-cli)")
    })?;
    let given_state = field("state").map(String::from);
    let parsed = match (field("redirect_url"), field("code")) {
        (Some(url), _) => parse_pasted(url).map_err(|e| (e, state_of(url))),
        (None, Some(code)) => Ok(Pasted {
            code: code.to_string(),
            state: None,
        }),
        (None, None) => {
            return Err(
                ManagementError::invalid_body().because("`redirect_url` or `code` is required")
            );
        }
    };
    let mut pasted = match parsed {
        Ok(p) => p,
        Err((reason, state)) => {
            // A callback carrying the provider's refusal ends that sign-in.
            if let Some(state) = state.or(given_state)
                && app.management.logins.take(&state, kind).is_ok()
            {
                app.management.logins.finish(&state, Err(reason.clone()));
            }
            return Err(ManagementError::invalid_body().because(reason));
        }
    };
    if pasted.state.is_none() {
        pasted.state = given_state;
    }
    let Some(state) = pasted.state.clone() else {
        return Err(ManagementError::invalid_body()
            .because("no state: send the full redirect URL, `code#state`, or `state`"));
    };
    let (ctx, pending) = app
        .management
        .logins
        .take(&state, kind)
        .map_err(|e| ManagementError::not_found().because(e))?;
    let task_app = app.clone();
    tokio::spawn(async move {
        let outcome = flow::finish_pasted(&ctx, pending, &pasted, &Finish::default()).await;
        let outcome = match outcome {
            Ok(saved) => {
                if let Err(e) = task_app.management.rebuild(&task_app).await {
                    tracing::warn!(file = %saved.file, error = ?e, "signed-in account written but not loaded yet");
                }
                tracing::info!(file = %saved.file, provider = %kind, "account signed in");
                Ok(saved.file)
            }
            Err(e) => {
                tracing::warn!(provider = %kind, reason = %e, "sign-in failed");
                Err(e)
            }
        };
        task_app.management.logins.finish(&state, outcome);
    });
    Ok(axum::Json(json!({"status": "ok"})).into_response())
}

async fn auth_status(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Handled {
    let query = query_map(query)?;
    let state = query
        .get("state")
        .ok_or_else(|| ManagementError::bad_query("missing state"))?;
    let answer = match app.management.logins.status(state) {
        None => {
            return Err(ManagementError::not_found()
                .because("no sign-in with this state (unknown, or finished long ago)"));
        }
        Some(LoginStatus::Wait) => json!({"status": "wait"}),
        Some(LoginStatus::Ok { file }) => json!({"status": "ok", "file": file}),
        Some(LoginStatus::Error(e)) => json!({"status": "error", "error": e}),
    };
    Ok(axum::Json(answer).into_response())
}
