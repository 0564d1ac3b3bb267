//! The label sets of Sluice's metrics. Every label is a field of a type here, so a new label is
//! a compile-time decision, and every value is bounded: routes, dialects, phases and outcomes are
//! `&'static str`s from the code; provider, credential and model names come from the config (a
//! model the catalog does not know is `other`); key ids appear only with `metrics.per-key` and
//! under a series cap. No user, IP, request id or key secret ever becomes a label.

use std::fmt::Error;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

/// Writes one `name="value"` pair.
fn put(encoder: &mut LabelSetEncoder, name: &'static str, value: &str) -> Result<(), Error> {
    (name, value).encode(encoder.encode_label())
}

/// Writes a pair only when it has a value (an absent label, not an empty one).
fn put_some(
    encoder: &mut LabelSetEncoder,
    name: &'static str,
    value: Option<&str>,
) -> Result<(), Error> {
    match value {
        Some(value) => put(encoder, name, value),
        None => Ok(()),
    }
}

/// `sluice_inflight_requests`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteLabels {
    pub route: &'static str,
}

impl EncodeLabelSet for RouteLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        put(encoder, "route", self.route)
    }
}

/// `sluice_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RequestLabels {
    pub route: &'static str,
    pub dialect: &'static str,
    pub provider: String,
    pub model: String,
    pub status_code: String,
    pub stream: &'static str,
    /// Only with `metrics.per-key`.
    pub key_id: Option<String>,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        put(encoder, "route", self.route)?;
        put(encoder, "sluice_dialect", self.dialect)?;
        put(encoder, "sluice_provider", &self.provider)?;
        put(encoder, "gen_ai_request_model", &self.model)?;
        put(encoder, "status_code", &self.status_code)?;
        put(encoder, "stream", self.stream)?;
        put_some(encoder, "key_id", self.key_id.as_deref())
    }
}

/// The OpenTelemetry GenAI attributes every `gen_ai_*` series carries, plus Sluice's client
/// dialect and configured provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct GenAi {
    pub operation: &'static str,
    pub provider_name: String,
    pub model: String,
    pub dialect: &'static str,
    pub provider: String,
}

impl GenAi {
    fn encode_into(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        put(encoder, "gen_ai_operation_name", self.operation)?;
        put(encoder, "gen_ai_provider_name", &self.provider_name)?;
        put(encoder, "gen_ai_request_model", &self.model)?;
        put(encoder, "sluice_dialect", self.dialect)?;
        put(encoder, "sluice_provider", &self.provider)
    }
}

impl EncodeLabelSet for GenAi {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        self.encode_into(encoder)
    }
}

/// `gen_ai_server_request_duration_seconds` and the per-attempt `gen_ai_client_*` durations:
/// [`GenAi`], `stream`, and `error_type` (empty on success).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct DurationLabels {
    pub genai: GenAi,
    pub stream: &'static str,
    pub error_type: Option<String>,
}

impl EncodeLabelSet for DurationLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        self.genai.encode_into(encoder)?;
        put(encoder, "stream", self.stream)?;
        // Always present (empty on success, which Prometheus stores as absent): parsers that
        // expect one label set per family accept it.
        put(
            encoder,
            "error_type",
            self.error_type.as_deref().unwrap_or_default(),
        )
    }
}

/// `gen_ai_client_token_usage`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TokenLabels {
    pub genai: GenAi,
    pub token_type: &'static str,
    pub key_id: Option<String>,
}

impl EncodeLabelSet for TokenLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        self.genai.encode_into(encoder)?;
        put(encoder, "gen_ai_token_type", self.token_type)?;
        put_some(encoder, "key_id", self.key_id.as_deref())
    }
}

/// `sluice_cost_usd_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct CostLabels {
    pub provider_name: String,
    pub provider: String,
    pub model: String,
    pub estimated: &'static str,
    pub key_id: Option<String>,
}

impl EncodeLabelSet for CostLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        put(encoder, "gen_ai_provider_name", &self.provider_name)?;
        put(encoder, "sluice_provider", &self.provider)?;
        put(encoder, "gen_ai_request_model", &self.model)?;
        put(encoder, "estimated", self.estimated)?;
        put_some(encoder, "key_id", self.key_id.as_deref())
    }
}

/// `sluice_gateway_overhead_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct OverheadLabels {
    pub route: &'static str,
    pub dialect: &'static str,
    pub phase: &'static str,
}

impl EncodeLabelSet for OverheadLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        put(encoder, "route", self.route)?;
        put(encoder, "sluice_dialect", self.dialect)?;
        put(encoder, "phase", self.phase)
    }
}

/// A pair of labels: `sluice_provider` and one more (`credential`, `outcome`, `reason`,
/// `state`), for the failover and credential families.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ProviderLabels {
    pub provider: String,
    /// `credential` on the per-credential families (capped), absent on the aggregates.
    pub credential: Option<String>,
    /// The name of the third label (`outcome`, `reason`, `state`).
    pub kind: &'static str,
    pub value: &'static str,
}

impl EncodeLabelSet for ProviderLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        put(encoder, "sluice_provider", &self.provider)?;
        put_some(encoder, "credential", self.credential.as_deref())?;
        put(encoder, self.kind, self.value)
    }
}

/// Families with one or two fixed-vocabulary labels (`sink`, `result`, `op`, `reason`, `scope`,
/// `cap`).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Plain {
    pub first: (&'static str, &'static str),
    pub second: Option<(&'static str, &'static str)>,
}

impl Plain {
    pub fn one(name: &'static str, value: &'static str) -> Self {
        Self {
            first: (name, value),
            second: None,
        }
    }

    pub fn two(first: (&'static str, &'static str), second: (&'static str, &'static str)) -> Self {
        Self {
            first,
            second: Some(second),
        }
    }
}

impl EncodeLabelSet for Plain {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), Error> {
        put(encoder, self.first.0, self.first.1)?;
        match self.second {
            Some((name, value)) => put(encoder, name, value),
            None => Ok(()),
        }
    }
}
