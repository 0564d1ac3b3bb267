//! `sluice login claude|codex|gemini`: sign a subscription account in from a terminal (a server
//! without a browser first), and write its token file into the config's `auth-dir`.
//!
//! - Codex: the device-code flow (a code to enter at OpenAI's page; polled at the server's
//!   interval), or `--browser`: PKCE, pasting the redirect URL the browser ends on.
//! - Claude: PKCE; paste the `code#state` Claude's page shows (or the full redirect URL), or let
//!   `--callback` receive it on this machine. Requires `--accept-risk`.
//! - Gemini: Google's user-code flow with PKCE, then Code Assist project discovery.
//!
//! Tokens, codes and states are never printed (the authorize URL carries the state, as it
//! must) and nothing is logged.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use sluice_oauth::Kind;
use sluice_oauth::login;

use crate::config::CONFIG_ENV;
use crate::oauth::login::{self as flow, Ctx, Finish};

/// `sluice login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// claude, codex or gemini.
    pub provider: String,
    /// Config file (for its `auth-dir`, `oauth:` endpoints and proxy).
    #[arg(long, short, env = CONFIG_ENV)]
    pub config: PathBuf,
    /// Codex: sign in with a browser (PKCE) instead of a device code.
    #[arg(long)]
    pub browser: bool,
    /// Claude: confirm you use your own subscription, at your own risk (required).
    #[arg(long)]
    pub accept_risk: bool,
    /// Claude, Codex --browser: also receive the callback on this machine (a browser here, or
    /// an `ssh -L` tunnel), on the client's registered port (Claude 54545, Codex 1455).
    #[arg(long)]
    pub callback: bool,
    /// Gemini: the Google Cloud project (else Code Assist's own).
    #[arg(long)]
    pub project: Option<String>,
    /// The token file's name (default `<provider>-<email>.json`).
    #[arg(long)]
    pub name: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Gemini: pause between polls of the onboarding operation.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, hide = true)]
    pub poll_interval: Duration,
}

/// Why Claude's sign-in needs an explicit opt-in.
pub const CLAUDE_RISK: &str = "Claude Pro/Max subscriptions are for your own use. Anthropic does not permit routing requests \
through Free, Pro or Max plan credentials on behalf of other users, and may bill such traffic to extra usage or \
suspend the account. Sign in only your own subscription, for your own use, at your own risk. \
Re-run with --accept-risk to confirm.";

/// Runs `sluice login …`.
pub fn run(args: LoginArgs) -> std::process::ExitCode {
    crate::cli::finish(run_inner(args))
}

fn run_inner(args: LoginArgs) -> Result<(), String> {
    let kind = match args.provider.as_str() {
        "claude" => Kind::Claude,
        "codex" => Kind::Codex,
        "gemini" => Kind::Gemini,
        "qwen" => {
            return Err("Qwen's OAuth free tier was discontinued on 2026-04-15: there is no `login qwen`. Use an Alibaba Cloud Coding Plan or ModelStudio API key (provider kind `qwen` / `openai-compatible`).".into());
        }
        other => {
            return Err(format!(
                "unknown provider `{other}` (claude, codex or gemini)"
            ));
        }
    };
    if kind == Kind::Claude && !args.accept_risk {
        return Err(CLAUDE_RISK.into());
    }
    if args.browser && kind != Kind::Codex {
        return Err(
            "--browser is for codex (Claude and Gemini always sign in with a browser)".into(),
        );
    }
    let config = crate::cli::load(&args.config)?;
    let ctx = Ctx::new(&config, kind)?;
    let opts = Finish {
        project: args.project.clone(),
        name: args.name.clone(),
        poll: Some(args.poll_interval),
    };
    crate::cli::block_on(async move {
        let saved = if kind == Kind::Codex && !args.browser {
            device(&ctx, &opts, args.timeout).await?
        } else {
            pkce(&ctx, &opts, &args).await?
        };
        say(&format!(
            "Signed in{}: wrote {} (0600) in {}; a running gateway picks it up.",
            saved
                .email
                .as_deref()
                .map(|e| format!(" as {e}"))
                .unwrap_or_default(),
            saved.file,
            ctx.dir.display()
        ));
        if let Some(project) = &saved.project {
            say(&format!("Code Assist project: {project}"));
        }
        Ok(())
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn device(ctx: &Ctx, opts: &Finish, timeout: Duration) -> Result<flow::Saved, String> {
    let code =
        sluice_oauth::flow::codex_user_code(&ctx.http, &ctx.urls, &ctx.endpoints.client_id).await?;
    say("To sign in your ChatGPT account, open this page in any browser:");
    say(&format!("  {}", ctx.urls.verification_url));
    say("and enter this one-time code (it expires in 15 minutes):");
    say(&format!("  {}", code.user_code));
    say("Waiting for the approval…");
    let grant = sluice_oauth::flow::codex_device_wait(&ctx.http, &ctx.urls, &code, timeout).await?;
    flow::finish_device(ctx, &grant, opts).await
}

async fn pkce(ctx: &Ctx, opts: &Finish, args: &LoginArgs) -> Result<flow::Saved, String> {
    let listener = if args.callback {
        let (port, path) = match ctx.kind {
            Kind::Claude => (54545, "/callback"),
            _ => (1455, "/auth/callback"),
        };
        Some(callback::Listener::bind(port, path).await?)
    } else {
        None
    };
    let redirect = listener.as_ref().map(callback::Listener::redirect_uri);
    let pending = flow::begin(ctx, redirect.as_deref(), args.timeout)?;
    match ctx.kind {
        Kind::Claude => {
            say(
                "Claude: you are signing in your own subscription, for your own use (--accept-risk given).",
            );
            say("Open this URL in a browser and sign in:");
            say(&format!("  {}", pending.url));
            say("Then paste the code Claude shows (`code#state`) or the full redirect URL here:");
        }
        Kind::Codex => {
            say("Open this URL in a browser and sign in:");
            say(&format!("  {}", pending.url));
            say(
                "The browser then goes to a localhost address that may not load: paste that full URL here:",
            );
        }
        _ => {
            say("Open this URL in a browser and sign in with your Google account:");
            say(&format!("  {}", pending.url));
            say("Then paste the authorization code Google shows here:");
        }
    }
    if listener.is_some() {
        say("(or finish in the browser: this machine also listens for the callback)");
    }
    let wait = args.timeout;
    let pasted = tokio::time::timeout(wait, async {
        match listener {
            // The callback wins a tie, and a closed standard input (a service manager, `< /dev/null`)
            // leaves the browser to finish.
            Some(l) => {
                let callback = l.next();
                tokio::pin!(callback);
                tokio::select! {
                    biased;
                    got = &mut callback => got,
                    line = read_line() => match line? {
                        Some(line) => Ok(line),
                        None => callback.await,
                    },
                }
            }
            None => read_line()
                .await?
                .ok_or_else(|| "standard input closed before a code was pasted".to_string()),
        }
    })
    .await
    .map_err(|_| "no code arrived in time: run the command again".to_string())??;
    let pasted = login::parse_pasted(&pasted)?;
    flow::finish_pasted(ctx, pending, &pasted, opts).await
}

/// One line of standard input (read on its own thread: stdin has no async reader here); `None` when
/// it is closed.
async fn read_line() -> Result<Option<String>, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let result = std::io::stdin()
            .read_line(&mut line)
            .map(|n| (n, line))
            .map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    match rx.await {
        Ok(Ok((0, _))) => Ok(None),
        Ok(Ok((_, line))) => Ok(Some(line)),
        Ok(Err(e)) => Err(format!("cannot read standard input: {e}")),
        Err(_) => Err("cannot read standard input".into()),
    }
}

/// A local callback listener on 127.0.0.1: the first request to its path hands over its query.
mod callback {
    use std::sync::{Arc, Mutex};

    use axum::extract::RawQuery;
    use axum::response::Html;

    pub struct Listener {
        port: u16,
        path: &'static str,
        rx: tokio::sync::mpsc::Receiver<String>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Listener {
        pub async fn bind(port: u16, path: &'static str) -> Result<Listener, String> {
            let socket = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| format!("cannot listen on localhost:{port} for the callback: {e}"))?;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let tx = Arc::new(Mutex::new(Some(tx)));
            let app = axum::Router::new().route(
                path,
                axum::routing::get(move |RawQuery(query): RawQuery| {
                    let tx = tx.lock().ok().and_then(|mut t| t.take());
                    async move {
                        if let Some(tx) = tx {
                            let _ = tx.send(format!("?{}", query.unwrap_or_default())).await;
                        }
                        Html("<!doctype html><title>Sluice</title><p>Signed in: you can close this tab and return to the terminal.</p>")
                    }
                }),
            );
            let task = tokio::spawn(async move {
                let _ = axum::serve(socket, app).await;
            });
            Ok(Listener {
                port,
                path,
                rx,
                task,
            })
        }

        pub fn redirect_uri(&self) -> String {
            format!("http://localhost:{}{}", self.port, self.path)
        }

        pub async fn next(mut self) -> Result<String, String> {
            let got = self.rx.recv().await;
            self.task.abort();
            got.ok_or_else(|| "the callback listener stopped".into())
        }
    }
}
