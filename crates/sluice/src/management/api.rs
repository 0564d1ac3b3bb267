//! Seed 003's `/v0/management` endpoints. Each setting is declared once (a [`Scalar`] or a
//! [`List`]) and registered by [`Api`], which adds its routes and their OpenAPI description
//! together, so the document cannot drift from the router.
//!
//! Request conventions (seed 003): scalars are set with `{"value": …}`; a list is replaced by
//! PUT of a raw array or `{"items": […]}`; one item is changed by PATCH `{"old","new"}` or
//! `{"index","value"}` (object lists: `{"index","value"}` or `{"match"|"name", "value"}`);
//! removed by DELETE `?index=` or `?value=` / `?api-key=` / `?name=`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use http::{HeaderValue, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::PartialSchema;

use super::error::ok;
use super::openapi::{Body, Op, Reply};
use super::{ManagementError, access};
use crate::auth_files;
use crate::config::{ApiKeyEntry, Config, OpenAiCompatibility};
use crate::gateway::AppState;
use crate::settings::auth_dir;

type Handled = Result<Response, ManagementError>;
type AppRouter = Router<Arc<AppState>>;

/// A single-valued setting.
pub trait Scalar: Send + Sync + 'static {
    type Value: Serialize + DeserializeOwned + PartialSchema + Send + 'static;
    /// Route, under `/v0/management`.
    const PATH: &'static str;
    /// Key of the GET answer, e.g. `switch-project`.
    const NAME: &'static str;
    /// The top-level config key that holds it, e.g. `quota-exceeded`.
    const FILE_KEY: &'static str;
    /// Whether DELETE resets it (only `proxy-url` in seed 003).
    const DELETE: bool = false;
    fn get(config: &Config) -> Self::Value;
    fn set(config: &mut Config, value: Self::Value);
    /// The value's JSON schema, when the type alone says too little.
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        Self::Value::schema()
    }
    fn reset(_config: &mut Config) {}
}

/// How PATCH picks the item to change, besides `index`.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    /// `{"old": …, "new": …}` (string lists).
    OldNew,
    /// `{"<field>": …, "value": {…}}` (object lists).
    Field(&'static str),
}

/// A list setting.
pub trait List: Send + Sync + 'static {
    type Item: Serialize + DeserializeOwned + Clone + PartialSchema + Send + Sync + 'static;
    /// Route, and the top-level config key (the same in seed 003).
    const NAME: &'static str;
    const PICK: Pick;
    /// DELETE's selector besides `index`.
    const QUERY: &'static str;
    fn items(config: &mut Config) -> &mut Vec<Self::Item>;
    fn view(config: &Config) -> &[Self::Item];
    /// What PATCH's selector and DELETE's parameter are compared with.
    fn key(item: &Self::Item) -> &str;
}

macro_rules! scalar {
    ($(#[$doc:meta])* $ty:ident: $value:ty, $path:literal, $name:literal in $file:literal,
     |$c:ident| $get:expr, |$m:ident, $v:ident| $set:expr $(, reset |$r:ident| $reset:expr)?) => {
        $(#[$doc])*
        pub struct $ty;
        impl Scalar for $ty {
            type Value = $value;
            const PATH: &'static str = $path;
            const NAME: &'static str = $name;
            const FILE_KEY: &'static str = $file;
            $(const DELETE: bool = { let _ = stringify!($r); true };)?
            fn get($c: &Config) -> $value { $get }
            fn set($m: &mut Config, $v: $value) { $set }
            $(fn reset($r: &mut Config) { $reset })?
        }
    };
}

scalar!(/// `debug`
    Debug: bool, "/debug", "debug" in "debug", |c| c.debug, |c, v| c.debug = v);
scalar!(/// `proxy-url`
    ProxyUrl: String, "/proxy-url", "proxy-url" in "proxy-url",
    |c| c.proxy_url.clone(), |c, v| c.proxy_url = v, reset |c| c.proxy_url.clear());
scalar!(/// `quota-exceeded.switch-project`
    SwitchProject: bool, "/quota-exceeded/switch-project", "switch-project" in "quota-exceeded",
    |c| c.quota_exceeded.switch_project, |c, v| c.quota_exceeded.switch_project = v);
scalar!(/// `quota-exceeded.switch-preview-model`
    SwitchPreviewModel: bool, "/quota-exceeded/switch-preview-model", "switch-preview-model" in "quota-exceeded",
    |c| c.quota_exceeded.switch_preview_model, |c, v| c.quota_exceeded.switch_preview_model = v);
/// `request-retry`
pub struct RequestRetry;
impl Scalar for RequestRetry {
    type Value = u32;
    const PATH: &'static str = "/request-retry";
    const NAME: &'static str = "request-retry";
    const FILE_KEY: &'static str = "request-retry";
    fn get(c: &Config) -> u32 {
        c.request_retry
    }
    fn set(c: &mut Config, v: u32) {
        c.request_retry = v;
    }
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(0))
            .maximum(Some(crate::settings::MAX_REQUEST_RETRY))
            .into()
    }
}
scalar!(/// `allow-localhost-unauthenticated`
    AllowLocalhost: bool, "/allow-localhost-unauthenticated", "allow-localhost-unauthenticated" in "allow-localhost-unauthenticated",
    |c| c.allow_localhost_unauthenticated, |c, v| c.allow_localhost_unauthenticated = v);
scalar!(/// `request-log`
    RequestLog: bool, "/request-log", "request-log" in "request-log",
    |c| c.request_log, |c, v| c.request_log = v);

/// `api-keys`: the proxy's client keys.
pub struct ApiKeys;
impl List for ApiKeys {
    type Item = String;
    const NAME: &'static str = "api-keys";
    const PICK: Pick = Pick::OldNew;
    const QUERY: &'static str = "value";
    fn items(c: &mut Config) -> &mut Vec<String> {
        &mut c.api_keys
    }
    fn view(c: &Config) -> &[String] {
        &c.api_keys
    }
    fn key(item: &String) -> &str {
        item
    }
}

/// `generative-language-api-key`.
pub struct GeminiKeys;
impl List for GeminiKeys {
    type Item = String;
    const NAME: &'static str = "generative-language-api-key";
    const PICK: Pick = Pick::OldNew;
    const QUERY: &'static str = "value";
    fn items(c: &mut Config) -> &mut Vec<String> {
        &mut c.generative_language_api_key
    }
    fn view(c: &Config) -> &[String] {
        &c.generative_language_api_key
    }
    fn key(item: &String) -> &str {
        item
    }
}

/// `codex-api-key`.
pub struct CodexKeys;
impl List for CodexKeys {
    type Item = ApiKeyEntry;
    const NAME: &'static str = "codex-api-key";
    const PICK: Pick = Pick::Field("match");
    const QUERY: &'static str = "api-key";
    fn items(c: &mut Config) -> &mut Vec<ApiKeyEntry> {
        &mut c.codex_api_key
    }
    fn view(c: &Config) -> &[ApiKeyEntry] {
        &c.codex_api_key
    }
    fn key(item: &ApiKeyEntry) -> &str {
        &item.api_key
    }
}

/// `claude-api-key`.
pub struct ClaudeKeys;
impl List for ClaudeKeys {
    type Item = ApiKeyEntry;
    const NAME: &'static str = "claude-api-key";
    const PICK: Pick = Pick::Field("match");
    const QUERY: &'static str = "api-key";
    fn items(c: &mut Config) -> &mut Vec<ApiKeyEntry> {
        &mut c.claude_api_key
    }
    fn view(c: &Config) -> &[ApiKeyEntry] {
        &c.claude_api_key
    }
    fn key(item: &ApiKeyEntry) -> &str {
        &item.api_key
    }
}

/// `openai-compatibility`.
pub struct OpenAiCompat;
impl List for OpenAiCompat {
    type Item = OpenAiCompatibility;
    const NAME: &'static str = "openai-compatibility";
    const PICK: Pick = Pick::Field("name");
    const QUERY: &'static str = "name";
    fn items(c: &mut Config) -> &mut Vec<OpenAiCompatibility> {
        &mut c.openai_compatibility
    }
    fn view(c: &Config) -> &[OpenAiCompatibility] {
        &c.openai_compatibility
    }
    fn key(item: &OpenAiCompatibility) -> &str {
        &item.name
    }
}

/// The management routes and their description, built together.
pub struct Api {
    router: AppRouter,
    pub ops: Vec<Op>,
}

impl Api {
    /// Every management endpoint.
    pub fn all() -> Api {
        Api {
            router: Router::new(),
            ops: Vec::new(),
        }
        .config()
        .scalar::<Debug>()
        .scalar::<ProxyUrl>()
        .scalar::<SwitchProject>()
        .scalar::<SwitchPreviewModel>()
        .list::<ApiKeys>()
        .list::<GeminiKeys>()
        .list::<CodexKeys>()
        .scalar::<RequestRetry>()
        .scalar::<AllowLocalhost>()
        .request_log()
        .list::<ClaudeKeys>()
        .list::<OpenAiCompat>()
        .auth_files()
        .oauth_logins()
        .credentials()
    }

    /// The router, nested under `/v0/management` behind [`access::guard`].
    pub fn into_router(self, state: Arc<AppState>) -> AppRouter {
        self.router
            .fallback(|| async { ManagementError::not_found() })
            .method_not_allowed_fallback(|| async { ManagementError::method_not_allowed() })
            .layer(axum::middleware::from_fn_with_state(state, access::guard))
    }

    pub(super) fn route(
        mut self,
        path: &str,
        methods: MethodRouter<Arc<AppState>>,
        ops: Vec<Op>,
    ) -> Self {
        self.router = self.router.route(path, methods);
        self.ops.extend(ops);
        self
    }

    /// `request-log`: seed 003's switch (PUT/PATCH `{"value": bool}`, effective with the next
    /// request); its GET also lists the newest entries, and `/request-log/{id}` shows one.
    fn request_log(self) -> Self {
        let value = RequestLog::schema();
        let listing = utoipa::openapi::schema::ObjectBuilder::new()
            .property(RequestLog::NAME, value.clone())
            .required(RequestLog::NAME)
            .property(
                "entries",
                super::openapi::array_of(serde_json::Value::schema()),
            )
            .required("entries")
            .into();
        self.route(
            RequestLog::PATH,
            get(get_request_log)
                .put(set_scalar::<RequestLog>)
                .patch(set_scalar::<RequestLog>),
            vec![
                Op::get(
                    RequestLog::PATH,
                    "Read `request-log`, with the newest logged requests (?limit=, default 50)",
                    Reply::json(listing),
                )
                .query("limit", false, super::openapi::integer()),
                Op::write(
                    "put",
                    RequestLog::PATH,
                    "Set `request-log`",
                    Body::json(super::openapi::object_of("value", value.clone())),
                ),
                Op::write(
                    "patch",
                    RequestLog::PATH,
                    "Set `request-log`",
                    Body::json(super::openapi::object_of("value", value)),
                ),
            ],
        )
        .route(
            "/request-log/{id}",
            get(get_request_log_entry),
            vec![
                Op::get(
                    "/request-log/{id}",
                    "One logged request by request id: request, answer or upstream events, attempts",
                    Reply::json(serde_json::Value::schema()),
                )
                .not_found(),
            ],
        )
    }

    fn config(self) -> Self {
        self.route(
            "/config",
            get(get_config),
            vec![Op::get(
                "/config",
                "The whole configuration (the file's values; the management key is never shown)",
                Reply::json(serde_json::Value::schema()),
            )],
        )
    }

    fn scalar<S: Scalar>(self) -> Self {
        let value = S::schema();
        let mut methods = get(get_scalar::<S>)
            .put(set_scalar::<S>)
            .patch(set_scalar::<S>);
        let mut ops = vec![
            Op::get(
                S::PATH,
                &format!("Read `{}`", S::NAME),
                Reply::json(super::openapi::object_of(S::NAME, value.clone())),
            ),
            Op::write(
                "put",
                S::PATH,
                &format!("Set `{}`", S::NAME),
                Body::json(super::openapi::object_of("value", value.clone())),
            ),
            Op::write(
                "patch",
                S::PATH,
                &format!("Set `{}`", S::NAME),
                Body::json(super::openapi::object_of("value", value)),
            ),
        ];
        if S::DELETE {
            methods = methods.delete(reset_scalar::<S>);
            ops.push(Op::write(
                "delete",
                S::PATH,
                &format!("Clear `{}`", S::NAME),
                Body::None,
            ));
        }
        self.route(S::PATH, methods, ops)
    }

    fn list<L: List>(self) -> Self {
        let path = format!("/{}", L::NAME);
        let item = L::Item::schema();
        let ops = vec![
            Op::get(
                &path,
                &format!("List `{}`", L::NAME),
                Reply::json(super::openapi::object_of(
                    L::NAME,
                    super::openapi::array_of(item.clone()),
                )),
            ),
            Op::write(
                "put",
                &path,
                &format!("Replace `{}` (a raw array or {{\"items\": […]}})", L::NAME),
                Body::json(super::openapi::put_body(item.clone())),
            ),
            Op::write(
                "patch",
                &path,
                &format!("Change one item of `{}`", L::NAME),
                Body::json(super::openapi::patch_body(L::PICK, item)),
            )
            .not_found(),
            Op::write(
                "delete",
                &path,
                &format!("Remove items of `{}` by index or {}", L::NAME, L::QUERY),
                Body::None,
            )
            .query("index", false, super::openapi::integer())
            .query(L::QUERY, false, String::schema())
            .not_found(),
        ];
        self.route(
            &path,
            get(get_list::<L>)
                .put(put_list::<L>)
                .patch(patch_list::<L>)
                .delete(delete_list::<L>),
            ops,
        )
    }

    fn auth_files(self) -> Self {
        let limit = DefaultBodyLimit::max(auth_files::MAX_FILE_SIZE * 2 + 64 * 1024);
        self.route(
            "/auth-files",
            get(list_auth_files)
                .post(upload_auth_file)
                .delete(delete_auth_files)
                .layer(limit),
            vec![
                Op::get(
                    "/auth-files",
                    "List the token files in auth-dir",
                    Reply::json(super::openapi::files_list()),
                ),
                Op::write(
                    "post",
                    "/auth-files",
                    "Upload a token file (multipart field `file`, or raw JSON with ?name=)",
                    Body::TokenFile,
                )
                .query("name", false, String::schema())
                .too_large(),
                Op::write(
                    "delete",
                    "/auth-files",
                    "Delete one token file (?name=) or all (?all=true)",
                    Body::None,
                )
                .query("name", false, String::schema())
                .query("all", false, bool::schema())
                .not_found()
                .reply(Reply::json(super::openapi::deleted())),
            ],
        )
        .route(
            "/auth-files/download",
            get(download_auth_file),
            vec![
                Op::get(
                    "/auth-files/download",
                    "Download one token file",
                    Reply::File,
                )
                .query("name", true, String::schema())
                .not_found(),
            ],
        )
    }
}

/// Reads `{"value": …}`.
fn value_of<T: DeserializeOwned>(body: &[u8]) -> Result<T, ManagementError> {
    let mut json: Value =
        serde_json::from_slice(body).map_err(|_| ManagementError::invalid_body())?;
    let value = json
        .get_mut("value")
        .map(Value::take)
        .ok_or_else(ManagementError::invalid_body)?;
    serde_json::from_value(value)
        .map_err(|e| ManagementError::invalid_body().because(e.to_string()))
}

async fn get_config(State(app): State<Arc<AppState>>) -> Handled {
    let mut json =
        serde_json::to_value(app.management.raw()).map_err(ManagementError::save_failed)?;
    if let Some(obj) = json.as_object_mut() {
        obj.remove("remote-management-key");
    }
    Ok(axum::Json(json).into_response())
}

/// The most entries one listing returns.
const MAX_LISTED: usize = 1000;

async fn get_request_log(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Handled {
    let query = query.map_err(|_| ManagementError::invalid_body())?;
    let limit = match query.get("limit") {
        None => 50,
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| ManagementError::invalid_body().because("limit must be a whole number"))?
            .min(MAX_LISTED),
    };
    let on = RequestLog::get(&app.management.raw());
    let dir = crate::request_log::dir(&app.runtime.load().config.data_dir);
    let entries = tokio::task::spawn_blocking(move || crate::request_log::list(&dir, limit))
        .await
        .unwrap_or_default();
    Ok(axum::Json(serde_json::json!({RequestLog::NAME: on, "entries": entries})).into_response())
}

async fn get_request_log_entry(
    State(app): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Handled {
    let dir = crate::request_log::dir(&app.runtime.load().config.data_dir);
    let found = tokio::task::spawn_blocking(move || crate::request_log::find(&dir, &id))
        .await
        .ok()
        .flatten();
    match found {
        Some(entry) => Ok(axum::Json(entry).into_response()),
        None => Err(ManagementError::not_found()),
    }
}

async fn get_scalar<S: Scalar>(State(app): State<Arc<AppState>>) -> Handled {
    let value = serde_json::to_value(S::get(&app.management.raw()))
        .map_err(ManagementError::save_failed)?;
    let mut body = serde_json::Map::new();
    body.insert(S::NAME.to_string(), value);
    Ok(axum::Json(body).into_response())
}

async fn set_scalar<S: Scalar>(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let value: S::Value = value_of(&body)?;
    app.management
        .update(&app, S::FILE_KEY, |c| {
            S::set(c, value);
            Ok(())
        })
        .await?;
    Ok(ok())
}

async fn reset_scalar<S: Scalar>(State(app): State<Arc<AppState>>) -> Handled {
    app.management
        .update(&app, S::FILE_KEY, |c| {
            S::reset(c);
            Ok(())
        })
        .await?;
    Ok(ok())
}

async fn get_list<L: List>(State(app): State<Arc<AppState>>) -> Handled {
    let raw = app.management.raw();
    let items = serde_json::to_value(L::view(&raw)).map_err(ManagementError::save_failed)?;
    let mut body = serde_json::Map::new();
    body.insert(L::NAME.to_string(), items);
    Ok(axum::Json(body).into_response())
}

async fn put_list<L: List>(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let json: Value = serde_json::from_slice(&body).map_err(|_| ManagementError::invalid_body())?;
    let array = match json {
        Value::Array(_) => json,
        Value::Object(mut obj) => match obj.remove("items") {
            Some(items @ Value::Array(_)) => items,
            _ => return Err(ManagementError::invalid_body()),
        },
        _ => return Err(ManagementError::invalid_body()),
    };
    let items: Vec<L::Item> = serde_json::from_value(array)
        .map_err(|e| ManagementError::invalid_body().because(e.to_string()))?;
    app.management
        .update(&app, L::NAME, |c| {
            *L::items(c) = items;
            Ok(())
        })
        .await?;
    Ok(ok())
}

/// One item of a PATCH body, read as the list's item type.
fn item_of<T: DeserializeOwned>(json: &mut Value, field: &str) -> Result<T, ManagementError> {
    let value = json
        .get_mut(field)
        .map(Value::take)
        .ok_or_else(ManagementError::invalid_body)?;
    serde_json::from_value(value)
        .map_err(|e| ManagementError::invalid_body().because(e.to_string()))
}

async fn patch_list<L: List>(State(app): State<Arc<AppState>>, body: Bytes) -> Handled {
    let mut json: Value =
        serde_json::from_slice(&body).map_err(|_| ManagementError::invalid_body())?;
    if !json.is_object() {
        return Err(ManagementError::invalid_body());
    }
    enum Target {
        Index(usize),
        Key(String),
    }
    let (target, item): (Target, L::Item) = if let Some(index) = json.get("index") {
        let index = index
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| {
                ManagementError::invalid_body().because("`index` must be a non-negative integer")
            })?;
        (Target::Index(index), item_of(&mut json, "value")?)
    } else {
        match L::PICK {
            Pick::OldNew => {
                let old = json.get("old").and_then(Value::as_str).map(String::from);
                let old = old.ok_or_else(ManagementError::invalid_body)?;
                (Target::Key(old), item_of(&mut json, "new")?)
            }
            Pick::Field(field) => {
                let key = json.get(field).and_then(Value::as_str).map(String::from);
                let key = key.ok_or_else(ManagementError::invalid_body)?;
                (Target::Key(key), item_of(&mut json, "value")?)
            }
        }
    };
    app.management
        .update(&app, L::NAME, |c| {
            let items = L::items(c);
            let slot = match target {
                Target::Index(i) => items.get_mut(i),
                Target::Key(k) => items.iter_mut().find(|it| L::key(it) == k),
            };
            *slot.ok_or_else(ManagementError::item_not_found)? = item;
            Ok(())
        })
        .await?;
    Ok(ok())
}

async fn delete_list<L: List>(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Handled {
    let query = query_map(query)?;
    if let Some(index) = query.get("index") {
        let index: usize = index
            .trim()
            .parse()
            .map_err(|_| ManagementError::bad_query("invalid index"))?;
        app.management
            .update(&app, L::NAME, |c| {
                let items = L::items(c);
                if index >= items.len() {
                    return Err(ManagementError::item_not_found());
                }
                items.remove(index);
                Ok(())
            })
            .await?;
    } else if let Some(key) = query.get(L::QUERY) {
        app.management
            .update(&app, L::NAME, |c| {
                let items = L::items(c);
                let before = items.len();
                items.retain(|it| L::key(it) != key);
                if items.len() == before {
                    return Err(ManagementError::item_not_found());
                }
                Ok(())
            })
            .await?;
    } else {
        return Err(ManagementError::bad_query(&format!(
            "missing index or {}",
            L::QUERY
        )));
    }
    Ok(ok())
}

/// The query parameters; a query that cannot be decoded is a 400 in the management shape.
fn query_map(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ManagementError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ManagementError::bad_query("invalid query").because(e.body_text()))
}

/// A checked auth file name from the query.
fn file_name(query: &HashMap<String, String>) -> Result<String, ManagementError> {
    let name = query
        .get("name")
        .ok_or_else(|| ManagementError::bad_query("missing name"))?;
    auth_files::check_name(name)
        .map_err(|reason| ManagementError::bad_query("invalid name").because(reason))?;
    Ok(name.clone())
}

async fn list_auth_files(State(app): State<Arc<AppState>>) -> Handled {
    let runtime = app.runtime.load();
    let dir = auth_dir(&runtime.config);
    let mut files =
        auth_files::list(&dir).map_err(|e| ManagementError::io("cannot read auth-dir", &e))?;
    let mut accounts = runtime.refresher.statuses();
    for file in &mut files {
        if let Some(account) = accounts.remove(&file.name) {
            file.status = Some(account.state.to_string());
            file.status_message = account.reason;
            file.expires_at = account.expires_at;
            file.last_refresh = account.last_refresh;
        }
    }
    Ok(axum::Json(serde_json::json!({"files": files})).into_response())
}

async fn download_auth_file(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Handled {
    let query = query_map(query)?;
    let name = file_name(&query)?;
    let bytes = match auth_files::read(&auth_dir(&app.runtime.load().config), &name) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManagementError::file_not_found());
        }
        Err(e) => return Err(ManagementError::io("cannot read the file", &e)),
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

async fn upload_auth_file(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
) -> Handled {
    let query = query_map(query)?;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let (name, bytes) = if multipart {
        read_multipart(request).await?
    } else {
        let name = file_name(&query)?;
        let limited = http_body_util::Limited::new(request.into_body(), auth_files::MAX_FILE_SIZE);
        let bytes = limited
            .collect()
            .await
            .map_err(|_| ManagementError::too_large(auth_files::MAX_FILE_SIZE))?
            .to_bytes();
        (name, bytes)
    };
    auth_files::parse(&bytes).map_err(|reason| ManagementError::invalid_body().because(reason))?;
    let dir = auth_dir(&app.runtime.load().config);
    auth_files::store(&dir, &name, &bytes)
        .map_err(|e| ManagementError::io("cannot store the file", &e))?;
    app.management.rebuild(&app).await?;
    tracing::info!(file = %name, "auth file stored and loaded");
    Ok(ok())
}

/// The `file` field of a multipart upload: its file name and contents.
async fn read_multipart(request: Request) -> Result<(String, Bytes), ManagementError> {
    use axum::extract::FromRequest;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|_| ManagementError::invalid_body())?;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().map(String::from).ok_or_else(|| {
            ManagementError::invalid_body().because("the `file` field has no file name")
        })?;
        auth_files::check_name(&name)
            .map_err(|reason| ManagementError::bad_query("invalid name").because(reason))?;
        let mut bytes = bytes::BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > auth_files::MAX_FILE_SIZE {
                return Err(ManagementError::too_large(auth_files::MAX_FILE_SIZE));
            }
        }
        return Ok((name, bytes.freeze()));
    }
    Err(ManagementError::invalid_body().because("no `file` field"))
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ManagementError {
    if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        ManagementError::too_large(auth_files::MAX_FILE_SIZE)
    } else {
        ManagementError::invalid_body().because(e.body_text())
    }
}

async fn delete_auth_files(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Handled {
    let query = query_map(query)?;
    let dir = auth_dir(&app.runtime.load().config);
    if query.get("all").is_some_and(|v| v == "true" || v == "1") {
        let files =
            auth_files::list(&dir).map_err(|e| ManagementError::io("cannot read auth-dir", &e))?;
        let mut deleted = 0;
        for file in files {
            match std::fs::remove_file(dir.join(&file.name)) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ManagementError::io("cannot delete a file", &e)),
            }
        }
        app.management.rebuild(&app).await?;
        tracing::info!(deleted, "auth files deleted");
        return Ok(
            axum::Json(serde_json::json!({"status": "ok", "deleted": deleted})).into_response(),
        );
    }
    let name = file_name(&query)?;
    match std::fs::remove_file(auth_files::path_of(&dir, &name)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManagementError::file_not_found());
        }
        Err(e) => return Err(ManagementError::io("cannot delete the file", &e)),
    }
    app.management.rebuild(&app).await?;
    tracing::info!(file = %name, "auth file deleted and unloaded");
    Ok(ok())
}
