//! The model catalog as each dialect lists it: `GET /v1/models` (OpenAI's list, Anthropic's with
//! `anthropic-version`, Gemini's for Google's SDKs), `GET /v1/models/{id}` (one model, same
//! rule), and `GET /v1beta/models[/{name}]` (always Gemini's). A caller sees only the models
//! its key may use.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_dialect::{Capabilities, Dialect, ErrorBody, ErrorKind, gemini};

use super::authenticate_listing;
use crate::error::{GatewayError, Lang};
use crate::gateway::AppState;
use crate::token_pool::Scope;

/// The dialect a request on the shared `/v1/models` routes speaks: Anthropic's SDK sends
/// `anthropic-version`; Google's sends its key as `x-goog-api-key` (or `?key=`) and names
/// itself in `x-goog-api-client`; everyone else gets OpenAI's shape.
pub fn listing_dialect(request: &Request) -> Dialect {
    let headers = request.headers();
    if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else if headers.contains_key("x-goog-api-key")
        || headers.contains_key("x-goog-api-client")
        || request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("key=")))
    {
        Dialect::Gemini
    } else {
        Dialect::OpenAiChat
    }
}

/// `GET /v1/models`.
pub async fn list_models(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let dialect = listing_dialect(&request);
    // Seed 000's route: its rules for callers without a Sluice key hold here.
    list(&app, dialect, &request, Scope::Seed000)
}

/// `GET /v1beta/models`.
pub async fn list_gemini_models(State(app): State<Arc<AppState>>, request: Request) -> Response {
    list(&app, Dialect::Gemini, &request, Scope::Standard)
}

/// `GET /v1/models/{id}`: the OpenAI SDK's `models.retrieve`, Anthropic's `models.retrieve`,
/// or google-genai's `models.get` on the `v1` prefix.
pub async fn retrieve_model(
    State(app): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let dialect = listing_dialect(&request);
    one(&app, dialect, path, &request)
}

/// `GET /v1beta/models/{name}`: google-genai's `models.get`.
pub async fn get_gemini_model(
    State(app): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    one(&app, Dialect::Gemini, path, &request)
}

/// 400 for a model path that is not valid (percent-decoded) UTF-8, in the caller's dialect.
pub fn invalid_model_path() -> GatewayError {
    GatewayError::bad_request(
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            "The model name in the URL path is not valid UTF-8.",
        )
        .with_param("model"),
    )
}

fn list(app: &AppState, dialect: Dialect, request: &Request, scope: Scope) -> Response {
    let runtime = app.runtime.load();
    let listed = match authenticate_listing(app, &runtime, request, dialect, scope) {
        Ok(listed) => listed,
        Err(refused) => return *refused,
    };
    let catalog = runtime.catalog();
    let models: Vec<(&str, &str)> = catalog.models().filter(|(id, _)| listed(id)).collect();
    let body = match dialect {
        Dialect::Gemini => {
            let models: Vec<(String, String, Capabilities)> = models
                .iter()
                .map(|(id, _)| (id.to_string(), id.to_string(), catalog.capabilities(id)))
                .collect();
            gemini::models_list(&models)
        }
        Dialect::Anthropic => {
            let data: Vec<Value> = models
                .iter()
                .map(|(id, _)| anthropic_model(app, id))
                .collect();
            let first = models.first().map(|(id, _)| *id);
            let last = models.last().map(|(id, _)| *id);
            json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
        }
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            let data: Vec<Value> = models
                .iter()
                .map(|(id, owner)| openai_model(app, id, owner, catalog.capabilities(id)))
                .collect();
            json!({"object": "list", "data": data})
        }
    };
    Json(body).into_response()
}

fn one(
    app: &AppState,
    dialect: Dialect,
    path: Result<Path<String>, PathRejection>,
    request: &Request,
) -> Response {
    let lang = Lang::from_headers(request.headers());
    let Ok(Path(id)) = path else {
        return invalid_model_path().localized(lang).render(dialect);
    };
    let runtime = app.runtime.load();
    let listed = match authenticate_listing(app, &runtime, request, dialect, Scope::Standard) {
        Ok(listed) => listed,
        Err(refused) => return *refused,
    };
    let id = match dialect {
        Dialect::Gemini => id.strip_prefix("models/").unwrap_or(&id),
        _ => &id,
    };
    let found = runtime
        .catalog()
        .models()
        .find(|(model, _)| *model == id && listed(model));
    let Some((id, owner)) = found else {
        return GatewayError::model_not_found(id)
            .localized(lang)
            .render(dialect);
    };
    let capabilities = runtime.catalog().capabilities(id);
    let body = match dialect {
        Dialect::Gemini => gemini::model_info(id, id, capabilities),
        Dialect::Anthropic => anthropic_model(app, id),
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            openai_model(app, id, owner, capabilities)
        }
    };
    Json(body).into_response()
}

/// OpenAI's model object, plus `capabilities` (what the model can serve through Sluice:
/// `chat`, `embedding`, …); SDKs ignore fields they do not know.
fn openai_model(app: &AppState, id: &str, owner: &str, capabilities: Capabilities) -> Value {
    json!({
        "id": id,
        "object": "model",
        "created": app.started_unix,
        "owned_by": owner,
        "capabilities": capabilities.names(),
    })
}

fn anthropic_model(app: &AppState, id: &str) -> Value {
    let created = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(app.started_unix),
    )
    .to_string();
    json!({"type": "model", "id": id, "display_name": id, "created_at": created})
}
