//! The `oauth:` config key: per provider, where its tokens are refreshed (and as which client),
//! how far ahead, through which proxy; and the background scheduler's pace.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_oauth::flow::LoginUrls;
use sluice_oauth::{Endpoints, Kind};

/// `oauth:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OAuthConfig {
    /// How often the scheduler looks for tokens due for a refresh.
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub refresh_interval: Duration,
    /// Refreshes the scheduler runs at once.
    #[serde(default = "default_concurrency")]
    pub refresh_concurrency: usize,
    /// Each scheduled refresh waits a random delay up to this long, so a pool loaded at once
    /// does not refresh in one burst.
    #[serde(default = "default_jitter", with = "crate::config::duration")]
    pub refresh_jitter: Duration,
    #[serde(default)]
    pub claude: ProviderOAuth,
    #[serde(default)]
    pub codex: ProviderOAuth,
    #[serde(default)]
    pub gemini: ProviderOAuth,
    #[serde(default)]
    pub qwen: ProviderOAuth,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            refresh_interval: default_interval(),
            refresh_concurrency: default_concurrency(),
            refresh_jitter: default_jitter(),
            claude: ProviderOAuth::default(),
            codex: ProviderOAuth::default(),
            gemini: ProviderOAuth::default(),
            qwen: ProviderOAuth::default(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_concurrency() -> usize {
    4
}
fn default_jitter() -> Duration {
    Duration::from_secs(5)
}

/// One provider's OAuth settings; every field defaults to the provider's real value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProviderOAuth {
    /// The token endpoint (code exchange and refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Refresh this long before the access token expires.
    #[serde(
        default,
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_lead: Option<Duration>,
    /// Proxy for this provider's token calls and traffic; default: the global `proxy-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// The sign-in page (`sluice login`, the management API's auth URLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// The redirect URI registered for the client (it names the page or callback the code
    /// comes back to; change it only with a client that registered another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// Codex: the device-code endpoints' root (`/usercode`, `/token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_url: Option<String>,
    /// Codex: the page where the user enters the device code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_url: Option<String>,
    /// Gemini: Code Assist's API root (`…/v1internal`), for project discovery and traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_assist_url: Option<String>,
    /// The upstream API root of this provider's token files that name none (`base_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl OAuthConfig {
    pub fn provider(&self, kind: Kind) -> &ProviderOAuth {
        match kind {
            Kind::Claude => &self.claude,
            Kind::Codex => &self.codex,
            Kind::Gemini => &self.gemini,
            Kind::Qwen => &self.qwen,
        }
    }

    /// The token endpoint and client of `kind`, the config's values over the defaults.
    pub fn endpoints(&self, kind: Kind) -> Endpoints {
        let p = self.provider(kind);
        let mut e = Endpoints::defaults(kind);
        if let Some(url) = &p.token_url {
            e.token_url = url.clone();
        }
        if let Some(id) = &p.client_id {
            e.client_id = id.clone();
        }
        if let Some(secret) = &p.client_secret {
            e.client_secret = Some(secret.clone());
        }
        e
    }

    /// The sign-in endpoints of `kind`, the config's values over the defaults.
    pub fn login_urls(&self, kind: Kind) -> LoginUrls {
        let p = self.provider(kind);
        let mut u = LoginUrls::defaults(kind);
        for (value, slot) in [
            (&p.authorize_url, &mut u.authorize_url),
            (&p.redirect_uri, &mut u.redirect_uri),
            (&p.device_url, &mut u.device_url),
            (&p.verification_url, &mut u.verification_url),
            (&p.code_assist_url, &mut u.code_assist_url),
        ] {
            if let Some(v) = value {
                slot.clone_from(v);
            }
        }
        u
    }

    pub fn lead(&self, kind: Kind) -> Duration {
        self.provider(kind)
            .refresh_lead
            .unwrap_or_else(|| kind.default_lead())
    }

    /// Checks URLs: a token endpoint must be https (http only to this machine).
    pub fn check(&self) -> Result<(), (String, String)> {
        for kind in Kind::ALL {
            let p = self.provider(kind);
            for (key, value) in [
                ("token-url", &p.token_url),
                ("authorize-url", &p.authorize_url),
                ("device-url", &p.device_url),
                ("verification-url", &p.verification_url),
                ("code-assist-url", &p.code_assist_url),
                ("base-url", &p.base_url),
            ] {
                if let Some(url) = value {
                    crate::auth_files::check_upstream_url(url)
                        .map_err(|e| (format!("oauth.{kind}.{key}"), e))?;
                }
            }
            if let Some(uri) = &p.redirect_uri
                && reqwest::Url::parse(uri).is_err()
            {
                return Err((
                    format!("oauth.{kind}.redirect-uri"),
                    format!("`{uri}` is not a URL"),
                ));
            }
        }
        if self.refresh_concurrency == 0 {
            return Err((
                "oauth.refresh-concurrency".into(),
                "must be at least 1".into(),
            ));
        }
        if self.refresh_interval < Duration::from_millis(100) {
            return Err((
                "oauth.refresh-interval".into(),
                "must be at least 100ms".into(),
            ));
        }
        Ok(())
    }
}
