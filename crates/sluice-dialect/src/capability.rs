//! What a model can do: the endpoints it may serve. A model's capabilities come from the
//! config, or are inferred from well-known model names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One kind of work a model can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Generate text: chat, messages, responses, `generateContent`, legacy completions.
    Chat,
    /// Vectors for text: `/v1/embeddings`, `:embedContent`.
    Embedding,
    /// Generate or edit images.
    Image,
    /// Order documents by relevance.
    Rerank,
    /// Speech to text or text to speech.
    Audio,
    /// Classify content.
    Moderation,
    /// Continue a prompt through the upstream's own legacy `/v1/completions` (OpenAI's
    /// `gpt-3.5-turbo-instruct`, `davinci-002`, `babbage-002`; many vLLM models): such a model
    /// is forwarded there as-is. Chat models serve `/v1/completions` through chat instead.
    Completion,
}

impl Capability {
    /// Every capability, in listing order.
    pub const ALL: [Capability; 7] = [
        Capability::Chat,
        Capability::Embedding,
        Capability::Image,
        Capability::Rerank,
        Capability::Audio,
        Capability::Moderation,
        Capability::Completion,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Chat => "chat",
            Capability::Embedding => "embedding",
            Capability::Image => "image",
            Capability::Rerank => "rerank",
            Capability::Audio => "audio",
            Capability::Moderation => "moderation",
            Capability::Completion => "completion",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u8);

impl Capabilities {
    /// The empty set.
    pub const NONE: Capabilities = Capabilities(0);

    /// A set of one.
    pub const fn only(capability: Capability) -> Self {
        Capabilities(capability.bit())
    }

    /// This set and `capability`.
    #[must_use]
    pub const fn with(self, capability: Capability) -> Self {
        Capabilities(self.0 | capability.bit())
    }

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Capabilities) -> Self {
        Capabilities(self.0 | other.0)
    }

    pub const fn has(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Whether the sets share a capability.
    pub const fn intersects(self, other: Capabilities) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in [`Capability::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.has(*c))
    }

    /// The config spellings of the members.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Capability::as_str).collect()
    }

    /// What a model of this name can do when the config does not say: embedding, image,
    /// audio, moderation, rerank and completion-only models (OpenAI's `gpt-*-instruct`,
    /// `davinci-002`, `babbage-002`, the retired `text-davinci-*`) by their well-known names,
    /// chat otherwise. Open models named `*-Instruct` (Llama, Qwen, Mistral) are chat models.
    pub fn infer(model: &str) -> Self {
        let name = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
        if name.contains("rerank") {
            Capabilities::only(Capability::Rerank)
        } else if starts(&[
            "text-embedding-",
            "gemini-embedding-",
            "embedding-",
            "amazon.titan-embed-",
            "cohere.embed-",
            "text-multilingual-embedding-",
        ]) {
            Capabilities::only(Capability::Embedding)
        } else if starts(&["dall-e-", "gpt-image-"]) {
            Capabilities::only(Capability::Image)
        } else if starts(&["whisper-", "tts-"])
            || (name.starts_with("gpt-4o")
                && (name.contains("transcribe") || name.ends_with("-tts")))
        {
            Capabilities::only(Capability::Audio)
        } else if starts(&["omni-moderation-", "text-moderation-"]) {
            Capabilities::only(Capability::Moderation)
        } else if (name.starts_with("gpt-") && name.contains("-instruct"))
            || starts(&["davinci-002", "babbage-002", "text-davinci-"])
        {
            Capabilities::only(Capability::Completion)
        } else {
            Capabilities::only(Capability::Chat)
        }
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Capabilities::NONE, Capabilities::with)
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names_are_inferred() {
        let cases = [
            ("text-embedding-3-small", Capability::Embedding),
            ("text-embedding-004", Capability::Embedding),
            ("text-embedding-v4", Capability::Embedding),
            ("gemini-embedding-001", Capability::Embedding),
            ("models/embedding-001", Capability::Embedding),
            ("amazon.titan-embed-text-v2:0", Capability::Embedding),
            ("cohere.embed-english-v3", Capability::Embedding),
            ("dall-e-3", Capability::Image),
            ("gpt-image-1", Capability::Image),
            ("whisper-1", Capability::Audio),
            ("gpt-4o-mini-transcribe", Capability::Audio),
            ("gpt-4o-transcribe", Capability::Audio),
            ("tts-1-hd", Capability::Audio),
            ("gpt-4o-mini-tts", Capability::Audio),
            ("omni-moderation-latest", Capability::Moderation),
            ("text-moderation-stable", Capability::Moderation),
            ("jina-reranker-v2-base-multilingual", Capability::Rerank),
            ("gte-rerank-v2", Capability::Rerank),
            ("gpt-4o-mini", Capability::Chat),
            ("gemini-2.5-flash", Capability::Chat),
            ("claude-sonnet-4-5", Capability::Chat),
            ("gpt-4o-audio-preview", Capability::Chat),
            ("gpt-3.5-turbo-instruct", Capability::Completion),
            ("gpt-3.5-turbo-instruct-0914", Capability::Completion),
            ("davinci-002", Capability::Completion),
            ("babbage-002", Capability::Completion),
            ("text-davinci-003", Capability::Completion),
            ("gpt-3.5-turbo", Capability::Chat),
            ("meta-llama/Llama-3.1-8B-Instruct", Capability::Chat),
            ("Qwen2.5-7B-Instruct", Capability::Chat),
        ];
        for (name, expected) in cases {
            assert_eq!(
                Capabilities::infer(name),
                Capabilities::only(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn sets_combine_and_list_in_order() {
        let set: Capabilities = [Capability::Embedding, Capability::Chat]
            .into_iter()
            .collect();
        assert!(set.has(Capability::Chat) && set.has(Capability::Embedding));
        assert!(!set.has(Capability::Image));
        assert_eq!(set.names(), ["chat", "embedding"]);
        assert!(set.intersects(Capabilities::only(Capability::Embedding)));
        assert!(!set.intersects(Capabilities::only(Capability::Audio)));
        assert_eq!(set.to_string(), "chat, embedding");
    }
}
