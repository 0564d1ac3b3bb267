//! "Test now": one tiny real request to one credential, outside any client request — the
//! dashboard's probe. It is sent the way an attempt is (the provider's own request builder,
//! the credential's client and proxy, a fresh OAuth or pool token), streamed so the time to
//! first byte is measured, and it never touches a usage record, a key's limits or a bill: the
//! caller stores it as a probe (`credential_probes`). It does not change the credential's
//! health either: the operator reads the answer and decides (clear, disable).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_dialect::Dialect;

use crate::gateway::Runtime;
use crate::pipeline::upstream;
use crate::providers::{Credential, Operation, Origin, UpstreamCall};

/// The prompt of a probe: short, and answered in one token by any chat model.
const PROMPT: &str = "Reply with the single word: ok";
/// The longest a probe may take in all.
const BUDGET: Duration = Duration::from_secs(60);

/// What a probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub provider: String,
    pub credential: String,
    /// The upstream model asked.
    pub model: String,
    /// The upstream's HTTP status (0: no answer: connection failure, timeout).
    pub status: u16,
    /// Until the whole answer was read.
    pub latency_ms: f64,
    /// Until the first body byte of a successful answer.
    pub ttft_ms: Option<f64>,
    /// The upstream's words when it failed.
    pub error: Option<String>,
}

/// Why a probe could not be sent at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// No credential has this id.
    UnknownCredential,
    /// The credential's provider does not serve this model (or no chat model at all).
    UnknownModel(String),
}

/// The chat models a credential's provider serves (upstream names, catalog order).
pub fn models_of(runtime: &Runtime, credential: &str) -> Vec<String> {
    let Some((target_provider, _)) = find(runtime, credential) else {
        return Vec::new();
    };
    let mut models: Vec<String> = Vec::new();
    for (name, _) in runtime.catalog().models() {
        let Some(entry) = runtime.catalog().entry(name) else {
            continue;
        };
        for t in &entry.targets {
            if Arc::ptr_eq(&t.provider, &target_provider)
                && t.capabilities.has(sluice_dialect::Capability::Chat)
                && !models.iter().any(|m| **m == *t.upstream_model)
            {
                models.push(t.upstream_model.to_string());
            }
        }
    }
    models
}

/// The provider and credential of an id.
fn find(
    runtime: &Runtime,
    credential: &str,
) -> Option<(Arc<crate::providers::Provider>, Arc<Credential>)> {
    runtime.catalog().providers().iter().find_map(|p| {
        p.common()
            .credentials()
            .iter()
            .find(|c| &*c.id == credential && c.origin != Origin::Caller)
            .map(|c| (p.clone(), c.clone()))
    })
}

/// Sends one tiny streamed chat request for `model` (default: the provider's first chat
/// model) with `credential`.
pub async fn probe(
    runtime: &Runtime,
    credential: &str,
    model: Option<&str>,
    probe_id: &str,
) -> Result<ProbeOutcome, ProbeError> {
    let (provider, mut credential) =
        find(runtime, credential).ok_or(ProbeError::UnknownCredential)?;
    let served = models_of(runtime, &credential.id);
    let model = match model.filter(|m| !m.is_empty()) {
        Some(m) if served.iter().any(|s| s == m) => m.to_string(),
        Some(m) => return Err(ProbeError::UnknownModel(m.to_string())),
        None => served
            .first()
            .cloned()
            .ok_or_else(|| ProbeError::UnknownModel(String::new()))?,
    };
    let common = provider.common();
    let mut outcome = ProbeOutcome {
        provider: common.name.to_string(),
        credential: credential.id.to_string(),
        model: model.clone(),
        status: 0,
        latency_ms: 0.0,
        ttft_ms: None,
        error: None,
    };
    let failed = |mut o: ProbeOutcome, words: String| {
        o.error = Some(words.chars().take(500).collect());
        o
    };
    if credential.origin == Origin::Pool
        && let Some(pool) = &common.pool
    {
        credential = pool.fresh(&credential).await;
    }
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 16,
        "stream": true,
    })
    .to_string();
    let body = Bytes::from(body);
    let Ok(chat) = Dialect::OpenAiChat.probe(&body, None, false, false) else {
        return Ok(failed(
            outcome,
            "the probe request could not be built".into(),
        ));
    };
    let upstream_body = match crate::pipeline::translate::upstream_body(
        Dialect::OpenAiChat,
        provider.dialect(),
        &body,
        &chat,
        &model,
    ) {
        Ok(b) => b,
        Err(e) => return Ok(failed(outcome, e.body.message)),
    };
    let call = UpstreamCall {
        operation: Operation::Generate,
        model: &model,
        stream: true,
        forwarded: &http::HeaderMap::new(),
    };
    let mut request =
        match crate::pipeline::prepare(&provider, &call, &credential, upstream_body, probe_id) {
            Ok(r) => r,
            Err(e) => return Ok(failed(outcome, e.body.message)),
        };
    if let Some(account) = &common.account {
        match account.refresher.fresh(&account.file).await {
            Ok(token) => {
                if let Ok(mut value) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
                    value.set_sensitive(true);
                    request.headers.insert(http::header::AUTHORIZATION, value);
                }
            }
            Err(recovery) => {
                return Ok(failed(
                    outcome,
                    format!("the account's token cannot be used now: {recovery:?}"),
                ));
            }
        }
    }
    let secrets = upstream::secrets_of(&request);
    let started = Instant::now();
    let elapsed =
        |started: Instant| (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let sent = tokio::time::timeout(
        BUDGET,
        upstream::send(
            &credential.http,
            provider.name(),
            request,
            common.timeouts.first_byte,
        ),
    )
    .await;
    let response = match sent {
        Err(_) => {
            outcome.latency_ms = elapsed(started);
            return Ok(failed(
                outcome,
                format!("no answer within {} s", BUDGET.as_secs()),
            ));
        }
        Ok(Err(e)) => {
            outcome.latency_ms = elapsed(started);
            return Ok(failed(outcome, e.body.message));
        }
        Ok(Ok(r)) => r,
    };
    outcome.status = response.status().as_u16();
    if !response.status().is_success() {
        let refusal = upstream::error_from_response(
            provider.name(),
            provider.dialect(),
            response,
            common.timeouts.idle,
            &secrets,
        )
        .await;
        outcome.latency_ms = elapsed(started);
        return Ok(failed(outcome, refusal.error.body.message));
    }
    let mut response = response;
    let deadline = started + BUDGET;
    loop {
        let wait = common
            .timeouts
            .idle
            .min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                if outcome.ttft_ms.is_none() && !chunk.is_empty() {
                    outcome.ttft_ms = Some(elapsed(started));
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                outcome.latency_ms = elapsed(started);
                return Ok(failed(outcome, upstream::describe(e)));
            }
            Err(_) => {
                outcome.latency_ms = elapsed(started);
                return Ok(failed(outcome, "the answer stalled".into()));
            }
        }
    }
    outcome.latency_ms = elapsed(started);
    Ok(outcome)
}
