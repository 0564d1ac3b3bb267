//! The Keys page (admins): every key with meters for its rate, daily and monthly limits and
//! when they reset, filters (owner, status, near a limit), and create / edit / enable-disable /
//! delete through the gateway's own `/api/api-keys` code ([`crate::Gateway::write_key`]). A new
//! key's secret is in the answer to its creation only, in a dialog that stays until the user
//! confirms they saved it; it is never shown again (the store keeps only its SHA-256).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_store::rollup::{Dimension, Grain, RollupQuery};
use sluice_store::{ApiKey, KeySpend, Status, User};

use super::overview::unavailable;
use super::{Need, html, viewer};
use crate::session::Viewer;
use crate::view::{self, Layout};
use crate::{Actor, KeyWrite, KeyWritten, Web};

/// A key is "near" a limit at this share of it.
const NEAR: f64 = 0.8;

/// One limit of a key, as a meter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter {
    pub used: f64,
    /// 0: unlimited.
    pub limit: f64,
    /// `3 / 60`, `$1.20 / $5.00`, or "unlimited".
    pub text: String,
    /// When the count starts again (empty for the sliding minute).
    pub resets: String,
}

impl Meter {
    pub fn high(&self) -> f64 {
        self.limit * NEAR
    }

    fn near(&self) -> bool {
        self.limit > 0.0 && self.used >= self.high()
    }
}

/// A key with its owner and meters.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub key: ApiKey,
    pub owner: String,
    pub rate: Meter,
    pub daily: Meter,
    pub monthly: Meter,
}

impl KeyRow {
    pub fn meters(&self) -> [&Meter; 3] {
        [&self.rate, &self.daily, &self.monthly]
    }

    fn near(&self) -> bool {
        self.meters().iter().any(|m| m.near())
    }
}

/// The values a key form shows (what was typed, on an error).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub rate_limit: String,
    #[serde(default)]
    pub daily_limit: String,
    #[serde(default)]
    pub monthly_quota: String,
    #[serde(default)]
    pub allowed_models: String,
    #[serde(default)]
    pub allowed_platforms: String,
    #[serde(default)]
    pub expires_at: String,
}

impl KeyForm {
    fn of(key: &ApiKey) -> KeyForm {
        KeyForm {
            name: key.name.clone(),
            rate_limit: key.rate_limit.to_string(),
            daily_limit: key.daily_limit.to_string(),
            monthly_quota: format!("{:.2}", key.monthly_quota as f64 / 1e9),
            allowed_models: key.allowed_models.clone(),
            allowed_platforms: if key.allowed_platforms == "all" {
                String::new()
            } else {
                key.allowed_platforms.clone()
            },
            expires_at: key
                .expires_at
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
        }
    }

    /// The body `/api/api-keys` takes. Blank fields are left out on create; on update a blank
    /// expiry means "never". Numbers that do not parse are passed as text, so the gateway's
    /// own validation words the error.
    pub(crate) fn body(&self, updating: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.trim().to_string()));
        for (field, text, integer) in [
            ("rate_limit", &self.rate_limit, true),
            ("daily_limit", &self.daily_limit, true),
            ("monthly_quota", &self.monthly_quota, false),
        ] {
            let text = text.trim();
            if text.is_empty() {
                if updating && field != "rate_limit" {
                    m.insert(field.into(), Value::from(0));
                }
                continue;
            }
            let value = if integer {
                text.parse::<i64>().map(Value::from).ok()
            } else {
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            };
            m.insert(
                field.into(),
                value.unwrap_or_else(|| Value::String(text.to_string())),
            );
        }
        for (field, text) in [
            ("allowed_models", &self.allowed_models),
            ("allowed_platforms", &self.allowed_platforms),
        ] {
            if updating || !text.trim().is_empty() {
                m.insert(field.into(), Value::String(text.trim().to_string()));
            }
        }
        let expiry = self.expires_at.trim();
        if !expiry.is_empty() {
            m.insert("expires_at".into(), Value::String(expiry.to_string()));
        } else if updating {
            m.insert("expires_at".into(), Value::Null);
        }
        m
    }
}

/// The filters of the list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeyFilter {
    #[serde(default, deserialize_with = "empty_is_none")]
    pub owner: Option<i64>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub near: Option<String>,
}

impl KeyFilter {
    pub fn is_owner(&self, id: &i64) -> bool {
        self.owner == Some(*id)
    }

    /// The query string of this filter (the live table's stream follows it).
    pub fn qs(&self) -> String {
        serde_urlencoded::to_string([
            (
                "owner",
                self.owner.map(|o| o.to_string()).unwrap_or_default(),
            ),
            ("status", self.status.clone()),
            ("near", self.near.clone().unwrap_or_default()),
        ])
        .unwrap_or_default()
    }
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(d)?;
    Ok(text.trim().parse().ok())
}

/// What the page shows about a key just created: its secret and ready-to-paste snippets.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub secret: String,
    /// Where "done" goes (the page the dialog is on).
    pub done: &'static str,
    /// (title text key, element id, text).
    pub snippets: Vec<(&'static str, &'static str, String)>,
}

/// Ready-to-paste client set-ups for `secret` at `base` with `model`: (title text key,
/// element id, text).
pub(crate) fn snippets(
    secret: &str,
    base: &str,
    model: &str,
) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "keys.snippet.openai",
            "snippet-openai",
            format!(
                "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}/v1\", api_key=\"{secret}\")\nreply = client.chat.completions.create(\n    model=\"{model}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(reply.choices[0].message.content)"
            ),
        ),
        (
            "keys.snippet.anthropic",
            "snippet-anthropic",
            format!(
                "# Claude Code and the Anthropic SDKs read these:\nexport ANTHROPIC_BASE_URL={base}\nexport ANTHROPIC_AUTH_TOKEN={secret}\n\n# Python:\n# import anthropic\n# client = anthropic.Anthropic(base_url=\"{base}\", api_key=\"{secret}\")"
            ),
        ),
        (
            "keys.snippet.gemini",
            "snippet-gemini",
            format!(
                "from google import genai\n\nclient = genai.Client(api_key=\"{secret}\", http_options={{\"base_url\": \"{base}\"}})\nprint(client.models.generate_content(model=\"{model}\", contents=\"Hello\").text)"
            ),
        ),
        (
            "keys.snippet.curl",
            "snippet-curl",
            format!(
                "curl {base}/v1/chat/completions \\\n  -H \"Authorization: Bearer {secret}\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
            ),
        ),
    ]
}

impl Created {
    pub(crate) fn new(secret: String, base: &str, model: &str, done: &'static str) -> Created {
        Created {
            snippets: snippets(&secret, base, model),
            secret,
            done,
        }
    }

    /// The dialog for a secret just minted (created or rotated), with snippets for this
    /// gateway's address and its first model.
    pub(crate) fn reveal(web: &Web, parts: &Parts, secret: String, done: &'static str) -> Created {
        Created::new(
            secret,
            &base_url(parts, web.config.secure_cookie),
            &first_model(web),
            done,
        )
    }
}

/// The model the snippets ask for: the catalog's first.
pub(crate) fn first_model(web: &Web) -> String {
    web.gateway
        .models()
        .into_iter()
        .next()
        .unwrap_or_else(|| "gpt-4o-mini".into())
}

#[derive(Template)]
#[template(path = "keys.html")]
pub(crate) struct KeysPage<'a> {
    pub l: &'a Layout,
    pub rows: &'a [KeyRow],
    pub users: &'a [User],
    pub filter: &'a KeyFilter,
    pub filter_near: bool,
    pub form: &'a KeyForm,
    pub created: Option<Created>,
    /// An error to show (the gateway's words).
    pub notice: String,
}

/// The key table alone, as the live stream pushes it.
#[derive(Template)]
#[template(path = "keys_table.html")]
pub(crate) struct KeysTable<'a> {
    pub l: &'a Layout,
    pub rows: &'a [KeyRow],
}

/// One row of the key table, as the live stream pushes a changed one.
#[derive(Template)]
#[template(path = "key_row.html")]
pub(crate) struct KeyRowHtml<'a> {
    pub l: &'a Layout,
    pub r: &'a KeyRow,
}

#[derive(Template)]
#[template(path = "key_edit.html")]
pub(crate) struct KeyEditPage<'a> {
    pub l: &'a Layout,
    pub key: &'a ApiKey,
    pub form: &'a KeyForm,
    pub notice: String,
}

/// The viewer as the gateway's writes name them.
pub(crate) fn actor(v: &Viewer) -> Actor {
    Actor {
        user_id: v.user_id,
        username: v.username.clone(),
        role: v.role,
    }
}

/// Meters for every key, read now: the last minute's requests from the minute rollups, today's
/// requests and this month's cost as the limiter resumes them.
pub(crate) async fn rows(
    web: &Web,
    l: &Layout,
    keys: Vec<ApiKey>,
) -> Result<Vec<KeyRow>, Response> {
    let g = &web.gateway;
    let store = g.store();
    let now = g.now_ms();
    let calendar = g.calendar();
    let month_start = calendar.month_start_day(now);
    let spend: HashMap<i64, KeySpend> = store
        .key_spend(&calendar.day(now), &month_start)
        .await
        .map_err(unavailable)?
        .into_iter()
        .collect();
    let minute: HashMap<String, i64> = store
        .ui()
        .rollup(&RollupQuery {
            grain: Grain::Minute,
            since_ms: now - 60_000,
            until_ms: now + 1,
            step_ms: 0,
            by: Some(Dimension::Key),
            user_id: None,
        })
        .await
        .map_err(unavailable)?
        .into_iter()
        .fold(HashMap::new(), |mut m, p| {
            *m.entry(p.group).or_default() += p.counts.requests;
            m
        });
    let users: HashMap<i64, String> = store
        .list_users()
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    let next_day = view::utc(calendar.next_midnight_ms(now) / 1000);
    let next_month = next_month(&calendar, now);
    let unlimited = l.t("limit.unlimited");
    Ok(keys
        .into_iter()
        .map(|key| {
            let s = spend.get(&key.id).copied().unwrap_or_default();
            let last_minute = minute.get(&format!("key:{}", key.id)).copied().unwrap_or(0);
            let count = |used: i64, limit: i64, resets: &str| Meter {
                used: used as f64,
                limit: limit as f64,
                text: if limit > 0 {
                    format!("{used} / {limit}")
                } else {
                    format!("{used} / {unlimited}")
                },
                resets: if limit > 0 {
                    resets.to_string()
                } else {
                    String::new()
                },
            };
            KeyRow {
                owner: users.get(&key.user_id).cloned().unwrap_or_default(),
                rate: count(last_minute, key.rate_limit, ""),
                daily: count(s.requests_today, key.daily_limit, &next_day),
                monthly: Meter {
                    used: s.cost_this_month as f64,
                    limit: key.monthly_quota as f64,
                    text: if key.monthly_quota > 0 {
                        format!(
                            "{} / {}",
                            view::usd(s.cost_this_month),
                            view::usd(key.monthly_quota)
                        )
                    } else {
                        format!("{} / {unlimited}", view::usd(s.cost_this_month))
                    },
                    resets: if key.monthly_quota > 0 {
                        next_month.clone()
                    } else {
                        String::new()
                    },
                },
                key,
            }
        })
        .collect())
}

use chrono::Datelike as _;

/// When this month's counts start again, as UTC text.
pub(crate) fn next_month(calendar: &sluice_store::limits::Calendar, now: i64) -> String {
    let d = calendar.date(now);
    let (y, m) = if d.month0() == 11 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| calendar.start_of(d))
        .map(|ms| view::utc(ms / 1000))
        .unwrap_or_default()
}

/// The base URL clients reach this gateway at, from the request (for the snippets).
pub(crate) fn base_url(parts: &Parts, secure: bool) -> String {
    let host = parts
        .headers
        .get("x-forwarded-host")
        .or_else(|| parts.headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .unwrap_or("127.0.0.1:8080");
    format!("{}://{host}", if secure { "https" } else { "http" })
}

/// What the list shows besides the keys: a new key's dialog, or an error and its status.
struct Shown {
    created: Option<Created>,
    status: StatusCode,
    notice: String,
}

impl Shown {
    fn plain() -> Shown {
        Shown {
            created: None,
            status: StatusCode::OK,
            notice: String::new(),
        }
    }

    fn refused(e: crate::WriteError) -> Shown {
        Shown {
            created: None,
            status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            notice: e.message,
        }
    }
}

/// The keys the filter selects, with their meters.
pub(crate) async fn filtered_rows(
    web: &Web,
    layout: &Layout,
    filter: &KeyFilter,
) -> Result<Vec<KeyRow>, Response> {
    let keys: Vec<ApiKey> = web
        .gateway
        .store()
        .keys_changed_since(i64::MIN)
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter(|k| k.deleted_at.is_none())
        .filter(|k| filter.owner.is_none_or(|o| k.user_id == o))
        .filter(|k| match filter.status.as_str() {
            "active" => k.status == Status::Active,
            "disabled" => k.status == Status::Disabled,
            _ => true,
        })
        .collect();
    let mut rows = rows(web, layout, keys).await?;
    if filter.near.as_deref().is_some_and(|n| !n.is_empty()) {
        rows.retain(KeyRow::near);
    }
    Ok(rows)
}

/// Renders the list (with an optional new key's dialog or an error).
async fn list(
    web: &Web,
    parts: &Parts,
    v: Viewer,
    filter: &KeyFilter,
    form: &KeyForm,
    shown: Shown,
) -> Response {
    let Shown {
        created,
        status,
        notice,
    } = shown;
    let layout = Layout::new(&parts.headers, Some(v), "keys.title", "/ui/keys");
    let users = match web.gateway.store().list_users().await {
        Ok(users) => users,
        Err(e) => return unavailable(e),
    };
    let rows = match filtered_rows(web, &layout, filter).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let near = filter.near.as_deref().is_some_and(|n| !n.is_empty());
    let mut r = html(
        status,
        &KeysPage {
            l: &layout,
            rows: &rows,
            users: &users,
            filter,
            filter_near: near,
            form,
            created,
            notice,
        },
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /ui/keys` (admins).
pub async fn page(
    State(web): State<Arc<Web>>,
    Query(filter): Query<KeyFilter>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let form = KeyForm::default();
    list(&web, &parts, v, &filter, &form, Shown::plain()).await
}

/// `POST /ui/keys`: creates a key for the signed-in admin; the answer shows its secret once.
pub async fn create(
    State(web): State<Arc<Web>>,
    parts: Parts,
    Form(form): Form<KeyForm>,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let filter = KeyFilter::default();
    match web
        .gateway
        .write_key(&actor(&v), KeyWrite::Create(form.body(false)))
        .await
    {
        Ok(written) => {
            let created =
                Created::reveal(&web, &parts, written.secret.unwrap_or_default(), "/ui/keys");
            let shown = Shown {
                created: Some(created),
                ..Shown::plain()
            };
            list(&web, &parts, v, &filter, &KeyForm::default(), shown).await
        }
        Err(e) => list(&web, &parts, v, &filter, &form, Shown::refused(e)).await,
    }
}

/// The key `id` for an admin, or the answer to give instead.
async fn key_of(web: &Web, id: &str) -> Result<ApiKey, Response> {
    let not_found = || (StatusCode::NOT_FOUND, "no such key\n").into_response();
    let id: i64 = id.parse().map_err(|_| not_found())?;
    match web.gateway.store().key_by_id(id).await {
        Ok(k) if k.deleted_at.is_none() => Ok(k),
        Ok(_) | Err(sluice_store::StoreError::NotFound) => Err(not_found()),
        Err(e) => Err(unavailable(e)),
    }
}

/// `GET /ui/keys/{id}/edit` (admins).
pub async fn edit_page(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let key = match key_of(&web, &id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let layout = Layout::new(&parts.headers, Some(v), "keys.edit.title", "/ui/keys");
    html(
        StatusCode::OK,
        &KeyEditPage {
            l: &layout,
            key: &key,
            form: &KeyForm::of(&key),
            notice: String::new(),
        },
    )
}

/// `POST /ui/keys/{id}`: saves an edit.
pub async fn update(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    parts: Parts,
    Form(form): Form<KeyForm>,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let key = match key_of(&web, &id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    match web
        .gateway
        .write_key(&actor(&v), KeyWrite::Update(key.id, form.body(true)))
        .await
    {
        Ok(_) => Redirect::to("/ui/keys").into_response(),
        Err(e) => {
            let layout = Layout::new(&parts.headers, Some(v), "keys.edit.title", "/ui/keys");
            html(
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                &KeyEditPage {
                    l: &layout,
                    key: &key,
                    form: &form,
                    notice: e.message,
                },
            )
        }
    }
}

/// `POST /ui/keys/{id}/toggle`, `/delete` and `/rotate`.
async fn act(web: &Web, parts: &Parts, id: &str, action: Action) -> Response {
    let v = match viewer(web, parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let key = match key_of(web, id).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    match web
        .gateway
        .write_key(&actor(&v), action.write(key.id))
        .await
    {
        Ok(KeyWritten {
            secret: Some(secret),
            ..
        }) => {
            let shown = Shown {
                created: Some(Created::reveal(web, parts, secret, "/ui/keys")),
                ..Shown::plain()
            };
            list(
                web,
                parts,
                v,
                &KeyFilter::default(),
                &KeyForm::default(),
                shown,
            )
            .await
        }
        Ok(_) => Redirect::to("/ui/keys").into_response(),
        Err(e) => {
            list(
                web,
                parts,
                v,
                &KeyFilter::default(),
                &KeyForm::default(),
                Shown::refused(e),
            )
            .await
        }
    }
}

/// What a key's action button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Toggle,
    Delete,
    Rotate,
}

impl Action {
    pub(crate) fn write(self, id: i64) -> KeyWrite {
        match self {
            Action::Toggle => KeyWrite::Toggle(id),
            Action::Delete => KeyWrite::Delete(id),
            Action::Rotate => KeyWrite::Rotate(id),
        }
    }
}

pub async fn toggle(State(web): State<Arc<Web>>, Path(id): Path<String>, parts: Parts) -> Response {
    act(&web, &parts, &id, Action::Toggle).await
}

pub async fn delete(State(web): State<Arc<Web>>, Path(id): Path<String>, parts: Parts) -> Response {
    act(&web, &parts, &id, Action::Delete).await
}

/// `POST /ui/keys/{id}/rotate`: a new secret, same settings, shown once; the old one stops
/// working at once.
pub async fn rotate(State(web): State<Arc<Web>>, Path(id): Path<String>, parts: Parts) -> Response {
    act(&web, &parts, &id, Action::Rotate).await
}
