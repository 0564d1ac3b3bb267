//! Users (admins): every user with role, status, keys and this month's requests and cost (from
//! the rollups); create one, change a role, disable / enable, reset a password — all through
//! the gateway's own `/api/users` code ([`crate::Gateway::write_user`]); a user's page shows
//! their keys with meters and their usage by model.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_store::rollup::{Dimension, Grain, RollupQuery};
use sluice_store::{Status, StoreError, User};

use super::keys::{KeyRow, actor};
use super::overview::unavailable;
use super::usage::{GroupRow, UsageFilter, figures};
use super::{Need, html, viewer};
use crate::session::Viewer;
use crate::view::{self, Layout};
use crate::{UserWrite, Web};

/// A user as the list shows them.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub user: User,
    pub keys: usize,
    pub requests_month: i64,
    pub cost_month: String,
    pub created: String,
}

impl UserRow {
    pub fn active(&self) -> bool {
        self.user.status == Status::Active
    }
}

/// The create form and the row forms (blank fields are left alone).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub status: String,
}

impl UserForm {
    /// The `/api/users` body: only the fields given.
    fn body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (field, value) in [
            ("username", self.username.trim()),
            ("password", self.password.as_str()),
            ("role", self.role.trim()),
            ("status", self.status.trim()),
        ] {
            if !value.is_empty() {
                m.insert(field.into(), Value::String(value.to_string()));
            }
        }
        m
    }
}

#[derive(Template)]
#[template(path = "users.html")]
pub(crate) struct UsersPage<'a> {
    pub l: &'a Layout,
    pub rows: &'a [UserRow],
    pub form: &'a UserForm,
    pub notice: String,
    /// The signed-in admin (who may not disable or demote themselves).
    pub me: i64,
}

#[derive(Template)]
#[template(path = "user.html")]
pub(crate) struct UserPage<'a> {
    pub l: &'a Layout,
    pub user: &'a User,
    pub rows: &'a [KeyRow],
    pub groups: &'a [GroupRow],
}

async fn list(
    web: &Web,
    parts: &Parts,
    v: Viewer,
    form: &UserForm,
    refused: Option<crate::WriteError>,
) -> Response {
    let store = web.gateway.store();
    let users = match store.list_users().await {
        Ok(u) => u,
        Err(e) => return unavailable(e),
    };
    let mut keys: HashMap<i64, usize> = HashMap::new();
    match store.keys_changed_since(i64::MIN).await {
        Ok(all) => {
            for k in all.iter().filter(|k| k.deleted_at.is_none()) {
                *keys.entry(k.user_id).or_default() += 1;
            }
        }
        Err(e) => return unavailable(e),
    }
    let g = &web.gateway;
    let now = g.now_ms();
    let month_start = super::usage::month_start(&g.calendar(), now);
    let month = match store
        .ui()
        .rollup(&RollupQuery {
            grain: Grain::Hour,
            since_ms: month_start,
            until_ms: now + 1,
            step_ms: 0,
            by: Some(Dimension::User),
            user_id: None,
        })
        .await
    {
        Ok(p) => p,
        Err(e) => return unavailable(e),
    };
    let mut spent: HashMap<String, (i64, i64)> = HashMap::new();
    for p in month {
        let e = spent.entry(p.group).or_default();
        e.0 += p.counts.requests;
        e.1 += p.counts.cost_nanos;
    }
    let rows: Vec<UserRow> = users
        .into_iter()
        .map(|user| {
            let (requests, cost) = spent.get(&user.id.to_string()).copied().unwrap_or_default();
            UserRow {
                keys: keys.get(&user.id).copied().unwrap_or(0),
                requests_month: requests,
                cost_month: view::usd(cost),
                created: view::utc(user.created_at / 1000),
                user,
            }
        })
        .collect();
    let me = v.user_id;
    let layout = Layout::new(&parts.headers, Some(v), "users.title", "/ui/users");
    let (status, notice) = match refused {
        Some(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.message,
        ),
        None => (StatusCode::OK, String::new()),
    };
    html(
        status,
        &UsersPage {
            l: &layout,
            rows: &rows,
            form,
            notice,
            me,
        },
    )
}

/// `GET /ui/users` (admins).
pub async fn page(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => list(&web, &parts, v, &UserForm::default(), None).await,
        Err(r) => r,
    }
}

/// `POST /ui/users`: a new user.
pub async fn create(
    State(web): State<Arc<Web>>,
    parts: Parts,
    Form(form): Form<UserForm>,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match web
        .gateway
        .write_user(&actor(&v), UserWrite::Create(form.body()))
        .await
    {
        Ok(_) => Redirect::to("/ui/users").into_response(),
        Err(e) => {
            // The password is never sent back into the form.
            let form = UserForm {
                password: String::new(),
                ..form
            };
            list(&web, &parts, v, &form, Some(e)).await
        }
    }
}

/// `POST /ui/users/{id}`: a role, a status or a new password.
pub async fn update(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    parts: Parts,
    Form(form): Form<UserForm>,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such user\n").into_response();
    };
    let body = UserForm {
        username: String::new(),
        ..form
    }
    .body();
    match web
        .gateway
        .write_user(&actor(&v), UserWrite::Update(id, body))
        .await
    {
        Ok(_) => Redirect::to("/ui/users").into_response(),
        Err(e) => list(&web, &parts, v, &UserForm::default(), Some(e)).await,
    }
}

/// `GET /ui/users/{id}` (admins): one user's keys with meters and usage by model.
pub async fn detail(State(web): State<Arc<Web>>, Path(id): Path<String>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let not_found = || (StatusCode::NOT_FOUND, "no such user\n").into_response();
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let store = web.gateway.store();
    let user = match store.user_by_id(id).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => return not_found(),
        Err(e) => return unavailable(e),
    };
    let keys = match store.keys_of_user(id).await {
        Ok(k) => k,
        Err(e) => return unavailable(e),
    };
    let layout = Layout::new(&parts.headers, Some(v), "users.title", "/ui/users");
    let rows = match super::keys::rows(&web, &layout, keys).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let by_model = UsageFilter {
        grain: "day".into(),
        by: "model".into(),
        range: "30d".into(),
    };
    let usage = match figures(&web, &by_model, Some(id)).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    html(
        StatusCode::OK,
        &UserPage {
            l: &layout,
            user: &user,
            rows: &rows,
            groups: &usage.groups,
        },
    )
}
