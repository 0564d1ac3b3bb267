//! The reference row: nginx `proxy_pass` with upstream keep-alive in front of the same mock —
//! the least a proxy in the path can cost. Started as a child process from a config generated
//! in a temporary directory (never the system service); absent nginx skips the rows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::process::{Child, Command};

use crate::servers;

/// Where nginx is looked for besides `$PATH` (Debian installs it in /usr/sbin, which is not on
/// every user's path).
const FALLBACK_PATHS: [&str; 2] = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"];

/// The nginx binary, if one is installed.
pub fn locate() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(FALLBACK_PATHS.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// How nginx runs: as the throughput reference (a master and one worker per core, as
/// `worker_processes auto` gives) or as one process (for callgrind, which follows one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Workers,
    SingleProcess,
}

/// A running nginx, stopped when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    error_log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Nginx {
    /// Starts `binary` (optionally under `wrapper`, e.g. valgrind) proxying to `mock`.
    pub async fn start(
        binary: &Path,
        mock: SocketAddr,
        mode: Mode,
        wrapper: &[String],
    ) -> Result<Self> {
        let scratch = tempfile::Builder::new()
            .prefix("sluice-bench-nginx-")
            .tempdir()
            .context("creating a temporary directory for nginx")?;
        let addr = servers::free_local_addr()?;
        let conf = scratch.path().join("nginx.conf");
        std::fs::write(&conf, config(addr, mock, scratch.path(), mode))
            .with_context(|| format!("writing {}", conf.display()))?;
        let error_log = scratch.path().join("error.log");
        let (program, args) = match wrapper.split_first() {
            Some((first, rest)) => (PathBuf::from(first), rest.to_vec()),
            None => (binary.to_path_buf(), Vec::new()),
        };
        let mut command = Command::new(program);
        command.args(args);
        if !wrapper.is_empty() {
            command.arg(binary);
        }
        let child = command
            .arg("-p")
            .arg(scratch.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut nginx = Self {
            child,
            addr,
            error_log,
            _scratch: scratch,
        };
        nginx.wait_listening().await?;
        Ok(nginx)
    }

    async fn wait_listening(&mut self) -> Result<()> {
        // Valgrind makes start-up slow; a plain nginx listens within milliseconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().context("checking on nginx")? {
                bail!(
                    "nginx exited during startup ({status}); its error log:\n{}",
                    servers::log_tail(&self.error_log)
                );
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "nginx did not listen on {} within 30 s; its error log:\n{}",
                    self.addr,
                    servers::log_tail(&self.error_log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id of nginx (its master in [`Mode::Workers`]).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// CPU time of nginx and every worker it forked.
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.id()?;
        let mut total = servers::process_cpu(Some(pid))?;
        for child in children(pid) {
            total += servers::process_cpu(Some(child)).unwrap_or_default();
        }
        Some(total)
    }

    /// Fails with nginx's error log if it has died.
    pub fn ensure_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking on nginx")? {
            bail!(
                "nginx exited mid-run ({status}); its error log:\n{}",
                servers::log_tail(&self.error_log)
            );
        }
        Ok(())
    }

    /// Asks nginx to exit (SIGQUIT: graceful) and waits for it, so a wrapper such as
    /// valgrind writes its results.
    /// Asks for a graceful stop, then a fast one: a graceful stop can wait on the load
    /// generator's idle keep-alive connections.
    pub async fn stop(mut self) -> Result<()> {
        for (name, grace) in [("QUIT", 5), ("TERM", 25)] {
            if let Some(pid) = self.child.id() {
                signal(pid, name)?;
            }
            if let Ok(status) =
                tokio::time::timeout(Duration::from_secs(grace), self.child.wait()).await
            {
                status.context("waiting for nginx")?;
                return Ok(());
            }
        }
        bail!("nginx did not exit within 30 s")
    }
}

/// Sends `signal` (a name `kill` knows) to `pid`.
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed ({status})");
    }
    Ok(())
}

/// Direct children of `pid` (nginx's workers), from `/proc/*/stat`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces, so split after its `)`.
            let (_, rest) = stat.rsplit_once(')')?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// A minimal reverse proxy: no access log, unbuffered relay (a stream's chunks go out as they
/// come in, as Sluice relays them), HTTP/1.1 keep-alive to the upstream.
fn config(listen: SocketAddr, mock: SocketAddr, dir: &Path, mode: Mode) -> String {
    let (master, workers) = match mode {
        Mode::Workers => ("on", "auto"),
        Mode::SingleProcess => ("off", "1"),
    };
    let dir = dir.display();
    format!(
        "\
daemon off;
master_process {master};
worker_processes {workers};
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream mock {{
        server {mock};
        keepalive 64;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
        }}
    }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_upstream_connections_alive_and_relays_unbuffered() {
        let text = config(
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            SocketAddr::from(([127, 0, 0, 1], 9090)),
            Path::new("/tmp/x"),
            Mode::SingleProcess,
        );
        assert!(text.contains("server 127.0.0.1:9090;\n        keepalive 64;"));
        assert!(text.contains("listen 127.0.0.1:8080;"));
        assert!(text.contains("proxy_http_version 1.1;"));
        assert!(text.contains("proxy_set_header Connection \"\";"));
        assert!(text.contains("master_process off;"));
        assert!(text.contains("pid /tmp/x/nginx.pid;"));
    }
}
