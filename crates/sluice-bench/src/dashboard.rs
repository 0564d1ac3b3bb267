//! The dashboard at scale (`--dashboard`): a store seeded with many usage records (default
//! 1,000,000) and keys (default 1,000) straight through `sluice_store` in batched
//! transactions — the same `insert_usage` the gateway's writer runs, so the rollups and key
//! counters are written as in production —, then a Sluice on that data directory. It times the
//! Overview, Requests and Keys pages (signed in as the admin, sequential GETs on loopback, so
//! the figure is the server's time plus a loopback round trip), and measures the request path's
//! throughput with and without an open dashboard (the three live streams — Overview, Keys,
//! Requests tail — connected and read), in interleaved rounds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use sluice_store::{Location, NewApiKey, NewUser, Role, UsageRow};
use tokio::process::Child;

use crate::load::{HttpClient, PhaseOutcome, PhasePlan, Stop, Target};
use crate::report::{Align, Table};
use crate::servers::{self, ADMIN};
use crate::stats::ScenarioSummary;

/// Records per `insert_usage` call (one transaction each).
const BATCH: usize = 5_000;
/// The pages timed, and how often each.
const PAGES: [&str; 3] = ["/ui/overview", "/ui/requests", "/ui/keys"];
const PAGE_WARMUP: usize = 3;
const PAGE_SAMPLES: usize = 30;
/// The live streams an open dashboard holds.
pub const STREAMS: [&str; 3] = ["/ui/live/overview", "/ui/live/keys", "/ui/live/requests"];

/// What was seeded, and how long it took.
pub struct Seeded {
    pub records: u64,
    pub keys: u64,
    pub days: u32,
    pub elapsed: Duration,
}

/// Seeds `dir`'s SQLite store: one user owning `keys` keys, and `records` usage records spread
/// evenly over the last `days` days (1 to 4 models, 3 credentials, 2 % 4xx, 1 % 5xx, 5 % after
/// a failover, streams with a TTFT).
pub async fn seed(dir: &Path, records: u64, keys: u64, days: u32) -> Result<Seeded> {
    let started = Instant::now();
    let store = sluice_store::open(&Location::Sqlite(dir.to_path_buf()))
        .await
        .context("opening the benchmark's store")?;
    let now = unix_ms();
    let owner = store
        .create_user(
            NewUser {
                username: "bench-owner".into(),
                password_hash: "not-a-password-hash".into(),
                role: Role::User,
            },
            now,
        )
        .await
        .context("creating the keys' owner")?;
    let mut key_ids = Vec::with_capacity(keys as usize);
    for i in 0..keys {
        let key = store
            .create_key(
                NewApiKey {
                    user_id: owner.id,
                    name: format!("bench key {i}"),
                    key_hash: format!("{:064x}", i + 1),
                    key_prefix: format!("sk-{:08}...", i),
                    allowed_platforms: "all".into(),
                    allowed_models: String::new(),
                    rate_limit: 60,
                    daily_limit: if i % 3 == 0 { 10_000 } else { 0 },
                    monthly_quota: if i % 2 == 0 { 50_000_000_000 } else { 0 },
                    expires_at: None,
                },
                i64::try_from(keys).unwrap_or(i64::MAX),
                now,
            )
            .await
            .context("creating a key")?;
        key_ids.push(key.id);
    }
    let span_ms = i64::from(days) * 86_400_000;
    let step = (span_ms / i64::try_from(records.max(1)).unwrap_or(1)).max(1);
    let models = [
        "gpt-4o-mini",
        "gpt-4o",
        "claude-sonnet-4",
        "gemini-2.5-flash",
    ];
    let credentials = ["mock#0", "mock#1", "mock#2"];
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..records {
        let n = i as i64;
        let time_ms = now - span_ms + n * step;
        let key_id = key_ids[(i % keys.max(1)) as usize];
        let status = match i % 100 {
            0 | 1 => 429,
            2 => 500,
            _ => 200,
        };
        let stream = i % 2 == 0;
        let model = models[(i % 4) as usize];
        batch.push(UsageRow {
            request_id: format!("bench-{i}"),
            time_ms,
            day: day_of(time_ms),
            endpoint: "openai.chat".into(),
            user_id: Some(owner.id),
            api_key_id: Some(key_id),
            key_label: Some(format!("key:{key_id}")),
            provider: Some("mock".into()),
            credential: Some(credentials[(i % 3) as usize].into()),
            platform: Some("openai".into()),
            model_requested: Some(model.into()),
            model_served: Some(model.into()),
            stream,
            status,
            error: (status >= 400).then(|| "upstream_error".to_string()),
            input_tokens: 200 + n % 300,
            output_tokens: 50 + n % 150,
            cost_nanos: 40_000 + (n % 1000) * 100,
            latency_ms: 200.0 + (n % 2000) as f64,
            ttft_ms: stream.then_some(80.0 + (n % 900) as f64),
            record_id: format!("bench-record-{i}"),
            attempts: if i % 20 == 0 { 2 } else { 1 },
            upstream_dialect: Some("openai_chat".into()),
            ..Default::default()
        });
        if batch.len() == BATCH {
            store
                .insert_usage(&batch)
                .await
                .context("inserting usage records")?;
            batch.clear();
            if (i + 1) % 100_000 == 0 {
                eprintln!("sluice-bench: seeded {} usage records", i + 1);
            }
        }
    }
    if !batch.is_empty() {
        store
            .insert_usage(&batch)
            .await
            .context("inserting usage records")?;
    }
    Ok(Seeded {
        records,
        keys,
        days,
        elapsed: started.elapsed(),
    })
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DD` (UTC, the gateway's default calendar) of a unix-ms time.
fn day_of(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A signed-in dashboard session: its cookie header.
pub struct Session {
    cookie: String,
}

/// Signs in to `/ui` as the bench admin (the login form's token, same-origin post).
pub async fn sign_in(client: &HttpClient, addr: SocketAddr) -> Result<Session> {
    let (status, headers, body) = get(client, addr, "/ui/login", "").await?;
    if status != 200 {
        bail!("GET /ui/login answered {status}");
    }
    let login_cookie = cookie_of(&headers, "sluice_login").context("no sign-in form cookie")?;
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("no form token on the sign-in page")?
        .to_owned();
    // The bench admin's name and password are URL-safe as they are.
    let form = format!("csrf={csrf}&username={}&password={}", ADMIN.0, ADMIN.1);
    let request = Request::post(format!("http://{addr}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{addr}"))
        .header("cookie", format!("sluice_login={login_cookie}"))
        .body(Full::new(Bytes::from(form)))
        .context("building the sign-in request")?;
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .context("signing in timed out")?
        .context("signing in failed")?;
    if response.status() != 303 {
        bail!("signing in to /ui answered {}", response.status());
    }
    let session = cookie_of(response.headers(), "sluice_ui").context("no session cookie")?;
    Ok(Session {
        cookie: format!("sluice_ui={session}"),
    })
}

fn cookie_of(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?;
            let (k, value) = pair.split_once('=')?;
            (k == name && !value.is_empty()).then(|| value.to_owned())
        })
}

async fn get(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    cookie: &str,
) -> Result<(u16, hyper::HeaderMap, String)> {
    let request = Request::get(format!("http://{addr}{path}"))
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))
        .context("building a GET")?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .with_context(|| format!("GET {path} timed out"))?
        .with_context(|| format!("GET {path} failed"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading GET {path}"))?
        .to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// One page's render times.
pub struct PageTimes {
    pub path: &'static str,
    pub bytes: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// Times each page `PAGE_SAMPLES` times after `PAGE_WARMUP` unmeasured loads.
pub async fn time_pages(
    client: &HttpClient,
    addr: SocketAddr,
    session: &Session,
) -> Result<Vec<PageTimes>> {
    let mut out = Vec::new();
    for path in PAGES {
        let mut samples = Vec::with_capacity(PAGE_SAMPLES);
        let mut bytes = 0;
        for i in 0..PAGE_WARMUP + PAGE_SAMPLES {
            let started = Instant::now();
            let (status, _, body) = get(client, addr, path, &session.cookie).await?;
            let took = started.elapsed().as_secs_f64() * 1e3;
            if status != 200 {
                bail!("GET {path} answered {status}");
            }
            bytes = body.len();
            if i >= PAGE_WARMUP {
                samples.push(took);
            }
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        out.push(PageTimes {
            path,
            bytes,
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: samples.last().copied().unwrap_or(0.0),
        });
    }
    Ok(out)
}

/// The page timings as a table.
pub fn pages_table(times: &[PageTimes]) -> Table {
    Table {
        columns: vec![
            ("page", Align::Left),
            ("samples", Align::Right),
            ("p50 ms", Align::Right),
            ("p95 ms", Align::Right),
            ("max ms", Align::Right),
            ("HTML bytes", Align::Right),
        ],
        rows: times
            .iter()
            .map(|t| {
                vec![
                    t.path.to_owned(),
                    PAGE_SAMPLES.to_string(),
                    format!("{:.1}", t.p50_ms),
                    format!("{:.1}", t.p95_ms),
                    format!("{:.1}", t.max_ms),
                    t.bytes.to_string(),
                ]
            })
            .collect(),
    }
}

/// An open dashboard: the live streams, read in the background; how many pushes arrived.
pub struct OpenDashboard {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub pushes: Arc<AtomicU64>,
}

impl OpenDashboard {
    pub async fn open(client: &HttpClient, addr: SocketAddr, session: &Session) -> Result<Self> {
        let pushes = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for path in STREAMS {
            let request = Request::get(format!("http://{addr}{path}"))
                .header("cookie", &session.cookie)
                .body(Full::new(Bytes::new()))
                .context("building a stream request")?;
            let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
                .await
                .with_context(|| format!("opening {path} timed out"))?
                .with_context(|| format!("opening {path} failed"))?;
            if response.status() != 200 {
                bail!("{path} answered {}", response.status());
            }
            let counted = pushes.clone();
            tasks.push(tokio::spawn(async move {
                let mut body = response.into_body();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(data) = frame.data_ref() {
                        let events = data.windows(7).filter(|w| *w == b"event: ").count();
                        counted.fetch_add(events as u64, Ordering::Relaxed);
                    }
                }
            }));
        }
        Ok(Self { tasks, pushes })
    }
}

impl OpenDashboard {
    /// Sends a few requests until every stream has pushed once, so the measured load runs
    /// against a dashboard that is re-rendering (a push waits for the writer's next batch and a
    /// coalescing pause, longer than a short round lasts).
    /// Returns the pushes counted so far (the measured round counts only those after).
    async fn until_live(
        &self,
        client: &HttpClient,
        target: &Target,
        plan: PhasePlan,
    ) -> Result<u64> {
        let start = self.pushes.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let priming = PhasePlan {
            stop: Stop::AfterRequests(20),
            ..plan
        };
        while self.pushes.load(Ordering::Relaxed) < start + STREAMS.len() as u64 {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the open dashboard's live streams pushed {} times in 30 s of traffic",
                    self.pushes.load(Ordering::Relaxed) - start
                );
            }
            crate::load::run_phase(client, target, priming).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(self.pushes.load(Ordering::Relaxed))
    }
}

impl Drop for OpenDashboard {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the interleaved rounds measured: one summary per state, the live pushes during the
/// measured load, and each round's open / closed throughput ratio (the two phases of a round
/// run back to back, so each ratio compares like with like on a machine whose speed drifts).
pub struct Throughput {
    pub rows: Vec<ScenarioSummary>,
    pub pushes: u64,
    pub round_ratios: Vec<f64>,
}

/// Runs `rounds` interleaved rounds of `plan` against `target`, dashboard closed then open
/// (the order alternating per round).
#[allow(clippy::too_many_arguments)]
pub async fn throughput(
    client: &HttpClient,
    stream_client: &HttpClient,
    sluice: &mut Child,
    addr: SocketAddr,
    session: &Session,
    target: &Target,
    warmup: u64,
    measured: PhasePlan,
    rounds: u32,
    failures: &mut Vec<String>,
) -> Result<Throughput> {
    if warmup > 0 {
        let plan = PhasePlan {
            stop: Stop::AfterRequests(warmup),
            ..measured
        };
        let outcome = crate::load::run_phase(client, target, plan).await?;
        failures.extend(crate::describe_failures(
            "dashboard",
            "warmup",
            &outcome,
            plan.time_limit,
        ));
    }
    let per_round = match measured.stop {
        Stop::AfterRequests(n) => Stop::AfterRequests((n / u64::from(rounds)).max(1)),
        Stop::After(d) => Stop::After(d / rounds),
    };
    let plan = PhasePlan {
        stop: per_round,
        ..measured
    };
    let mut totals = [
        (PhaseOutcome::default(), Duration::ZERO),
        (PhaseOutcome::default(), Duration::ZERO),
    ];
    let mut pushes = 0;
    let mut round_ratios = Vec::new();
    for round in 0..rounds as usize {
        let mut rates = [None; 2];
        eprintln!("sluice-bench: dashboard: round {}/{rounds}", round + 1);
        for k in 0..2 {
            let open = (round + k) % 2 == 1;
            let dashboard = if open {
                let d = OpenDashboard::open(stream_client, addr, session).await?;
                let primed = d.until_live(client, target, measured).await?;
                Some((d, primed))
            } else {
                None
            };
            let before = servers::process_cpu(sluice.id());
            let outcome = crate::load::run_phase(client, target, plan).await?;
            let after = servers::process_cpu(sluice.id());
            if let Some((d, primed)) = &dashboard {
                pushes += d.pushes.load(Ordering::Relaxed) - primed;
            }
            drop(dashboard);
            if let Some(status) = sluice.try_wait().context("checking on sluice")? {
                bail!("sluice exited mid-run ({status})");
            }
            let name = if open {
                "dashboard open"
            } else {
                "dashboard closed"
            };
            failures.extend(crate::describe_failures(
                name,
                "measured",
                &outcome,
                plan.time_limit,
            ));
            let secs = outcome.elapsed.as_secs_f64();
            rates[usize::from(open)] = (secs > 0.0).then(|| outcome.ok as f64 / secs);
            let (total, cpu) = &mut totals[usize::from(open)];
            total.elapsed += outcome.elapsed;
            total.merge(outcome);
            if let (Some(before), Some(after)) = (before, after) {
                *cpu += after.saturating_sub(before);
            }
        }
        if let [Some(closed), Some(open)] = rates
            && closed > 0.0
        {
            round_ratios.push(open / closed);
        }
    }
    let mut rows = Vec::new();
    for (name, (outcome, cpu)) in ["dashboard closed", "dashboard open"]
        .into_iter()
        .zip(totals)
    {
        let name = format!("{name} non-stream");
        let mut summary = crate::summarize(&name, measured.concurrency, outcome);
        summary.sluice_cpu_us =
            (summary.requests > 0).then(|| cpu.as_secs_f64() * 1e6 / summary.requests as f64);
        rows.push(summary);
    }
    Ok(Throughput {
        rows,
        pushes,
        round_ratios,
    })
}

/// The mean of per-round ratios and twice its standard error (about a 95 % interval), when
/// there are at least two.
pub fn mean_and_interval(ratios: &[f64]) -> Option<(f64, f64)> {
    let n = ratios.len();
    if n < 2 {
        return None;
    }
    let mean = ratios.iter().sum::<f64>() / n as f64;
    let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((mean, 2.0 * (var / n as f64).sqrt()))
}

/// The throughput ratio, open against closed: pooled over all rounds, and the mean of the
/// per-round ratios with its interval, which says whether the difference is within the
/// machine's noise (the interval includes 100 %).
pub fn ratio_table(rows: &[ScenarioSummary], round_ratios: &[f64]) -> Table {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut out = Vec::new();
    if let (Some(closed), Some(open)) = (
        find("dashboard closed non-stream"),
        find("dashboard open non-stream"),
    ) {
        let throughput = (closed.req_per_sec > 0.0)
            .then(|| open.req_per_sec / closed.req_per_sec * 100.0)
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}%"));
        let cpu = match (open.sluice_cpu_us, closed.sluice_cpu_us) {
            (Some(o), Some(c)) if c > 0.0 => format!("{:+.1}%", (o / c - 1.0) * 100.0),
            _ => "-".to_owned(),
        };
        let (per_round, verdict) = match mean_and_interval(round_ratios) {
            Some((mean, half)) => (
                format!("{:.1}% ± {:.1}", mean * 100.0, half * 100.0),
                if (mean - 1.0).abs() <= half {
                    "within noise".to_owned()
                } else if mean < 1.0 {
                    "slower".to_owned()
                } else {
                    "faster".to_owned()
                },
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        out.push(vec![
            "open / closed, non-stream".to_owned(),
            throughput,
            per_round,
            verdict,
            cpu,
        ]);
    }
    Table {
        columns: vec![
            ("Open dashboard", Align::Left),
            ("throughput ratio", Align::Right),
            ("per-round mean ± 2 s.e.", Align::Right),
            ("verdict", Align::Left),
            ("Sluice CPU/req", Align::Right),
        ],
        rows: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_civil_utc_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_780_000_000_000), "2026-05-28");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn per_round_ratios_give_a_mean_and_an_interval() -> Result<()> {
        assert_eq!(mean_and_interval(&[0.97]), None);
        let (mean, half) =
            mean_and_interval(&[0.98, 1.02, 0.99, 1.01]).context("four ratios have an interval")?;
        assert!((mean - 1.0).abs() < 1e-9);
        // sample sd = sqrt((4+4+1+1)e-4 / 3) = 0.018257; 2 * sd / sqrt(4) = 0.018257
        assert!((half - 0.018_257).abs() < 1e-5, "{half}");
        Ok(())
    }
}
