//! The gateway's error type, and the one place errors become HTTP responses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use sluice_dialect::{Dialect, ErrorBody, ErrorKind};

/// Whose fault an error is; decides whether another attempt could help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The caller sent something wrong; retrying the same request cannot help.
    Client,
    /// The upstream failed; another credential or provider might not.
    Upstream,
    /// Sluice itself (overload, shutdown, a bug).
    Gateway,
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub status: StatusCode,
    pub fault: Fault,
    pub body: ErrorBody,
    /// Rarely present details, boxed to keep `Result<_, GatewayError>` small.
    pub extra: Option<Box<ErrorExtra>>,
}

/// What some errors carry besides their body.
#[derive(Debug, Clone, Default)]
pub struct ErrorExtra {
    /// Forwarded `Retry-After`, when the upstream or a limit supplied one.
    pub retry_after: Option<HeaderValue>,
    /// The upstream's own error body and the dialect it is in; passed through unchanged to a
    /// client of the same dialect.
    pub upstream_body: Option<(Dialect, Bytes)>,
    /// The message in Chinese, for an error whose words carry details (see [`Lang`]).
    pub chinese: Option<String>,
}

impl GatewayError {
    pub fn new(status: StatusCode, fault: Fault, body: ErrorBody) -> Self {
        Self {
            status,
            fault,
            body,
            extra: None,
        }
    }

    /// The `Retry-After` to send, if any.
    pub fn retry_after(&self) -> Option<&HeaderValue> {
        self.extra.as_ref().and_then(|e| e.retry_after.as_ref())
    }

    /// 400 for a request the dialect parser rejected.
    pub fn bad_request(body: ErrorBody) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Fault::Client, body)
    }

    /// 401 without a key.
    pub fn missing_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::Authentication,
                "Missing API key: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            )
            .with_code("missing_api_key"),
        )
    }

    /// 401 with a key that matches none.
    pub fn invalid_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(ErrorKind::Authentication, "Invalid API key.")
                .with_code("invalid_api_key"),
        )
    }

    /// 401 because the operator configured no client keys and did not allow anonymous use.
    pub fn no_keys_configured() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::Authentication,
                "This gateway has no client API keys configured, so it refuses all requests. \
                 The operator must add `api-keys` to the config (or set `allow-anonymous: true`).",
            )
            .with_code("no_api_keys_configured"),
        )
    }

    /// 404 for a model no provider serves.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::NotFound,
                format!("The model `{model}` does not exist or is not served by this gateway."),
            )
            .with_param("model")
            .with_code("model_not_found"),
        )
    }

    /// 400 for a model that exists but cannot serve this endpoint (an embedding model asked
    /// to chat), before any upstream is called.
    pub fn model_cannot_serve(
        model: &str,
        needs: sluice_dialect::Capabilities,
        has: sluice_dialect::Capabilities,
    ) -> Self {
        let needs = needs.names().join(" or ");
        let has = has.to_string();
        Self::new(
            StatusCode::BAD_REQUEST,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "The model `{model}` cannot serve this endpoint: it needs {} {needs} model, and `{model}` is {} {has} model.",
                    article(&needs),
                    article(&has),
                ),
            )
            .with_param("model")
            .with_code("model_not_supported"),
        )
    }

    /// 400 for a model whose providers have no API for the endpoint (an embedding model
    /// configured only under an Anthropic provider).
    pub fn no_provider_serves(model: &str, endpoint: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "No provider of the model `{model}` has an API for this endpoint (`{endpoint}`)."
                ),
            )
            .with_param("model")
            .with_code("model_not_supported"),
        )
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::RequestTooLarge,
                format!("Request body is larger than the gateway's limit of {limit} bytes."),
            )
            .with_code("request_too_large"),
        )
    }

    /// 408 when the client did not send its whole body within `connections.body-read-timeout`.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "The request body was not received within {}.",
                    humantime::format_duration(limit)
                ),
            )
            .with_code("request_timeout"),
        )
    }

    /// 429 when the gateway is at its concurrency limit.
    pub fn overloaded(limit: usize) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Gateway,
            ErrorBody::new(
                ErrorKind::RateLimited,
                format!("The gateway is handling its maximum of {limit} concurrent requests; retry shortly."),
            )
            .with_code("gateway_overloaded"),
        );
        e.extra = Some(Box::new(ErrorExtra {
            retry_after: Some(HeaderValue::from_static("1")),
            upstream_body: None,
            chinese: None,
        }));
        e
    }

    /// 503 when the shared limit counters (Redis) cannot be reached and
    /// `limits.on-redis-error` is `fail-closed`: no request is admitted that could overrun a
    /// limit.
    pub fn limits_unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Fault::Gateway,
            ErrorBody::new(
                ErrorKind::Overloaded,
                "The gateway cannot check this key's limits right now; retry shortly.",
            )
            .with_code("limits_unavailable"),
        );
        e.extra = Some(Box::new(ErrorExtra {
            retry_after: Some(HeaderValue::from_static("1")),
            upstream_body: None,
            chinese: None,
        }));
        e
    }

    /// 502 when the upstream cannot be reached or the exchange failed.
    pub fn upstream_failed(provider: &str, detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            Fault::Upstream,
            ErrorBody::new(
                ErrorKind::Upstream,
                format!("Provider `{provider}` failed: {detail}."),
            )
            .with_code("upstream_unavailable"),
        )
    }

    /// 504 when the upstream did not answer in time.
    pub fn upstream_timeout(provider: &str, waited: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            Fault::Upstream,
            ErrorBody::new(
                ErrorKind::Timeout,
                format!(
                    "Provider `{provider}` did not respond within {}.",
                    humantime::format_duration(waited)
                ),
            )
            .with_code("upstream_timeout"),
        )
    }

    /// 503 while shutting down.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Fault::Gateway,
            ErrorBody::new(
                ErrorKind::Overloaded,
                "The gateway is shutting down; retry on another instance.",
            )
            .with_code("shutting_down"),
        )
    }

    /// 503 for a request still in flight when the shutdown grace period ended.
    pub fn cut_by_shutdown() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Fault::Gateway,
            ErrorBody::new(
                ErrorKind::Overloaded,
                "The gateway shut down before this request completed; retry on another instance.",
            )
            .with_code("shutdown"),
        )
    }

    /// 404 for a path the gateway does not serve.
    pub fn unknown_route(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::NotFound,
                format!("Unknown request URL: {method} {path}."),
            )
            .with_code("unknown_url"),
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("Method {method} is not allowed on {path}."),
            )
            .with_code("method_not_allowed"),
        )
    }

    /// An upstream's non-success answer. Its status is kept; its body is kept for clients of
    /// the same dialect, and its message for everyone else.
    pub fn from_upstream(
        provider: &str,
        dialect: Dialect,
        status: StatusCode,
        retry_after: Option<HeaderValue>,
        body: Bytes,
    ) -> Self {
        if status.is_redirection() {
            // Not followed (`transport::Clients`): a bad gateway, whatever the redirect says.
            let error = ErrorBody::new(
                ErrorKind::Upstream,
                format!(
                    "Provider `{provider}` answered HTTP {} (a redirect), which Sluice does not \
                     follow: check the provider's base-url",
                    status.as_u16()
                ),
            );
            return Self::new(StatusCode::BAD_GATEWAY, Fault::Upstream, error);
        }
        let fault = if status.is_client_error()
            && status != StatusCode::TOO_MANY_REQUESTS
            && status != StatusCode::REQUEST_TIMEOUT
        {
            Fault::Client
        } else {
            Fault::Upstream
        };
        let parsed = ErrorBody::parse_any(status.as_u16(), &body);
        let error_body = match &parsed {
            Some(parsed) => parsed.clone(),
            None => {
                let text = String::from_utf8_lossy(&body);
                let snippet: String = text.chars().take(200).collect();
                ErrorBody::new(
                    ErrorKind::from_status(status.as_u16()),
                    format!(
                        "Provider `{provider}` returned HTTP {}: {}",
                        status.as_u16(),
                        snippet.trim()
                    ),
                )
            }
        };
        let mut e = Self::new(status, fault, error_body);
        let upstream_body = parsed.is_some().then_some((dialect, body));
        if retry_after.is_some() || upstream_body.is_some() {
            e.extra = Some(Box::new(ErrorExtra {
                retry_after,
                upstream_body,
                chinese: None,
            }));
        }
        e
    }

    /// The response a client of `dialect` receives.
    pub fn render(self, dialect: Dialect) -> Response {
        let ErrorExtra {
            retry_after,
            upstream_body,
            ..
        } = self.extra.map(|e| *e).unwrap_or_default();
        let body = match upstream_body {
            Some((from, body)) if from == dialect => body,
            _ => Bytes::from(dialect.error_json(&self.body, self.status.as_u16())),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(retry_after) = retry_after {
            headers.insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

impl IntoResponse for GatewayError {
    /// OpenAI's shape, for routes that belong to no dialect (unknown URLs).
    fn into_response(self) -> Response {
        self.render(Dialect::OpenAiChat)
    }
}

/// The language of the messages seed 004 defines for key errors: English, or Chinese when the
/// request's `Accept-Language` prefers `zh`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// The language the request prefers: the `Accept-Language` entry with the highest `q`
    /// (the first among equals) decides; English unless it is Chinese.
    pub fn from_headers(headers: &http::HeaderMap) -> Lang {
        Self::preferred(headers).unwrap_or(Lang::En)
    }

    /// Seed 004's own routes speak its words: Chinese unless `Accept-Language` prefers English.
    pub fn for_seed004(headers: &http::HeaderMap) -> Lang {
        Self::preferred(headers).unwrap_or(Lang::Zh)
    }

    /// The language `Accept-Language` prefers, when it is English or Chinese.
    fn preferred(headers: &http::HeaderMap) -> Option<Lang> {
        let value = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())?;
        let mut best: Option<(f32, &str)> = None;
        for entry in value.split(',') {
            let mut pieces = entry.split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if !tag.is_empty() && q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, tag));
            }
        }
        let (_, tag) = best?;
        let primary = tag.split(['-', '_']).next().unwrap_or(tag);
        if primary.eq_ignore_ascii_case("zh") {
            Some(Lang::Zh)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }
}

/// Seed 004's Chinese messages (and ours where the seed has none), by error code.
fn chinese_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "missing_api_key" => "缺少 API Key，请在 Authorization 或 x-api-key header 中提供",
        "invalid_api_key" => "无效的 API Key",
        "api_key_disabled" => "API Key 已被禁用",
        "api_key_expired" => "API Key 已过期",
        "platform_not_allowed" => "无权访问此平台",
        "model_not_allowed" => "无权使用此模型",
        "rate_limit_exceeded" => "请求过于频繁，请稍后再试",
        "daily_limit_exceeded" => "已达到今日请求次数上限，请明天再试",
        "monthly_quota_exceeded" => "本月费用配额已用完",
        _ => return None,
    })
}

/// Errors of API keys (seed 004), limits and the `/api` management surface.
impl GatewayError {
    fn with_retry_after(mut self, secs: u64) -> Self {
        let retry_after = HeaderValue::from_str(&secs.to_string()).ok();
        self.extra = Some(Box::new(ErrorExtra {
            retry_after,
            upstream_body: None,
            chinese: None,
        }));
        self
    }

    /// 401: the key is switched off (or its owner is).
    pub fn key_disabled() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(ErrorKind::Authentication, "API key is disabled.")
                .with_code("api_key_disabled"),
        )
    }

    /// 401: the key's `expires_at` has passed.
    pub fn key_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(ErrorKind::Authentication, "API key has expired.")
                .with_code("api_key_expired"),
        )
    }

    /// 403: the key's `allowed_platforms` excludes the platform.
    pub fn platform_not_allowed(platform: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::PermissionDenied,
                format!("This API key may not access platform `{platform}`."),
            )
            .with_code("platform_not_allowed"),
        )
    }

    /// 403: the key's `allowed_models` excludes the model.
    pub fn model_not_allowed(model: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::PermissionDenied,
                format!("This API key may not use model `{model}`."),
            )
            .with_param("model")
            .with_code("model_not_allowed"),
        )
    }

    /// 403: a key with a monthly quota asked for a model that has no price, so its cost could
    /// not be counted against the quota.
    pub fn model_not_priced(model: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::PermissionDenied,
                format!(
                    "Model `{model}` has no price, so an API key with a monthly quota cannot use it; the operator can set its price under `prices` or a `default-price`."
                ),
            )
            .with_param("model")
            .with_code("model_not_priced"),
        )
        .with_chinese(format!(
            "模型 `{model}` 没有价格，设置了月度费用配额的 API Key 不能使用它；管理员可在 `prices` 中为它定价，或设置 `default-price`。"
        ))
    }

    /// 429: `rate_limit` requests in the last minute.
    pub fn rate_limited(limit: u64, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::RateLimited,
                format!(
                    "Too many requests: this API key allows {limit} per minute; retry in {retry_after_secs} s."
                ),
            )
            .with_code("rate_limit_exceeded"),
        )
        .with_retry_after(retry_after_secs)
    }

    /// 429: `daily_limit` requests today.
    pub fn daily_limit_exceeded(limit: u64, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::RateLimited,
                format!(
                    "Daily request limit reached: this API key allows {limit} requests per day; it resets at midnight."
                ),
            )
            .with_code("daily_limit_exceeded"),
        )
        .with_retry_after(retry_after_secs)
    }

    /// 429: the month's cost has reached `monthly_quota` (USD).
    pub fn quota_exceeded(quota_usd: f64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::RateLimited,
                format!(
                    "Monthly quota exhausted: this API key's monthly cost quota of ${quota_usd} is used up; it resets on the 1st."
                ),
            )
            .with_code("monthly_quota_exceeded"),
        )
    }

    /// 400 from the `/api` surface, naming the field at fault.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Fault::Client,
            ErrorBody::new(ErrorKind::InvalidRequest, message).with_param(field),
        )
    }

    /// 403 from the `/api` surface: a key's limit above a ceiling an administrator set for
    /// its owner; the message names the ceiling.
    pub fn above_ceiling(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Fault::Client,
            ErrorBody::new(ErrorKind::PermissionDenied, message)
                .with_param(field)
                .with_code("above_ceiling"),
        )
    }

    /// 400 from the `/api` surface.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Fault::Client,
            ErrorBody::new(ErrorKind::InvalidRequest, message),
        )
    }

    /// 401 from the `/api` surface (no, bad or expired session token; wrong password).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Fault::Client,
            ErrorBody::new(ErrorKind::Authentication, message),
        )
    }

    /// 429 from `/api/auth/login`: too many failed sign-ins from this address or for this user.
    pub fn too_many_sign_ins(left: std::time::Duration) -> Self {
        let secs = left.as_secs().max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Fault::Client,
            ErrorBody::new(
                ErrorKind::RateLimited,
                format!(
                    "Too many failed sign-ins; try again in {}.",
                    humantime::format_duration(std::time::Duration::from_secs(secs))
                ),
            )
            .with_code("too_many_sign_ins"),
        )
        .with_retry_after(secs)
    }

    /// 403 from the `/api` surface.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Fault::Client,
            ErrorBody::new(ErrorKind::PermissionDenied, message),
        )
    }

    /// 404 from the `/api` surface.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Fault::Client,
            ErrorBody::new(ErrorKind::NotFound, message),
        )
    }

    /// 409 from the `/api` surface.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            Fault::Client,
            ErrorBody::new(ErrorKind::InvalidRequest, message),
        )
    }

    /// 500: the gateway failed (the store). The message is for the operator's log, not a secret.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Fault::Gateway,
            ErrorBody::new(ErrorKind::Internal, message),
        )
    }

    /// The message in `lang`, for the errors seed 004 words.
    pub fn localized(mut self, lang: Lang) -> Self {
        if lang != Lang::Zh {
            return self;
        }
        if let Some(message) = self.extra.as_ref().and_then(|e| e.chinese.clone()) {
            self.body.message = message;
        } else if let Some(message) = self.body.code.as_deref().and_then(chinese_message) {
            self.body.message = message.to_string();
        }
        self
    }

    /// Adds the message in Chinese, for [`Self::localized`] (errors whose words carry details).
    pub fn with_chinese(mut self, message: impl Into<String>) -> Self {
        self.extra.get_or_insert_with(Box::default).chinese = Some(message.into());
        self
    }

    /// Seed 004's shape, `{"code": <HTTP status>, "message": …}`: its proxy routes and `/api`.
    pub fn render_seed004(self) -> Response {
        let body = serde_json::json!({"code": self.status.as_u16(), "message": self.body.message});
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(retry_after) = self.extra.and_then(|e| e.retry_after) {
            headers.insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

/// An error of the `/api` surface, rendered in seed 004's `{code, message}`.
#[derive(Debug)]
pub struct ApiError(pub GatewayError);

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.render_seed004()
    }
}

/// "a" or "an" before a capability's name ("an embedding model", "a chat model").
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
