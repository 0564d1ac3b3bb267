#![forbid(unsafe_code)]
//! `sluice-bench`: a reproducible side-by-side load benchmark. It starts `sluice-mock` and Sluice
//! in front of it, drives the same chat requests at both (non-stream and stream), and prints one
//! table of throughput and latency plus what Sluice costs relative to going direct.
//!
//! Progress goes to stderr; stdout carries only the report, ready for BENCHMARKS.md.

mod callgrind;
mod dashboard;
mod load;
mod nginx;
mod observability;
mod report;
mod scale;
mod servers;
mod stats;
mod streams;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Parser;

use crate::load::{HttpClient, PhaseOutcome, PhasePlan, REQUEST_TIMEOUT, Stop, Target};
use crate::report::{Layout, Pair, Provenance};
use crate::servers::{Binaries, Servers};
use crate::stats::{Latencies, ScenarioSummary};

/// Side-by-side load benchmark: sluice-mock direct vs through Sluice.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Requests in flight at once (one worker task each).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Measured requests per scenario.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Measure each scenario for this many seconds instead of a fixed request count.
    #[arg(long, conflicts_with = "requests", value_parser = clap::value_parser!(u64).range(1..=600))]
    duration_secs: Option<u64>,
    /// Unmeasured requests per scenario before measuring, to open connections and warm caches.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Words in each reply (the mock streams one chunk per word).
    #[arg(long, default_value_t = 20)]
    words: u32,
    /// The Sluice binary [default: <workspace>/target/release/sluice].
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// The sluice-mock binary [default: <workspace>/target/release/sluice-mock].
    #[arg(long)]
    mock: Option<PathBuf>,
    /// Print GitHub Markdown instead of aligned plain text.
    #[arg(long)]
    markdown: bool,
    /// Threads of the load generator; one leaves the most CPU to the servers being measured.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    client_threads: u16,
    /// Backstop: a phase that has not finished after this many seconds stops and fails the run.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    phase_limit_secs: u64,
    /// PostgreSQL server for the scale-out scenarios (a database is created for the run and
    /// dropped after it), e.g. postgres://postgres@127.0.0.1:5432/test. Needs --redis.
    #[arg(long, requires = "redis")]
    postgres: Option<String>,
    /// Redis for the scale-out scenarios (keys under a prefix of the run's own, removed after).
    #[arg(long, requires = "postgres")]
    redis: Option<String>,
    /// Instead of the usual scenarios, measure what observability costs: Sluice with metrics
    /// on, with `metrics: {enabled: false}`, and with traces exported too, side by side.
    #[arg(long, conflicts_with_all = ["postgres", "redis"])]
    observability: bool,
    /// Instead of the usual scenarios, the dashboard at scale: seed a store with
    /// --dashboard-records usage records and --dashboard-keys keys, time the Overview, Requests
    /// and Keys pages, and compare throughput with the dashboard's live streams open and closed.
    #[arg(long, conflicts_with_all = ["postgres", "redis", "observability"])]
    dashboard: bool,
    /// Usage records the --dashboard store is seeded with.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    dashboard_records: u64,
    /// Keys the --dashboard store is seeded with.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    dashboard_keys: u64,
    /// Days (up to now) the --dashboard records are spread over.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
    dashboard_days: u32,
    /// Interleaved rounds: each round runs every scenario of a mode once, in rotated order, so
    /// drift in what else the machine is doing falls on all of them alike [default: 10; with
    /// --streams, rounds of N streams in the same Sluice process, default 3].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: Option<u32>,
    /// Instead of the usual scenarios, Sluice's memory under N concurrent slow streams (default
    /// 10,000): RSS at idle, at the peak and after each of --rounds rounds, with a stored key.
    #[arg(long, num_args = 0..=1, default_missing_value = "10000",
        value_parser = clap::value_parser!(u64).range(1..=1_000_000),
        conflicts_with_all = ["postgres", "redis", "observability", "dashboard", "instructions"])]
    streams: Option<u64>,
    /// With --streams: the mock waits this long between stream events (`mock:chunk_delay_ms`),
    /// so each stream lasts about (--words + 4) times it.
    #[arg(long, default_value_t = 500, requires = "streams")]
    chunk_delay_ms: u32,
    /// With --streams: the streams of a round are opened evenly over this many seconds.
    #[arg(long, default_value_t = 5, requires = "streams",
        value_parser = clap::value_parser!(u64).range(0..=600))]
    ramp_secs: u64,
    /// With --streams: seconds to wait after a round's last stream before the "after" reading
    /// (Sluice keeps idle upstream connections for 90 s; wait longer to read without them).
    #[arg(long, default_value_t = 3, requires = "streams",
        value_parser = clap::value_parser!(u64).range(0..=600))]
    settle_secs: u64,
    /// Pace the load at this many requests per second in all (spread over the --concurrency
    /// workers) instead of sending as fast as answers come back: the unloaded added latency.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rate: Option<u32>,
    /// Leave out the nginx `proxy_pass` reference rows even when nginx is installed.
    #[arg(long)]
    no_nginx: bool,
    /// Instead of the load run, count the instructions per request of nginx and Sluice under
    /// `valgrind --tool=callgrind` (user-space instructions, repeatable on a busy machine).
    /// --requests and --warmup are per scenario here; keep them small (valgrind is ~50× slower).
    #[arg(long, conflicts_with_all = ["postgres", "redis", "observability"])]
    instructions: bool,
    /// With --instructions: fail if a Sluice row costs more than `--max-regression` times the
    /// instructions per request recorded in this baseline file.
    #[arg(long, requires = "instructions")]
    baseline: Option<PathBuf>,
    /// With --instructions: write the measured figures to this baseline file.
    #[arg(long, requires = "instructions")]
    write_baseline: Option<PathBuf>,
    /// With --instructions: keep callgrind's dumps (with per-instruction counts) in this
    /// directory, one per scenario, for `callgrind_annotate`.
    #[arg(long, requires = "instructions")]
    keep_dumps: Option<PathBuf>,
    /// The regression --baseline tolerates, as a ratio (1.2 = 20 % more instructions).
    #[arg(long, default_value_t = 1.2)]
    max_regression: f64,
}

/// The scale-out scenarios: one and three instances on PostgreSQL + Redis, stored key,
/// non-stream (compared with `sluice+key non-stream`, SQLite + in-process limits).
const SCALE_SCENARIOS: [(&str, usize); 2] = [
    ("1x pg+redis key non-stream", 1),
    ("3x pg+redis key non-stream", 3),
];

/// Which server a scenario talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Direct,
    ThroughSluice,
    /// Through Sluice with a stored key (seed 004): key cache, permission routing, per-minute,
    /// per-day and quota accounting on every request.
    ThroughSluiceStoredKey,
    /// Through nginx `proxy_pass` (the reference row), with the direct request.
    ThroughNginx,
}

/// One row of the table: a route and a response mode.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    route: Route,
    stream: bool,
}

/// The rows, in table order: non-stream first, then stream; within a mode, direct, the nginx
/// reference, then Sluice with a config key and with a stored key.
const SCENARIOS: [Scenario; 8] = [
    Scenario {
        name: "direct non-stream",
        route: Route::Direct,
        stream: false,
    },
    Scenario {
        name: "nginx non-stream",
        route: Route::ThroughNginx,
        stream: false,
    },
    Scenario {
        name: "sluice non-stream",
        route: Route::ThroughSluice,
        stream: false,
    },
    Scenario {
        name: "sluice+key non-stream",
        route: Route::ThroughSluiceStoredKey,
        stream: false,
    },
    Scenario {
        name: "direct stream",
        route: Route::Direct,
        stream: true,
    },
    Scenario {
        name: "nginx stream",
        route: Route::ThroughNginx,
        stream: true,
    },
    Scenario {
        name: "sluice stream",
        route: Route::ThroughSluice,
        stream: true,
    },
    Scenario {
        name: "sluice+key stream",
        route: Route::ThroughSluiceStoredKey,
        stream: true,
    },
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    match bench(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` gives the whole cause chain on one line, without the backtrace that
            // anyhow's Debug output adds when RUST_BACKTRACE is set.
            eprintln!("sluice-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(cli: &Cli) -> Result<()> {
    let mut runtime = if cli.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(cli.client_threads));
        builder
    };
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

impl Cli {
    /// --rounds, or the mode's default.
    fn rounds(&self) -> u32 {
        self.rounds
            .unwrap_or(if self.streams.is_some() { 3 } else { 10 })
    }

    fn layout(&self) -> Layout {
        if self.markdown {
            Layout::Markdown
        } else {
            Layout::Plain
        }
    }
}

async fn run(cli: &Cli) -> Result<()> {
    let load_before = report::load_average();
    let binaries = Binaries::locate(cli.sluice.clone(), cli.mock.clone())?;
    if let Some(streams) = cli.streams {
        let plan = streams::Plan {
            streams: usize::try_from(streams).context("--streams out of range")?,
            rounds: cli.rounds(),
            words: cli.words,
            chunk_delay_ms: cli.chunk_delay_ms,
            ramp: Duration::from_secs(cli.ramp_secs),
            settle: Duration::from_secs(cli.settle_secs),
            round_limit: Duration::from_secs(cli.phase_limit_secs),
        };
        return streams::run(plan, &binaries, cli.layout()).await;
    }
    let concurrency = usize::try_from(cli.concurrency).context("concurrency out of range")?;
    let client = load::http_client(concurrency);

    eprintln!("sluice-bench: starting sluice-mock and sluice");
    let mut servers = Servers::start(&binaries, &client).await?;
    eprintln!(
        "sluice-bench: sluice-mock on {}, sluice on {}",
        servers.mock_addr, servers.sluice_addr
    );

    let stored_key = servers.stored_key(&client).await?;
    let time_limit = Duration::from_secs(cli.phase_limit_secs);
    let warmup = PhasePlan {
        concurrency,
        stop: Stop::AfterRequests(cli.warmup),
        time_limit,
    };
    let measured = PhasePlan {
        concurrency,
        stop: match cli.duration_secs {
            Some(secs) => Stop::After(Duration::from_secs(secs)),
            None => Stop::AfterRequests(cli.requests),
        },
        time_limit,
    };

    let mut failures = Vec::new();
    if cli.observability {
        return observe(cli, &client, &binaries, &servers, measured).await;
    }
    if cli.dashboard {
        return dashboard_at_scale(cli, &client, &binaries, &servers, measured).await;
    }
    if cli.instructions {
        return callgrind::run(cli, &client, &binaries, &servers).await;
    }
    let nginx = start_nginx(cli, servers.mock_addr).await?;
    let scenarios: Vec<Scenario> = SCENARIOS
        .into_iter()
        .filter(|s| s.route != Route::ThroughNginx || nginx.is_some())
        .collect();
    let mut summaries = Vec::with_capacity(scenarios.len());
    let mut ctx = Measuring {
        client: &client,
        servers: &mut servers,
        nginx,
        failures: &mut failures,
    };
    for stream in [false, true] {
        let rows: Vec<Scenario> = scenarios
            .iter()
            .copied()
            .filter(|s| s.stream == stream)
            .collect();
        summaries.extend(
            ctx.interleaved(cli, &rows, &stored_key, warmup, measured)
                .await?,
        );
    }
    if let Some(nginx) = ctx.nginx.take() {
        nginx.stop().await?;
    }

    if let (Some(postgres), Some(redis)) = (&cli.postgres, &cli.redis) {
        for (name, n) in SCALE_SCENARIOS {
            eprintln!("sluice-bench: {name}: starting {n} instance(s) on PostgreSQL + Redis");
            let cluster =
                scale::Cluster::start(&binaries, &client, servers.mock_addr, postgres, redis, n)
                    .await?;
            let key = cluster.stored_key(&client).await?;
            let target = Target::chat(
                &format!("http://{}", cluster.addrs[0]),
                &key,
                servers::SLUICE_MODEL,
                cli.words,
                false,
            )?
            .spread(&cluster.bases())?;
            if cli.warmup > 0 {
                let outcome = run_checked(&client, &target, warmup, &mut servers).await?;
                failures.extend(describe_failures(name, "warmup", &outcome, time_limit));
            }
            eprintln!("sluice-bench: {name}: measuring");
            let (mock_before, sluice_before) = (servers.cpu_time().0, cluster.cpu_time());
            let outcome = run_checked(&client, &target, measured, &mut servers).await?;
            let (mock_after, sluice_after) = (servers.cpu_time().0, cluster.cpu_time());
            failures.extend(describe_failures(name, "measured", &outcome, time_limit));
            let mut summary = summarize(name, concurrency, outcome);
            let per_request = |before: Option<Duration>, after: Option<Duration>| {
                let spent = after?.checked_sub(before?)?;
                (summary.requests > 0).then(|| spent.as_secs_f64() * 1e6 / summary.requests as f64)
            };
            summary.mock_cpu_us = per_request(mock_before, mock_after);
            summary.sluice_cpu_us = per_request(sluice_before, sluice_after);
            eprintln!(
                "sluice-bench: {}: {:.0} req/s, p50 {} ms",
                summary.name,
                summary.req_per_sec,
                report::ms(summary.p50_us)
            );
            summaries.push(summary);
        }
    }

    let layout = cli.layout();
    print!("{}", render_report(cli, &summaries, layout, &load_before)?);

    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("sluice-bench: FAILED: {failure}");
        }
        bail!(
            "{} problem(s) during the run; the numbers above are not trustworthy",
            failures.len()
        );
    }
    Ok(())
}

/// Starts the nginx reference unless it is switched off or not installed (then says so).
async fn start_nginx(cli: &Cli, mock: std::net::SocketAddr) -> Result<Option<nginx::Nginx>> {
    if cli.no_nginx {
        return Ok(None);
    }
    let Some(binary) = nginx::locate() else {
        eprintln!(
            "sluice-bench: note: nginx is not installed, so the nginx proxy_pass reference rows \
             are skipped (apt-get install -y nginx to add them)"
        );
        return Ok(None);
    };
    let nginx = nginx::Nginx::start(&binary, mock, nginx::Mode::Workers, &[]).await?;
    eprintln!("sluice-bench: nginx proxy_pass on {}", nginx.addr);
    Ok(Some(nginx))
}

/// What the interleaved scenario runs share.
struct Measuring<'a> {
    client: &'a HttpClient,
    servers: &'a mut Servers,
    nginx: Option<nginx::Nginx>,
    failures: &'a mut Vec<String>,
}

impl Measuring<'_> {
    /// CPU time (mock, the proxy the scenario goes through) so far.
    fn cpu_time(&self, route: Route) -> (Option<Duration>, Option<Duration>) {
        let (mock, sluice) = self.servers.cpu_time();
        let proxy = match route {
            Route::Direct => None,
            Route::ThroughSluice | Route::ThroughSluiceStoredKey => sluice,
            Route::ThroughNginx => self.nginx.as_ref().and_then(nginx::Nginx::cpu_time),
        };
        (mock, proxy)
    }

    async fn phase(&mut self, target: &Target, plan: PhasePlan) -> Result<PhaseOutcome> {
        let outcome = run_checked(self.client, target, plan, self.servers).await?;
        if let Some(nginx) = &mut self.nginx {
            nginx.ensure_alive()?;
        }
        Ok(outcome)
    }

    /// Warms every scenario up, then measures them in `cli.rounds` interleaved rounds (each
    /// round runs every scenario once, in rotated order) and sums each scenario's rounds.
    async fn interleaved(
        &mut self,
        cli: &Cli,
        scenarios: &[Scenario],
        stored_key: &str,
        warmup: PhasePlan,
        measured: PhasePlan,
    ) -> Result<Vec<ScenarioSummary>> {
        let nginx_addr = self.nginx.as_ref().map(|n| n.addr);
        let targets: Vec<Target> = scenarios
            .iter()
            .map(|s| {
                target_for(*s, self.servers, nginx_addr, stored_key, cli.words)
                    .map(|t| t.paced(cli.rate, measured.concurrency))
            })
            .collect::<Result<_>>()?;
        if cli.warmup > 0 {
            for (scenario, target) in scenarios.iter().zip(&targets) {
                eprintln!("sluice-bench: {}: warming up", scenario.name);
                let outcome = self.phase(target, warmup).await?;
                self.failures.extend(describe_failures(
                    scenario.name,
                    "warmup",
                    &outcome,
                    warmup.time_limit,
                ));
            }
        }
        let rounds = cli.rounds();
        let plan = PhasePlan {
            stop: match measured.stop {
                Stop::AfterRequests(n) => Stop::AfterRequests((n / u64::from(rounds)).max(1)),
                Stop::After(d) => Stop::After(d / rounds),
            },
            ..measured
        };
        let n = scenarios.len();
        let mut totals: Vec<(PhaseOutcome, Duration, Duration)> = (0..n)
            .map(|_| (PhaseOutcome::default(), Duration::ZERO, Duration::ZERO))
            .collect();
        let mut measured_cpu = vec![(true, true); n];
        for round in 0..rounds as usize {
            eprintln!(
                "sluice-bench: {}: round {}/{rounds}",
                if scenarios.first().is_some_and(|s| s.stream) {
                    "stream"
                } else {
                    "non-stream"
                },
                round + 1
            );
            for k in 0..n {
                let i = (round + k) % n;
                let route = scenarios[i].route;
                let before = self.cpu_time(route);
                let outcome = self.phase(&targets[i], plan).await?;
                let after = self.cpu_time(route);
                self.failures.extend(describe_failures(
                    scenarios[i].name,
                    "measured",
                    &outcome,
                    plan.time_limit,
                ));
                let (total, mock_cpu, proxy_cpu) = &mut totals[i];
                total.elapsed += outcome.elapsed;
                total.merge(outcome);
                match (before.0, after.0) {
                    (Some(b), Some(a)) => *mock_cpu += a.saturating_sub(b),
                    _ => measured_cpu[i].0 = false,
                }
                match (before.1, after.1) {
                    (Some(b), Some(a)) => *proxy_cpu += a.saturating_sub(b),
                    _ => measured_cpu[i].1 = false,
                }
            }
        }
        let mut rows = Vec::with_capacity(n);
        for ((scenario, (outcome, mock_cpu, proxy_cpu)), (mock_ok, proxy_ok)) in
            scenarios.iter().zip(totals).zip(measured_cpu)
        {
            let mut summary = summarize(scenario.name, measured.concurrency, outcome);
            let per_request = |spent: Duration| {
                (summary.requests > 0).then(|| spent.as_secs_f64() * 1e6 / summary.requests as f64)
            };
            summary.mock_cpu_us = if mock_ok { per_request(mock_cpu) } else { None };
            summary.sluice_cpu_us = if proxy_ok {
                per_request(proxy_cpu)
            } else {
                None
            };
            eprintln!(
                "sluice-bench: {}: {:.0} req/s, p50 {} ms",
                summary.name,
                summary.req_per_sec,
                report::ms(summary.p50_us)
            );
            rows.push(summary);
        }
        Ok(rows)
    }
}

/// `--dashboard`: a seeded store, page times, throughput with the dashboard open and closed.
async fn dashboard_at_scale(
    cli: &Cli,
    client: &HttpClient,
    binaries: &Binaries,
    servers: &Servers,
    measured: PhasePlan,
) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-dashboard-")
        .tempdir()
        .context("creating a temporary directory for the seeded store")?;
    let data = scratch.path().join("data");
    eprintln!(
        "sluice-bench: seeding {} usage records and {} keys",
        cli.dashboard_records, cli.dashboard_keys
    );
    let seeded = dashboard::seed(
        &data,
        cli.dashboard_records,
        cli.dashboard_keys,
        cli.dashboard_days,
    )
    .await?;
    eprintln!(
        "sluice-bench: seeded in {:.1} s",
        seeded.elapsed.as_secs_f64()
    );
    let addr = servers::free_local_addr()?;
    let config = servers::sluice_config(addr, servers.mock_addr, &data);
    let mut sluice = servers::spawn_sluice(binaries, scratch.path(), "sluice-dashboard", &config)?;
    let log = scratch.path().join("sluice-dashboard.log");
    servers::wait_ready(&mut sluice, addr, &log, client).await?;
    let session = dashboard::sign_in(client, addr).await?;
    eprintln!("sluice-bench: timing the pages");
    let pages = dashboard::time_pages(client, addr, &session).await?;
    // The streams get their own connections, so they never hold one the load needs.
    let stream_client = load::http_client(dashboard::STREAMS.len());
    let target = Target::chat(
        &format!("http://{addr}"),
        servers::SLUICE_API_KEY,
        servers::SLUICE_MODEL,
        cli.words,
        false,
    )?;
    let mut failures = Vec::new();
    let dashboard::Throughput {
        rows,
        pushes,
        round_ratios,
    } = dashboard::throughput(
        client,
        &stream_client,
        &mut sluice,
        addr,
        &session,
        &target,
        cli.warmup,
        measured,
        cli.rounds(),
        &mut failures,
    )
    .await?;
    let _ = sluice.kill().await;
    let layout = cli.layout();
    let provenance = Provenance {
        command: report::command_line(std::env::args()),
        machine: report::describe_machine(),
        load: format!(
            "store: SQLite with {} usage records over the last {} days and {} keys (seeded in \
             {:.0} s); pages: sequential GETs on loopback, signed in as the admin; throughput: \
             {} concurrent non-stream, {} interleaved rounds per state ({} in all), {} warmup, \
             {}-word replies; {} live pushes received while open",
            seeded.records,
            seeded.days,
            seeded.keys,
            seeded.elapsed.as_secs_f64(),
            cli.concurrency,
            cli.rounds(),
            match cli.duration_secs {
                Some(secs) => format!("{secs} s"),
                None => format!("{} requests", cli.requests),
            },
            cli.warmup,
            cli.words,
            pushes
        ),
    };
    print!(
        "{}\n{}\n{}\n{}",
        provenance.render(layout),
        dashboard::pages_table(&pages).render(layout),
        report::scenario_table(&rows).render(layout),
        dashboard::ratio_table(&rows, &round_ratios).render(layout)
    );
    fail_on(&failures)
}

/// Fails the run when anything went wrong in it, after saying what.
fn fail_on(failures: &[String]) -> Result<()> {
    if !failures.is_empty() {
        for failure in failures {
            eprintln!("sluice-bench: FAILED: {failure}");
        }
        bail!(
            "{} problem(s) during the run; the numbers above are not trustworthy",
            failures.len()
        );
    }
    Ok(())
}

/// `--observability`: metrics on vs off (and traces on), interleaved, as one report.
async fn observe(
    cli: &Cli,
    client: &HttpClient,
    binaries: &Binaries,
    servers: &Servers,
    measured: PhasePlan,
) -> Result<()> {
    eprintln!("sluice-bench: starting the observability variants");
    let mut variants = observability::Variants::start(binaries, client, servers.mock_addr).await?;
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for stream in [false, true] {
        rows.extend(
            variants
                .measure(
                    client,
                    cli.words,
                    stream,
                    cli.warmup,
                    measured,
                    cli.rounds(),
                    &mut failures,
                )
                .await?,
        );
    }
    let layout = cli.layout();
    let provenance = Provenance {
        command: report::command_line(std::env::args()),
        machine: report::describe_machine(),
        load: format!(
            "{} concurrent, {} interleaved rounds per mode ({} in all per variant), {} warmup \
             per variant, {}-word replies, HTTP/1.1 keep-alive, load generator on {} thread(s); \
             {} OTLP exports received",
            cli.concurrency,
            cli.rounds(),
            match cli.duration_secs {
                Some(secs) => format!("{secs} s"),
                None => format!("{} requests", cli.requests),
            },
            cli.warmup,
            cli.words,
            cli.client_threads,
            variants.exports()
        ),
    };
    print!(
        "{}\n{}\n{}",
        provenance.render(layout),
        report::scenario_table(&rows).render(layout),
        observability::table(&rows).render(layout)
    );
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("sluice-bench: FAILED: {failure}");
        }
        bail!(
            "{} problem(s) during the run; the numbers above are not trustworthy",
            failures.len()
        );
    }
    Ok(())
}

fn target_for(
    scenario: Scenario,
    servers: &Servers,
    nginx: Option<std::net::SocketAddr>,
    stored_key: &str,
    words: u32,
) -> Result<Target> {
    match scenario.route {
        Route::ThroughNginx => Target::chat(
            &format!(
                "http://{}",
                nginx.context("the nginx scenario runs only with nginx started")?
            ),
            servers::UPSTREAM_API_KEY,
            servers::MOCK_MODEL,
            words,
            scenario.stream,
        ),
        Route::Direct => Target::chat(
            &format!("http://{}", servers.mock_addr),
            servers::UPSTREAM_API_KEY,
            servers::MOCK_MODEL,
            words,
            scenario.stream,
        ),
        Route::ThroughSluice => Target::chat(
            &format!("http://{}", servers.sluice_addr),
            servers::SLUICE_API_KEY,
            servers::SLUICE_MODEL,
            words,
            scenario.stream,
        ),
        Route::ThroughSluiceStoredKey => Target::chat(
            &format!("http://{}", servers.sluice_addr),
            stored_key,
            servers::SLUICE_MODEL,
            words,
            scenario.stream,
        ),
    }
}

/// Runs a phase, then makes sure neither server died under it (a dead server explains every
/// error that follows, so its own output is the most useful thing to show).
async fn run_checked(
    client: &HttpClient,
    target: &Target,
    plan: PhasePlan,
    servers: &mut Servers,
) -> Result<PhaseOutcome> {
    let outcome = load::run_phase(client, target, plan).await?;
    servers.ensure_alive()?;
    Ok(outcome)
}

fn describe_failures(
    scenario: &str,
    phase: &str,
    outcome: &PhaseOutcome,
    time_limit: Duration,
) -> Vec<String> {
    let mut found: Vec<String> = outcome
        .errors
        .iter()
        .map(|(kind, tally)| {
            format!(
                "{scenario} ({phase}): {} × {kind}; first: {}",
                tally.count, tally.example
            )
        })
        .collect();
    if outcome.cut_short {
        found.push(format!(
            "{scenario} ({phase}): stopped by the {} s phase time limit after {} requests \
             (lower --requests or raise --phase-limit-secs)",
            time_limit.as_secs(),
            outcome.ok + outcome.error_count()
        ));
    }
    found
}

fn summarize(name: &str, concurrency: usize, outcome: PhaseOutcome) -> ScenarioSummary {
    let errors = outcome.error_count();
    let secs = outcome.elapsed.as_secs_f64();
    let latencies = Latencies::from_unsorted(outcome.latencies_us);
    let ttfb = (!outcome.ttfb_us.is_empty()).then(|| Latencies::from_unsorted(outcome.ttfb_us));
    ScenarioSummary {
        name: name.to_owned(),
        requests: outcome.ok + errors,
        concurrency,
        req_per_sec: if secs > 0.0 {
            outcome.ok as f64 / secs
        } else {
            0.0
        },
        p50_us: latencies.percentile_us(50.0),
        p99_us: latencies.percentile_us(99.0),
        p50_ttfb_us: ttfb.and_then(|t| t.percentile_us(50.0)),
        errors,
        sluice_cpu_us: None,
        mock_cpu_us: None,
    }
}

fn render_report(
    cli: &Cli,
    summaries: &[ScenarioSummary],
    layout: Layout,
    load_before: &str,
) -> Result<String> {
    let find = |name: &str| {
        summaries
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("scenario {name} missing from results"))
    };
    let non_stream = Pair {
        direct: find("direct non-stream")?,
        sluice: find("sluice non-stream")?,
    };
    let stream = Pair {
        direct: find("direct stream")?,
        sluice: find("sluice stream")?,
    };
    let amount = match cli.duration_secs {
        Some(secs) => format!("{secs} s measured"),
        None => format!("{} measured requests", cli.requests),
    };
    let provenance = Provenance {
        command: report::command_line(std::env::args()),
        machine: report::describe_machine(),
        load: format!(
            "{} concurrent{}, {amount} after {} warmup per scenario in {} interleaved rounds, \
             {}-word replies, HTTP/1.1 keep-alive, load generator on {} thread(s), {} s request \
             timeout; machine load average {load_before} at the start, {} at the end",
            cli.concurrency,
            cli.rate
                .map_or_else(String::new, |r| format!(" paced at {r} req/s in all")),
            cli.warmup,
            cli.rounds(),
            cli.words,
            cli.client_threads,
            REQUEST_TIMEOUT.as_secs(),
            report::load_average()
        ),
    };
    let keys = report::keys_table(
        &Pair {
            direct: find("sluice non-stream")?,
            sluice: find("sluice+key non-stream")?,
        },
        &Pair {
            direct: find("sluice stream")?,
            sluice: find("sluice+key stream")?,
        },
    );
    let scale = match (
        summaries.iter().find(|s| s.name == SCALE_SCENARIOS[0].0),
        summaries.iter().find(|s| s.name == SCALE_SCENARIOS[1].0),
    ) {
        (Some(one), Some(three)) => {
            let table = report::scale_table(
                &Pair {
                    direct: find("sluice+key non-stream")?,
                    sluice: one,
                },
                &Pair {
                    direct: one,
                    sluice: three,
                },
            );
            format!("\n{}", table.render(layout))
        }
        _ => String::new(),
    };
    let versus_nginx = match report::nginx_table(summaries) {
        Some(table) => format!("\n{}", table.render(layout)),
        None => String::new(),
    };
    Ok(format!(
        "{}\n{}{versus_nginx}\n{}\n{}{scale}",
        provenance.render(layout),
        report::scenario_table(summaries).render(layout),
        report::comparison_table(&non_stream, &stream).render(layout),
        keys.render(layout)
    ))
}
