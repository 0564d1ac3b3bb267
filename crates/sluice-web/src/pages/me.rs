//! Me (every signed-in user; the only page a `user` reaches): their own keys with meters,
//! creating one (within the per-user cap and the ceilings an admin set) and rotating one —
//! the new secret shown once in the same dialog as the Keys page's —, their limits with
//! meters, their usage this month by model (from the rollups), and client snippets.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use sluice_store::StoreError;

use super::keys::{Created, KeyForm, KeyRow, Meter, actor, base_url, first_model, snippets};
use super::overview::unavailable;
use super::usage::{GroupRow, UsageFilter, figures};
use super::{Need, html, viewer};
use crate::session::Viewer;
use crate::view::{self, Layout};
use crate::{KeyWrite, KeyWritten, Web};

#[derive(Template)]
#[template(path = "me.html")]
pub(crate) struct MePage<'a> {
    pub l: &'a Layout,
    pub rows: &'a [KeyRow],
    pub key_cap: i64,
    /// This month's cost of all the user's keys against the monthly budget an admin set.
    pub budget: Meter,
    pub ceiling_rate: String,
    pub ceiling_daily: String,
    pub ceiling_monthly: String,
    /// Usage this month by model.
    pub groups: &'a [GroupRow],
    pub snippets: Vec<(&'static str, &'static str, String)>,
    pub form: &'a KeyForm,
    pub created: Option<Created>,
    pub notice: String,
}

/// What the page shows besides the user's figures.
#[derive(Default)]
struct Extra {
    form: KeyForm,
    created: Option<Created>,
    notice: String,
    status: Option<StatusCode>,
}

async fn render(web: &Web, parts: &Parts, v: Viewer, extra: Extra) -> Response {
    let store = web.gateway.store();
    let user = match store.user_by_id(v.user_id).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => return Redirect::to("/ui/login").into_response(),
        Err(e) => return unavailable(e),
    };
    let keys = match store.keys_of_user(v.user_id).await {
        Ok(keys) => keys,
        Err(e) => return unavailable(e),
    };
    let user_id = v.user_id;
    let layout = Layout::new(&parts.headers, Some(v), "nav.me", "/ui/me");
    let rows = match super::keys::rows(web, &layout, keys).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let month = UsageFilter {
        grain: "day".into(),
        by: "model".into(),
        range: "30d".into(),
    };
    let usage = match figures(web, &month, Some(user_id)).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let spent: i64 = rows.iter().map(|r| r.monthly.used as i64).sum();
    let now = web.gateway.now_ms();
    let c = user.ceilings;
    let budget = match c.monthly_budget {
        Some(b) => Meter {
            used: spent as f64,
            limit: b as f64,
            text: format!("{} / {}", view::usd(spent), view::usd(b)),
            resets: super::keys::next_month(&web.gateway.calendar(), now),
        },
        None => Meter {
            text: format!("{} / {}", view::usd(spent), layout.t("limit.unlimited")),
            ..Meter::default()
        },
    };
    let none = layout.t("limit.unlimited");
    let count = |n: Option<i64>| n.map_or_else(|| none.to_string(), |n| n.to_string());
    let sample = layout.t("me.snippets.key");
    let page = MePage {
        l: &layout,
        rows: &rows,
        key_cap: web.gateway.max_keys_per_user(),
        budget,
        ceiling_rate: count(c.max_rate_limit),
        ceiling_daily: count(c.max_daily_limit),
        ceiling_monthly: c
            .max_monthly_quota
            .map_or_else(|| none.to_string(), view::usd),
        groups: &usage.groups,
        snippets: snippets(
            sample,
            &base_url(parts, web.config.secure_cookie),
            &first_model(web),
        ),
        form: &extra.form,
        created: extra.created,
        notice: extra.notice,
    };
    let mut r = html(extra.status.unwrap_or(StatusCode::OK), &page);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /ui/me`.
pub async fn page(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    match viewer(&web, &parts, Need::SignedIn).await {
        Ok(v) => render(&web, &parts, v, Extra::default()).await,
        Err(r) => r,
    }
}

/// The page after a key write: the new secret's dialog, or the gateway's refusal.
async fn after(
    web: &Web,
    parts: &Parts,
    v: Viewer,
    written: Result<KeyWritten, crate::WriteError>,
    form: KeyForm,
) -> Response {
    let extra = match written {
        Ok(KeyWritten {
            secret: Some(secret),
            ..
        }) => Extra {
            created: Some(Created::reveal(web, parts, secret, "/ui/me")),
            ..Extra::default()
        },
        Ok(_) => return Redirect::to("/ui/me").into_response(),
        Err(e) => Extra {
            form,
            notice: e.message,
            status: Some(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)),
            ..Extra::default()
        },
    };
    render(web, parts, v, extra).await
}

/// `POST /ui/me/keys`: a new key of the signed-in user's (the gateway applies the per-user
/// cap and the user's ceilings); its secret is shown once.
pub async fn create(
    State(web): State<Arc<Web>>,
    parts: Parts,
    Form(form): Form<KeyForm>,
) -> Response {
    let v = match viewer(&web, &parts, Need::SignedIn).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let written = web
        .gateway
        .write_key(&actor(&v), KeyWrite::Create(form.body(false)))
        .await;
    after(&web, &parts, v, written, form).await
}

/// `POST /ui/me/keys/{id}/rotate`: one of the user's own keys gets a new secret (another
/// user's key is "not found", as in `/api/api-keys`).
pub async fn rotate(State(web): State<Arc<Web>>, Path(id): Path<String>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::SignedIn).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such key\n").into_response();
    };
    let written = web
        .gateway
        .write_key(&actor(&v), KeyWrite::Rotate(id))
        .await;
    after(&web, &parts, v, written, KeyForm::default()).await
}
