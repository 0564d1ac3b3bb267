//! Headers on every `/ui` response, and the guard in front of every `/ui` route: unsafe
//! requests must come from this origin and carry the session's CSRF token (or, before sign-in,
//! the sign-in form's token).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::Web;
use crate::session::{self, LOGIN_COOKIE};

/// The Content-Security-Policy of every `/ui` response: scripts, styles and fetches from this
/// origin only; no inline script or style, no eval, no frames, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Form bodies larger than this are refused.
const MAX_FORM: usize = 64 * 1024;

/// Adds the security headers; pages (not hashed static files) are never cached.
pub async fn headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static(
            "camera=(), microphone=(), geolocation=(), clipboard-write=(self)",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A refusal of an unsafe request, in words a person reads.
fn forbidden(why: &'static str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{why}\n"),
    )
        .into_response()
}

/// Whether the request says it comes from this very origin: `Origin` equal to the host it was
/// sent to, or (browsers that send no `Origin`, or `Origin: null` — what Chromium sends for a
/// form posted from a page with `Referrer-Policy: no-referrer`, as every dashboard page has)
/// `Sec-Fetch-Site: same-origin`, a header pages cannot set.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok());
    let fetch_site_same = || {
        headers
            .get("sec-fetch-site")
            .is_some_and(|s| s.as_bytes() == b"same-origin")
    };
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        Some(Ok("null")) => fetch_site_same(),
        Some(Ok(origin)) => {
            let Some(host) = host else { return false };
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            authority == Some(host)
        }
        Some(Err(_)) => false,
        None => fetch_site_same(),
    }
}

/// In front of every `/ui` route. Safe methods pass. An unsafe one needs a same-origin
/// `Origin`, and a token: the session's CSRF token (header `X-CSRF-Token` or form field
/// `csrf`) when signed in, else — only for sign-in and preferences — the sign-in form's token,
/// which must equal the one in its cookie.
pub async fn guard(State(web): State<Arc<Web>>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    if !same_origin(request.headers()) {
        return forbidden("refused: this request did not come from the dashboard's own pages");
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large\n").into_response();
        }
    };
    let presented = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| form_field(&bytes, "csrf"));
    let Some(presented) = presented.filter(|t| !t.is_empty()) else {
        return forbidden("refused: the form's security token is missing; reload the page");
    };
    let path = parts.uri.path();
    let pre_session = path == "/ui/login" || path == "/ui/prefs";
    let viewer = session::current(&web, &parts).await;
    let accepted = match (&viewer, pre_session) {
        (Some(v), _) => session::tokens_equal(&presented, &v.csrf),
        (None, true) => session::cookie(&parts.headers, LOGIN_COOKIE)
            .is_some_and(|c| session::tokens_equal(&presented, &c)),
        (None, false) => {
            return forbidden("refused: your session has ended; sign in again");
        }
    };
    if !accepted {
        return forbidden("refused: the form's security token is wrong; reload the page");
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    if let Some(viewer) = viewer {
        request.extensions_mut().insert(viewer);
    }
    next.run(request).await
}

/// One field of an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_be_this_host() {
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "a"),
            ("sec-fetch-site", "same-origin")
        ])));
        // Chromium's form post from a no-referrer page.
        assert!(same_origin(&headers(&[
            ("host", "a"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[("host", "a")])));
    }
}
