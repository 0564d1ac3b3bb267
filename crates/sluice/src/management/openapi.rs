//! The OpenAPI 3.1 document served at `/openapi.json`, generated with `utoipa` from the
//! operations [`super::api::Api`] registers alongside its routes, and from the Rust types of
//! the bodies (`#[derive(utoipa::ToSchema)]`).
//!
//! The key/user API (`/api/…`) and the token pool join in [`document`] from
//! [`crate::api::Surface`], which registers their routes and operations together.

use std::sync::{Arc, OnceLock};

use axum::response::{IntoResponse, Response};
use utoipa::PartialSchema;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr, Required,
    SecurityRequirement,
};

use super::api::{Api, Pick};
use crate::auth_files::AuthFileInfo;
use crate::gateway::AppState;

/// Mount point of the management API.
pub const MANAGEMENT_PREFIX: &str = "/v0/management";

/// A request body.
#[derive(Clone)]
pub enum Body {
    None,
    Json(Box<RefOr<Schema>>),
    /// A token file: multipart (`file`) or raw JSON.
    TokenFile,
}

impl Body {
    pub fn json(schema: RefOr<Schema>) -> Body {
        Body::Json(Box::new(schema))
    }
}

impl Reply {
    pub fn json(schema: RefOr<Schema>) -> Reply {
        Reply::Json(Box::new(schema))
    }
}

/// A success answer.
#[derive(Clone)]
pub enum Reply {
    /// `{"status":"ok"}`.
    Status,
    Json(Box<RefOr<Schema>>),
    /// A file download.
    File,
}

/// One documented operation.
#[derive(Clone)]
pub struct Op {
    method: HttpMethod,
    verb: &'static str,
    path: String,
    summary: String,
    body: Body,
    reply: Reply,
    query: Vec<(String, bool, RefOr<Schema>)>,
    /// Error statuses besides 401/403 (every management operation has those).
    errors: Vec<u16>,
}

impl Op {
    /// A read.
    pub fn get(path: &str, summary: &str, reply: Reply) -> Op {
        Op {
            method: HttpMethod::Get,
            verb: "get",
            path: path.into(),
            summary: summary.into(),
            body: Body::None,
            reply,
            query: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// A change: answers `{"status":"ok"}`, 400 for a bad body, 500 when saving fails.
    pub fn write(method: &str, path: &str, summary: &str, body: Body) -> Op {
        let (method, verb) = match method {
            "put" => (HttpMethod::Put, "put"),
            "patch" => (HttpMethod::Patch, "patch"),
            "delete" => (HttpMethod::Delete, "delete"),
            _ => (HttpMethod::Post, "post"),
        };
        Op {
            method,
            verb,
            path: path.into(),
            summary: summary.into(),
            body,
            reply: Reply::Status,
            query: Vec::new(),
            errors: vec![400, 500],
        }
    }

    pub fn query(mut self, name: &str, required: bool, schema: RefOr<Schema>) -> Op {
        self.query.push((name.into(), required, schema));
        if !self.errors.contains(&400) {
            self.errors.push(400);
        }
        self
    }

    pub fn not_found(mut self) -> Op {
        self.errors.push(404);
        self
    }

    pub fn too_large(mut self) -> Op {
        self.errors.push(413);
        self
    }

    pub fn reply(mut self, reply: Reply) -> Op {
        self.reply = reply;
        self
    }
}

/// `{"<name>": <schema>}`, the key required.
pub fn object_of(name: &str, schema: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property(name, schema)
        .required(name)
        .into()
}

pub fn array_of(item: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(item).into()
}

pub fn integer() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .into()
}

fn string() -> RefOr<Schema> {
    String::schema()
}

/// A list PUT: a raw array or `{"items": [...]}`.
pub fn put_body(item: RefOr<Schema>) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(array_of(item.clone()))
        .item(object_of("items", array_of(item)))
        .into()
}

/// A list PATCH: `{"index","value"}` or the list's own selector.
pub fn patch_body(pick: Pick, item: RefOr<Schema>) -> RefOr<Schema> {
    let by_index = ObjectBuilder::new()
        .property("index", integer())
        .property("value", item.clone())
        .required("index")
        .required("value");
    let by_key = match pick {
        Pick::OldNew => ObjectBuilder::new()
            .property("old", string())
            .property("new", item)
            .required("old")
            .required("new"),
        Pick::Field(field) => ObjectBuilder::new()
            .property(field, string())
            .property("value", item)
            .required(field)
            .required("value"),
    };
    OneOfBuilder::new().item(by_index).item(by_key).into()
}

/// `{"files": [...]}`.
pub fn files_list() -> RefOr<Schema> {
    object_of("files", array_of(AuthFileInfo::schema()))
}

/// `{"status": "ok", "deleted": n}` (or `{"status":"ok"}` for one file).
pub fn deleted() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("status", string())
        .property("deleted", integer())
        .required("status")
        .into()
}

fn status() -> RefOr<Schema> {
    object_of("status", string())
}

fn error_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("error", string())
        .property("message", string())
        .required("error")
        .into()
}

fn json(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn operation(op: &Op) -> utoipa::openapi::path::Operation {
    let id = format!("{}{}", op.verb, op.path.replace(['/', '-', '{', '}'], "_"));
    let mut builder = OperationBuilder::new()
        .summary(Some(op.summary.clone()))
        .operation_id(Some(id))
        .tag("management");
    let path_params = op
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'));
    for name in path_params {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(String::schema())),
        );
    }
    for (name, required, schema) in &op.query {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(if *required {
                    Required::True
                } else {
                    Required::False
                })
                .schema(Some(schema.clone())),
        );
    }
    builder = match &op.body {
        Body::None => builder,
        Body::Json(schema) => builder.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json((**schema).clone()))
                .required(Some(Required::True))
                .build(),
        )),
        Body::TokenFile => {
            let form = ObjectBuilder::new()
                .property(
                    "file",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json"),
                )
                .required("file");
            let token = ObjectBuilder::new()
                .property("type", string())
                .property("access_token", string())
                .required("access_token");
            builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content("multipart/form-data", json(form.into()))
                    .content("application/json", json(token.into()))
                    .required(Some(Required::True))
                    .build(),
            ))
        }
    };
    let ok = match &op.reply {
        Reply::Status => ResponseBuilder::new()
            .description("Done")
            .content("application/json", json(status())),
        Reply::Json(schema) => ResponseBuilder::new()
            .description("OK")
            .content("application/json", json((**schema).clone())),
        Reply::File => ResponseBuilder::new()
            .description("The file")
            .content("application/json", json(serde_json::Value::schema())),
    };
    builder = builder.response("200", ok.build());
    let mut errors = vec![401, 403];
    errors.extend(op.errors.iter().copied());
    errors.sort_unstable();
    errors.dedup();
    for code in errors {
        let description = match code {
            400 => "invalid body or query",
            401 => "missing or invalid management key",
            403 => "remote management disabled, no key configured, or banned",
            404 => "item or file not found",
            413 => "file too large",
            _ => "failed to save config",
        };
        builder = builder.response(
            code.to_string(),
            ResponseBuilder::new()
                .description(description)
                .content("application/json", json(error_schema()))
                .build(),
        );
    }
    builder.build()
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut items: Vec<(String, PathItem)> = Vec::new();
    for op in Api::all().ops {
        let path = format!("{MANAGEMENT_PREFIX}{}", op.path);
        let item = PathItem::new(op.method.clone(), operation(&op));
        match items.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => existing.merge_operations(item),
            None => items.push((path, item)),
        }
    }
    // The key/user API (`/api/…`) and seed 000's token pool, registered with their routes.
    for op in crate::api::Surface::all().ops {
        let item = PathItem::new(op.method.clone(), op.operation());
        match items.iter_mut().find(|(p, _)| p == op.path) {
            Some((_, existing)) => existing.merge_operations(item),
            None => items.push((op.path.to_string(), item)),
        }
    }
    for (path, item) in items {
        paths = paths.path(path, item);
    }
    // Types the derived schemas refer to by name.
    let components = ComponentsBuilder::new()
        .schema_from::<crate::settings::CompatModel>()
        .schema_from::<crate::settings::ApiKeyEntry>()
        .schema_from::<crate::settings::OpenAiCompatibility>()
        .schema_from::<crate::auth_files::TokenKind>()
        .schema_from::<AuthFileInfo>()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .security_scheme(
            crate::api::doc::SESSION,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Session token from POST /api/auth/login"))
                    .build(),
            ),
        )
        .security_scheme(
            crate::api::doc::SERVICE_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token pool's service key (`token-pool.service-key`)",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "managementKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Management-Key"))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Sluice API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Seed 003's /v0/management API (runtime configuration persisted to the YAML config file, and OAuth token files; management key), seed 004's /api surface (sign-in, API keys, users, usage; session token, answers in the {code, message, data} envelope) and seed 000's token pool (service key).",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .security(Some([
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("managementKey", Vec::<String>::new()),
        ]))
        .build()
}

/// `GET /openapi.json`.
pub async fn serve(_: axum::extract::State<Arc<AppState>>) -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| document().to_json().unwrap_or_default());
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        body.clone(),
    )
        .into_response()
}
