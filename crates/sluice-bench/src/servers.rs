//! Starting the two servers under test: the fake upstream `sluice-mock`, and Sluice configured
//! to route to it. Both are killed when [`Servers`] is dropped, on every exit path.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::load::HttpClient;

/// The key benchmark clients present to Sluice.
pub const SLUICE_API_KEY: &str = "sk-bench-key";
/// The key Sluice presents upstream (the mock is started without `--api-key`, so it is not checked,
/// but direct requests carry it too so both paths send the same headers).
pub const UPSTREAM_API_KEY: &str = "bench-upstream-key";
/// The model name the mock serves.
pub const MOCK_MODEL: &str = "mock-model";
/// The alias Sluice rewrites to [`MOCK_MODEL`].
pub const SLUICE_MODEL: &str = "bench-model";
/// The admin Sluice creates at start-up, who creates the stored key.
pub const ADMIN: (&str, &str) = ("bench", "bench-password");

/// Generous: under valgrind (`--instructions`) Sluice starts about fifty times slower.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the two server binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub sluice: PathBuf,
    pub mock: PathBuf,
}

impl Binaries {
    /// Uses the given paths, or the release builds in the workspace's target directory.
    pub fn locate(sluice: Option<PathBuf>, mock: Option<PathBuf>) -> Result<Self> {
        let release = target_dir().join("release");
        let binaries = Self {
            sluice: sluice.unwrap_or_else(|| release.join("sluice")),
            mock: mock.unwrap_or_else(|| release.join("sluice-mock")),
        };
        for (name, path) in [
            ("sluice", &binaries.sluice),
            ("sluice-mock", &binaries.mock),
        ] {
            if !path.is_file() {
                bail!(
                    "{name} binary not found at {}: build it first with \
                     `cargo build --release -p sluice -p sluice-mock` \
                     (or point --{} at it)",
                    path.display(),
                    if name == "sluice" { "sluice" } else { "mock" },
                );
            }
        }
        Ok(binaries)
    }
}

/// The workspace's target directory: `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    workspace_root().join("target")
}

/// The nearest ancestor of the current directory that is this workspace's root, falling back
/// to where this crate was compiled from (so the binary also works when run from elsewhere).
fn workspace_root() -> PathBuf {
    let is_root = |dir: &Path| dir.join("crates/sluice-bench/Cargo.toml").is_file();
    if let Ok(cwd) = std::env::current_dir()
        && let Some(root) = cwd.ancestors().find(|d| is_root(d))
    {
        return root.to_path_buf();
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// The running mock and Sluice, plus the temporary directory holding config and logs.
pub struct Servers {
    mock: Child,
    sluice: Child,
    pub mock_addr: SocketAddr,
    pub sluice_addr: SocketAddr,
    mock_log: PathBuf,
    sluice_log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Servers {
    /// Starts the mock, then Sluice in front of it, and waits until both serve.
    pub async fn start(binaries: &Binaries, client: &HttpClient) -> Result<Self> {
        let scratch = tempfile::Builder::new()
            .prefix("sluice-bench-")
            .tempdir()
            .context("creating a temporary directory for config and logs")?;
        let mock_log = scratch.path().join("sluice-mock.log");
        let sluice_log = scratch.path().join("sluice.log");

        let (mock, mock_addr) = start_mock(&binaries.mock, &mock_log).await?;

        let sluice_addr = free_local_addr()?;
        let data_dir = scratch.path().join("data");
        let sluice = spawn_sluice(
            binaries,
            scratch.path(),
            "sluice",
            &sluice_config(sluice_addr, mock_addr, &data_dir),
        )?;

        let mut servers = Self {
            mock,
            sluice,
            mock_addr,
            sluice_addr,
            mock_log,
            sluice_log,
            _scratch: scratch,
        };
        servers.wait_for_sluice(client).await?;
        Ok(servers)
    }

    async fn wait_for_sluice(&mut self, client: &HttpClient) -> Result<()> {
        wait_ready(&mut self.sluice, self.sluice_addr, &self.sluice_log, client).await
    }

    /// CPU time each server has used so far (mock, Sluice): all threads, from the kernel's
    /// scheduler statistics. Unlike wall-clock throughput it does not depend on what else the
    /// machine is doing, so it is the steadier measure of what a request costs.
    pub fn cpu_time(&self) -> (Option<Duration>, Option<Duration>) {
        (process_cpu(self.mock.id()), process_cpu(self.sluice.id()))
    }

    /// Creates the stored API key every keyed scenario uses (see [`stored_key`]).
    pub async fn stored_key(&self, client: &HttpClient) -> Result<String> {
        stored_key(client, self.sluice_addr).await
    }

    /// Fails with the server's own output if either server has died since startup.
    pub fn ensure_alive(&mut self) -> Result<()> {
        if let Some(status) = self.mock.try_wait().context("checking on sluice-mock")? {
            bail!(
                "sluice-mock exited mid-run ({status}); its output:\n{}",
                log_tail(&self.mock_log)
            );
        }
        if let Some(status) = self.sluice.try_wait().context("checking on sluice")? {
            bail!(
                "sluice exited mid-run ({status}); its output:\n{}",
                log_tail(&self.sluice_log)
            );
        }
        Ok(())
    }
}

/// Starts the mock on an ephemeral port and learns the port from its banner line.
pub async fn start_mock(binary: &Path, log_path: &Path) -> Result<(Child, SocketAddr)> {
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut mock = Command::new(binary)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-record",
            "--model",
            MOCK_MODEL,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = mock
        .stdout
        .take()
        .context("sluice-mock's stdout was not captured")?;
    let mut lines = BufReader::new(stdout).lines();
    let banner = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = parse_listen_banner(&line) {
                return Ok(Some(addr));
            }
        }
        Ok::<_, std::io::Error>(None)
    };
    let addr = match tokio::time::timeout(STARTUP_TIMEOUT, banner).await {
        Ok(Ok(Some(addr))) => addr,
        Ok(Ok(None)) => bail!(
            "sluice-mock closed its stdout without printing `sluice-mock listening on http://…`; \
             its stderr:\n{}",
            log_tail(log_path)
        ),
        Ok(Err(e)) => return Err(e).context("reading sluice-mock's stdout"),
        Err(_) => bail!(
            "sluice-mock did not report its address within {} s; its stderr:\n{}",
            STARTUP_TIMEOUT.as_secs(),
            log_tail(log_path)
        ),
    };
    // Keep draining stdout so a chatty mock never blocks on a full pipe.
    let mut rest = lines.into_inner();
    tokio::spawn(async move { tokio::io::copy(&mut rest, &mut tokio::io::sink()).await });
    Ok((mock, addr))
}

/// Extracts the address from `sluice-mock listening on http://127.0.0.1:PORT`.
pub fn parse_listen_banner(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on http://")?;
    rest.trim().trim_end_matches('/').parse().ok()
}

/// Starts `sluice serve` with `config` written to `<dir>/<name>.yaml`, logging to
/// `<dir>/<name>.log`.
pub fn spawn_sluice(binaries: &Binaries, dir: &Path, name: &str, config: &str) -> Result<Child> {
    spawn_sluice_wrapped(binaries, dir, name, config, &[])
}

/// [`spawn_sluice`] under `wrapper` (a command line such as `valgrind --tool=callgrind`).
pub fn spawn_sluice_wrapped(
    binaries: &Binaries,
    dir: &Path,
    name: &str,
    config: &str,
    wrapper: &[String],
) -> Result<Child> {
    let config_path = dir.join(format!("{name}.yaml"));
    std::fs::write(&config_path, config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(&binaries.sluice);
            command
        }
        None => Command::new(&binaries.sluice),
    };
    command
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file handle")?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binaries.sluice.display()))
}

/// Polls `/readyz` until a Sluice answers 200, failing early if it exits.
pub async fn wait_ready(
    sluice: &mut Child,
    addr: SocketAddr,
    log: &Path,
    client: &HttpClient,
) -> Result<()> {
    let uri: hyper::Uri = format!("http://{addr}/readyz")
        .parse()
        .context("building the readiness URL")?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = sluice.try_wait().context("checking on sluice")? {
            bail!(
                "sluice exited during startup ({status}); its output:\n{}",
                log_tail(log)
            );
        }
        let request = Request::get(uri.clone())
            .body(Full::default())
            .context("building the readiness request")?;
        let last = match tokio::time::timeout(Duration::from_secs(1), client.request(request)).await
        {
            Ok(Ok(response)) if response.status() == StatusCode::OK => return Ok(()),
            Ok(Ok(response)) => format!("GET /readyz answered {}", response.status()),
            Ok(Err(e)) => format!("GET /readyz failed: {:#}", anyhow::anyhow!(e)),
            Err(_) => "GET /readyz took over 1 s".to_owned(),
        };
        if Instant::now() >= deadline {
            bail!(
                "sluice was not ready within {} s ({last}); its output:\n{}",
                STARTUP_TIMEOUT.as_secs(),
                log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs in as the bench admin and creates a stored API key (seed 004) with generous limits,
/// so every limit is checked and counted but none refuses: requests per minute and per day,
/// and a monthly quota that reserves and settles each request's cost.
pub async fn stored_key(client: &HttpClient, addr: SocketAddr) -> Result<String> {
    let token = sign_in(client, addr).await?;
    create_key(client, addr, &token).await
}

/// Signs in as the bench admin and returns the session token.
pub async fn sign_in(client: &HttpClient, addr: SocketAddr) -> Result<String> {
    let login = post_json(
        client,
        addr,
        "/api/auth/login",
        None,
        serde_json::json!({"username": ADMIN.0, "password": ADMIN.1}),
    )
    .await?;
    let token = login["data"]["token"]
        .as_str()
        .with_context(|| format!("signing in to sluice failed: {login}"))?
        .to_owned();
    Ok(token)
}

/// Creates the stored key of [`stored_key`] with the admin session `token`.
pub async fn create_key(client: &HttpClient, addr: SocketAddr, token: &str) -> Result<String> {
    let created = post_json(
        client,
        addr,
        "/api/api-keys",
        Some(token),
        serde_json::json!({"name": "bench", "rate_limit": 1_000_000_000,
            "daily_limit": 1_000_000_000, "monthly_quota": 1_000_000}),
    )
    .await?;
    created["data"]["key"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("creating a key failed: {created}"))
}

async fn post_json(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let mut request =
        Request::post(format!("http://{addr}{path}")).header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .context("building an /api request")?;
    exchange_json(client, request, &format!("POST {path}")).await
}

/// Sends an `/api` request (`what`: its method and path, for errors) and reads the JSON answer.
async fn exchange_json(
    client: &HttpClient,
    request: Request<Full<bytes::Bytes>>,
    what: &str,
) -> Result<serde_json::Value> {
    use http_body_util::BodyExt as _;
    let response = tokio::time::timeout(Duration::from_secs(60), client.request(request))
        .await
        .with_context(|| format!("{what} timed out"))?
        .with_context(|| format!("{what} failed"))?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the answer to {what}"))?
        .to_bytes();
    serde_json::from_slice(&bytes).with_context(|| format!("{what} answered non-JSON"))
}

/// `GET path` with the admin session `token`, answered as JSON.
pub async fn get_json(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> Result<serde_json::Value> {
    let request = Request::get(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .context("building an /api request")?;
    exchange_json(client, request, &format!("GET {path}")).await
}

/// A loopback address with a port nothing is using right now (the OS picks it).
pub fn free_local_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free local port")?;
    listener.local_addr().context("reading the free port")
}

/// Sluice's config: one key for the benchmark, one mock provider, one alias, an admin who
/// creates the stored key, and a price for the mock's model so every request is costed.
pub fn sluice_config(listen: SocketAddr, mock: SocketAddr, data_dir: &Path) -> String {
    format!(
        "\
listen: {listen}
api-keys: [{SLUICE_API_KEY}]
log-level: warn
data-dir: {data_dir}
auth: {{admin: {{username: {admin}, password: {password}}}}}
prices: {{{MOCK_MODEL}: {{input: 0.15, output: 0.60}}}}
providers:
  - name: mock
    kind: openai-compatible
    platform: openai
    base-url: http://{mock}/v1
    api-keys: [{UPSTREAM_API_KEY}]
    models:
      - name: {MOCK_MODEL}
        alias: {SLUICE_MODEL}
",
        data_dir = data_dir.display(),
        admin = ADMIN.0,
        password = ADMIN.1,
    )
}

/// The last few kilobytes of a server's log, for error messages.
pub fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => "(no output)".to_owned(),
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(4096);
            String::from_utf8_lossy(bytes.get(start..).unwrap_or(&bytes)).into_owned()
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// Sum of `/proc/<pid>/task/*/schedstat` on-CPU nanoseconds.
pub fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pid?)).ok()?;
    let mut total: u64 = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_parses_to_the_mock_address() {
        let addr = parse_listen_banner("sluice-mock listening on http://127.0.0.1:43117");
        assert_eq!(addr, "127.0.0.1:43117".parse().ok());
        assert_eq!(parse_listen_banner("starting up"), None);
    }

    #[test]
    fn config_routes_the_alias_to_the_mock() {
        let yaml = sluice_config(
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            SocketAddr::from(([127, 0, 0, 1], 9090)),
            Path::new("/tmp/data"),
        );
        assert!(yaml.contains("listen: 127.0.0.1:8080\n"));
        assert!(yaml.contains("base-url: http://127.0.0.1:9090/v1\n"));
        assert!(yaml.contains("- name: mock-model\n        alias: bench-model\n"));
    }
}
