//! Memory under many slow streams (`--streams N`, issue 15: "10,000 concurrent slow streams
//! ≤ 500 MB with no growth across rounds"). One sluice-mock and one Sluice (embedded SQLite
//! store, a stored key whose per-minute and per-day limits are far above the load; keys have
//! no concurrency cap, `max-concurrent-requests` is 0 = none, and `connections.max` is raised
//! above N). Each round opens N streaming chat requests through Sluice, spread over a ramp so
//! the listen backlog is never the limit, each made slow by the mock (`mock:words=W
//! mock:chunk_delay_ms=D`, so it lasts about (W + 4) × D). Sluice's `/proc/<pid>/status`
//! (VmRSS, RssAnon, RssFile, VmHWM) is read at idle before the round, every 500 ms while the
//! streams are open (the peak is kept), and a few seconds after the last one ended; the rounds
//! run in the same Sluice process, so growth from round to round shows. Every stream must
//! answer 200 and end with `data: [DONE]`, and the store must hold one usage record per
//! request once the round has settled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use http_body_util::BodyExt as _;

use crate::load::{ErrorTally, Failure, HttpClient, Target, tally};
use crate::report::{Align, Layout, Provenance, Table};
use crate::servers::{self, Binaries};

/// How often Sluice's memory is read while streams are open.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Progress goes to stderr every this many samples.
const PROGRESS_EVERY: u32 = 4;
/// Longest wait for the store to hold every round's usage records.
const RECORDS_WAIT: Duration = Duration::from_secs(15);
/// Descriptors each process keeps beyond its stream sockets (listener, store, logs, the
/// runtime's own: about 25 in Sluice; Sluice itself reserves 256 when it fits its connection
/// cap to the limit).
const FD_SLACK: u64 = 256;

/// What one `--streams` run does.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub streams: usize,
    pub rounds: u32,
    pub words: u32,
    pub chunk_delay_ms: u32,
    /// The streams of a round are opened evenly over this long.
    pub ramp: Duration,
    /// Wait after the last stream of a round ended before reading "after".
    pub settle: Duration,
    /// A round (ramp, streams, settle excluded) that takes longer fails the run.
    pub round_limit: Duration,
}

/// The memory figures of `/proc/<pid>/status`, in KiB as the kernel gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
    pub hwm_kib: u64,
}

/// Reads VmRSS, RssAnon, RssFile and VmHWM from the text of `/proc/<pid>/status`.
pub fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let value = rest.trim().strip_suffix("kB")?.trim();
            value.parse().ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        anon_kib: field("RssAnon")?,
        file_kib: field("RssFile")?,
        hwm_kib: field("VmHWM")?,
    })
}

fn read_memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text).with_context(|| format!("{path} lacks VmRSS, RssAnon, RssFile or VmHWM"))
}

/// Open file descriptors of `pid` (entries of `/proc/<pid>/fd`).
fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(Iterator::count)
}

/// KiB as megabytes (10^6 bytes), one decimal.
pub fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

/// Descriptors a process needs for `streams` streams: Sluice holds two sockets per stream
/// (client and upstream), the bench and the mock one.
pub fn fds_needed(streams: usize) -> u64 {
    2 * streams as u64 + FD_SLACK
}

/// The most streams `fd_limit` descriptors per process carry.
pub fn streams_that_fit(fd_limit: u64) -> usize {
    usize::try_from(fd_limit.saturating_sub(FD_SLACK) / 2).unwrap_or(usize::MAX)
}

/// Raises this process's soft and hard `RLIMIT_NOFILE` towards `wanted` (at most what
/// `/proc/sys/fs/nr_open` allows; raising the hard limit needs root), so the servers spawned
/// after it inherit the limit. Returns the soft limit in effect and, if it is below `wanted`,
/// why.
#[cfg(unix)]
fn raise_fd_limit(wanted: u64) -> (u64, Option<String>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let target = wanted.min(nr_open);
    let before = getrlimit(Resource::Nofile);
    let mut why = None;
    if before.current.is_some_and(|c| c < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: Some(before.maximum.map_or(target, |m| m.max(target))),
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            why = Some(format!(
                "raising RLIMIT_NOFILE to {target} failed ({e}); using the hard limit"
            ));
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: before.maximum,
                    maximum: before.maximum,
                },
            );
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if now < wanted && why.is_none() {
        why = Some(format!(
            "RLIMIT_NOFILE is {now} (/proc/sys/fs/nr_open allows {nr_open})"
        ));
    }
    (now, why)
}

#[cfg(not(unix))]
fn raise_fd_limit(_wanted: u64) -> (u64, Option<String>) {
    (u64::MAX, None)
}

/// What the streams of one round did.
#[derive(Debug, Default)]
struct Counters {
    /// Requests sent.
    opened: AtomicUsize,
    /// Response head received, body not yet ended.
    open: AtomicUsize,
    peak_open: AtomicUsize,
    completed: AtomicUsize,
    failed: AtomicUsize,
}

/// One round's figures.
#[derive(Debug, Clone)]
struct Round {
    opened: usize,
    completed: usize,
    failed: usize,
    peak_open: usize,
    idle: Memory,
    peak: Memory,
    after: Memory,
    peak_fds: Option<usize>,
    after_fds: Option<usize>,
    records: Option<u64>,
    elapsed: Duration,
}

/// `--streams`: runs the plan and prints the report.
pub async fn run(plan: Plan, binaries: &Binaries, layout: Layout) -> Result<()> {
    let load_before = crate::report::load_average();
    let mut plan = plan;
    let (fd_limit, why) = raise_fd_limit(fds_needed(plan.streams).max(65_536));
    if let Some(why) = &why {
        eprintln!("sluice-bench: note: {why}");
    }
    let requested = plan.streams;
    if fd_limit < fds_needed(plan.streams) {
        let fit = streams_that_fit(fd_limit);
        eprintln!(
            "sluice-bench: RLIMIT_NOFILE is {fd_limit}, and {} streams need {} descriptors in \
             Sluice (two sockets per stream), so only {fit} streams are opened",
            plan.streams,
            fds_needed(plan.streams)
        );
        if fit == 0 {
            bail!("too few file descriptors for any stream");
        }
        plan.streams = fit;
    }
    eprintln!("sluice-bench: RLIMIT_NOFILE {fd_limit} (inherited by sluice-mock and sluice)");

    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-streams-")
        .tempdir()
        .context("creating a temporary directory for config and logs")?;
    let mock_log = scratch.path().join("sluice-mock.log");
    let (mut mock, mock_addr) = servers::start_mock(&binaries.mock, &mock_log).await?;
    let addr = servers::free_local_addr()?;
    let max_connections = plan.streams + 1_024;
    let mut config = servers::sluice_config(addr, mock_addr, &scratch.path().join("data"));
    config.push_str(&format!("connections: {{max: {max_connections}}}\n"));
    let mut sluice = servers::spawn_sluice(binaries, scratch.path(), "sluice", &config)?;
    let sluice_log = scratch.path().join("sluice.log");
    let admin_client = crate::load::http_client(4);
    servers::wait_ready(&mut sluice, addr, &sluice_log, &admin_client).await?;
    let pid = sluice.id().context("sluice has no process id")?;
    let token = servers::sign_in(&admin_client, addr).await?;
    let key = servers::create_key(&admin_client, addr, &token).await?;
    eprintln!("sluice-bench: sluice-mock on {mock_addr}, sluice on {addr} (pid {pid})");

    // No idle pool: each stream has its own connection, closed when it ends, so the bench never
    // caps connections below N and the settled reading holds no kept-alive ones.
    let stream_client = crate::load::http_client(0);
    let request = Arc::new(Target::chat_saying(
        &format!("http://{addr}"),
        &key,
        servers::SLUICE_MODEL,
        &format!(
            "mock:words={} mock:chunk_delay_ms={}",
            plan.words, plan.chunk_delay_ms
        ),
        true,
    )?);

    // Let start-up work (store migrations, first log lines) settle before the idle reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rounds = Vec::new();
    let mut failures = Vec::new();
    let mut sent_so_far: u64 = 0;
    for round in 1..=plan.rounds {
        let result = one_round(&plan, round, pid, &stream_client, &request).await?;
        let (outcome, errors) = result;
        for (kind, t) in &errors {
            failures.push(format!(
                "round {round}: {} × {kind}; first: {}",
                t.count, t.example
            ));
        }
        if let Some(status) = sluice.try_wait().context("checking on sluice")? {
            bail!(
                "sluice exited in round {round} ({status}); its output:\n{}",
                servers::log_tail(&sluice_log)
            );
        }
        if let Some(status) = mock.try_wait().context("checking on sluice-mock")? {
            bail!(
                "sluice-mock exited in round {round} ({status}); its output:\n{}",
                servers::log_tail(&mock_log)
            );
        }
        sent_so_far += outcome.opened as u64;
        let mut outcome = outcome;
        outcome.records = usage_records(&admin_client, addr, &token, sent_so_far).await;
        match outcome.records {
            Some(n) if n == sent_so_far => {}
            Some(n) => failures.push(format!(
                "round {round}: the store holds {n} usage records after {sent_so_far} requests"
            )),
            None => failures.push(format!("round {round}: could not read the usage summary")),
        }
        eprintln!(
            "sluice-bench: round {round}: {} completed, {} failed, peak open {}; RSS idle {}, \
             peak {}, after {}; {} usage records",
            outcome.completed,
            outcome.failed,
            outcome.peak_open,
            mb(outcome.idle.rss_kib),
            mb(outcome.peak.rss_kib),
            mb(outcome.after.rss_kib),
            outcome
                .records
                .map_or_else(|| "?".to_owned(), |n| n.to_string())
        );
        rounds.push(outcome);
    }
    let _ = sluice.kill().await;
    let _ = mock.kill().await;

    let expected_secs = f64::from(plan.words + 4) * f64::from(plan.chunk_delay_ms) / 1000.0;
    let provenance = Provenance {
        command: crate::report::command_line(std::env::args()),
        machine: crate::report::describe_machine(),
        load: format!(
            "{}{} concurrent streaming chat requests per round through Sluice with a stored key \
             (per-minute and per-day limits 10^9, no per-key concurrency cap, \
             max-concurrent-requests 0 = none, connections.max {max_connections}), each \
             `mock:words={} mock:chunk_delay_ms={}` (~{expected_secs:.0} s), opened evenly \
             over {} s, one connection per stream (no client keep-alive); {} rounds in one \
             Sluice process (embedded SQLite store); `/proc/<pid>/status` of Sluice read at \
             idle, every {} ms while streams are open (peak kept) and {} s after the last \
             stream of the round; RLIMIT_NOFILE {fd_limit}; MB = 10^6 bytes; machine load \
             average {load_before} at the start, {} at the end",
            plan.streams,
            if plan.streams < requested {
                format!(
                    " (of {requested} asked for: RLIMIT_NOFILE {fd_limit} holds two sockets per \
                     stream for no more{})",
                    why.as_deref()
                        .map_or_else(String::new, |w| format!("; {w}"))
                )
            } else {
                String::new()
            },
            plan.words,
            plan.chunk_delay_ms,
            plan.ramp.as_secs_f64(),
            plan.rounds,
            SAMPLE_EVERY.as_millis(),
            plan.settle.as_secs_f64(),
            crate::report::load_average()
        ),
    };
    print!(
        "{}\n{}\n{}",
        provenance.render(layout),
        table(&rounds, plan.streams).render(layout),
        verdict(&rounds)
    );
    crate::fail_on(&failures)
}

type Errors = BTreeMap<String, ErrorTally>;

/// One round: idle reading, N streams over the ramp with a sampler, settle, after reading.
async fn one_round(
    plan: &Plan,
    round: u32,
    pid: u32,
    client: &HttpClient,
    request: &Arc<Target>,
) -> Result<(Round, Errors)> {
    let idle = read_memory(pid)?;
    eprintln!(
        "sluice-bench: round {round}/{}: idle RSS {}; opening {} streams over {} s",
        plan.rounds,
        mb(idle.rss_kib),
        plan.streams,
        plan.ramp.as_secs_f64()
    );
    let counters = Arc::new(Counters::default());
    let (stop_sampler, stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(sample(pid, Arc::clone(&counters), plan.streams, stopped));
    let started = Instant::now();
    let mut streams = tokio::task::JoinSet::new();
    let deadline = tokio::time::Instant::from(started + plan.round_limit);
    let mut cut_short = false;
    for i in 0..plan.streams {
        let at = started + plan.ramp.mul_f64(i as f64 / plan.streams as f64);
        tokio::time::sleep_until(at.into()).await;
        if Instant::now() >= started + plan.round_limit {
            cut_short = true;
            break;
        }
        let (client, request, counters) =
            (client.clone(), Arc::clone(request), Arc::clone(&counters));
        streams.spawn(async move {
            counters.opened.fetch_add(1, Ordering::Relaxed);
            let result = one_stream(&client, &request, &counters).await;
            match &result {
                Ok(()) => counters.completed.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.failed.fetch_add(1, Ordering::Relaxed),
            };
            result
        });
    }
    let mut errors = Errors::new();
    let mut note = |kind: &str, detail: String| tally(&mut errors, kind.to_owned(), detail);
    loop {
        match tokio::time::timeout_at(deadline, streams.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok(Ok(())))) => {}
            Ok(Some(Ok(Err(failure)))) => note(&failure.kind, failure.detail),
            Ok(Some(Err(e))) => note("stream task failed", e.to_string()),
            Err(_) => {
                let left = streams.len();
                streams.abort_all();
                counters.failed.fetch_add(left, Ordering::Relaxed);
                for _ in 0..left {
                    note(
                        "still open at the round limit",
                        format!(
                            "not ended {} s into the round (raise --phase-limit-secs?)",
                            plan.round_limit.as_secs()
                        ),
                    );
                }
                break;
            }
        }
    }
    if cut_short {
        note(
            "round limit reached while opening",
            format!(
                "only {} of {} streams opened within {} s",
                counters.opened.load(Ordering::Relaxed),
                plan.streams,
                plan.round_limit.as_secs()
            ),
        );
    }
    let elapsed = started.elapsed();
    let _ = stop_sampler.send(());
    let (peak, peak_fds) = sampler.await.context("the memory sampler failed")??;
    tokio::time::sleep(plan.settle).await;
    let after = read_memory(pid)?;
    let after_fds = open_fds(pid);
    Ok((
        Round {
            opened: counters.opened.load(Ordering::Relaxed),
            completed: counters.completed.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            peak_open: counters.peak_open.load(Ordering::Relaxed),
            idle,
            peak: Memory {
                hwm_kib: after.hwm_kib,
                ..peak
            },
            after,
            peak_fds,
            after_fds,
            records: None,
            elapsed,
        },
        errors,
    ))
}

/// Reads Sluice's memory every [`SAMPLE_EVERY`] until told to stop; returns the reading with
/// the highest VmRSS and the most descriptors seen.
async fn sample(
    pid: u32,
    counters: Arc<Counters>,
    streams: usize,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<(Memory, Option<usize>)> {
    let mut peak = read_memory(pid)?;
    let mut peak_fds = open_fds(pid);
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    let mut n: u32 = 0;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {}
        }
        let now = read_memory(pid)?;
        if now.rss_kib > peak.rss_kib {
            peak = now;
        }
        if let Some(fds) = open_fds(pid) {
            peak_fds = Some(peak_fds.map_or(fds, |p| p.max(fds)));
        }
        n += 1;
        if n.is_multiple_of(PROGRESS_EVERY) {
            eprintln!(
                "sluice-bench:   opened {}/{streams}, open {}, completed {}, failed {}; \
                 sluice RSS {} (anon {})",
                counters.opened.load(Ordering::Relaxed),
                counters.open.load(Ordering::Relaxed),
                counters.completed.load(Ordering::Relaxed),
                counters.failed.load(Ordering::Relaxed),
                mb(now.rss_kib),
                mb(now.anon_kib)
            );
        }
    }
    Ok((peak, peak_fds))
}

/// Counts a stream as open from its response head to the end of its body.
struct OpenGuard<'a>(&'a Counters);

impl<'a> OpenGuard<'a> {
    fn new(counters: &'a Counters) -> Self {
        let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
        counters.peak_open.fetch_max(open, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps only the last bytes of a body: enough for the `[DONE]` check and an error's text.
const TAIL: usize = 512;

/// One slow stream, read to its end.
async fn one_stream(
    client: &HttpClient,
    request: &Target,
    counters: &Counters,
) -> Result<(), Failure> {
    let response = crate::load::send(client, request, &request.uris[0]).await?;
    let _open = OpenGuard::new(counters);
    let status = response.status();
    let mut body = response.into_body();
    let mut tail: Vec<u8> = Vec::with_capacity(TAIL * 2);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Failure::new("reading body", format!("{:#}", anyhow::anyhow!(e))))?;
        if let Ok(data) = frame.into_data() {
            tail.extend_from_slice(&data);
            if tail.len() > TAIL {
                tail.drain(..tail.len() - TAIL);
            }
        }
    }
    crate::load::check_response(status, &tail, true)
}

/// Polls the usage summary until it counts `expected` requests (or [`RECORDS_WAIT`] passes).
async fn usage_records(
    client: &HttpClient,
    addr: SocketAddr,
    token: &str,
    expected: u64,
) -> Option<u64> {
    let until = Instant::now() + RECORDS_WAIT;
    let mut last = None;
    loop {
        if let Ok(summary) = servers::get_json(client, addr, "/api/usage/summary", token).await {
            last = summary["data"]["requests"].as_u64();
        }
        if last.is_some_and(|n| n >= expected) || Instant::now() >= until {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One row per round.
fn table(rounds: &[Round], streams: usize) -> Table {
    let rows = rounds
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let grown = r.peak.rss_kib.saturating_sub(r.idle.rss_kib) as f64 * 1024.0;
            vec![
                (i + 1).to_string(),
                r.opened.to_string(),
                r.completed.to_string(),
                r.failed.to_string(),
                r.peak_open.to_string(),
                format!("{:.1}", r.elapsed.as_secs_f64()),
                mb(r.idle.rss_kib),
                mb(r.peak.rss_kib),
                mb(r.after.rss_kib),
                format!("{} / {}", mb(r.peak.anon_kib), mb(r.peak.file_kib)),
                format!("{} / {}", mb(r.after.anon_kib), mb(r.after.file_kib)),
                mb(r.after.hwm_kib),
                format!("{:.1} kB", grown / streams.max(1) as f64 / 1000.0),
                r.peak_fds.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                r.after_fds
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                r.records.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            ]
        })
        .collect();
    Table {
        columns: vec![
            ("round", Align::Right),
            ("opened", Align::Right),
            ("completed", Align::Right),
            ("failed", Align::Right),
            ("peak open", Align::Right),
            ("round s", Align::Right),
            ("RSS idle", Align::Right),
            ("RSS peak", Align::Right),
            ("RSS after", Align::Right),
            ("peak anon / file", Align::Right),
            ("after anon / file", Align::Right),
            ("VmHWM", Align::Right),
            ("(peak − idle) / N", Align::Right),
            ("peak fds", Align::Right),
            ("fds after", Align::Right),
            ("usage records", Align::Right),
        ],
        rows,
    }
}

/// The target, and growth across rounds, in a sentence.
fn verdict(rounds: &[Round]) -> String {
    let (Some(first), Some(last)) = (rounds.first(), rounds.last()) else {
        return String::new();
    };
    let peak = rounds.iter().map(|r| r.peak.rss_kib).max().unwrap_or(0);
    let met = if peak * 1024 <= 500_000_000 {
        "met"
    } else {
        "not met"
    };
    format!(
        "Peak RSS {} (target ≤ 500 MB: {met}); after-round RSS {} in round 1, {} in round {} \
         ({:+.1} MB); peak RSS {} in round 1, {} in round {}.\n",
        mb(peak),
        mb(first.after.rss_kib),
        mb(last.after.rss_kib),
        rounds.len(),
        (last.after.rss_kib as f64 - first.after.rss_kib as f64) * 1024.0 / 1e6,
        mb(first.peak.rss_kib),
        mb(last.peak.rss_kib),
        rounds.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsluice\nVmPeak:\t 1234567 kB\nVmHWM:\t   48000 kB\n\
        VmRSS:\t   43000 kB\nRssAnon:\t   21000 kB\nRssFile:\t   22000 kB\n\
        RssShmem:\t       0 kB\nThreads:\t3\n";

    #[test]
    fn status_lines_parse_to_kib() {
        assert_eq!(
            parse_status(STATUS),
            Some(Memory {
                rss_kib: 43_000,
                anon_kib: 21_000,
                file_kib: 22_000,
                hwm_kib: 48_000,
            })
        );
        // VmRSS must not match VmRSSx or a field without its unit.
        assert_eq!(parse_status("VmRSS:\t12\nRssAnon:\t1 kB\n"), None);
        assert_eq!(parse_status("Name:\tsluice\n"), None);
    }

    #[test]
    fn descriptors_cap_the_streams() {
        assert_eq!(fds_needed(10_000), 20_256);
        assert_eq!(streams_that_fit(fds_needed(10_000)), 10_000);
        assert_eq!(streams_that_fit(20_000), 9_872);
        assert_eq!(streams_that_fit(100), 0);
    }

    #[test]
    fn megabytes_are_decimal() {
        assert_eq!(mb(43_000), "44.0 MB");
        assert_eq!(mb(0), "0.0 MB");
    }
}
