//! Requests (admins): every usage record, newest first, with keyset pagination (the next page
//! starts after the last row shown, never an OFFSET), filters in the query string, a detail
//! page with the failover timeline (every upstream attempt and the cooldown it opened), and
//! the current filter as CSV.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use sluice_store::UsageRow;
use sluice_store::rollup::AttemptRow;
use sluice_store::ui::RequestQuery;

use super::overview::unavailable;
use super::{Need, html, viewer};
use crate::Web;
use crate::view::{self, Layout};

/// Rows per page.
const PAGE: i64 = 50;
/// Rows in one CSV export.
const CSV_MAX: i64 = 10_000;

/// The list's filters, as the query string carries them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestFilter {
    /// `1h`, `24h` (default), `7d`, `30d`.
    #[serde(default)]
    pub range: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub provider: String,
    /// `2`, `4`, `5`.
    #[serde(default)]
    pub status: String,
    /// `yes`, `no`.
    #[serde(default)]
    pub stream: String,
    /// `1`: only requests that failed over.
    #[serde(default)]
    pub failover: String,
    /// A user id.
    #[serde(default)]
    pub user: String,
    /// The credential that answered.
    #[serde(default)]
    pub credential: String,
    /// Only requests whose time to first token was above this many milliseconds.
    #[serde(default)]
    pub ttft: String,
    /// `<time_ms>:<request id>` of the last row of the previous page.
    #[serde(default)]
    pub before: String,
}

impl RequestFilter {
    fn window_ms(&self) -> i64 {
        match self.range.as_str() {
            "1h" => 3_600_000,
            "7d" => 7 * 86_400_000,
            "30d" => 30 * 86_400_000,
            _ => 86_400_000,
        }
    }

    pub(crate) fn query(&self, now: i64, limit: i64) -> RequestQuery {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        RequestQuery {
            since_ms: now - self.window_ms(),
            until_ms: now + 1,
            key_label: text(&self.key),
            model: text(&self.model),
            provider: text(&self.provider),
            status_class: self.status.parse().ok().filter(|c| [2, 4, 5].contains(c)),
            stream: match self.stream.as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
            failover: self.failover == "1",
            user_id: self.user.trim().parse().ok(),
            credential: text(&self.credential),
            ttft_above_ms: self
                .ttft
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0),
            before: self.before.split_once(':').and_then(|(t, id)| {
                Some((t.parse().ok()?, id.to_string())).filter(|_| !id.is_empty())
            }),
            limit,
        }
    }

    /// The query string of this filter without the page (for the CSV link and "newer").
    pub fn qs(&self) -> String {
        let mut f = self.clone();
        f.before.clear();
        serde_urlencoded::to_string([
            ("range", f.range),
            ("key", f.key),
            ("model", f.model),
            ("provider", f.provider),
            ("status", f.status),
            ("stream", f.stream),
            ("failover", f.failover),
            ("user", f.user),
            ("credential", f.credential),
            ("ttft", f.ttft),
        ])
        .unwrap_or_default()
    }

    pub fn is_user(&self, id: &i64) -> bool {
        self.user.trim() == id.to_string()
    }

    pub fn is(&self, field: &str, value: &str) -> bool {
        let v = match field {
            "range" => {
                if self.range.is_empty() {
                    "24h"
                } else {
                    self.range.as_str()
                }
            }
            "status" => self.status.as_str(),
            "stream" => self.stream.as_str(),
            _ => "",
        };
        v == value
    }
}

/// One row as the list shows it.
#[derive(Debug, Clone)]
pub(crate) struct RequestRow {
    pub r: UsageRow,
    pub time: String,
    pub cost: String,
    pub latency: String,
    pub ttft: String,
    pub href: String,
}

impl RequestRow {
    pub(crate) fn of(r: UsageRow) -> RequestRow {
        RequestRow {
            time: view::utc(r.time_ms / 1000),
            cost: view::usd(r.cost_nanos),
            latency: format!("{:.0} ms", r.latency_ms),
            ttft: r
                .ttft_ms
                .map(|t| format!("{t:.0} ms"))
                .unwrap_or_else(|| "—".into()),
            href: format!("/ui/requests/{}/{}", r.time_ms, utf8_percent(&r.request_id)),
            r,
        }
    }

    #[cfg(test)]
    pub(crate) fn of_for_tests(r: UsageRow) -> RequestRow {
        RequestRow::of(r)
    }

    pub fn status_class(&self) -> &'static str {
        match self.r.status {
            500.. => "bad",
            400..=499 => "warn",
            _ => "ok",
        }
    }

    pub fn models(&self) -> String {
        let asked = self.r.model_requested.clone().unwrap_or_default();
        match &self.r.model_served {
            Some(served) if *served != asked => format!("{asked} → {served}"),
            _ => asked,
        }
    }

    pub fn dialects(&self) -> String {
        let client = self.r.endpoint.split('.').next().unwrap_or("");
        match &self.r.upstream_dialect {
            Some(up) => format!("{client} → {up}"),
            None => client.to_string(),
        }
    }

    pub fn opt(&self, v: &Option<String>) -> String {
        v.clone().unwrap_or_else(|| "—".into())
    }
}

/// Percent-encodes a path segment (request ids are short and safe, but never trust that).
fn utf8_percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "requests.html")]
pub(crate) struct RequestsPage<'a> {
    pub l: &'a Layout,
    pub rows: &'a [RequestRow],
    pub filter: &'a RequestFilter,
    pub users: &'a [sluice_store::User],
    /// The query string of the next page, if there may be one.
    pub older: Option<String>,
}

/// One attempt as the timeline shows it.
#[derive(Debug, Clone)]
pub(crate) struct AttemptView {
    pub n: usize,
    pub a: AttemptRow,
    pub latency: String,
    pub cooldown: String,
}

/// The rows the live tail pushes (the same markup as the list's).
#[derive(Template)]
#[template(path = "request_rows.html")]
pub(crate) struct RowsFragment<'a> {
    pub l: &'a Layout,
    pub rows: &'a [RequestRow],
}

#[derive(Template)]
#[template(path = "request.html")]
pub(crate) struct RequestPage<'a> {
    pub l: &'a Layout,
    pub row: &'a RequestRow,
    pub attempts: &'a [AttemptView],
}

/// `GET /ui/requests` (admins).
pub async fn page(
    State(web): State<Arc<Web>>,
    Query(filter): Query<RequestFilter>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = web.gateway.now_ms();
    let rows = match web
        .gateway
        .store()
        .ui()
        .requests(&filter.query(now, PAGE))
        .await
    {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last())
        .flatten()
        .map(|last| {
            let mut f = filter.clone();
            f.before = format!("{}:{}", last.time_ms, last.request_id);
            let mut qs = f.qs();
            qs.push_str("&before=");
            qs.push_str(&utf8_percent(&f.before));
            qs
        });
    let rows: Vec<RequestRow> = rows.into_iter().map(RequestRow::of).collect();
    let users = match web.gateway.store().list_users().await {
        Ok(u) => u,
        Err(e) => return unavailable(e),
    };
    let layout = Layout::new(&parts.headers, Some(v), "requests.title", "/ui/requests");
    html(
        StatusCode::OK,
        &RequestsPage {
            l: &layout,
            rows: &rows,
            filter: &filter,
            users: &users,
            older,
        },
    )
}

/// `GET /ui/requests/{time_ms}/{request_id}` (admins): one request and its failover timeline.
pub async fn detail(
    State(web): State<Arc<Web>>,
    Path((time_ms, request_id)): Path<(i64, String)>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ui = web.gateway.store().ui();
    let row = match ui.request(&request_id, time_ms).await {
        Ok(Some(row)) => RequestRow::of(row),
        Ok(None) => return (StatusCode::NOT_FOUND, "no such request\n").into_response(),
        Err(e) => return unavailable(e),
    };
    let attempts = match ui.attempts_of(&request_id, time_ms).await {
        Ok(a) => a,
        Err(e) => return unavailable(e),
    };
    let layout = Layout::new(&parts.headers, Some(v), "requests.detail", "/ui/requests");
    let attempts: Vec<AttemptView> = attempts
        .into_iter()
        .enumerate()
        .map(|(i, a)| AttemptView {
            n: i + 1,
            latency: format!("{:.0} ms", a.latency_ms),
            cooldown: match a.cooldown_until_ms {
                Some(until) => format!(
                    "{} ({})",
                    view::utc(until / 1000),
                    view::duration((until - time_ms).max(0) / 1000)
                ),
                None => "—".into(),
            },
            a,
        })
        .collect();
    html(
        StatusCode::OK,
        &RequestPage {
            l: &layout,
            row: &row,
            attempts: &attempts,
        },
    )
}

pub(crate) fn csv_field(s: &str) -> String {
    // Cells that a spreadsheet would run as a formula are quoted with a leading apostrophe.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `GET /ui/requests.csv` (admins): the current filter (up to 10,000 rows) as CSV.
pub async fn csv(
    State(web): State<Arc<Web>>,
    Query(filter): Query<RequestFilter>,
    parts: Parts,
) -> Response {
    if let Err(r) = viewer(&web, &parts, Need::Admin).await {
        return r;
    }
    let now = web.gateway.now_ms();
    let mut q = filter.query(now, CSV_MAX);
    q.before = None;
    let rows = match web.gateway.store().ui().requests(&q).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let mut out = String::from(
        "time,request_id,key,user_id,endpoint,upstream_dialect,provider,credential,model_requested,model_served,stream,status,error,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,cost_usd,estimated,latency_ms,ttft_ms,attempts\n",
    );
    for r in rows {
        let o = |v: &Option<String>| csv_field(v.as_deref().unwrap_or(""));
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.9},{},{:.1},{},{}\n",
            view::utc(r.time_ms / 1000),
            csv_field(&r.request_id),
            o(&r.key_label),
            r.user_id.map(|u| u.to_string()).unwrap_or_default(),
            csv_field(&r.endpoint),
            o(&r.upstream_dialect),
            o(&r.provider),
            o(&r.credential),
            o(&r.model_requested),
            o(&r.model_served),
            r.stream,
            r.status,
            o(&r.error),
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.reasoning_tokens,
            r.cost_nanos as f64 / 1e9,
            r.estimated,
            r.latency_ms,
            r.ttft_ms.map(|t| format!("{t:.1}")).unwrap_or_default(),
            r.attempts,
        ));
    }
    let mut response = out.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"sluice-requests.csv\""),
    );
    response
}
