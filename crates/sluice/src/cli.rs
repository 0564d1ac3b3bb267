//! The `sluice users …` and `sluice usage …` commands: they open the store of the config's
//! `data-dir` directly (safe while a gateway runs on it: SQLite in WAL mode).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::accounts::{check_password, check_username, hash_password, open_store};
use crate::api::usage::record_json;
use crate::config::{CONFIG_ENV, Config};
use crate::store::{NewUser, Role, UsageFilter};

pub mod login;
pub mod store;

/// Environment variable a new user's password may come from.
pub const PASSWORD_ENV: &str = "SLUICE_USER_PASSWORD";

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password comes from --password-stdin, else $SLUICE_USER_PASSWORD.
    Create {
        /// Config file (for its data-dir).
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
        #[arg(long)]
        username: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Write usage records, oldest first, as CSV or JSON lines.
    Export {
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// First day (YYYY-MM-DD, in the configured time zone); default: the first record.
        #[arg(long)]
        start: Option<String>,
        /// Last day (YYYY-MM-DD); default: the last record.
        #[arg(long)]
        end: Option<String>,
        /// Only this user's records.
        #[arg(long)]
        user_id: Option<i64>,
        /// Only this key's records.
        #[arg(long)]
        api_key_id: Option<i64>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

pub(crate) fn load(path: &Path) -> Result<Config, String> {
    Config::load(path).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        format!("invalid config {}:\n{}", path.display(), list.join("\n"))
    })
}

pub(crate) fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(f)
}

pub(crate) fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `sluice users …`.
pub fn run_users(command: UsersCommand) -> ExitCode {
    finish(match command {
        UsersCommand::Create {
            config,
            username,
            admin,
            password_stdin,
        } => create_user(&config, &username, admin, password_stdin),
        UsersCommand::List { config } => list_users(&config),
    })
}

fn create_user(config: &Path, username: &str, admin: bool, stdin: bool) -> Result<(), String> {
    let config = load(config)?;
    check_username(username).map_err(|e| format!("--username: {e}"))?;
    let password = if stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        std::env::var(PASSWORD_ENV)
            .map_err(|_| format!("give the password with --password-stdin or in ${PASSWORD_ENV}"))?
    };
    check_password(&password)?;
    let password_hash = hash_password(&password).map_err(|e| e.to_string())?;
    let role = if admin { Role::Admin } else { Role::User };
    let user = block_on(async {
        let store = open_store(&config).await.map_err(|e| format!("{e:#}"))?;
        store
            .create_user(
                NewUser {
                    username: username.to_string(),
                    password_hash,
                    role,
                },
                chrono::Utc::now().timestamp_millis(),
            )
            .await
            .map_err(|e| e.to_string())
    })?;
    println!(
        "created {} `{}` (id {})",
        user.role.as_str(),
        user.username,
        user.id
    );
    Ok(())
}

fn list_users(config: &Path) -> Result<(), String> {
    let config = load(config)?;
    let users = block_on(async {
        let store = open_store(&config).await.map_err(|e| format!("{e:#}"))?;
        store.list_users().await.map_err(|e| e.to_string())
    })?;
    for u in users {
        println!(
            "{}\t{}\t{}\t{}",
            u.id,
            u.username,
            u.role.as_str(),
            u.status.as_str()
        );
    }
    Ok(())
}

/// Runs `sluice usage …`.
pub fn run_usage(command: UsageCommand) -> ExitCode {
    let UsageCommand::Export {
        config,
        format,
        start,
        end,
        user_id,
        api_key_id,
        output,
    } = command;
    finish(export(
        &config, format, start, end, user_id, api_key_id, output,
    ))
}

const CSV_COLUMNS: [&str; 30] = [
    "request_id",
    "time",
    "day",
    "endpoint",
    "user_id",
    "api_key_id",
    "key",
    "provider",
    "credential",
    "platform",
    "model_requested",
    "model_served",
    "stream",
    "status",
    "error",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "audio_seconds",
    "characters",
    "images",
    "documents",
    "search_units",
    "cost",
    "estimated",
    "latency_ms",
    "ttft_ms",
    "record_id",
];

fn check_day(value: Option<String>, flag: &str, default: &str) -> Result<String, String> {
    match value {
        None => Ok(default.to_string()),
        Some(v) => chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
            .map(|_| v.clone())
            .map_err(|_| format!("{flag}: `{v}` is not a day like 2025-12-31")),
    }
}

fn export(
    config: &Path,
    format: Format,
    start: Option<String>,
    end: Option<String>,
    user_id: Option<i64>,
    api_key_id: Option<i64>,
    output: Option<PathBuf>,
) -> Result<(), String> {
    let config = load(config)?;
    let filter = UsageFilter {
        user_id,
        api_key_id,
        start_day: check_day(start, "--start", "0000-01-01")?,
        end_day: check_day(end, "--end", "9999-12-31")?,
    };
    let mut rows = block_on(async {
        let store = open_store(&config).await.map_err(|e| format!("{e:#}"))?;
        store
            .usage_records(&filter, 0)
            .await
            .map_err(|e| e.to_string())
    })?;
    rows.reverse();
    let out: Box<dyn Write> = match &output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| format!("--output: cannot create {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(out);
    let io = |e: std::io::Error| format!("cannot write the export: {e}");
    match format {
        Format::Jsonl => {
            for row in &rows {
                writeln!(out, "{}", record_json(row)).map_err(io)?;
            }
        }
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(CSV_COLUMNS)
                .map_err(|e| format!("cannot write the export: {e}"))?;
            for row in &rows {
                let json = record_json(row);
                let fields = CSV_COLUMNS.iter().map(|c| match &json[*c] {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                csv.write_record(fields)
                    .map_err(|e| format!("cannot write the export: {e}"))?;
            }
            csv.flush().map_err(io)?;
            return Ok(());
        }
    }
    out.flush().map_err(io)?;
    Ok(())
}
