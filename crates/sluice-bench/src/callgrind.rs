//! `--instructions`: user-space instructions per request, counted by
//! `valgrind --tool=callgrind`, for nginx `proxy_pass` (one process) and Sluice in front of the
//! same mock. Unlike wall-clock figures these barely move when the machine is busy, which makes
//! them the figure a CI regression guard can compare with a committed baseline
//! (`--baseline`). Kernel work (the TCP stack) is not counted: the CPU µs/req of the load run
//! covers it.
//!
//! Each scenario is warmed up, callgrind's counters are zeroed (`callgrind_control -z`), the
//! measured requests run, and a dump (`callgrind_control -d`) gives the instructions executed
//! in between, all threads together; the usage writer's work for those requests lands in the
//! same window because the bench waits for its batch linger before zeroing and dumping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::process::Command;

use crate::load::{HttpClient, PhasePlan, Stop, Target};
use crate::report::{Align, Table};
use crate::servers::{self, Binaries, Servers};
use crate::{Cli, nginx};

/// Long enough for the usage writer's 50 ms batch linger, under valgrind's slowdown.
const SETTLE: Duration = Duration::from_millis(500);

/// One measured row: scenario name and instructions per request.
type Row = (String, f64);

pub async fn run(
    cli: &Cli,
    client: &HttpClient,
    binaries: &Binaries,
    servers: &Servers,
) -> Result<()> {
    require_tool("valgrind")?;
    require_tool("callgrind_control")?;
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-callgrind-")
        .tempdir()
        .context("creating a temporary directory for callgrind")?;
    let dir = match &cli.keep_dumps {
        Some(keep) => {
            std::fs::create_dir_all(keep)
                .with_context(|| format!("creating {}", keep.display()))?;
            keep.as_path()
        }
        None => scratch.path(),
    };
    let instr = cli.keep_dumps.is_some();
    let load_before = crate::report::load_average();
    let concurrency = usize::try_from(cli.concurrency).context("concurrency out of range")?;
    let time_limit = Duration::from_secs(cli.phase_limit_secs);
    let plan = |n: u64| PhasePlan {
        concurrency,
        stop: Stop::AfterRequests(n),
        time_limit,
    };
    let counter = Counter {
        client,
        warmup: plan(cli.warmup),
        measured: plan(cli.requests),
    };
    let mut rows: Vec<Row> = Vec::new();

    match nginx::locate().filter(|_| !cli.no_nginx) {
        Some(binary) => {
            let nginx = nginx::Nginx::start(
                &binary,
                servers.mock_addr,
                nginx::Mode::SingleProcess,
                &wrapper(&dir.join("nginx.%p.cg"), instr),
            )
            .await?;
            let pid = nginx.pid().context("nginx has no process id")?;
            let out = dir.join(format!("nginx.{pid}.cg"));
            let base = format!("http://{}", nginx.addr);
            for (mode, stream) in [("non-stream", false), ("stream", true)] {
                let target = Target::chat(
                    &base,
                    servers::UPSTREAM_API_KEY,
                    servers::MOCK_MODEL,
                    cli.words,
                    stream,
                )?;
                let name = format!("nginx {mode}");
                eprintln!("sluice-bench: {name}: counting instructions");
                rows.push((name, counter.count(pid, &out, &target).await?));
            }
            nginx.stop().await?;
        }
        None if cli.no_nginx => {}
        None => eprintln!(
            "sluice-bench: note: nginx is not installed, so its reference rows are skipped \
             (apt-get install -y nginx to add them)"
        ),
    }

    let addr = servers::free_local_addr()?;
    let work = scratch.path();
    let config = servers::sluice_config(addr, servers.mock_addr, &work.join("data"));
    let mut sluice = servers::spawn_sluice_wrapped(
        binaries,
        work,
        "sluice-callgrind",
        &config,
        &wrapper(&dir.join("sluice.%p.cg"), instr),
    )?;
    servers::wait_ready(
        &mut sluice,
        addr,
        &work.join("sluice-callgrind.log"),
        client,
    )
    .await?;
    let pid = sluice.id().context("sluice has no process id")?;
    let out = dir.join(format!("sluice.{pid}.cg"));
    let stored_key = servers::stored_key(client, addr).await?;
    let base = format!("http://{addr}");
    for (mode, stream) in [("non-stream", false), ("stream", true)] {
        for (proxy, key) in [
            ("sluice", servers::SLUICE_API_KEY),
            ("sluice+key", stored_key.as_str()),
        ] {
            let target = Target::chat(&base, key, servers::SLUICE_MODEL, cli.words, stream)?;
            let name = format!("{proxy} {mode}");
            eprintln!("sluice-bench: {name}: counting instructions");
            let count = counter.count(pid, &out, &target).await?;
            if instr {
                eprintln!(
                    "sluice-bench: {name}: dump {}",
                    newest_dump(&out)?.display()
                );
            }
            rows.push((name, count));
        }
    }
    drop(sluice);

    let layout = cli.layout();
    println!(
        "- command: `{}`\n- machine: {}\n- load: {} concurrent, {} measured requests after {} \
         warmup per scenario, {}-word replies, under valgrind --tool=callgrind; machine load \
         average {load_before} at the start, {} at the end\n",
        crate::report::command_line(std::env::args()),
        crate::report::describe_machine(),
        cli.concurrency,
        cli.requests,
        cli.warmup,
        cli.words,
        crate::report::load_average()
    );
    let baseline = match &cli.baseline {
        Some(path) => Some(read_baseline(path)?),
        None => None,
    };
    print!("{}", table(&rows, baseline.as_ref()).render(layout));
    if let Some(path) = &cli.write_baseline {
        write_baseline(path, &rows, cli)?;
        eprintln!("sluice-bench: baseline written to {}", path.display());
    }
    if let Some(baseline) = &baseline {
        let regressions = regressions(&rows, baseline, cli.max_regression);
        if !regressions.is_empty() {
            for r in &regressions {
                eprintln!("sluice-bench: REGRESSION: {r}");
            }
            bail!(
                "{} Sluice row(s) cost more than {:.0} % over the baseline {}",
                regressions.len(),
                (cli.max_regression - 1.0) * 100.0,
                cli.baseline
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string())
            );
        }
        eprintln!("sluice-bench: instructions per request within the baseline's tolerance");
    }
    Ok(())
}

/// The valgrind command line a server is started under (`%p` in `out` is its process id);
/// `instr`: per-instruction counts too, for `callgrind_annotate` on the kept dumps.
fn wrapper(out: &Path, instr: bool) -> Vec<String> {
    let mut args = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
        "--quiet".to_owned(),
    ];
    if instr {
        args.push("--dump-instr=yes".to_owned());
    }
    args
}

fn require_tool(name: &str) -> Result<()> {
    let found = std::process::Command::new(name)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        bail!("--instructions needs {name} (apt-get install -y valgrind)");
    }
    Ok(())
}

struct Counter<'a> {
    client: &'a HttpClient,
    warmup: PhasePlan,
    measured: PhasePlan,
}

impl Counter<'_> {
    /// Instructions the process `pid` executes per request of `target`.
    async fn count(&self, pid: u32, out: &Path, target: &Target) -> Result<f64> {
        let warm = crate::load::run_phase(self.client, target, self.warmup).await?;
        check(&warm, "warmup")?;
        tokio::time::sleep(SETTLE).await;
        control(pid, "-z").await?;
        let outcome = crate::load::run_phase(self.client, target, self.measured).await?;
        check(&outcome, "measured")?;
        tokio::time::sleep(SETTLE).await;
        control(pid, "-d").await?;
        let instructions = newest_dump_summary(out)?;
        Ok(instructions as f64 / outcome.ok.max(1) as f64)
    }
}

fn check(outcome: &crate::load::PhaseOutcome, phase: &str) -> Result<()> {
    if let Some((kind, tally)) = outcome.errors.iter().next() {
        bail!(
            "{phase}: {} failed request(s) under callgrind, {kind}: {}",
            outcome.error_count(),
            tally.example
        );
    }
    Ok(())
}

/// Runs `callgrind_control <flag> <pid>` (zero or dump).
async fn control(pid: u32, flag: &str) -> Result<()> {
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("callgrind_control")
            .arg(flag)
            .arg(pid.to_string())
            .stdout(std::process::Stdio::null())
            .status(),
    )
    .await
    .with_context(|| format!("callgrind_control {flag} {pid} took over 60 s"))?
    .context("running callgrind_control")?;
    if !status.success() {
        bail!("callgrind_control {flag} {pid} failed ({status})");
    }
    Ok(())
}

/// The `summary:` (instructions since the last zero) of the newest `<out>.<n>` dump.
fn newest_dump_summary(out: &Path) -> Result<u64> {
    let path = newest_dump(out)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_summary(&text).with_context(|| format!("no `summary:` line in {}", path.display()))
}

/// The newest `<out>.<n>` dump.
fn newest_dump(out: &Path) -> Result<PathBuf> {
    let dir = out.parent().context("callgrind output has no directory")?;
    let stem = out
        .file_name()
        .and_then(|n| n.to_str())
        .context("callgrind output name")?;
    let newest: Option<(u32, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix(stem)?.strip_prefix('.')?.parse().ok()?;
            Some((n, entry.path()))
        })
        .max_by_key(|(n, _)| *n);
    let (_, path) =
        newest.with_context(|| format!("no callgrind dump next to {}", out.display()))?;
    Ok(path)
}

fn parse_summary(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|line| line.strip_prefix("summary:"))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
}

/// Baseline file: `# comments`, then `<scenario name> <instructions per request>` per line.
fn read_baseline(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the baseline {}", path.display()))?;
    parse_baseline(&text).with_context(|| format!("parsing the baseline {}", path.display()))
}

fn parse_baseline(text: &str) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("expected `<scenario> <instructions>`, got `{line}`"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("not a number in `{line}`"))?;
        out.insert(name.trim().to_owned(), value);
    }
    Ok(out)
}

fn write_baseline(path: &Path, rows: &[Row], cli: &Cli) -> Result<()> {
    let mut text = format!(
        "# Instructions per request (callgrind, all threads, user space) of a release build,\n\
         # from `sluice-bench --instructions --concurrency {} --requests {} --warmup {}`.\n\
         # .ci/run fails when a Sluice row exceeds its figure here by more than 20 %.\n\
         # Regenerate with scripts/bench-guard.sh --write after a deliberate change.\n",
        cli.concurrency, cli.requests, cli.warmup
    );
    for (name, value) in rows {
        text.push_str(&format!("{name} {value:.0}\n"));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Sluice rows whose instructions per request exceed `max_ratio` × their baseline figure.
fn regressions(rows: &[Row], baseline: &BTreeMap<String, f64>, max_ratio: f64) -> Vec<String> {
    rows.iter()
        .filter(|(name, _)| name.starts_with("sluice"))
        .filter_map(|(name, value)| {
            let base = *baseline.get(name)?;
            let ratio = value / base;
            (ratio > max_ratio).then(|| {
                format!(
                    "{name}: {value:.0} instructions/request, {ratio:.2}× the baseline {base:.0}"
                )
            })
        })
        .collect()
}

fn table(rows: &[Row], baseline: Option<&BTreeMap<String, f64>>) -> Table {
    let nginx = |name: &str| {
        let mode = name.rsplit_once(' ').map_or("", |(_, m)| m);
        rows.iter()
            .find(|(n, _)| *n == format!("nginx {mode}"))
            .map(|(_, v)| *v)
    };
    let mut columns = vec![
        ("scenario", Align::Left),
        ("instructions/req", Align::Right),
        ("vs nginx", Align::Right),
    ];
    if baseline.is_some() {
        columns.push(("vs baseline", Align::Right));
    }
    Table {
        columns,
        rows: rows
            .iter()
            .map(|(name, value)| {
                let mut row = vec![
                    name.clone(),
                    format!("{value:.0}"),
                    nginx(name)
                        .filter(|n| *n > 0.0)
                        .map_or_else(|| "-".to_owned(), |n| format!("{:.2}×", value / n)),
                ];
                if let Some(baseline) = baseline {
                    row.push(
                        baseline
                            .get(name)
                            .filter(|b| **b > 0.0)
                            .map_or_else(|| "-".to_owned(), |b| format!("{:.2}×", value / b)),
                    );
                }
                row
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_of_a_dump_is_read() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 1197779\n\
                    fn=main\n1 2\ntotals: 1199159\n";
        assert_eq!(parse_summary(dump), Some(1_197_779));
        assert_eq!(parse_summary("events: Ir\n"), None);
    }

    #[test]
    fn baseline_round_trips_and_flags_only_sluice_rows_over_the_tolerance() {
        let baseline = parse_baseline(
            "# comment\n\nnginx stream 100\nsluice non-stream 1000\nsluice+key stream 2000\n",
        )
        .unwrap_or_default();
        assert_eq!(baseline.get("sluice non-stream"), Some(&1000.0));
        let rows: Vec<Row> = vec![
            ("nginx stream".into(), 500.0),
            ("sluice non-stream".into(), 1_250.0),
            ("sluice+key stream".into(), 2_300.0),
            ("sluice stream".into(), 9_999.0),
        ];
        let found = regressions(&rows, &baseline, 1.2);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("sluice non-stream: 1250"));
        assert!(parse_baseline("sluice non-stream lots\n").is_err());
    }
}
