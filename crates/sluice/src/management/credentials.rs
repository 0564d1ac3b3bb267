//! Credential health through the management plane, for remote operators and scripts (the
//! dashboard's Credentials page has the same actions as buttons):
//! - `GET /credentials`: every credential's health (cooling windows, probes, disabled with the
//!   reason, sticky sessions).
//! - `POST /credentials/clear {"credential", "model"?}`: end the cooldown windows of one model,
//!   or of every model, now.
//! - `POST /credentials/disable {"credential", "reason"}`: out of rotation until enabled (or a
//!   config reload), with the operator's reason shown wherever the state is.
//! - `POST /credentials/enable {"credential"}`: back into rotation.
//! - `POST /credentials/test {"credential", "model"?}`: a real tiny request to the upstream with
//!   that credential; answers its status, latency, time to first byte and the upstream's words.
//!   Recorded as a probe (the dashboard shows the last one), never as usage: it counts against
//!   no key, limit or quota.
//!
//! Every action applies on every instance when instances share routing (`routing::status`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::PartialSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};

use super::ManagementError;
use super::api::Api;
use super::error::ok;
use super::openapi::{Body, Op, Reply};
use crate::gateway::AppState;
use crate::routing::probe::{ProbeError, probe};
use crate::routing::status::{Action, apply};
use crate::store::rollup::ProbeRow;

type Handled = Result<Response, ManagementError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clear {
    credential: String,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disable {
    credential: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enable {
    credential: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Test {
    credential: String,
    #[serde(default)]
    model: Option<String>,
}

impl Api {
    /// Credential health and the operator's actions on it.
    pub(super) fn credentials(self) -> Self {
        let body = |required: &[&str], optional: &[&str]| -> RefOr<Schema> {
            let text = || {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .pattern(Some(r"\S"))
            };
            let mut schema = ObjectBuilder::new()
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            for name in required {
                schema = schema.property(*name, text()).required(*name);
            }
            for name in optional {
                schema = schema.property(*name, text());
            }
            schema.into()
        };
        let action = |path: &str, summary: &str, schema: RefOr<Schema>| {
            Op::write("post", path, summary, Body::json(schema)).not_found()
        };
        let probed: RefOr<Schema> = ObjectBuilder::new()
            .property("id", String::schema())
            .property("time_ms", i64::schema())
            .property("provider", String::schema())
            .property("credential", String::schema())
            .property("model", String::schema())
            .property("status", i64::schema())
            .property("latency_ms", f64::schema())
            .property("ttft_ms", Option::<f64>::schema())
            .property("error", Option::<String>::schema())
            .required("id")
            .required("provider")
            .required("credential")
            .required("model")
            .required("status")
            .required("latency_ms")
            .into();
        self.route(
            "/credentials",
            get(crate::routing::status::handler),
            vec![Op::get(
                "/credentials",
                "Health of every credential: cooling, probing, disabled (with reason), sticky sessions",
                Reply::json(serde_json::Value::schema()),
            )],
        )
        .route(
            "/credentials/clear",
            post(clear),
            vec![action(
                "/credentials/clear",
                "End a credential's cooldown windows now: one model's, or every model's",
                body(&["credential"], &["model"]),
            )],
        )
        .route(
            "/credentials/disable",
            post(disable),
            vec![action(
                "/credentials/disable",
                "Take a credential out of rotation with a reason (until enabled or a config reload)",
                body(&["credential", "reason"], &[]),
            )],
        )
        .route(
            "/credentials/enable",
            post(enable),
            vec![action(
                "/credentials/enable",
                "Put a disabled credential back into rotation",
                body(&["credential"], &[]),
            )],
        )
        .route(
            "/credentials/test",
            post(test),
            vec![
                action(
                    "/credentials/test",
                    "Test a credential now with a real tiny request (recorded as a probe, never billed)",
                    body(&["credential"], &["model"]),
                )
                .reply(Reply::json(probed)),
            ],
        )
    }
}

/// The request's JSON body as `T`, or a 400 that says what was wrong.
fn body_of<T: DeserializeOwned>(body: &[u8]) -> Result<T, ManagementError> {
    serde_json::from_slice(body).map_err(|e| ManagementError::invalid_body().because(e.to_string()))
}

/// A credential id as given: trimmed, and not empty.
fn named(credential: &str) -> Result<&str, ManagementError> {
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(ManagementError::invalid_body().because("`credential` is required"));
    }
    Ok(credential)
}

fn unknown(credential: &str) -> ManagementError {
    ManagementError::item_not_found().because(format!("no credential is named {credential}"))
}

/// Applies `action` to `credential` through the routing status plane.
fn act(app: &AppState, credential: &str, action: Action) -> Handled {
    let runtime = app.runtime.load();
    if !apply(&runtime.router, credential, &action) {
        return Err(unknown(credential));
    }
    tracing::info!(%credential, ?action, "credential changed through the management API");
    Ok(ok())
}

async fn clear(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let asked: Clear = body_of(&body)?;
    let model = asked
        .model
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    act(&app, named(&asked.credential)?, Action::Clear { model })
}

async fn disable(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let asked: Disable = body_of(&body)?;
    let reason = asked.reason.trim();
    if reason.is_empty() {
        return Err(ManagementError::invalid_body().because("`reason` is required"));
    }
    let reason = format!("disabled through the management API: {reason}");
    act(&app, named(&asked.credential)?, Action::Disable { reason })
}

async fn enable(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let asked: Enable = body_of(&body)?;
    act(&app, named(&asked.credential)?, Action::Enable)
}

async fn test(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let asked: Test = body_of(&body)?;
    let credential = named(&asked.credential)?;
    let row = test_now(&app, credential, asked.model.as_deref(), None)
        .await
        .map_err(|e| match e {
            ProbeError::UnknownCredential => unknown(credential),
            ProbeError::UnknownModel(m) => {
                ManagementError::invalid_body().because(unserved(credential, &m))
            }
        })?;
    if let Err(e) = app.accounts.store.ui().insert_probe(&row).await {
        tracing::error!(error = %e, "storing a credential probe failed");
    }
    tracing::info!(credential = %row.credential, model = %row.model, status = row.status, "credential tested through the management API");
    Ok(axum::Json(row).into_response())
}

/// Why a credential cannot be tested with model `m` (empty: no model asked).
pub(crate) fn unserved(credential: &str, m: &str) -> String {
    if m.is_empty() {
        format!("{credential}'s provider serves no chat model to test")
    } else {
        format!("{credential}'s provider does not serve `{m}`")
    }
}

/// Tests `credential` now with a real tiny request (model `model`, else the first chat model
/// its provider serves), as the probe row to record; `user_id` is who asked, when a person
/// did. Never a usage record.
pub(crate) async fn test_now(
    app: &AppState,
    credential: &str,
    model: Option<&str>,
    user_id: Option<i64>,
) -> Result<ProbeRow, ProbeError> {
    let runtime = app.runtime.load_full();
    let id = format!("probe-{:016x}", rand::random::<u64>());
    let time_ms = app.accounts.now_ms();
    let o = probe(&runtime, credential, model, &id).await?;
    Ok(ProbeRow {
        id,
        time_ms,
        user_id,
        provider: o.provider,
        credential: o.credential,
        model: o.model,
        status: i64::from(o.status),
        error: o.error,
        latency_ms: o.latency_ms,
        ttft_ms: o.ttft_ms,
    })
}
