//! The `sluice` command.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::config::{CONFIG_ENV, Config, ConfigError, LogFormat};
use sluice::pipeline::account::TracingSink;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: a gateway allocates and frees small buffers on
/// several threads at once, where glibc's arenas contend (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sluice", version, about = "Self-hosted AI API gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (YAML).
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
        /// Listen address, overriding the config's `listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage users (in the store of the config's data-dir).
    Users {
        #[command(subcommand)]
        command: sluice::cli::UsersCommand,
    },
    /// Read recorded usage.
    Usage {
        #[command(subcommand)]
        command: sluice::cli::UsageCommand,
    },
    /// Apply pending schema migrations to the config's store (`serve` does it too).
    Migrate {
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
    },
    /// Sign a subscription account in (claude, codex, gemini) and write its token file into
    /// the config's auth-dir.
    Login(sluice::cli::login::LoginArgs),
    /// Move an installation between stores; prune old usage.
    Store {
        #[command(subcommand)]
        command: sluice::cli::store::StoreCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print every problem, naming the key.
    Check {
        /// Config file; defaults to $SLUICE_CONFIG.
        #[arg(env = CONFIG_ENV)]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match Config::load(&file) {
            Ok(config) => {
                println!(
                    "{}: OK ({} providers, {} client keys)",
                    file.display(),
                    config.providers.len(),
                    config.api_keys.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                report(&file, &errors);
                ExitCode::FAILURE
            }
        },
        Command::Users { command } => sluice::cli::run_users(command),
        Command::Usage { command } => sluice::cli::run_usage(command),
        Command::Migrate { config } => sluice::cli::store::run_migrate(&config),
        Command::Store { command } => sluice::cli::store::run_store(command),
        Command::Login(args) => sluice::cli::login::run(args),
        Command::Serve { config, listen } => {
            let mut loaded = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    report(&config, &errors);
                    return ExitCode::FAILURE;
                }
            };
            if let Some(listen) = listen {
                loaded.listen = listen;
            }
            let export = match sluice::otel::Export::from_env(&loaded.tracing) {
                Ok(export) => export,
                Err(e) => {
                    eprintln!("sluice: tracing: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sluice: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let (log, traces) = match init_logging(&loaded, export.as_ref(), runtime.handle()) {
                Ok(installed) => installed,
                Err(e) => {
                    eprintln!("sluice: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(export) = &export {
                tracing::info!(
                    endpoint = %export.endpoint,
                    service = %export.service_name,
                    sampler = %export.sampler,
                    "exporting traces over OTLP/HTTP"
                );
            }
            let host = sluice::management::Host {
                config_path: Some(config),
                log,
            };
            let served = runtime.block_on(serve(loaded, host));
            // Spans still batched leave before the process does (the runtime, which sends
            // them, is still running).
            if let Some(traces) = traces {
                traces.shutdown();
            }
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("sluice: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Lists every problem; a problem with a key also gets the line that key is on (YAML syntax
/// errors carry their own line and column).
fn report(file: &std::path::Path, errors: &[ConfigError]) {
    eprintln!("sluice: invalid config {}:", file.display());
    let text = std::fs::read_to_string(file).unwrap_or_default();
    for e in errors {
        let message = e.to_string();
        if let Some((what, at)) = message.rsplit_once(" at line ") {
            // yaml_serde's "<key>: <reason> at line L column C" → "line L, column C: <key>: …"
            eprintln!(
                "  - line {}: {what}",
                at.replacen(" column ", ", column ", 1)
            );
            continue;
        }
        match sluice::management::yaml_doc::line_of(&text, &e.key) {
            Some(line) => eprintln!("  - line {line}: {message}"),
            None => eprintln!("  - {message}"),
        }
    }
}

async fn serve(config: Config, host: sluice::management::Host) -> anyhow::Result<()> {
    if config.api_keys.is_empty() && !config.allow_anonymous {
        tracing::warn!(
            "no client `api-keys` configured and `allow-anonymous` is off: every proxied request will be refused with 401"
        );
    }
    let server = sluice::server::start_with(config, vec![Box::new(TracingSink)], host).await?;
    shutdown_signal().await;
    server.shutdown();
    server.wait().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Installs the log subscriber, and the OpenTelemetry layer when traces are exported (never
/// otherwise: with tracing off, no span of `sluice::otel` is even created). The log filter can
/// be replaced at run time (`debug` and `log-level` changes through the management API or the
/// file) unless `RUST_LOG` fixes it.
fn init_logging(
    config: &Config,
    export: Option<&sluice::otel::Export>,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<(
    Option<sluice::management::LogControl>,
    Option<sluice::otel::Traces>,
)> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let filter =
        from_env.unwrap_or_else(|| EnvFilter::new(sluice::management::log_directive(config)));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // The trace spans are for the exporter only: log lines stay as they are.
    let not_spans =
        tracing_subscriber::filter::filter_fn(|meta| meta.target() != sluice::otel::TARGET);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = match config.log_format {
        LogFormat::Json => fmt
            .json()
            .with_filter(filter)
            .with_filter(not_spans)
            .boxed(),
        LogFormat::Text => fmt.with_filter(filter).with_filter(not_spans).boxed(),
    };
    let (traces, otel) = match export {
        Some(export) => {
            let (traces, layer) = sluice::otel::install(export, runtime.clone())?;
            (Some(traces), Some(layer))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(fmt).with(otel).init();
    let control: sluice::management::LogControl = std::sync::Arc::new(move |directive: &str| {
        let _ = handle.reload(EnvFilter::new(directive));
    });
    Ok(((!fixed).then_some(control), traces))
}
