//! The Overview: a verdict, tiles, the traffic and latency charts (uPlot over
//! `/ui/overview/series`) and the top models, keys and credentials with sparklines. Everything
//! comes from the rollups and the routing table, never from raw usage rows. The live part
//! (`#overview-live`) is re-rendered by [`crate::live`] whenever usage is written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use sluice_store::rollup::{Counts, Dimension, Grain, RollupPoint, RollupQuery, quantile};
use sluice_store::{ApiKey, StoreError};

use super::{Need, html, viewer};
use crate::view::{self, Layout};
use crate::{CredentialHealth, Web};

/// A key is "near a limit" at this share of it.
const NEAR: f64 = 0.8;
/// Rows in each top table.
const TOP: usize = 5;

/// A tile's figures, already formatted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tiles {
    pub requests_24h: i64,
    /// `99.2 %`, or `—` without requests.
    pub success_24h: String,
    pub saved_24h: i64,
    pub latency_p50: String,
    pub latency_p95: String,
    pub ttft_p50: String,
    pub ttft_p95: String,
    pub tokens_today: i64,
    pub cost_today: String,
    pub tokens_month: i64,
    pub cost_month: String,
    /// Sum of the monthly quotas of keys that have one (`—` when none has).
    pub quota_month: String,
    pub creds_active: usize,
    pub creds_cooling: usize,
    pub creds_disabled: usize,
    pub keys_near: usize,
}

/// The verdict line: a level (`ok`, `warn`, `bad`) and its text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdict {
    pub level: &'static str,
    pub text: String,
}

/// One row of a top table.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopRow {
    pub name: String,
    pub requests: i64,
    pub errors: String,
    pub ttft_p95: String,
    pub cost: String,
    /// `points` of the requests-per-hour sparkline.
    pub spark: String,
}

/// Something an operator should look at: a cooling or disabled credential, a key near a limit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attention {
    /// `cooling`, `disabled` or `near`.
    pub kind: &'static str,
    pub what: String,
    pub detail: String,
    /// For cooling: milliseconds left (a countdown in the browser).
    pub remaining_ms: Option<u64>,
}

/// What the live part of the page shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    pub as_of: String,
    pub verdict: Verdict,
    pub tiles: Tiles,
    pub attention: Vec<Attention>,
    pub top_models: Vec<TopRow>,
    pub top_keys: Vec<TopRow>,
    pub top_credentials: Vec<TopRow>,
}

impl Live {
    /// The three top tables with their titles.
    pub fn tops(&self) -> [(&'static str, &[TopRow]); 3] {
        [
            ("overview.top.models", &self.top_models),
            ("overview.top.keys", &self.top_keys),
            ("overview.top.credentials", &self.top_credentials),
        ]
    }
}

impl Attention {
    /// A countdown's first text (the browser ticks it on).
    pub fn left_text(&self) -> String {
        view::duration(self.remaining_ms.unwrap_or(0).div_ceil(1000) as i64)
    }

    /// The text key of its kind.
    pub fn kind_key(&self) -> &'static str {
        match self.kind {
            "cooling" => "overview.kind.cooling",
            "disabled" => "overview.kind.disabled",
            _ => "overview.kind.near",
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
pub(crate) struct OverviewPage<'a> {
    pub l: &'a Layout,
    pub live: &'a Live,
    /// `3h` or `24h` (the charts' window).
    pub range: &'static str,
}

/// The live part alone (what the SSE stream pushes).
#[derive(Template)]
#[template(path = "overview_live.html")]
pub(crate) struct LiveFragment<'a> {
    pub l: &'a Layout,
    pub live: &'a Live,
}

#[derive(Deserialize, Default)]
pub struct RangeQuery {
    #[serde(default)]
    range: String,
}

fn range_of(q: &RangeQuery) -> &'static str {
    if q.range == "24h" { "24h" } else { "3h" }
}

/// `GET /ui/overview` (admins).
pub async fn page(
    State(web): State<Arc<Web>>,
    Query(q): Query<RangeQuery>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let layout = Layout::new(&parts.headers, Some(v), "overview.title", "/ui/overview");
    let live = match gather(&web, &layout).await {
        Ok(live) => live,
        Err(r) => return r,
    };
    html(
        StatusCode::OK,
        &OverviewPage {
            l: &layout,
            live: &live,
            range: range_of(&q),
        },
    )
}

/// The store's failure as the dashboard answers it.
pub(crate) fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "reading the store for the dashboard failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is unavailable\n",
    )
        .into_response()
}

/// `850 ms`, `1.2 s`, `14 s`, or `—`.
pub(crate) fn ms(v: Option<f64>) -> String {
    match v {
        Some(ms) if ms >= 10_000.0 => format!("{:.0} s", ms / 1000.0),
        Some(ms) if ms >= 1000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => format!("{ms:.0} ms"),
        None => "—".into(),
    }
}

/// `97.5 %`, or `—` of nothing.
pub(crate) fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        "—".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// Sums of the points, all status classes together, and the successful share.
pub(crate) fn total(points: &[&RollupPoint]) -> (Counts, i64) {
    let mut c = Counts::default();
    let mut ok = 0;
    for p in points {
        c.merge(&p.counts);
        if p.status_class == 2 {
            ok += p.counts.requests;
        }
    }
    (c, ok)
}

/// A key's display name: `name (sk-ab12…)` for stored keys, the label otherwise.
pub(crate) fn key_name(label: &str, keys: &HashMap<i64, &ApiKey>) -> String {
    label
        .strip_prefix("key:")
        .and_then(|id| id.parse::<i64>().ok())
        .and_then(|id| keys.get(&id))
        .map(|k| format!("{} ({})", k.name, k.key_prefix))
        .unwrap_or_else(|| {
            if label.is_empty() {
                "—".into()
            } else {
                label.to_string()
            }
        })
}

/// The top `TOP` groups of the last 24 h by requests, with an hourly sparkline each.
fn top(points: &[RollupPoint], start_ms: i64, name: impl Fn(&str) -> String) -> Vec<TopRow> {
    let mut groups: BTreeMap<&str, Vec<&RollupPoint>> = BTreeMap::new();
    for p in points {
        groups.entry(p.group.as_str()).or_default().push(p);
    }
    let mut rows: Vec<(i64, TopRow)> = groups
        .into_iter()
        .map(|(group, points)| {
            let (c, ok) = total(&points);
            let mut hourly = [0.0_f64; 24];
            for p in &points {
                let i = ((p.bucket_ms - start_ms) / 3_600_000).clamp(0, 23) as usize;
                hourly[i] += p.counts.requests as f64;
            }
            (
                c.requests,
                TopRow {
                    name: name(group),
                    requests: c.requests,
                    errors: percent(c.requests - ok, c.requests),
                    ttft_p95: ms(quantile(&c.ttft, 0.95)),
                    cost: view::usd(c.cost_nanos),
                    spark: crate::svg::sparkline(&hourly),
                },
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    rows.into_iter().take(TOP).map(|(_, r)| r).collect()
}

/// Everything the live part shows, read now.
pub(crate) async fn gather(web: &Web, l: &Layout) -> Result<Live, Response> {
    let g = &web.gateway;
    let store = g.store();
    let ui = store.ui();
    let now = g.now_ms();
    let hour = Grain::Hour.width_ms();
    let day_start = now - 23 * hour;
    let query = |grain, since_ms, step_ms, by| RollupQuery {
        grain,
        since_ms,
        until_ms: now + 1,
        step_ms,
        by,
        user_id: None,
    };
    let calendar = g.calendar();
    let today = calendar.date(now);
    let today_start = calendar.start_of(today).unwrap_or(now - now % (24 * hour));
    let month_start_day = calendar.month_start_day(now);
    let month_start = chrono::NaiveDate::parse_from_str(&month_start_day, "%Y-%m-%d")
        .ok()
        .and_then(|d| calendar.start_of(d))
        .unwrap_or(today_start);
    let today_day = calendar.day(now);
    let model_q = query(Grain::Hour, day_start, hour, Some(Dimension::Model));
    // Only the top keys' sums are built: with many keys, every key's hourly sums would be
    // thousands of groups (the other charts read the keyless totals).
    let key_q = query(Grain::Hour, day_start, hour, Some(Dimension::Key));
    let credential_q = query(Grain::Hour, day_start, hour, Some(Dimension::Credential));
    let last_15_q = query(Grain::Minute, now - 15 * 60_000, 0, None);
    let last_minute_q = query(Grain::Minute, now - 60_000, 0, Some(Dimension::Key));
    let today_q = query(Grain::Hour, today_start, 0, None);
    let month_q = query(Grain::Hour, month_start, 0, None);
    // Independent reads, run together (the store's pool has several connections, and SQLite's
    // WAL lets them read at once): the page takes as long as its slowest query.
    let (
        by_model,
        by_key,
        by_credential,
        last_15,
        last_minute,
        today_points,
        month_points,
        all_keys,
        spend,
    ) = tokio::try_join!(
        ui.rollup(&model_q),
        ui.rollup_top(&key_q, TOP),
        ui.rollup(&credential_q),
        ui.rollup(&last_15_q),
        ui.rollup(&last_minute_q),
        ui.rollup(&today_q),
        ui.rollup(&month_q),
        store.keys_changed_since(i64::MIN),
        store.key_spend(&today_day, &month_start_day),
    )
    .map_err(unavailable)?;
    let keys: Vec<ApiKey> = all_keys
        .into_iter()
        .filter(|k| k.deleted_at.is_none())
        .collect();
    let spend: HashMap<i64, sluice_store::KeySpend> = spend.into_iter().collect();
    let key_index: HashMap<i64, &ApiKey> = keys.iter().map(|k| (k.id, k)).collect();
    let credentials = g.credentials();

    let day: Vec<&RollupPoint> = by_model.iter().collect();
    let (day_total, day_ok) = total(&day);
    let (today_total, _) = total(&today_points.iter().collect::<Vec<_>>());
    let (month_total, _) = total(&month_points.iter().collect::<Vec<_>>());
    let (recent, recent_ok) = total(&last_15.iter().collect::<Vec<_>>());
    let quota: i64 = keys.iter().map(|k| k.monthly_quota).sum();

    let mut attention = Vec::new();
    let (mut active, mut cooling, mut disabled) = (0, 0, 0);
    for c in &credentials {
        match c.status.as_str() {
            "active" => active += 1,
            "cooling" => cooling += 1,
            _ => disabled += 1,
        }
        attention.extend(credential_attention(c, l));
    }
    let minute: HashMap<&str, i64> = last_minute.iter().fold(HashMap::new(), |mut m, p| {
        *m.entry(p.group.as_str()).or_default() += p.counts.requests;
        m
    });
    let mut keys_near = 0;
    for k in &keys {
        let s = spend.get(&k.id).copied().unwrap_or_default();
        let used_rate = minute.get(format!("key:{}", k.id).as_str()).copied();
        let mut reasons = Vec::new();
        if k.rate_limit > 0 && used_rate.unwrap_or(0) as f64 >= NEAR * k.rate_limit as f64 {
            reasons.push(format!(
                "{} {}/{}",
                l.t("keys.rate"),
                used_rate.unwrap_or(0),
                k.rate_limit
            ));
        }
        if k.daily_limit > 0 && s.requests_today as f64 >= NEAR * k.daily_limit as f64 {
            reasons.push(format!(
                "{} {}/{}",
                l.t("keys.daily"),
                s.requests_today,
                k.daily_limit
            ));
        }
        if k.monthly_quota > 0 && s.cost_this_month as f64 >= NEAR * k.monthly_quota as f64 {
            reasons.push(format!(
                "{} {}/{}",
                l.t("keys.monthly"),
                view::usd(s.cost_this_month),
                view::usd(k.monthly_quota)
            ));
        }
        if !reasons.is_empty() {
            keys_near += 1;
            attention.push(Attention {
                kind: "near",
                what: format!("{} ({})", k.name, k.key_prefix),
                detail: reasons.join(" · "),
                remaining_ms: None,
            });
        }
    }

    let errors_15 = recent.requests - recent_ok;
    let verdict = if recent.requests >= 10 && errors_15 * 20 > recent.requests {
        Verdict {
            level: "bad",
            text: l
                .t("overview.verdict.errors")
                .replace("{pct}", &percent(errors_15, recent.requests)),
        }
    } else if cooling > 0 || disabled > 0 {
        let mut parts = Vec::new();
        if cooling > 0 {
            parts.push(
                l.t("overview.verdict.cooling")
                    .replace("{n}", &cooling.to_string()),
            );
        }
        if disabled > 0 {
            parts.push(
                l.t("overview.verdict.disabled")
                    .replace("{n}", &disabled.to_string()),
            );
        }
        Verdict {
            level: "warn",
            text: l
                .t("overview.verdict.credentials")
                .replace("{list}", &parts.join(l.t("list.sep"))),
        }
    } else {
        Verdict {
            level: "ok",
            text: l.t("overview.verdict.steady").to_string(),
        }
    };

    Ok(Live {
        as_of: view::utc(now / 1000),
        verdict,
        tiles: Tiles {
            requests_24h: day_total.requests,
            success_24h: percent(day_ok, day_total.requests),
            saved_24h: day_total.failover_saved,
            latency_p50: ms(quantile(&day_total.latency, 0.5)),
            latency_p95: ms(quantile(&day_total.latency, 0.95)),
            ttft_p50: ms(quantile(&day_total.ttft, 0.5)),
            ttft_p95: ms(quantile(&day_total.ttft, 0.95)),
            tokens_today: today_total.tokens(),
            cost_today: view::usd(today_total.cost_nanos),
            tokens_month: month_total.tokens(),
            cost_month: view::usd(month_total.cost_nanos),
            quota_month: if quota > 0 {
                view::usd(quota)
            } else {
                "—".into()
            },
            creds_active: active,
            creds_cooling: cooling,
            creds_disabled: disabled,
            keys_near,
        },
        attention,
        top_models: top(&by_model, day_start - day_start % hour, |g| {
            if g.is_empty() {
                "—".into()
            } else {
                g.to_string()
            }
        }),
        top_keys: top(&by_key, day_start - day_start % hour, |g| {
            key_name(g, &key_index)
        }),
        top_credentials: top(&by_credential, day_start - day_start % hour, |g| {
            if g.is_empty() {
                "—".into()
            } else {
                g.to_string()
            }
        }),
    })
}

/// What a credential's health says an operator should see.
fn credential_attention(c: &CredentialHealth, l: &Layout) -> Vec<Attention> {
    let what = format!("{} / {}", c.provider, c.id);
    if c.status == "disabled" || c.status == "needs_relogin" {
        return vec![Attention {
            kind: "disabled",
            what,
            detail: c
                .disabled
                .clone()
                .unwrap_or_else(|| l.t("overview.relogin").to_string()),
            remaining_ms: None,
        }];
    }
    c.models
        .iter()
        .filter(|m| m.status == "cooling")
        .map(|m| Attention {
            kind: "cooling",
            what: format!("{what} · {}", m.model),
            detail: match m.reason.as_deref() {
                Some("quota") => l.t("reason.quota").to_string(),
                Some("server_error") => l.t("reason.server_error").to_string(),
                Some(other) => other.to_string(),
                None => String::new(),
            },
            remaining_ms: m.remaining_ms,
        })
        .collect()
}

/// The charts' data: per bucket, requests stacked (successful without failover, saved by
/// failover, 4xx, 5xx) and latency / TTFT p50 and p95 from the histograms.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Series {
    /// Bucket starts, unix seconds.
    pub x: Vec<i64>,
    pub ok: Vec<i64>,
    pub saved: Vec<i64>,
    pub client_errors: Vec<i64>,
    pub server_errors: Vec<i64>,
    pub latency_p50: Vec<Option<f64>>,
    pub latency_p95: Vec<Option<f64>>,
    pub ttft_p50: Vec<Option<f64>>,
    pub ttft_p95: Vec<Option<f64>>,
}

/// Buckets `[since, until)` of `step_ms` from rollup points.
pub(crate) fn series_of(points: &[RollupPoint], since: i64, until: i64, step: i64) -> Series {
    let mut by_bucket: BTreeMap<i64, (Counts, [i64; 6])> = BTreeMap::new();
    let first = since - since.rem_euclid(step);
    let mut t = first;
    while t < until {
        by_bucket.insert(t, Default::default());
        t += step;
    }
    for p in points {
        let b = p.bucket_ms - p.bucket_ms.rem_euclid(step);
        let entry = by_bucket.entry(b).or_default();
        entry.0.merge(&p.counts);
        let class = usize::try_from(p.status_class).unwrap_or(0).min(5);
        entry.1[class] += p.counts.requests;
    }
    let mut s = Series::default();
    for (b, (c, classes)) in by_bucket {
        s.x.push(b / 1000);
        let saved = c.failover_saved;
        s.ok.push(classes[2] - saved);
        s.saved.push(saved);
        s.client_errors.push(classes[4]);
        s.server_errors.push(classes[5] + classes[0]);
        s.latency_p50.push(quantile(&c.latency, 0.5));
        s.latency_p95.push(quantile(&c.latency, 0.95));
        s.ttft_p50.push(quantile(&c.ttft, 0.5));
        s.ttft_p95.push(quantile(&c.ttft, 0.95));
    }
    s
}

/// `GET /ui/overview/series?range=3h|24h` (admins): 1-minute buckets over 3 hours, or
/// 10-minute buckets over 24 hours.
pub async fn series(
    State(web): State<Arc<Web>>,
    Query(q): Query<RangeQuery>,
    parts: Parts,
) -> Response {
    if let Err(r) = viewer(&web, &parts, Need::Admin).await {
        return r;
    }
    let now = web.gateway.now_ms();
    let (window, step) = match range_of(&q) {
        "24h" => (24 * 3_600_000, 600_000),
        _ => (3 * 3_600_000, 60_000),
    };
    let since = now - window + step;
    let points = match web
        .gateway
        .store()
        .ui()
        .rollup(&RollupQuery {
            grain: Grain::Minute,
            since_ms: since,
            until_ms: now + 1,
            step_ms: step,
            by: None,
            user_id: None,
        })
        .await
    {
        Ok(p) => p,
        Err(e) => return unavailable(e),
    };
    Json(series_of(&points, since, now + 1, step)).into_response()
}
