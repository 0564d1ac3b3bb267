//! What observability costs (`--observability`): three Sluice processes with the same config
//! but for one section — metrics on (the default), `metrics: {enabled: false}`, and metrics on
//! plus traces exported to a collector stand-in in this process — in front of the same mock,
//! measured in interleaved rounds (each round runs every variant once, in rotated order), so
//! drift in what else the machine is doing lands on all of them alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::process::Child;

use crate::load::{HttpClient, PhaseOutcome, PhasePlan, Stop, Target};
use crate::report::{Align, Table};
use crate::servers::{self, Binaries};
use crate::stats::ScenarioSummary;

/// The variants, in the order of the table: (row name, extra config).
const VARIANTS: [(&str, Extra); 3] = [
    ("metrics on", Extra::None),
    ("metrics off", Extra::MetricsOff),
    ("metrics + traces on", Extra::Traces),
];

#[derive(Debug, Clone, Copy)]
enum Extra {
    None,
    MetricsOff,
    Traces,
}

/// One running Sluice of the comparison.
struct Variant {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

/// The three Sluices and the collector stand-in the traced one exports to.
pub struct Variants {
    variants: Vec<Variant>,
    collector: Collector,
    _scratch: tempfile::TempDir,
}

impl Variants {
    pub async fn start(binaries: &Binaries, client: &HttpClient, mock: SocketAddr) -> Result<Self> {
        let scratch = tempfile::Builder::new()
            .prefix("sluice-bench-observability-")
            .tempdir()
            .context("creating a temporary directory for config and logs")?;
        let collector = Collector::start().await?;
        let mut variants = Vec::new();
        for (i, (name, extra)) in VARIANTS.into_iter().enumerate() {
            let addr = servers::free_local_addr()?;
            let mut config =
                servers::sluice_config(addr, mock, &scratch.path().join(format!("data-{i}")));
            match extra {
                Extra::None => {}
                Extra::MetricsOff => config.push_str("metrics: {enabled: false}\n"),
                Extra::Traces => config.push_str(&format!(
                    "tracing: {{enabled: true, endpoint: 'http://{}'}}\n",
                    collector.addr
                )),
            }
            let file = format!("sluice-observability-{i}");
            let mut child = servers::spawn_sluice(binaries, scratch.path(), &file, &config)?;
            let log = scratch.path().join(format!("{file}.log"));
            servers::wait_ready(&mut child, addr, &log, client).await?;
            variants.push(Variant { name, child, addr });
        }
        Ok(Self {
            variants,
            collector,
            _scratch: scratch,
        })
    }

    /// Runs `rounds` interleaved rounds of `plan` per variant, streamed or not, and sums each
    /// variant's rounds into one row (`<variant> <mode>`).
    #[allow(clippy::too_many_arguments)]
    pub async fn measure(
        &mut self,
        client: &HttpClient,
        words: u32,
        stream: bool,
        warmup: u64,
        measured: PhasePlan,
        rounds: u32,
        failures: &mut Vec<String>,
    ) -> Result<Vec<ScenarioSummary>> {
        let mode = if stream { "stream" } else { "non-stream" };
        let targets: Vec<Target> = self
            .variants
            .iter()
            .map(|v| {
                Target::chat(
                    &format!("http://{}", v.addr),
                    servers::SLUICE_API_KEY,
                    servers::SLUICE_MODEL,
                    words,
                    stream,
                )
            })
            .collect::<Result<_>>()?;
        if warmup > 0 {
            for (variant, target) in self.variants.iter().zip(&targets) {
                eprintln!("sluice-bench: {} {mode}: warming up", variant.name);
                let plan = PhasePlan {
                    stop: Stop::AfterRequests(warmup),
                    ..measured
                };
                let outcome = crate::load::run_phase(client, target, plan).await?;
                failures.extend(crate::describe_failures(
                    variant.name,
                    "warmup",
                    &outcome,
                    plan.time_limit,
                ));
            }
        }
        let per_round = match measured.stop {
            Stop::AfterRequests(n) => Stop::AfterRequests((n / u64::from(rounds)).max(1)),
            Stop::After(d) => Stop::After(d / rounds),
        };
        let plan = PhasePlan {
            stop: per_round,
            ..measured
        };
        let n = self.variants.len();
        let mut totals: Vec<(PhaseOutcome, Duration)> = (0..n)
            .map(|_| (PhaseOutcome::default(), Duration::ZERO))
            .collect();
        for round in 0..rounds as usize {
            eprintln!(
                "sluice-bench: observability {mode}: round {}/{rounds}",
                round + 1
            );
            for k in 0..n {
                let i = (round + k) % n;
                let variant = &mut self.variants[i];
                let before = servers::process_cpu(variant.child.id());
                let outcome = crate::load::run_phase(client, &targets[i], plan).await?;
                let after = servers::process_cpu(variant.child.id());
                if let Some(status) = variant.child.try_wait().context("checking on sluice")? {
                    bail!("{} exited mid-run ({status})", variant.name);
                }
                failures.extend(crate::describe_failures(
                    variant.name,
                    "measured",
                    &outcome,
                    plan.time_limit,
                ));
                let (total, cpu) = &mut totals[i];
                total.elapsed += outcome.elapsed;
                total.merge(outcome);
                if let (Some(before), Some(after)) = (before, after) {
                    *cpu += after.saturating_sub(before);
                }
            }
        }
        let mut rows = Vec::with_capacity(n);
        for (variant, (outcome, cpu)) in self.variants.iter().zip(totals) {
            let name = format!("{} {mode}", variant.name);
            let mut summary = crate::summarize(&name, measured.concurrency, outcome);
            summary.sluice_cpu_us =
                (summary.requests > 0).then(|| cpu.as_secs_f64() * 1e6 / summary.requests as f64);
            rows.push(summary);
        }
        // Traces must have left the traced Sluice, or its row measures nothing.
        tokio::time::sleep(Duration::from_secs(6)).await;
        if self.collector.exports() == 0 {
            failures.push("metrics + traces on: the collector received no spans".to_owned());
        }
        Ok(rows)
    }

    /// Export requests the collector stand-in received so far.
    pub fn exports(&self) -> u64 {
        self.collector.exports()
    }
}

/// An OTLP/HTTP collector stand-in: answers every request 200 and counts them.
struct Collector {
    addr: SocketAddr,
    exports: Arc<AtomicU64>,
}

impl Collector {
    async fn start() -> Result<Self> {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the collector stand-in")?;
        let addr = listener.local_addr()?;
        let exports = Arc::new(AtomicU64::new(0));
        let counted = exports.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let counted = counted.clone();
                            async move {
                                use http_body_util::BodyExt as _;
                                let _ = request.into_body().collect().await;
                                counted.fetch_add(1, Ordering::Relaxed);
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::new()),
                                ))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, exports })
    }

    fn exports(&self) -> u64 {
        self.exports.load(Ordering::Relaxed)
    }
}

/// The ratios: metrics on against off (the ≤ 3 % target), traces on against metrics on.
pub fn table(rows: &[ScenarioSummary]) -> Table {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut out = Vec::new();
    for (label, base, with) in [
        ("metrics on / off", "metrics off", "metrics on"),
        (
            "traces on / off (metrics on)",
            "metrics on",
            "metrics + traces on",
        ),
    ] {
        for mode in ["non-stream", "stream"] {
            let (Some(base), Some(with)) = (
                find(&format!("{base} {mode}")),
                find(&format!("{with} {mode}")),
            ) else {
                continue;
            };
            let throughput = (base.req_per_sec > 0.0)
                .then(|| with.req_per_sec / base.req_per_sec * 100.0)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}%"));
            let cpu = match (with.sluice_cpu_us, base.sluice_cpu_us) {
                (Some(w), Some(b)) if b > 0.0 => format!("{:+.1}%", (w / b - 1.0) * 100.0),
                _ => "-".to_owned(),
            };
            let cpu_us = match (with.sluice_cpu_us, base.sluice_cpu_us) {
                (Some(w), Some(b)) => format!("{:+.1}", w - b),
                _ => "-".to_owned(),
            };
            out.push(vec![format!("{label}, {mode}"), throughput, cpu, cpu_us]);
        }
    }
    Table {
        columns: vec![
            ("Observability cost", Align::Left),
            ("throughput ratio", Align::Right),
            ("Sluice CPU/req", Align::Right),
            ("Sluice CPU µs/req", Align::Right),
        ],
        rows: out,
    }
}
