//! What tokens cost: a built-in price table per model (USD per million tokens: input, output,
//! cache read, cache write), overridable per model in the config's `prices`, and the local
//! token counts used when an upstream reports no usage ([`estimate`]). Models billed by unit
//! also have a price per second of audio (`per-second`), per million characters spoken
//! (`per-million-characters`) or per image by quality and size (`images`, e.g.
//! `high 1024x1024: 0.167`); an image of a tier the table does not name is priced at the
//! model's dearest image of its size (else its dearest), never below it.
//!
//! Built-in prices are the providers' public list prices at the time of writing, for the
//! standard tier and short prompts; they drift, so operators who bill by them should pin their
//! own in `prices`. A model matches its exact name, else the longest table entry it starts with
//! (`gpt-4o-2024-08-06` → `gpt-4o`), else the config's `default-price`. A model with no price
//! at all is never served to a key with a monthly quota (`pipeline::proxy` refuses it); for
//! other callers its usage is recorded at zero cost, logged once per model.

pub mod estimate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sluice_dialect::TokenUsage;

use crate::store::{Nanos, UsageUnits};

/// Prices of one model, USD per million tokens (and per unit for models billed by unit).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Price {
    /// Uncached prompt tokens.
    pub input: f64,
    /// Generated tokens, reasoning included.
    pub output: f64,
    /// Prompt tokens read from a cache; defaults to `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Prompt tokens written to a cache; defaults to `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// USD per second of audio transcribed or translated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    /// USD per million characters spoken (text to speech).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_million_characters: Option<f64>,
    /// USD per image, by `quality size` (`hd 1024x1792`) or by `size` alone (`512x512`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, f64>,
}

impl Price {
    /// Every number in it (for validation).
    pub fn numbers(&self) -> impl Iterator<Item = f64> + '_ {
        [self.input, self.output]
            .into_iter()
            .chain(self.cache_read)
            .chain(self.cache_write)
            .chain(self.per_second)
            .chain(self.per_million_characters)
            .chain(self.images.values().copied())
    }

    /// The price of one image of `tier` (`quality size`): the tier's, else the size's, else
    /// the dearest image of that size, else the dearest of all (an unknown tier is never
    /// billed below the model's images).
    pub fn image(&self, tier: &str) -> Option<f64> {
        let size = tier.rsplit(' ').next().unwrap_or(tier);
        let dearest = |of_size: bool| {
            self.images
                .iter()
                .filter(|(t, _)| !of_size || t.rsplit(' ').next() == Some(size))
                .map(|(_, p)| *p)
                .reduce(f64::max)
        };
        self.images
            .get(tier)
            .or_else(|| self.images.get(size))
            .copied()
            .or_else(|| dearest(true))
            .or_else(|| dearest(false))
    }
}

const fn p(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Price {
    Price {
        input,
        output,
        cache_read: Some(cache_read),
        cache_write: Some(cache_write),
        per_second: None,
        per_million_characters: None,
        images: BTreeMap::new(),
    }
}

/// Built-in prices of models billed by unit: audio per second (Whisper) or per million
/// characters (TTS), images per image by quality and size (OpenAI's list prices). Token
/// prices of these models are in [`BUILT_IN`] when they also bill tokens (`gpt-image-1`'s
/// text prompt; its image output is what the per-image price covers).
fn unit_prices() -> Vec<(&'static str, Price)> {
    let images = |tiers: &[(&str, f64)]| Price {
        images: tiers.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
        ..p(0.0, 0.0, 0.0, 0.0)
    };
    vec![
        (
            "whisper-1",
            Price {
                per_second: Some(0.0001),
                ..p(0.0, 0.0, 0.0, 0.0)
            },
        ),
        (
            "tts-1",
            Price {
                per_million_characters: Some(15.0),
                ..p(0.0, 0.0, 0.0, 0.0)
            },
        ),
        (
            "tts-1-hd",
            Price {
                per_million_characters: Some(30.0),
                ..p(0.0, 0.0, 0.0, 0.0)
            },
        ),
        (
            "dall-e-2",
            images(&[("256x256", 0.016), ("512x512", 0.018), ("1024x1024", 0.020)]),
        ),
        (
            "dall-e-3",
            images(&[
                ("standard 1024x1024", 0.040),
                ("standard 1024x1792", 0.080),
                ("standard 1792x1024", 0.080),
                ("hd 1024x1024", 0.080),
                ("hd 1024x1792", 0.120),
                ("hd 1792x1024", 0.120),
            ]),
        ),
        (
            "gpt-image-1",
            Price {
                input: 5.0,
                ..images(&[
                    ("low 1024x1024", 0.011),
                    ("low 1024x1536", 0.016),
                    ("low 1536x1024", 0.016),
                    ("medium 1024x1024", 0.042),
                    ("medium 1024x1536", 0.063),
                    ("medium 1536x1024", 0.063),
                    ("high 1024x1024", 0.167),
                    ("high 1024x1536", 0.250),
                    ("high 1536x1024", 0.250),
                ])
            },
        ),
    ]
}

/// The built-in table. Anthropic cache writes are the 5-minute rate (1.25 × input).
const BUILT_IN: &[(&str, Price)] = &[
    // OpenAI
    ("gpt-5", p(1.25, 10.0, 0.125, 1.25)),
    ("gpt-5-mini", p(0.25, 2.0, 0.025, 0.25)),
    ("gpt-5-nano", p(0.05, 0.40, 0.005, 0.05)),
    ("gpt-4.1", p(2.0, 8.0, 0.50, 2.0)),
    ("gpt-4.1-mini", p(0.40, 1.60, 0.10, 0.40)),
    ("gpt-4.1-nano", p(0.10, 0.40, 0.025, 0.10)),
    ("gpt-4o", p(2.50, 10.0, 1.25, 2.50)),
    ("gpt-4o-mini", p(0.15, 0.60, 0.075, 0.15)),
    ("gpt-4-turbo", p(10.0, 30.0, 10.0, 10.0)),
    ("gpt-3.5-turbo", p(0.50, 1.50, 0.50, 0.50)),
    // Legacy completions models (`/v1/completions` only)
    ("gpt-3.5-turbo-instruct", p(1.50, 2.0, 1.50, 1.50)),
    ("davinci-002", p(2.0, 2.0, 2.0, 2.0)),
    ("babbage-002", p(0.40, 0.40, 0.40, 0.40)),
    ("o1", p(15.0, 60.0, 7.50, 15.0)),
    ("o1-mini", p(1.10, 4.40, 0.55, 1.10)),
    ("o3", p(2.0, 8.0, 0.50, 2.0)),
    ("o3-mini", p(1.10, 4.40, 0.55, 1.10)),
    ("o4-mini", p(1.10, 4.40, 0.275, 1.10)),
    ("codex-mini-latest", p(1.50, 6.0, 0.375, 1.50)),
    // Anthropic
    ("claude-opus-4-5", p(5.0, 25.0, 0.50, 6.25)),
    ("claude-opus-4-1", p(15.0, 75.0, 1.50, 18.75)),
    ("claude-opus-4", p(15.0, 75.0, 1.50, 18.75)),
    ("claude-sonnet-4-5", p(3.0, 15.0, 0.30, 3.75)),
    ("claude-sonnet-4", p(3.0, 15.0, 0.30, 3.75)),
    ("claude-3-7-sonnet", p(3.0, 15.0, 0.30, 3.75)),
    ("claude-3-5-sonnet", p(3.0, 15.0, 0.30, 3.75)),
    ("claude-haiku-4-5", p(1.0, 5.0, 0.10, 1.25)),
    ("claude-3-5-haiku", p(0.80, 4.0, 0.08, 1.0)),
    ("claude-3-haiku", p(0.25, 1.25, 0.03, 0.30)),
    ("claude-3-opus", p(15.0, 75.0, 1.50, 18.75)),
    // Google Gemini
    ("gemini-3-pro", p(2.0, 12.0, 0.20, 2.0)),
    ("gemini-2.5-pro", p(1.25, 10.0, 0.125, 1.25)),
    ("gemini-2.5-flash", p(0.30, 2.50, 0.03, 0.30)),
    ("gemini-2.5-flash-lite", p(0.10, 0.40, 0.01, 0.10)),
    ("gemini-2.0-flash", p(0.10, 0.40, 0.025, 0.10)),
    ("gemini-2.0-flash-lite", p(0.075, 0.30, 0.075, 0.075)),
    ("gemini-1.5-pro", p(1.25, 5.0, 0.3125, 1.25)),
    ("gemini-1.5-flash", p(0.075, 0.30, 0.01875, 0.075)),
    // Qwen (Alibaba Cloud Model Studio, international)
    ("qwen-max", p(1.60, 6.40, 1.60, 1.60)),
    ("qwen-plus", p(0.40, 1.20, 0.40, 0.40)),
    ("qwen-turbo", p(0.05, 0.20, 0.05, 0.05)),
    ("qwen-flash", p(0.05, 0.40, 0.05, 0.05)),
    ("qwen3-max", p(1.20, 6.0, 1.20, 1.20)),
    ("qwen3-coder-plus", p(1.0, 5.0, 1.0, 1.0)),
    ("qwen3-coder-flash", p(0.30, 1.50, 0.30, 0.30)),
    // DeepSeek
    ("deepseek-chat", p(0.28, 0.42, 0.028, 0.28)),
    ("deepseek-reasoner", p(0.28, 0.42, 0.028, 0.28)),
    // Embedding models (input only; the vectors cost nothing more)
    ("text-embedding-3-small", p(0.02, 0.0, 0.02, 0.02)),
    ("text-embedding-3-large", p(0.13, 0.0, 0.13, 0.13)),
    ("text-embedding-ada-002", p(0.10, 0.0, 0.10, 0.10)),
    ("gemini-embedding-001", p(0.15, 0.0, 0.15, 0.15)),
    ("amazon.titan-embed-text-v2", p(0.02, 0.0, 0.02, 0.02)),
    ("cohere.embed-", p(0.10, 0.0, 0.10, 0.10)),
    // Audio models billed by token
    ("gpt-4o-transcribe", p(2.50, 10.0, 2.50, 2.50)),
    ("gpt-4o-mini-transcribe", p(1.25, 5.0, 1.25, 1.25)),
    ("gpt-4o-mini-tts", p(0.60, 12.0, 0.60, 0.60)),
];

/// Prices by model: the built-in table with the config's overrides.
#[derive(Debug, Default)]
pub struct PriceTable {
    exact: HashMap<String, Price>,
    /// Names for prefix matching, longest first.
    by_length: Vec<(String, Price)>,
    /// `default-price`: the price of every model not in the table.
    default: Option<Price>,
    unknown_logged: Mutex<std::collections::HashSet<String>>,
}

impl PriceTable {
    /// The built-in table with `overrides` (model → price) on top, and `default` for models in
    /// neither.
    pub fn new<'a>(
        overrides: impl IntoIterator<Item = (&'a String, &'a Price)>,
        default: Option<Price>,
    ) -> Self {
        let mut exact: HashMap<String, Price> = BUILT_IN
            .iter()
            .map(|(m, p)| (m.to_string(), p.clone()))
            .chain(unit_prices().into_iter().map(|(m, p)| (m.to_string(), p)))
            .collect();
        for (model, price) in overrides {
            exact.insert(model.clone(), price.clone());
        }
        let mut by_length: Vec<(String, Price)> =
            exact.iter().map(|(m, p)| (m.clone(), p.clone())).collect();
        by_length.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Self {
            exact,
            by_length,
            default,
            unknown_logged: Mutex::default(),
        }
    }

    /// The price of a model, by exact name or longest prefix, else the default price.
    pub fn price(&self, model: &str) -> Option<&Price> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let model = model.rsplit_once(',').map_or(model, |(_, m)| m.trim());
        if let Some(p) = self.exact.get(model) {
            return Some(p);
        }
        self.by_length
            .iter()
            .find(|(name, _)| model.starts_with(name.as_str()))
            .map(|(_, p)| p)
            .or(self.default.as_ref())
    }

    /// What the units a request used (audio seconds, characters, images of `image_tier`) cost
    /// at `model`'s unit prices; units the model has no price for cost nothing.
    pub fn units_cost(&self, model: &str, units: &UsageUnits, image_tier: Option<&str>) -> Nanos {
        let Some(price) = self.price(model) else {
            return 0;
        };
        let mut usd = units.audio_seconds * price.per_second.unwrap_or(0.0)
            + units.characters as f64 * price.per_million_characters.unwrap_or(0.0) / 1e6;
        if units.images > 0 {
            usd += units.images as f64 * price.image(image_tier.unwrap_or("")).unwrap_or(0.0);
        }
        crate::store::usd_to_nanos(usd)
    }

    /// What `usage` of `model` costs. Unknown models cost 0, logged once per model.
    pub fn cost(&self, model: &str, usage: &TokenUsage) -> Nanos {
        match self.price(model) {
            Some(price) => cost_of(price, usage),
            None => {
                if usage.total() > 0
                    && let Ok(mut seen) = self.unknown_logged.lock()
                    && seen.len() < 1000
                    && seen.insert(model.to_string())
                {
                    tracing::warn!(
                        model,
                        "no price for this model: its usage is recorded at zero cost (keys with a monthly quota are refused it); add it under `prices`, or set `default-price`"
                    );
                }
                0
            }
        }
    }

    /// A cost estimate before the request runs: `input_tokens` at the input price plus
    /// `output_tokens` at the output price (no caching assumed).
    pub fn estimate(&self, model: &str, input_tokens: u64, output_tokens: u64) -> Nanos {
        self.price(model).map_or(0, |price| {
            cost_of(
                price,
                &TokenUsage {
                    input_tokens,
                    output_tokens,
                    ..Default::default()
                },
            )
        })
    }
}

/// Per million tokens in USD → per token in nano-dollars is × 1000.
fn cost_of(price: &Price, usage: &TokenUsage) -> Nanos {
    let cached = usage.cache_read_tokens + usage.cache_write_tokens;
    let fresh = usage.input_tokens.saturating_sub(cached) as f64;
    let nanos = fresh * price.input
        + usage.cache_read_tokens as f64 * price.cache_read.unwrap_or(price.input)
        + usage.cache_write_tokens as f64 * price.cache_write.unwrap_or(price.input)
        + usage.output_tokens as f64 * price.output;
    (nanos * 1000.0).round() as Nanos
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exact_prefix_and_override() {
        let overrides = [(
            "my-model".to_string(),
            Price {
                cache_read: None,
                cache_write: None,
                ..p(1.0, 2.0, 0.0, 0.0)
            },
        )];
        let t = PriceTable::new(overrides.iter().map(|(m, p)| (m, p)), None);
        assert_eq!(t.price("gpt-4o-mini").unwrap().input, 0.15);
        assert_eq!(t.price("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(t.price("gpt-4o-2024-08-06").unwrap().input, 2.5);
        assert_eq!(t.price("openai,gpt-4o").unwrap().input, 2.5);
        assert_eq!(t.price("models/gemini-2.5-flash").unwrap().output, 2.5);
        assert!(t.price("llama3.2").is_none());
        // 1M input + 1M output of my-model: $1 + $2.
        let usage = TokenUsage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            ..Default::default()
        };
        assert_eq!(t.cost("my-model", &usage), 3_000_000_000);
        assert_eq!(t.cost("llama3.2", &usage), 0);
        let with_default = PriceTable::new([], Some(overrides[0].1.clone()));
        assert_eq!(with_default.cost("llama3.2", &usage), 3_000_000_000);
        assert_eq!(with_default.price("gpt-4o").unwrap().input, 2.5);
    }

    #[test]
    fn cache_tokens_are_priced_apart() {
        let t = PriceTable::new([], None);
        // claude-sonnet-4: 1000 prompt tokens of which 600 read from cache, 200 written.
        let usage = TokenUsage {
            input_tokens: 1000,
            output_tokens: 100,
            cache_read_tokens: 600,
            cache_write_tokens: 200,
            reasoning_tokens: 0,
        };
        // 200 × 3 + 600 × 0.3 + 200 × 3.75 + 100 × 15 = 600 + 180 + 750 + 1500 = 3030 µ$ / 1000
        assert_eq!(t.cost("claude-sonnet-4-20250514", &usage), 3_030_000);
    }

    #[test]
    fn units_are_priced_by_model_tier_and_size() {
        let overrides = [(
            "dall-e-3".to_string(),
            Price {
                images: [("hd 1024x1024".to_string(), 0.5)].into_iter().collect(),
                ..p(0.0, 0.0, 0.0, 0.0)
            },
        )];
        let t = PriceTable::new(overrides.iter().map(|(m, p)| (m, p)), None);
        let images = |n| UsageUnits {
            images: n,
            ..Default::default()
        };
        // gpt-image-1, 2 × high 1536x1024 at $0.25.
        assert_eq!(
            t.units_cost("gpt-image-1", &images(2), Some("high 1536x1024")),
            500_000_000
        );
        // An unknown quality is the dearest of its size; an unknown size the dearest of all.
        assert_eq!(
            t.units_cost("gpt-image-1", &images(1), Some("auto 1024x1024")),
            167_000_000
        );
        assert_eq!(t.units_cost("gpt-image-1", &images(1), None), 250_000_000);
        // dall-e-2 is priced by size alone; the override replaces dall-e-3's table.
        assert_eq!(
            t.units_cost("dall-e-2", &images(3), Some("standard 512x512")),
            54_000_000
        );
        assert_eq!(
            t.units_cost("dall-e-3", &images(1), Some("hd 1024x1024")),
            500_000_000
        );
        // Whisper: $0.006 a minute; tts-1: $15 per million characters.
        let audio = UsageUnits {
            audio_seconds: 90.0,
            ..Default::default()
        };
        assert_eq!(t.units_cost("whisper-1", &audio, None), 9_000_000);
        let spoken = UsageUnits {
            characters: 1000,
            ..Default::default()
        };
        assert_eq!(t.units_cost("tts-1", &spoken, None), 15_000_000);
        assert_eq!(t.units_cost("gpt-4o", &spoken, None), 0);
    }
}
