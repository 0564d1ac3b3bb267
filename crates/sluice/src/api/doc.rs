//! The OpenAPI description of the `/api` surface (seed 004's keys, users and usage; seed 000's
//! token pool). Each operation is declared next to its handler in [`super::Surface`], which
//! registers the route and this description together, so the document cannot drift from the
//! router.

use utoipa::PartialSchema;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, RefOr, Required, SecurityRequirement};

/// Security scheme name of the session token (`POST /api/auth/login`).
pub const SESSION: &str = "sessionToken";
/// Security scheme name of seed 000's service key.
pub const SERVICE_KEY: &str = "serviceKey";

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (sign-in).
    Public,
    /// A signed-in user.
    User,
    /// A signed-in admin.
    Admin,
    /// `Authorization: Bearer <token-pool service key>`; errors are OpenAI-shaped.
    ServiceKey,
}

/// One documented `/api` operation.
#[derive(Clone)]
pub struct ApiOp {
    pub method: HttpMethod,
    pub path: &'static str,
    summary: &'static str,
    access: Access,
    /// Description of the `{id}` path parameter, when there is one.
    id: Option<&'static str>,
    query: Vec<(&'static str, &'static str, RefOr<Schema>)>,
    body: Option<RefOr<Schema>>,
    /// `data` of the success envelope (`None`: no `data`), or the raw answer for the pool.
    reply: Option<RefOr<Schema>>,
    errors: Vec<u16>,
}

impl ApiOp {
    pub fn new(
        method: HttpMethod,
        path: &'static str,
        access: Access,
        summary: &'static str,
    ) -> ApiOp {
        let mut errors = match access {
            Access::Public => vec![],
            Access::User | Access::Admin => vec![401, 403],
            Access::ServiceKey => vec![401, 404],
        };
        errors.push(500);
        ApiOp {
            method,
            path,
            summary,
            access,
            id: path.contains("{id}").then_some("the numeric id"),
            query: Vec::new(),
            body: None,
            reply: None,
            errors,
        }
    }

    pub fn get(path: &'static str, access: Access, summary: &'static str) -> ApiOp {
        ApiOp::new(HttpMethod::Get, path, access, summary)
    }

    pub fn post(path: &'static str, access: Access, summary: &'static str) -> ApiOp {
        ApiOp::new(HttpMethod::Post, path, access, summary)
    }

    pub fn put(path: &'static str, access: Access, summary: &'static str) -> ApiOp {
        ApiOp::new(HttpMethod::Put, path, access, summary)
    }

    pub fn delete(path: &'static str, access: Access, summary: &'static str) -> ApiOp {
        ApiOp::new(HttpMethod::Delete, path, access, summary)
    }

    /// The `{id}` path parameter names this (and an unknown id is a 404).
    pub fn id(mut self, description: &'static str) -> ApiOp {
        self.id = Some(description);
        self.error(404)
    }

    pub fn query(
        mut self,
        name: &'static str,
        description: &'static str,
        schema: RefOr<Schema>,
    ) -> ApiOp {
        self.query.push((name, description, schema));
        self.error(400)
    }

    /// The usage range and scope parameters.
    pub fn usage_filter(self, scoped: bool) -> ApiOp {
        let op = self
            .query(
                "start",
                "first day, inclusive (default: 29 days before `end`)",
                day(),
            )
            .query(
                "end",
                "last day, inclusive (default: today in the configured time zone)",
                day(),
            );
        if scoped {
            op.query(
                "user_id",
                "admins only: one user's usage (ignored for other users)",
                query_id(),
            )
            .query("api_key_id", "one API key's usage", query_id())
        } else {
            op
        }
    }

    pub fn body(mut self, schema: RefOr<Schema>) -> ApiOp {
        self.body = Some(schema);
        self.error(400)
    }

    pub fn reply(mut self, data: RefOr<Schema>) -> ApiOp {
        self.reply = Some(data);
        self
    }

    pub fn error(mut self, status: u16) -> ApiOp {
        if !self.errors.contains(&status) {
            self.errors.push(status);
        }
        self
    }

    /// The operation object.
    pub fn operation(&self) -> Operation {
        let verb = match self.method {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Put => "put",
            HttpMethod::Delete => "delete",
            HttpMethod::Patch => "patch",
            HttpMethod::Head => "head",
            HttpMethod::Options => "options",
            HttpMethod::Trace => "trace",
        };
        let id = format!("{verb}{}", self.path.replace(['/', '-', '{', '}'], "_"));
        let tag = if self.access == Access::ServiceKey {
            "token-pool"
        } else {
            "api"
        };
        let mut builder = OperationBuilder::new()
            .summary(Some(self.summary))
            .operation_id(Some(id))
            .tag(tag);
        if let Some(description) = self.id {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some(description))
                    .schema(Some(id_schema())),
            );
        }
        for (name, description, schema) in &self.query {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(schema.clone())),
            );
        }
        if let Some(body) = &self.body {
            let mut request = RequestBodyBuilder::new()
                .content("application/json", json(body.clone()))
                .required(Some(Required::True));
            if self.access == Access::ServiceKey {
                request = request.content(
                    "text/plain",
                    json(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some("one token per line"))
                            .into(),
                    ),
                );
            }
            builder = builder.request_body(Some(request.build()));
        }
        let ok = match self.access {
            Access::ServiceKey => self.reply.clone().unwrap_or_else(serde_json::Value::schema),
            _ => envelope(self.reply.clone()),
        };
        builder = builder.response(
            "200",
            ResponseBuilder::new()
                .description("OK")
                .content("application/json", json(ok))
                .build(),
        );
        let mut errors = self.errors.clone();
        errors.sort_unstable();
        for code in errors {
            let description = match (code, self.access) {
                (400, Access::ServiceKey) => "no usable token in the body",
                (400, _) => "invalid body or query; the message names the field",
                (401, Access::Public) => "wrong username or password",
                (401, Access::ServiceKey) => "missing or wrong service key",
                (401, _) => "missing, invalid or expired session token",
                (403, Access::Public) => "the user is disabled",
                (403, Access::Admin) => "the user is disabled, or is not an admin",
                (403, _) => "the user is disabled",
                (404, Access::ServiceKey) => "no token pool is configured",
                (404, _) => "no such item (or not the caller's)",
                (409, _) => "the username is taken",
                (413, _) => "the body is too large",
                _ => "the gateway's store failed",
            };
            let schema = if self.access == Access::ServiceKey {
                openai_error()
            } else {
                error_envelope()
            };
            builder = builder.response(
                code.to_string(),
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", json(schema))
                    .build(),
            );
        }
        let mut operation = builder.build();
        operation.security = Some(match self.access {
            Access::Public => Vec::new(),
            Access::User | Access::Admin => {
                vec![SecurityRequirement::new(SESSION, Vec::<String>::new())]
            }
            Access::ServiceKey => vec![SecurityRequirement::new(SERVICE_KEY, Vec::<String>::new())],
        });
        operation
    }
}

fn json(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn of(ty: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(ty)
}

fn nullable(ty: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([ty, Type::Null]))
}

fn string() -> RefOr<Schema> {
    of(Type::String).into()
}

fn integer() -> RefOr<Schema> {
    of(Type::Integer).into()
}

fn number() -> RefOr<Schema> {
    of(Type::Number).into()
}

fn boolean() -> RefOr<Schema> {
    of(Type::Boolean).into()
}

fn id_schema() -> RefOr<Schema> {
    of(Type::Integer).minimum(Some(1)).into()
}

/// A query value, or an empty one (which means "not given").
fn or_empty(schema: RefOr<Schema>) -> RefOr<Schema> {
    AnyOfBuilder::new()
        .item(schema)
        .item(of(Type::String).max_length(Some(0)))
        .into()
}

fn query_id() -> RefOr<Schema> {
    or_empty(id_schema())
}

fn day() -> RefOr<Schema> {
    or_empty(
        of(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
            .description(Some("a day, YYYY-MM-DD"))
            .into(),
    )
}

fn array(item: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(item).into()
}

fn one_of(values: &[&str], null: bool) -> RefOr<Schema> {
    let builder = if null {
        nullable(Type::String)
    } else {
        of(Type::String)
    };
    let mut values: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    if null {
        values.push(serde_json::Value::Null);
    }
    builder.enum_values(Some(values)).into()
}

/// An object with these properties, all required.
fn object(props: &[(&str, RefOr<Schema>)]) -> ObjectBuilder {
    props
        .iter()
        .fold(ObjectBuilder::new(), |b, (name, schema)| {
            b.property(*name, schema.clone()).required(*name)
        })
}

/// Seed 004's success envelope around `data`.
fn envelope(data: Option<RefOr<Schema>>) -> RefOr<Schema> {
    let builder = object(&[
        ("code", of(Type::Integer).enum_values(Some([0])).into()),
        ("message", string()),
    ]);
    match data {
        Some(data) => builder.property("data", data).required("data").into(),
        None => builder.into(),
    }
}

/// Seed 004's error envelope: `code` is the HTTP status.
fn error_envelope() -> RefOr<Schema> {
    object(&[("code", integer()), ("message", string())]).into()
}

/// Seed 000's OpenAI-shaped error.
fn openai_error() -> RefOr<Schema> {
    object(&[(
        "error",
        ObjectBuilder::new()
            .property("message", string())
            .required("message")
            .property("type", string())
            .property("param", nullable(Type::String))
            .property("code", nullable(Type::String))
            .into(),
    )])
    .into()
}

// --- request bodies ---

pub fn login_body() -> RefOr<Schema> {
    object(&[
        ("username", of(Type::String).min_length(Some(1)).into()),
        ("password", of(Type::String).min_length(Some(1)).into()),
    ])
    .into()
}

fn key_fields(mut builder: ObjectBuilder) -> ObjectBuilder {
    let names = |what: &str| -> RefOr<Schema> {
        nullable(Type::String)
            .description(Some(format!(
                "comma-separated {what}, no spaces inside a name"
            )))
            .into()
    };
    let count = |what: &str| -> RefOr<Schema> {
        nullable(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(1_000_000_000))
            .description(Some(what.to_string()))
            .into()
    };
    builder = builder
        .property("allowed_platforms", names("platforms, or all (the default)"))
        .property("allowed_models", names("models; empty means all"))
        .property("rate_limit", count("requests per minute"))
        .property("daily_limit", count("requests per day; 0 means unlimited"))
        .property(
            "monthly_quota",
            nullable(Type::Number)
                .minimum(Some(0))
                .maximum(Some(1e9))
                .description(Some("USD per month; 0 means unlimited")),
        )
        .property(
            "expires_at",
            nullable(Type::String).description(Some(
                "ISO 8601 time (a local date-time or date is read in the configured time zone); null or empty: never",
            )),
        );
    builder
}

fn key_name(null: bool) -> RefOr<Schema> {
    let b = if null {
        nullable(Type::String)
    } else {
        of(Type::String)
    };
    b.min_length(Some(1)).max_length(Some(100)).into()
}

pub fn key_create_body() -> RefOr<Schema> {
    key_fields(
        ObjectBuilder::new()
            .property("name", key_name(false))
            .required("name"),
    )
    .into()
}

pub fn key_update_body() -> RefOr<Schema> {
    key_fields(ObjectBuilder::new().property("name", key_name(true)))
        .property("status", one_of(&["active", "disabled"], true))
        .into()
}

fn username() -> RefOr<Schema> {
    of(Type::String)
        .pattern(Some("^[A-Za-z0-9_.@-]{1,64}$"))
        .into()
}

fn password(null: bool) -> RefOr<Schema> {
    let b = if null {
        nullable(Type::String)
    } else {
        of(Type::String)
    };
    b.min_length(Some(8)).into()
}

pub fn user_create_body() -> RefOr<Schema> {
    object(&[("username", username()), ("password", password(false))])
        .property("role", one_of(&["admin", "user"], true))
        .into()
}

pub fn user_update_body() -> RefOr<Schema> {
    let count = || {
        nullable(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(1_000_000_000))
    };
    let usd = || {
        nullable(Type::Number)
            .exclusive_minimum(Some(0))
            .maximum(Some(1e9))
    };
    ObjectBuilder::new()
        .property("status", one_of(&["active", "disabled"], true))
        .property("role", one_of(&["admin", "user"], true))
        .property("password", password(true))
        .property("max_rate_limit", count())
        .property("max_daily_limit", count())
        .property("max_monthly_quota", usd())
        .property("monthly_budget", usd())
        .into()
}

pub fn upload_body() -> RefOr<Schema> {
    let credential = || -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("a Qwen OAuth credential"))
            .property("access_token", token_string())
            .required("access_token")
            .property("refresh_token", nullable(Type::String))
            .property("token_type", nullable(Type::String))
            .property("resource_url", nullable(Type::String))
            .property("expiry_date", nullable(Type::Integer).minimum(Some(0)))
            .into()
    };
    let leaf = || -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(token_string())
            .item(credential())
            .into()
    };
    let item = || -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(token_string())
            .item(credential())
            .item(ArrayBuilder::new().items(leaf()).min_items(Some(1)))
            .into()
    };
    AnyOfBuilder::new()
        .item(token_string())
        .item(credential())
        .item(ArrayBuilder::new().items(item()).min_items(Some(1)))
        .item(object(&[("token", item())]))
        .item(object(&[("tokens", item())]))
        .into()
}

fn token_string() -> RefOr<Schema> {
    of(Type::String)
        .min_length(Some(1))
        .max_length(Some(8 * 1024))
        .description(Some("a bearer token: printable ASCII, no spaces"))
        .into()
}

// --- answers (`data`) ---

pub fn user() -> RefOr<Schema> {
    object(&[
        ("id", integer()),
        ("username", string()),
        ("role", one_of(&["admin", "user"], false)),
        ("status", one_of(&["active", "disabled"], false)),
        ("created_at", string()),
        ("max_rate_limit", nullable(Type::Integer).into()),
        ("max_daily_limit", nullable(Type::Integer).into()),
        ("max_monthly_quota", nullable(Type::Number).into()),
        ("monthly_budget", nullable(Type::Number).into()),
    ])
    .into()
}

pub fn login_reply() -> RefOr<Schema> {
    object(&[
        ("token", string()),
        ("token_type", string()),
        ("expires_at", string()),
        ("user", user()),
    ])
    .into()
}

fn key_props() -> Vec<(&'static str, RefOr<Schema>)> {
    vec![
        ("id", integer()),
        ("name", string()),
        ("key_prefix", string()),
        ("status", one_of(&["active", "disabled"], false)),
        ("allowed_platforms", string()),
        ("allowed_models", string()),
        ("rate_limit", integer()),
        ("daily_limit", integer()),
        ("monthly_quota", number()),
        ("used_tokens", integer()),
        ("used_cost", number()),
        ("request_count", integer()),
        ("last_used_at", nullable(Type::String).into()),
        ("expires_at", nullable(Type::String).into()),
        ("created_at", string()),
    ]
}

/// A key as listed (never the secret).
pub fn key() -> RefOr<Schema> {
    object(&key_props()).into()
}

pub fn keys() -> RefOr<Schema> {
    array(key())
}

pub fn users() -> RefOr<Schema> {
    array(user())
}

/// A new key: the secret `key` is shown only here.
pub fn key_created() -> RefOr<Schema> {
    object(&[
        ("id", integer()),
        ("name", string()),
        ("key", string()),
        ("key_prefix", string()),
    ])
    .into()
}

/// The id and the fields the update set.
pub fn key_updated() -> RefOr<Schema> {
    key_props()
        .into_iter()
        .fold(ObjectBuilder::new(), |b, (name, schema)| {
            b.property(name, schema)
        })
        .required("id")
        .into()
}

pub fn key_toggled() -> RefOr<Schema> {
    object(&[
        ("id", integer()),
        ("status", one_of(&["active", "disabled"], false)),
    ])
    .into()
}

fn totals(extra: &[(&str, RefOr<Schema>)]) -> ObjectBuilder {
    let mut props: Vec<(&str, RefOr<Schema>)> = [
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "total_tokens",
        "characters",
        "images",
        "documents",
        "search_units",
    ]
    .into_iter()
    .map(|name| (name, integer()))
    .collect();
    props.push(("audio_seconds", number()));
    props.push(("cost", number()));
    props.extend(extra.iter().cloned());
    object(&props)
}

pub fn summary() -> RefOr<Schema> {
    totals(&[("start", string()), ("end", string())]).into()
}

pub fn per_day() -> RefOr<Schema> {
    array(totals(&[("date", string())]).into())
}

pub fn per_model() -> RefOr<Schema> {
    array(totals(&[("model", string())]).into())
}

fn record() -> RefOr<Schema> {
    let text = || -> RefOr<Schema> { nullable(Type::String).into() };
    let id = || -> RefOr<Schema> { nullable(Type::Integer).into() };
    object(&[
        ("request_id", string()),
        ("time", string()),
        ("day", string()),
        ("endpoint", string()),
        ("user_id", id()),
        ("api_key_id", id()),
        ("key", text()),
        ("provider", text()),
        ("credential", text()),
        ("platform", text()),
        ("model_requested", text()),
        ("model_served", text()),
        ("stream", boolean()),
        ("status", integer()),
        ("error", text()),
        ("input_tokens", integer()),
        ("output_tokens", integer()),
        ("cache_read_tokens", integer()),
        ("cache_write_tokens", integer()),
        ("reasoning_tokens", integer()),
        ("audio_seconds", number()),
        ("characters", integer()),
        ("images", integer()),
        ("documents", integer()),
        ("search_units", integer()),
        ("cost", number()),
        ("estimated", boolean()),
        ("latency_ms", number()),
        ("ttft_ms", nullable(Type::Number).into()),
    ])
    .into()
}

pub fn key_usage() -> RefOr<Schema> {
    totals(&[
        ("api_key_id", integer()),
        (
            "range",
            object(&[("start", string()), ("end", string())]).into(),
        ),
        ("daily", per_day()),
        ("models", per_model()),
        ("records", array(record())),
    ])
    .into()
}

pub fn limit() -> RefOr<Schema> {
    or_empty(
        of(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(1000))
            .into(),
    )
}

pub fn uploaded() -> RefOr<Schema> {
    object(&[
        ("status", string()),
        ("added", integer()),
        ("updated", integer()),
        ("total", integer()),
        (
            "tokens",
            array(object(&[("id", string()), ("token", string())]).into()),
        ),
    ])
    .into()
}

pub fn token_status() -> RefOr<Schema> {
    let text = || -> RefOr<Schema> { nullable(Type::String).into() };
    let token = object(&[
        ("id", string()),
        ("token", string()),
        ("type", one_of(&["oauth", "bearer"], false)),
        ("resource_url", text()),
        ("expires_at", text()),
        ("expired", boolean()),
        ("status", string()),
        ("disabled", text()),
        ("cooldown_remaining_ms", nullable(Type::Integer).into()),
        ("requests", integer()),
        ("failures", integer()),
        ("last_used", text()),
        ("last_error", text()),
        ("refreshes", integer()),
        ("added_at", string()),
    ]);
    object(&[
        ("total", integer()),
        ("available", integer()),
        ("tokens", array(token.into())),
    ])
    .into()
}
