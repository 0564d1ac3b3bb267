//! Usage (admins): requests, tokens and cost by hour or by day, grouped by key, user, model,
//! provider or credential, each group's month-to-date cost against its quota (a key's monthly
//! quota, a user's monthly budget), and the same figures as CSV. Everything comes from the
//! hourly rollups (`UiStore::rollup`), never from raw usage rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use sluice_store::rollup::{Counts, Dimension, Grain, RollupPoint, RollupQuery, quantile};
use sluice_store::{ApiKey, User};

use super::overview::{key_name, ms, percent, unavailable};
use super::{Need, html, viewer};
use crate::Web;
use crate::view::{self, Layout};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// The page's choices, as the query string carries them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UsageFilter {
    /// `hour` or `day` (default).
    #[serde(default)]
    pub grain: String,
    /// `key` (default), `user`, `model`, `provider`, `credential`.
    #[serde(default)]
    pub by: String,
    /// `24h`, `7d` (default), `30d`, `90d`.
    #[serde(default)]
    pub range: String,
}

impl UsageFilter {
    pub fn grain(&self) -> &'static str {
        if self.grain == "hour" { "hour" } else { "day" }
    }

    fn step_ms(&self) -> i64 {
        if self.grain() == "hour" { HOUR } else { DAY }
    }

    pub fn by(&self) -> &'static str {
        match self.by.as_str() {
            "user" => "user",
            "model" => "model",
            "provider" => "provider",
            "credential" => "credential",
            _ => "key",
        }
    }

    fn dimension(&self) -> Dimension {
        match self.by() {
            "user" => Dimension::User,
            "model" => Dimension::Model,
            "provider" => Dimension::Provider,
            "credential" => Dimension::Credential,
            _ => Dimension::Key,
        }
    }

    pub fn range(&self) -> &'static str {
        match self.range.as_str() {
            "24h" => "24h",
            "30d" => "30d",
            "90d" => "90d",
            _ => "7d",
        }
    }

    fn window_ms(&self) -> i64 {
        match self.range() {
            "24h" => DAY,
            "30d" => 30 * DAY,
            "90d" => 90 * DAY,
            _ => 7 * DAY,
        }
    }

    /// The query string (for the CSV link).
    pub fn qs(&self) -> String {
        serde_urlencoded::to_string([
            ("grain", self.grain()),
            ("by", self.by()),
            ("range", self.range()),
        ])
        .unwrap_or_default()
    }

    /// The first step shown: the step holding `now - window`.
    fn since(&self, now: i64) -> i64 {
        let step = self.step_ms();
        (now - self.window_ms() + 1).div_euclid(step) * step
    }
}

/// The text keys of the grouping choices, for the select.
pub const DIMENSIONS: [(&str, &str); 5] = [
    ("key", "usage.by.key"),
    ("user", "usage.by.user"),
    ("model", "usage.by.model"),
    ("provider", "usage.by.provider"),
    ("credential", "usage.by.credential"),
];

/// One group over the whole range.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupRow {
    pub name: String,
    pub requests: i64,
    pub errors: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cost: String,
    pub latency_p95: String,
    pub ttft_p95: String,
    /// `points` of the requests-per-step sparkline.
    pub spark: String,
    /// Month-to-date cost against the group's monthly quota, when it has one.
    pub quota: Option<crate::pages::keys::Meter>,
}

/// One step (hour or day) over every group.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeriodRow {
    pub start: String,
    pub requests: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
pub(crate) struct UsagePage<'a> {
    pub l: &'a Layout,
    pub filter: &'a UsageFilter,
    pub groups: &'a [GroupRow],
    pub periods: &'a [PeriodRow],
    pub total_requests: i64,
    pub total_cost: String,
}

/// The names groups are shown by.
pub(crate) struct Names {
    keys: Vec<ApiKey>,
    users: HashMap<i64, User>,
}

impl Names {
    async fn read(web: &Web) -> Result<Names, Response> {
        let store = web.gateway.store();
        let keys = store
            .keys_changed_since(i64::MIN)
            .await
            .map_err(unavailable)?;
        let users = store
            .list_users()
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        Ok(Names { keys, users })
    }

    fn name(&self, by: &str, group: &str) -> String {
        match by {
            "key" => {
                let keys: HashMap<i64, &ApiKey> = self.keys.iter().map(|k| (k.id, k)).collect();
                key_name(group, &keys)
            }
            "user" => group
                .parse::<i64>()
                .ok()
                .and_then(|id| self.users.get(&id))
                .map(|u| u.username.clone())
                .unwrap_or_else(|| {
                    if group.is_empty() || group == "0" {
                        "—".into()
                    } else {
                        format!("#{group}")
                    }
                }),
            _ if group.is_empty() => "—".into(),
            _ => group.to_string(),
        }
    }

    /// The monthly quota of a key group or a user group, in nano-dollars.
    fn quota(&self, by: &str, group: &str) -> Option<i64> {
        match by {
            "key" => {
                let id: i64 = group.strip_prefix("key:")?.parse().ok()?;
                self.keys
                    .iter()
                    .find(|k| k.id == id)
                    .map(|k| k.monthly_quota)
                    .filter(|q| *q > 0)
            }
            "user" => {
                let id: i64 = group.parse().ok()?;
                self.users.get(&id)?.ceilings.monthly_budget
            }
            _ => None,
        }
    }
}

/// The figures of the page, read from the hourly rollups.
pub(crate) struct Figures {
    pub groups: Vec<GroupRow>,
    pub periods: Vec<PeriodRow>,
    /// Every (step, group) with its sums, for the CSV.
    pub cells: BTreeMap<(i64, String), Counts>,
    pub total_requests: i64,
    pub total_cost: i64,
}

/// Reads the rollups for `filter` (optionally one user's) and sums them per group and per step.
pub(crate) async fn figures(
    web: &Web,
    filter: &UsageFilter,
    user_id: Option<i64>,
) -> Result<Figures, Response> {
    let g = &web.gateway;
    let ui = g.store().ui();
    let now = g.now_ms();
    let step = filter.step_ms();
    let since = filter.since(now);
    let by = filter.by();
    let points = ui
        .rollup(&RollupQuery {
            grain: Grain::Hour,
            since_ms: since,
            until_ms: now + 1,
            step_ms: step,
            by: Some(filter.dimension()),
            user_id,
        })
        .await
        .map_err(unavailable)?;
    let month_start = month_start(&g.calendar(), now);
    let month = ui
        .rollup(&RollupQuery {
            grain: Grain::Hour,
            since_ms: month_start,
            until_ms: now + 1,
            step_ms: 0,
            by: Some(filter.dimension()),
            user_id,
        })
        .await
        .map_err(unavailable)?;
    let mut month_cost: HashMap<&str, i64> = HashMap::new();
    for p in &month {
        *month_cost.entry(p.group.as_str()).or_default() += p.counts.cost_nanos;
    }
    let names = Names::read(web).await?;
    let steps = ((now - since) / step + 1).max(1) as usize;
    let mut by_group: BTreeMap<&str, Vec<&RollupPoint>> = BTreeMap::new();
    let mut by_step: BTreeMap<i64, (Counts, i64)> = BTreeMap::new();
    let mut cells: BTreeMap<(i64, String), Counts> = BTreeMap::new();
    for p in &points {
        by_group.entry(p.group.as_str()).or_default().push(p);
        let s = by_step.entry(p.bucket_ms).or_default();
        s.0.merge(&p.counts);
        if p.status_class != 2 {
            s.1 += p.counts.requests;
        }
        cells
            .entry((p.bucket_ms, names.name(by, &p.group)))
            .or_default()
            .merge(&p.counts);
    }
    let mut groups: Vec<(i64, GroupRow)> = by_group
        .into_iter()
        .map(|(group, points)| {
            let mut c = Counts::default();
            let mut failed = 0;
            let mut series = vec![0.0_f64; steps];
            for p in &points {
                c.merge(&p.counts);
                if p.status_class != 2 {
                    failed += p.counts.requests;
                }
                let i = ((p.bucket_ms - since) / step).clamp(0, steps as i64 - 1) as usize;
                series[i] += p.counts.requests as f64;
            }
            let spent = month_cost.get(group).copied().unwrap_or(0);
            let quota = names.quota(by, group).map(|q| crate::pages::keys::Meter {
                used: spent as f64,
                limit: q as f64,
                text: format!("{} / {}", view::usd(spent), view::usd(q)),
                resets: String::new(),
            });
            (
                c.cost_nanos,
                GroupRow {
                    name: names.name(by, group),
                    requests: c.requests,
                    errors: percent(failed, c.requests),
                    input_tokens: c.input_tokens,
                    output_tokens: c.output_tokens,
                    cache_read_tokens: c.cache_read_tokens,
                    cost: view::usd(c.cost_nanos),
                    latency_p95: ms(quantile(&c.latency, 0.95)),
                    ttft_p95: ms(quantile(&c.ttft, 0.95)),
                    spark: crate::svg::sparkline(&series),
                    quota,
                },
            )
        })
        .collect();
    groups.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1.requests.cmp(&a.1.requests))
            .then_with(|| a.1.name.cmp(&b.1.name))
    });
    let total_requests = by_step.values().map(|(c, _)| c.requests).sum();
    let total_cost = by_step.values().map(|(c, _)| c.cost_nanos).sum();
    let periods = by_step
        .into_iter()
        .rev()
        .map(|(bucket, (c, failed))| PeriodRow {
            start: period_label(bucket, step),
            requests: c.requests,
            errors: failed,
            tokens: c.tokens(),
            cost: view::usd(c.cost_nanos),
        })
        .collect();
    Ok(Figures {
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        periods,
        cells,
        total_requests,
        total_cost,
    })
}

use chrono::Datelike as _;

/// When this calendar month began (unix ms), in the limits' calendar.
pub(crate) fn month_start(calendar: &sluice_store::limits::Calendar, now: i64) -> i64 {
    let today = calendar.date(now);
    calendar
        .start_of(today.with_day(1).unwrap_or(today))
        .unwrap_or(now)
}

/// `2026-12-02` for a day, `2026-12-02 14:00` for an hour (UTC).
fn period_label(bucket_ms: i64, step: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(bucket_ms) else {
        return String::new();
    };
    if step >= DAY {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:00").to_string()
    }
}

/// `GET /ui/usage` (admins).
pub async fn page(
    State(web): State<Arc<Web>>,
    Query(filter): Query<UsageFilter>,
    parts: Parts,
) -> Response {
    let v = match viewer(&web, &parts, Need::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let layout = Layout::new(&parts.headers, Some(v), "usage.title", "/ui/usage");
    let f = match figures(&web, &filter, None).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    html(
        StatusCode::OK,
        &UsagePage {
            l: &layout,
            filter: &filter,
            groups: &f.groups,
            periods: &f.periods,
            total_requests: f.total_requests,
            total_cost: view::usd(f.total_cost),
        },
    )
}

/// `GET /ui/usage.csv` (admins): every (step, group) of the current choice.
pub async fn csv(
    State(web): State<Arc<Web>>,
    Query(filter): Query<UsageFilter>,
    parts: Parts,
) -> Response {
    if let Err(r) = viewer(&web, &parts, Need::Admin).await {
        return r;
    }
    let f = match figures(&web, &filter, None).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut out = format!(
        "{},{},requests,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,cost_usd\n",
        if filter.grain() == "hour" {
            "hour_utc"
        } else {
            "day_utc"
        },
        filter.by()
    );
    for ((bucket, name), c) in &f.cells {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.9}\n",
            period_label(*bucket, filter.step_ms()),
            super::requests::csv_field(name),
            c.requests,
            c.input_tokens,
            c.output_tokens,
            c.cache_read_tokens,
            c.cache_write_tokens,
            c.reasoning_tokens,
            c.cost_nanos as f64 / 1e9,
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
        HeaderValue::from_static("attachment; filename=\"sluice-usage.csv\""),
    );
    response
}
