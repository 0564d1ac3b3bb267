//! Upstream HTTP clients: one pooled `reqwest::Client` per distinct (proxy, connect timeout),
//! built when the runtime is built and shared by every credential with those settings.
//!
//! A credential's proxy is its own `proxy-url`, else its provider's, else the global one:
//! an `http://`, `https://` or `socks5://`/`socks5h://` URL (credentials in the URL), `direct`
//! for none, or empty for the environment's (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Which proxy a client uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxySetting {
    /// Whatever the environment says (reqwest's default).
    Environment,
    /// No proxy, even if the environment names one.
    Direct,
    /// This proxy URL.
    Url(String),
}

impl ProxySetting {
    /// The effective setting from the most specific value given.
    pub fn resolve(credential: Option<&str>, provider: Option<&str>, global: &str) -> Self {
        let value = credential.or(provider).unwrap_or(global).trim();
        match value {
            "" => ProxySetting::Environment,
            "direct" => ProxySetting::Direct,
            url => ProxySetting::Url(url.to_string()),
        }
    }

    /// For logs and status listings: the scheme and host only, never the credentials.
    pub fn describe(&self) -> String {
        match self {
            ProxySetting::Environment => "environment".into(),
            ProxySetting::Direct => "direct".into(),
            ProxySetting::Url(url) => match reqwest::Url::parse(url) {
                Ok(u) => format!(
                    "{}://{}{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                ),
                Err(_) => "invalid".into(),
            },
        }
    }
}

/// The clients built so far, by settings.
#[derive(Debug, Default)]
pub struct Clients {
    built: Mutex<HashMap<(ProxySetting, Duration), reqwest::Client>>,
}

impl Clients {
    /// The client for these settings, built on first use.
    pub fn get(&self, proxy: &ProxySetting, connect: Duration) -> Result<reqwest::Client, String> {
        let mut built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = built.get(&(proxy.clone(), connect)) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            // An upstream's redirect is not followed: the configured base URL is where the
            // gateway connects, and a followed redirect would carry the credential headers
            // reqwest keeps across hosts (`x-api-key`, `x-goog-api-key`, `api-key`, custom
            // headers) to wherever it points. It is answered as a 502 instead
            // (`GatewayError::from_upstream`). Also saves reqwest's per-request URL handling
            // for the redirect policy.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")));
        match proxy {
            ProxySetting::Environment => {}
            ProxySetting::Direct => builder = builder.no_proxy(),
            ProxySetting::Url(url) => {
                // reqwest reads `user:password@` from the URL: Basic auth for HTTP proxies,
                // username/password authentication for SOCKS5.
                let proxy = reqwest::Proxy::all(url.as_str()).map_err(|_| {
                    format!(
                        "proxy {} is not usable (check the URL's scheme and host)",
                        proxy.describe()
                    )
                })?;
                builder = builder.proxy(proxy);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        built.insert((proxy.clone(), connect), client.clone());
        Ok(client)
    }

    /// How many distinct clients exist.
    pub fn len(&self) -> usize {
        self.built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_most_specific_setting_wins() {
        let global = "socks5://u:p@127.0.0.1:1080";
        assert_eq!(
            ProxySetting::resolve(None, None, global),
            ProxySetting::Url(global.into())
        );
        assert_eq!(
            ProxySetting::resolve(None, Some("direct"), global),
            ProxySetting::Direct
        );
        assert_eq!(
            ProxySetting::resolve(Some("http://h:1"), Some("direct"), global),
            ProxySetting::Url("http://h:1".into())
        );
        assert_eq!(
            ProxySetting::resolve(None, None, ""),
            ProxySetting::Environment
        );
        assert_eq!(
            ProxySetting::Url(global.into()).describe(),
            "socks5://127.0.0.1:1080",
            "no credentials in descriptions"
        );
    }

    #[test]
    fn one_client_per_distinct_settings() {
        let clients = Clients::default();
        let a = ProxySetting::Url("http://127.0.0.1:3128".into());
        let s = Duration::from_secs(5);
        clients.get(&a, s).unwrap();
        clients.get(&a, s).unwrap();
        clients.get(&ProxySetting::Direct, s).unwrap();
        clients.get(&a, Duration::from_secs(1)).unwrap();
        assert_eq!(clients.len(), 3);
    }
}
