//! Page handlers. Every page checks the session and the role itself, on the server.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use sluice_store::{Status, StoreError};

use crate::Web;
use crate::i18n::{LANG_COOKIE, Lang};
use crate::session::{self, LOGIN_COOKIE, SESSION_COOKIE, Viewer};
use crate::view::{self, Layout, THEME_COOKIE};

pub(crate) mod credentials;
pub(crate) mod keys;
pub(crate) mod me;
pub(crate) mod overview;
pub(crate) mod requests;
#[cfg(test)]
mod tests;
pub(crate) mod usage;
pub(crate) mod users;

/// Renders a template as an HTML response (a template error is logged and answered 500
/// without details; templates are checked at compile time, so this is not expected).
pub(crate) fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a dashboard page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn\n",
            )
                .into_response()
        }
    }
}

/// Who may see a page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Admin,
    SignedIn,
}

/// The signed-in viewer, or the response to give instead: sign-in for no session (a `303`, or
/// for htmx an `HX-Redirect`), `403` for a user on an admin page.
pub(crate) async fn viewer(web: &Web, parts: &Parts, need: Need) -> Result<Viewer, Response> {
    let Some(viewer) = session::current(web, parts).await else {
        if parts.headers.contains_key("hx-request") {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut()
                .insert("hx-redirect", HeaderValue::from_static("/ui/login"));
            return Err(r);
        }
        return Err(Redirect::to("/ui/login").into_response());
    };
    if need == Need::Admin && !viewer.is_admin() {
        let layout = Layout::new(
            &parts.headers,
            Some(viewer),
            "forbidden.title",
            parts.uri.path(),
        );
        return Err(html(
            StatusCode::FORBIDDEN,
            &MessagePage {
                l: &layout,
                lead: "forbidden.lead",
            },
        ));
    }
    Ok(viewer)
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    l: &'a Layout,
    lead: &'static str,
}

/// `GET /ui`: admins start at the System page, users at Me.
pub async fn home(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    match viewer(&web, &parts, Need::SignedIn).await {
        Ok(v) if v.is_admin() => Redirect::to("/ui/overview").into_response(),
        Ok(_) => Redirect::to("/ui/me").into_response(),
        Err(r) => r,
    }
}

/// Any other `/ui` path.
pub async fn not_found(parts: Parts) -> Response {
    let layout = Layout::new(&parts.headers, None, "notfound.title", parts.uri.path());
    html(
        StatusCode::NOT_FOUND,
        &MessagePage {
            l: &layout,
            lead: "notfound.lead",
        },
    )
}

// --- Sign-in ---

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage<'a> {
    pub l: &'a Layout,
    /// Shown above the form (a key of the text tables), or empty.
    pub notice: &'static str,
    /// No admin exists: show how to create one.
    pub first_run: bool,
    pub username: String,
}

/// The sign-in page with a fresh form token in its cookie.
async fn login_form(
    web: &Web,
    parts: &Parts,
    status: StatusCode,
    notice: &'static str,
    username: String,
) -> Response {
    let first_run = matches!(web.gateway.store().first_admin().await, Ok(None));
    let token = session::random_token();
    let mut layout = Layout::new(&parts.headers, None, "login.title", "/ui/login");
    layout.csrf = token.clone();
    let mut response = html(
        status,
        &LoginPage {
            l: &layout,
            notice,
            first_run,
            username,
        },
    );
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(web, LOGIN_COOKIE, &token, None))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /ui/login`.
pub async fn login_page(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    if session::current(&web, &parts).await.is_some() {
        return Redirect::to("/ui").into_response();
    }
    login_form(&web, &parts, StatusCode::OK, "", String::new()).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /ui/login` (the guard has checked the origin and the form token).
pub async fn login(
    State(web): State<Arc<Web>>,
    parts: Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    let username = form.username.trim().to_string();
    if let Err(wait) = web.logins.attempt(web.gateway.client_ip(&parts), &username) {
        let mut r = login_form(
            &web,
            &parts,
            StatusCode::TOO_MANY_REQUESTS,
            "login.limited",
            username,
        )
        .await;
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let store = web.gateway.store();
    let user = match store.user_by_name(&username).await {
        Ok(user) if user.status == Status::Active => Some(user),
        Ok(_) | Err(StoreError::NotFound) => None,
        Err(e) => {
            tracing::error!(error = %e, "reading a user for dashboard sign-in failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable\n",
            )
                .into_response();
        }
    };
    let verified = web
        .gateway
        .verify_password(user.as_ref(), &form.password)
        .await;
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!(username = %username, "dashboard sign-in refused");
        return login_form(
            &web,
            &parts,
            StatusCode::UNAUTHORIZED,
            "login.failed",
            username,
        )
        .await;
    };
    let id = match session::start(&web, &user).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "storing a dashboard session failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable\n",
            )
                .into_response();
        }
    };
    tracing::info!(user_id = user.id, "dashboard sign-in");
    let mut r = Redirect::to("/ui").into_response();
    for cookie in [
        session::set_cookie(&web, SESSION_COOKIE, &id, None),
        session::set_cookie(&web, LOGIN_COOKIE, "", Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// `POST /ui/logout`: deletes the session row and the cookie.
pub async fn logout(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    if let Some(v) = session::current(&web, &parts).await {
        let _ = web.gateway.store().ui().delete_ui_session(&v.id_hash).await;
    }
    let mut r = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&web, SESSION_COOKIE, "", Some(0))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub struct PrefsForm {
    #[serde(default)]
    lang: String,
    #[serde(default)]
    theme: String,
    #[serde(default)]
    next: String,
}

/// `POST /ui/prefs`: language and theme, kept in cookies for a year.
pub async fn prefs(State(web): State<Arc<Web>>, Form(form): Form<PrefsForm>) -> Response {
    let next = if form.next.starts_with("/ui") && !form.next.starts_with("//") {
        form.next.as_str()
    } else {
        "/ui"
    };
    let mut r = Redirect::to(next).into_response();
    let year = Some(365 * 86_400);
    let mut cookies = Vec::new();
    if let Some(lang) = Lang::parse(&form.lang) {
        cookies.push(session::set_cookie(&web, LANG_COOKIE, lang.code(), year));
    }
    match form.theme.as_str() {
        "light" | "dark" => {
            cookies.push(session::set_cookie(&web, THEME_COOKIE, &form.theme, year))
        }
        "auto" => cookies.push(session::set_cookie(&web, THEME_COOKIE, "", Some(0))),
        _ => {}
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

// --- System ---

#[derive(Template)]
#[template(path = "system.html")]
pub(crate) struct SystemPage<'a> {
    pub l: &'a Layout,
    pub info: &'a crate::SystemInfo,
    pub uptime: String,
    pub started: String,
    pub database: String,
}

impl<'a> SystemPage<'a> {
    pub(crate) fn new(l: &'a Layout, info: &'a crate::SystemInfo, now_unix: i64) -> Self {
        SystemPage {
            l,
            info,
            uptime: view::duration(now_unix - info.started_unix),
            started: view::utc(info.started_unix),
            database: match info.database_bytes {
                Some(n) => view::bytes(n),
                None => l.t("system.notapplicable").to_string(),
            },
        }
    }
}

/// `GET /ui/system` (admins).
pub async fn system(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let info = web.gateway.system().await;
    let layout = Layout::new(&parts.headers, Some(v), "system.title", "/ui/system");
    let now = web.gateway.now_ms() / 1000;
    html(StatusCode::OK, &SystemPage::new(&layout, &info, now))
}
