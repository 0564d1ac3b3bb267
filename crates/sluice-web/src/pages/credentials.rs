//! The Credentials page (admins): every credential of every provider with its state (active,
//! cooling, probing, disabled, needs a new sign-in), per-model cooldowns with a countdown that
//! ticks in the browser (the row re-fetches itself when one ends), the reason in the
//! upstream's words, counters, a 20-bucket health strip and p95 TTFT from the rollups, its
//! origin; "test now", clear a cooldown, disable / enable. Below: per model, whether the
//! router can route it now and why not, and a routing preview (the real router's plan, never
//! a re-implementation). Rows are pushed over Server-Sent Events when a credential's state
//! changes (`live.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use sluice_store::rollup::{Counts, Dimension, Grain, ProbeRow, RollupQuery, quantile};

use super::keys::actor;
use super::overview::{ms, percent, unavailable};
use super::{Need, html, viewer};
use crate::svg::StripCell;
use crate::view::Layout;
use crate::{CredentialAction, CredentialHealth, RouteBlocked, RoutePreview, Web};

/// Health strip: this many buckets of this width, newest last.
pub(crate) const STRIP_BUCKETS: usize = 20;
const STRIP_STEP_MS: i64 = 5 * 60_000;

/// One model's cooldown or probe on a credential.
#[derive(Debug, Clone)]
pub(crate) struct Cooldown {
    pub model: String,
    /// `cooling`, `probing`, `probe_due`, `degraded`.
    pub status: String,
    pub remaining_ms: Option<u64>,
    /// "4m 11s".
    pub left: String,
    /// Text key of the reason.
    pub reason_key: &'static str,
}

impl Cooldown {
    pub fn status_key(&self) -> &'static str {
        match self.status.as_str() {
            "cooling" => "cred.status.cooling",
            "probing" => "cred.status.probing",
            "probe_due" => "cred.status.probe_due",
            _ => "cred.status.degraded",
        }
    }
}

/// A probe's answer, as shown.
#[derive(Debug, Clone)]
pub(crate) struct ProbeView {
    pub ok: bool,
    pub status: String,
    pub model: String,
    pub latency: String,
    pub ttft: String,
    pub error: String,
    pub when: String,
}

impl ProbeView {
    pub(crate) fn of(p: &ProbeRow) -> ProbeView {
        ProbeView {
            ok: (200..300).contains(&p.status),
            status: if p.status == 0 {
                "—".into()
            } else {
                p.status.to_string()
            },
            model: p.model.clone(),
            latency: ms(Some(p.latency_ms)),
            ttft: ms(p.ttft_ms),
            error: p.error.clone().unwrap_or_default(),
            when: crate::view::utc(p.time_ms / 1000),
        }
    }
}

/// One credential's row.
#[derive(Debug, Clone)]
pub(crate) struct CredRow {
    pub h: CredentialHealth,
    /// The row's element id (`cred-` + the id in hex: any id is a safe selector).
    pub dom: String,
    /// The id, URL-encoded for query strings.
    pub q: String,
    pub cooldowns: Vec<Cooldown>,
    pub strip: Vec<StripCell>,
    pub ttft_p95: String,
    pub success_24h: String,
    pub probe: Option<ProbeView>,
}

impl CredRow {
    pub fn status_key(&self) -> &'static str {
        match self.h.status.as_str() {
            "active" => "status.active",
            "cooling" => "cred.status.cooling",
            "disabled" => "status.disabled",
            "needs_relogin" => "overview.relogin",
            _ => "cred.status.probing",
        }
    }

    pub fn pill(&self) -> &'static str {
        match self.h.status.as_str() {
            "active" => "ok",
            "cooling" => "warn",
            _ => "bad",
        }
    }

    pub fn origin_key(&self) -> &'static str {
        match (self.h.token_file.is_some(), self.h.origin.as_str()) {
            (true, _) => "cred.origin.file",
            (_, "pool") => "cred.origin.pool",
            _ => "cred.origin.config",
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.h.disabled.is_some()
    }

    pub fn error_key(&self) -> &'static str {
        reason_key(self.h.last_error.as_deref())
    }
}

/// Text key of a failure kind.
fn reason_key(kind: Option<&str>) -> &'static str {
    match kind {
        Some("quota") => "reason.quota",
        Some("server_error") => "reason.server_error",
        Some("unauthorized") => "cred.reason.unauthorized",
        _ => "cred.reason.none",
    }
}

/// A provider and its rows.
#[derive(Debug, Clone)]
pub(crate) struct ProviderGroup {
    pub provider: String,
    pub platform: String,
    pub rows: Vec<CredRow>,
}

/// Whether one client-facing model can be routed now, and why not.
#[derive(Debug, Clone)]
pub(crate) struct ModelLine {
    pub model: String,
    pub q: String,
    /// The credentials that would take it, in order (`credential → upstream model`).
    pub route: Vec<String>,
    pub blocked: Option<RouteBlocked>,
    pub left: String,
}

impl ModelLine {
    pub fn routable(&self) -> bool {
        !self.route.is_empty()
    }

    pub fn why_key(&self) -> &'static str {
        match self.blocked.as_ref().map(|b| b.status.as_str()) {
            Some("cooling") => "cred.why.cooling",
            Some("probing") => "cred.why.probing",
            Some("disabled") => "cred.why.disabled",
            _ => "cred.why.none",
        }
    }

    pub fn reason_text(&self, l: &Layout) -> String {
        match self.blocked.as_ref().and_then(|b| b.reason.as_deref()) {
            Some("quota") => l.t("reason.quota").into(),
            Some("server_error") => l.t("reason.server_error").into(),
            Some(other) => other.into(),
            None => String::new(),
        }
    }
}

/// The routing preview's form and answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub key: String,
}

impl PreviewQuery {
    pub fn is_key(&self, id: &i64) -> bool {
        self.key.trim() == id.to_string()
    }
}

#[derive(Template)]
#[template(path = "credentials.html")]
pub(crate) struct CredentialsPage<'a> {
    pub l: &'a Layout,
    pub groups: &'a [ProviderGroup],
    pub models: &'a [ModelLine],
    pub all_models: &'a [String],
    pub keys: &'a [sluice_store::ApiKey],
    pub query: &'a PreviewQuery,
    pub preview: Option<RoutePreview>,
    pub preview_error: String,
}

impl CredentialsPage<'_> {
    /// Text key of a blocked credential's state.
    pub fn blocked_key(&self, status: &str) -> &'static str {
        match status {
            "cooling" => "cred.status.cooling",
            "probing" => "cred.status.probing",
            "disabled" => "status.disabled",
            _ => "cred.why.none",
        }
    }
}

#[derive(Template)]
#[template(path = "credential_row.html")]
pub(crate) struct RowFragment<'a> {
    pub l: &'a Layout,
    pub r: &'a CredRow,
}

#[derive(Template)]
#[template(path = "credential_models.html")]
pub(crate) struct ModelsFragment<'a> {
    pub l: &'a Layout,
    pub models: &'a [ModelLine],
}

#[derive(Template)]
#[template(path = "credential_probe.html")]
pub(crate) struct ProbeFragment<'a> {
    pub l: &'a Layout,
    pub p: &'a ProbeView,
}

/// `cred-` + the id's bytes in hex.
pub(crate) fn dom_id(id: &str) -> String {
    let mut out = String::with_capacity(5 + id.len() * 2);
    out.push_str("cred-");
    for b in id.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Rows for `health` (every credential, or the ones asked for), with their rollup figures and
/// last probe.
pub(crate) async fn rows(
    web: &Web,
    health: Vec<CredentialHealth>,
) -> Result<Vec<CredRow>, sluice_store::StoreError> {
    let g = &web.gateway;
    let ui = g.store().ui();
    let now = g.now_ms();
    let strip_since = now - (STRIP_BUCKETS as i64 - 1) * STRIP_STEP_MS;
    let strip_points = ui
        .rollup(&RollupQuery {
            grain: Grain::Minute,
            since_ms: strip_since,
            until_ms: now + 1,
            step_ms: STRIP_STEP_MS,
            by: Some(Dimension::Credential),
            user_id: None,
        })
        .await?;
    let day_points = ui
        .rollup(&RollupQuery {
            grain: Grain::Hour,
            since_ms: now - 23 * Grain::Hour.width_ms(),
            until_ms: now + 1,
            step_ms: 0,
            by: Some(Dimension::Credential),
            user_id: None,
        })
        .await?;
    let first_bucket = strip_since - strip_since.rem_euclid(STRIP_STEP_MS);
    let mut strips: HashMap<&str, [(i64, i64); STRIP_BUCKETS]> = HashMap::new();
    for p in &strip_points {
        let i = ((p.bucket_ms - first_bucket) / STRIP_STEP_MS).clamp(0, STRIP_BUCKETS as i64 - 1);
        let cell = &mut strips.entry(p.group.as_str()).or_default()[i as usize];
        cell.0 += p.counts.requests;
        if p.status_class != 2 {
            cell.1 += p.counts.requests;
        }
    }
    let mut day: HashMap<&str, (Counts, i64)> = HashMap::new();
    for p in &day_points {
        let entry = day.entry(p.group.as_str()).or_default();
        entry.0.merge(&p.counts);
        if p.status_class == 2 {
            entry.1 += p.counts.requests;
        }
    }
    let mut out = Vec::with_capacity(health.len());
    for h in health {
        let probe = ui.probes_of(&h.id, 1).await?.first().map(ProbeView::of);
        let strip = crate::svg::health_strip(
            &strips.get(h.id.as_str()).copied().unwrap_or_default(),
            first_bucket,
            STRIP_STEP_MS,
        );
        let (counts, ok) = day.get(h.id.as_str()).cloned().unwrap_or_default();
        let cooldowns = h
            .models
            .iter()
            .map(|m| Cooldown {
                model: m.model.clone(),
                status: m.status.clone(),
                remaining_ms: m.remaining_ms,
                left: crate::view::duration(
                    i64::try_from(m.remaining_ms.unwrap_or(0).div_ceil(1000)).unwrap_or(0),
                ),
                reason_key: reason_key(m.reason.as_deref()),
            })
            .collect();
        out.push(CredRow {
            dom: dom_id(&h.id),
            q: encode(&h.id),
            cooldowns,
            strip,
            ttft_p95: ms(quantile(&counts.ttft, 0.95)),
            success_24h: percent(ok, counts.requests),
            probe,
            h,
        });
    }
    Ok(out)
}

/// Per client-facing model: the real router's preview, as a line.
pub(crate) async fn model_lines(web: &Web) -> Vec<ModelLine> {
    let mut lines = Vec::new();
    let mut names = web.gateway.models();
    names.sort();
    names.dedup();
    for model in names {
        let Ok(p) = web.gateway.route_preview(&model, None).await else {
            continue;
        };
        let left = p
            .blocked
            .as_ref()
            .and_then(|b| b.remaining_ms)
            .map(|ms| crate::view::duration(i64::try_from(ms.div_ceil(1000)).unwrap_or(0)))
            .unwrap_or_default();
        lines.push(ModelLine {
            q: encode(&model),
            route: p
                .steps
                .iter()
                .map(|s| format!("{} → {}", s.credential, s.upstream_model))
                .collect(),
            blocked: p.blocked,
            left,
            model,
        });
    }
    lines
}

fn groups(rows: Vec<CredRow>) -> Vec<ProviderGroup> {
    let mut out: Vec<ProviderGroup> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|g| g.provider == r.h.provider) {
            Some(g) => g.rows.push(r),
            None => out.push(ProviderGroup {
                provider: r.h.provider.clone(),
                platform: r.h.platform.clone(),
                rows: vec![r],
            }),
        }
    }
    out
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn full_page(
    web: &Web,
    parts: &Parts,
    v: crate::session::Viewer,
    query: &PreviewQuery,
    status: StatusCode,
) -> Response {
    let layout = Layout::new(&parts.headers, Some(v), "cred.title", "/ui/credentials");
    let rows = match rows(web, web.gateway.credentials()).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let keys: Vec<sluice_store::ApiKey> =
        match web.gateway.store().keys_changed_since(i64::MIN).await {
            Ok(keys) => keys
                .into_iter()
                .filter(|k| k.deleted_at.is_none())
                .collect(),
            Err(e) => return unavailable(e),
        };
    let models = model_lines(web).await;
    let mut all_models = web.gateway.models();
    all_models.sort();
    all_models.dedup();
    let (preview, preview_error) = if query.model.trim().is_empty() {
        (None, String::new())
    } else {
        let key = query.key.trim().parse::<i64>().ok();
        match web.gateway.route_preview(query.model.trim(), key).await {
            Ok(p) => (Some(p), String::new()),
            Err(e) => (None, e),
        }
    };
    no_store(html(
        status,
        &CredentialsPage {
            l: &layout,
            groups: &groups(rows),
            models: &models,
            all_models: &all_models,
            keys: &keys,
            query,
            preview,
            preview_error,
        },
    ))
}

/// `GET /ui/credentials[?model=M&key=K]` (admins).
pub async fn page(
    State(web): State<Arc<Web>>,
    Query(query): Query<PreviewQuery>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    full_page(&web, &parts, v, &query, StatusCode::OK).await
}

#[derive(Debug, Default, Deserialize)]
pub struct IdQuery {
    #[serde(default)]
    id: String,
}

/// One credential's row, freshly drawn; `None` when no credential has this id.
pub(crate) async fn render_row(
    web: &Web,
    layout: &Layout,
    id: &str,
) -> Option<Result<String, Response>> {
    let health: Vec<CredentialHealth> = web
        .gateway
        .credentials()
        .into_iter()
        .filter(|c| c.id == id)
        .collect();
    if health.is_empty() {
        return None;
    }
    let rows = match rows(web, health).await {
        Ok(rows) => rows,
        Err(e) => return Some(Err(unavailable(e))),
    };
    let row = rows.first()?;
    Some(RowFragment { l: layout, r: row }.render().map_err(|e| {
        tracing::error!(error = %e, "rendering a credential row failed");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such credential\n").into_response()
}

/// `GET /ui/credentials/row?id=…` (admins): the row, for htmx (a countdown ended).
pub async fn row(State(web): State<Arc<Web>>, Query(q): Query<IdQuery>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let layout = Layout::new(&parts.headers, Some(v), "cred.title", "/ui/credentials");
    match render_row(&web, &layout, &q.id).await {
        None => not_found(),
        Some(Ok(body)) => no_store(axum::response::Html(body).into_response()),
        Some(Err(r)) => r,
    }
}

/// `GET /ui/credentials/models` (admins): the "routable now?" table, for htmx.
pub async fn models(State(web): State<Arc<Web>>, parts: Parts) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let layout = Layout::new(&parts.headers, Some(v), "cred.title", "/ui/credentials");
    let models = model_lines(&web).await;
    no_store(html(
        StatusCode::OK,
        &ModelsFragment {
            l: &layout,
            models: &models,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct TestForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
}

/// `POST /ui/credentials/test` (admins): "test now". htmx gets the result's fragment; a
/// plain form post the whole page with the result in the row.
pub async fn test(
    State(web): State<Arc<Web>>,
    parts: Parts,
    Form(form): Form<TestForm>,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let model = Some(form.model.trim()).filter(|m| !m.is_empty());
    let probe = match web
        .gateway
        .test_credential(&actor(&v), form.id.trim(), model)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, e.message).into_response();
        }
    };
    if let Err(e) = web.gateway.store().ui().insert_probe(&probe).await {
        tracing::error!(error = %e, "storing a credential probe failed");
    }
    tracing::info!(
        user_id = v.user_id,
        credential = %probe.credential,
        model = %probe.model,
        status = probe.status,
        "credential tested from the dashboard"
    );
    let view = ProbeView::of(&probe);
    if parts.headers.contains_key("hx-request") {
        let layout = Layout::new(&parts.headers, Some(v), "cred.title", "/ui/credentials");
        return no_store(html(
            StatusCode::OK,
            &ProbeFragment {
                l: &layout,
                p: &view,
            },
        ));
    }
    // Without scripts: the page, whose row shows the latest probe (this one).
    full_page(&web, &parts, v, &PreviewQuery::default(), StatusCode::OK).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    id: String,
    /// `clear`, `disable`, `enable`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/credentials/act` (admins): clear a cooldown, disable (with a reason), enable.
/// htmx gets the row; a plain form post goes back to the page.
pub async fn act(State(web): State<Arc<Web>>, parts: Parts, Form(form): Form<ActForm>) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let layout = Layout::new(
        &parts.headers,
        Some(v.clone()),
        "cred.title",
        "/ui/credentials",
    );
    let action = match form.action.as_str() {
        "clear" => CredentialAction::Clear {
            model: Some(form.model.trim().to_string()).filter(|m| !m.is_empty()),
        },
        "disable" => {
            let reason = form.reason.trim();
            if reason.is_empty() {
                return (StatusCode::BAD_REQUEST, layout.t("cred.disable.needreason"))
                    .into_response();
            }
            CredentialAction::Disable {
                reason: reason.chars().take(200).collect(),
            }
        }
        "enable" => CredentialAction::Enable,
        _ => return (StatusCode::BAD_REQUEST, "unknown action\n").into_response(),
    };
    if let Err(e) = web
        .gateway
        .credential_action(&actor(&v), form.id.trim(), action)
        .await
    {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        return (status, e.message).into_response();
    }
    if !parts.headers.contains_key("hx-request") {
        return Redirect::to("/ui/credentials").into_response();
    }
    match render_row(&web, &layout, form.id.trim()).await {
        None => not_found(),
        Some(Ok(body)) => no_store(axum::response::Html(body).into_response()),
        Some(Err(r)) => r,
    }
}
