//! `sluice-mock`: run the fake upstream as its own process.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use sluice_mock::{MockConfig, MockServer};
use tracing_subscriber::EnvFilter;

/// A faithful fake of the OpenAI (Chat Completions, Responses), Anthropic Messages and Gemini
/// APIs, for tests, demos and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "sluice-mock", version, about)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Model to serve (repeatable); none = accept any model name.
    #[arg(long = "model", value_name = "NAME")]
    models: Vec<String>,
    /// Upstream key to require, read where each provider reads it (`Authorization: Bearer`,
    /// `x-api-key`, `x-goog-api-key` or `?key=`) (repeatable); none = accept any.
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,
    /// Do not record requests (for benchmarks).
    #[arg(long)]
    no_record: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let cli = Cli::parse();
    let config = MockConfig {
        models: cli.models,
        api_keys: cli.api_keys,
        record: !cli.no_record,
    };
    let server = MockServer::bind(cli.listen, config)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    // Tests and the benchmark wait for this exact line.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "sluice-mock listening on http://{}", server.addr())?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await?;
    drop(server);
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
