//! What every page's layout needs, and display helpers (sizes, durations, times).

use std::borrow::Borrow;

use http::HeaderMap;

use crate::assets;
use crate::i18n::Lang;
use crate::session::{Viewer, cookie};

/// The theme cookie: `light`, `dark`, or absent (follow the system).
pub const THEME_COOKIE: &str = "sluice_theme";

/// A navigation entry.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The shared frame of every page: language, theme, the signed-in user, navigation, the
/// asset URLs and the CSRF token forms carry.
#[derive(Debug, Clone)]
pub struct Layout {
    pub lang: Lang,
    /// `light`, `dark`, or empty (follow `prefers-color-scheme`).
    pub theme: String,
    pub title: String,
    pub viewer: Option<Viewer>,
    pub nav: Vec<NavItem>,
    /// The CSRF token for forms: the session's, or the sign-in form's.
    pub csrf: String,
    /// This page's path (the preference switch returns to it).
    pub path: String,
    pub css: String,
    pub favicon: String,
    pub js: String,
    pub htmx: String,
    pub uplot_js: String,
    pub uplot_css: String,
}

impl Layout {
    pub fn new(headers: &HeaderMap, viewer: Option<Viewer>, title_key: &str, path: &str) -> Layout {
        let lang = Lang::of(headers);
        let theme = match cookie(headers, THEME_COOKIE).as_deref() {
            Some("light") => "light",
            Some("dark") => "dark",
            _ => "",
        };
        let nav = match &viewer {
            Some(v) => {
                let items: &[(&'static str, &'static str)] = if v.is_admin() {
                    &[
                        ("/ui/overview", "nav.overview"),
                        ("/ui/credentials", "nav.credentials"),
                        ("/ui/keys", "nav.keys"),
                        ("/ui/requests", "nav.requests"),
                        ("/ui/usage", "nav.usage"),
                        ("/ui/users", "nav.users"),
                        ("/ui/system", "nav.system"),
                        ("/ui/me", "nav.me"),
                    ]
                } else {
                    &[("/ui/me", "nav.me")]
                };
                items
                    .iter()
                    .map(|(href, key)| NavItem {
                        href,
                        label: lang.t(key),
                        current: path.starts_with(href),
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Layout {
            lang,
            theme: theme.to_string(),
            title: lang.t(title_key).to_string(),
            csrf: viewer.as_ref().map(|v| v.csrf.clone()).unwrap_or_default(),
            viewer,
            nav,
            path: path.to_string(),
            css: assets::url("app.css"),
            favicon: assets::url("favicon.svg"),
            js: assets::url("app.js"),
            htmx: assets::url("htmx.min.js"),
            uplot_js: assets::url("uPlot.min.js"),
            uplot_css: assets::url("uPlot.min.css"),
        }
    }

    /// The text of a key in the page's language.
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    /// `$1.23` from nano-dollars.
    pub fn usd(&self, nanos: impl Borrow<i64>) -> String {
        usd(*nanos.borrow())
    }

    /// A count limit: the number, or "unlimited" for 0.
    pub fn limit(&self, n: impl Borrow<i64>) -> String {
        let n = *n.borrow();
        if n == 0 {
            self.t("limit.unlimited").to_string()
        } else {
            n.to_string()
        }
    }

    /// A money limit: dollars, or "unlimited" for 0.
    pub fn usd_limit(&self, nanos: impl Borrow<i64>) -> String {
        let nanos = *nanos.borrow();
        if nanos == 0 {
            self.t("limit.unlimited").to_string()
        } else {
            usd(nanos)
        }
    }

    /// A unix-ms time as UTC, or "never".
    pub fn when(&self, ms: &Option<i64>) -> String {
        match ms {
            Some(ms) => utc(ms / 1000),
            None => self.t("keys.never").to_string(),
        }
    }

    /// The charts' series names in this language, as JSON for a `data-labels` attribute.
    pub fn chart_labels(&self) -> String {
        let mut m = serde_json::Map::new();
        for key in [
            "chart.ok",
            "chart.saved",
            "chart.4xx",
            "chart.5xx",
            "chart.latency50",
            "chart.latency95",
            "chart.ttft50",
            "chart.ttft95",
            "chart.requests",
            "chart.ms",
            "chart.nodata",
        ] {
            m.insert(key.trim_start_matches("chart.").into(), self.t(key).into());
        }
        serde_json::Value::Object(m).to_string()
    }

    /// A key's expiry as UTC, or "never".
    pub fn expiry(&self, ms: &Option<i64>) -> String {
        self.when(ms)
    }

    /// `{"X-CSRF-Token": "…"}` for `hx-headers` (htmx sends it with every request).
    pub fn hx_headers(&self) -> String {
        serde_json::json!({ "X-CSRF-Token": self.csrf }).to_string()
    }
}

/// `$1.23` (`$0.0042` below a cent) from nano-dollars.
pub fn usd(nanos: i64) -> String {
    let dollars = nanos as f64 / 1e9;
    if dollars != 0.0 && dollars.abs() < 0.01 {
        format!("${dollars:.4}")
    } else {
        format!("${dollars:.2}")
    }
}

/// `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3d 4h`, `2h 5m`, `4m 11s`, `9s`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// `2026-12-02 11:47:51 UTC`.
pub fn utc(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 300 * 1024), "3.3 MiB");
        assert_eq!(duration(251), "4m 11s");
        assert_eq!(duration(9), "9s");
        assert_eq!(duration(7500), "2h 5m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 7), "3d 4h");
        assert_eq!(usd(1_234_000_000), "$1.23");
        assert_eq!(usd(4_200_000), "$0.0042");
        assert_eq!(usd(0), "$0.00");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    }
}
