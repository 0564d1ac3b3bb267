//! Template snapshots with fixture data (`cargo insta review` after an intended change).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::SystemInfo;
use sluice_store::Role;

fn headers(lang: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("accept-language", lang.parse().unwrap());
    h
}

fn admin() -> Viewer {
    Viewer {
        user_id: 1,
        username: "admin".into(),
        role: Role::Admin,
        csrf: "CSRFTOKEN".into(),
        id_hash: "h".into(),
    }
}

/// Hashed asset URLs change with every edit of a static file: the snapshot names them by role.
fn stable(html: String) -> String {
    let mut html = html;
    for asset in crate::assets::ASSETS.iter() {
        html = html.replace(&asset.hashed, &format!("{}#hash", asset.name));
    }
    html
}

#[test]
fn login_first_run_in_chinese() {
    let mut layout = Layout::new(&headers("zh-CN,zh;q=0.9"), None, "login.title", "/ui/login");
    layout.csrf = "LOGINTOKEN".into();
    let page = LoginPage {
        l: &layout,
        notice: "login.failed",
        first_run: true,
        username: "<b>admin</b>".into(),
    };
    let html = stable(page.render().unwrap());
    assert!(
        html.contains("&#60;b&#62;admin&#60;/b&#62;") || html.contains("&lt;b&gt;"),
        "{html}"
    );
    insta::assert_snapshot!(html);
}

#[test]
fn system_page() {
    let layout = Layout::new(&headers("en"), Some(admin()), "system.title", "/ui/system");
    let info = SystemInfo {
        version: "0.1.0".into(),
        started_unix: 1_780_000_000,
        data_dir: "/var/lib/sluice".into(),
        store: "sqlite:///var/lib/sluice".into(),
        database_bytes: Some(5 * 1024 * 1024),
        usage_backlog: 3,
        remote_management: false,
        management_key_set: true,
        providers: 2,
        credentials: 5,
        links: vec![("OpenAPI".into(), "/openapi.json".into())],
    };
    let page = SystemPage::new(&layout, &info, 1_780_000_000 + 3 * 3600 + 120);
    insta::assert_snapshot!(stable(page.render().unwrap()));
}

fn key_fixture() -> sluice_store::ApiKey {
    sluice_store::ApiKey {
        id: 7,
        user_id: 2,
        name: "laptop".into(),
        key_hash: "x".into(),
        key_prefix: "sk-a1b2c3d4...".into(),
        status: sluice_store::Status::Active,
        allowed_platforms: "all".into(),
        allowed_models: String::new(),
        rate_limit: 60,
        daily_limit: 100,
        monthly_quota: 5_000_000_000,
        used_tokens: 1200,
        used_cost: 1_250_000_000,
        request_count: 14,
        last_used_at: Some(1_780_000_000_000),
        expires_at: None,
        created_at: 1,
        updated_at: 1,
        deleted_at: None,
    }
}

#[test]
fn keys_page_with_a_new_key() {
    let layout = Layout::new(&headers("en"), Some(admin()), "keys.title", "/ui/keys");
    let meter = |used: f64, limit: f64, text: &str, resets: &str| keys::Meter {
        used,
        limit,
        text: text.into(),
        resets: resets.into(),
    };
    let rows = vec![keys::KeyRow {
        key: key_fixture(),
        owner: "alice".into(),
        rate: meter(3.0, 60.0, "3 / 60", ""),
        daily: meter(90.0, 100.0, "90 / 100", "2026-12-03 00:00:00 UTC"),
        monthly: meter(1.25e9, 5e9, "$1.25 / $5.00", "2027-01-01 00:00:00 UTC"),
    }];
    let users = vec![];
    let secret = format!("sk-{}", "A".repeat(64));
    let page = keys::KeysPage {
        l: &layout,
        rows: &rows,
        users: &users,
        filter: &keys::KeyFilter::default(),
        filter_near: false,
        form: &keys::KeyForm::default(),
        created: Some(keys::Created::new(
            secret.clone(),
            "http://127.0.0.1:8080",
            "gpt-4o-mini",
            "/ui/keys",
        )),
        notice: String::new(),
    };
    let html = stable(page.render().unwrap());
    assert!(html.contains(&format!("id=\"new-key-secret\">{secret}<")));
    assert!(
        html.contains("<meter min=\"0\" max=\"100\" value=\"90\""),
        "{html}"
    );
    insta::assert_snapshot!(html);
}

#[test]
fn me_page_with_a_key() {
    let mut viewer = admin();
    viewer.role = Role::User;
    viewer.username = "alice".into();
    let layout = Layout::new(&headers("en"), Some(viewer), "nav.me", "/ui/me");
    let key = sluice_store::ApiKey {
        id: 7,
        user_id: 2,
        name: "laptop".into(),
        key_hash: "x".into(),
        key_prefix: "sk-a1b2c3d4...".into(),
        status: sluice_store::Status::Active,
        allowed_platforms: "all".into(),
        allowed_models: String::new(),
        rate_limit: 60,
        daily_limit: 0,
        monthly_quota: 5_000_000_000,
        used_tokens: 1200,
        used_cost: 1_250_000_000,
        request_count: 14,
        last_used_at: Some(1_780_000_000_000),
        expires_at: None,
        created_at: 1,
        updated_at: 1,
        deleted_at: None,
    };
    let meter = |used: f64, limit: f64, text: &str| keys::Meter {
        used,
        limit,
        text: text.into(),
        resets: String::new(),
    };
    let rows = vec![keys::KeyRow {
        key,
        owner: "alice".into(),
        rate: meter(1.0, 60.0, "1 / 60"),
        daily: meter(14.0, 0.0, "14 / unlimited"),
        monthly: meter(1.25e9, 5e9, "$1.25 / $5.00"),
    }];
    let groups = vec![usage::GroupRow {
        name: "gpt-4o-mini".into(),
        requests: 14,
        errors: "0.0 %".into(),
        input_tokens: 1000,
        output_tokens: 200,
        cost: "$1.25".into(),
        spark: crate::svg::sparkline(&[1.0, 13.0]),
        ..Default::default()
    }];
    let page = me::MePage {
        l: &layout,
        rows: &rows,
        key_cap: 5,
        budget: meter(1.25e9, 10e9, "$1.25 / $10.00"),
        ceiling_rate: "60".into(),
        ceiling_daily: "unlimited".into(),
        ceiling_monthly: "$5.00".into(),
        groups: &groups,
        snippets: keys::snippets("YOUR_SLUICE_KEY", "http://127.0.0.1:8080", "gpt-4o-mini"),
        form: &keys::KeyForm::default(),
        created: None,
        notice: String::new(),
    };
    let html = stable(page.render().unwrap());
    assert!(
        !html.contains("nav.system") && !html.contains("/ui/system") && !html.contains("/ui/usage"),
        "users see no admin links"
    );
    assert!(html.contains("action=\"/ui/me/keys\""), "{html}");
    insta::assert_snapshot!(html);
}

#[test]
fn usage_page_by_key() {
    let layout = Layout::new(&headers("zh-CN"), Some(admin()), "usage.title", "/ui/usage");
    let groups = vec![usage::GroupRow {
        name: "laptop (sk-a1b2c3d4...)".into(),
        requests: 120,
        errors: "2.5 %".into(),
        input_tokens: 50_000,
        output_tokens: 9_000,
        cache_read_tokens: 1_000,
        cost: "$3.10".into(),
        latency_p95: "750 ms".into(),
        ttft_p95: "300 ms".into(),
        spark: crate::svg::sparkline(&[10.0, 50.0, 60.0]),
        quota: Some(keys::Meter {
            used: 3.1e9,
            limit: 5e9,
            text: "$3.10 / $5.00".into(),
            resets: String::new(),
        }),
    }];
    let periods = vec![usage::PeriodRow {
        start: "2026-12-02".into(),
        requests: 120,
        errors: 3,
        tokens: 59_000,
        cost: "$3.10".into(),
    }];
    let page = usage::UsagePage {
        l: &layout,
        filter: &usage::UsageFilter::default(),
        groups: &groups,
        periods: &periods,
        total_requests: 120,
        total_cost: "$3.10".into(),
    };
    let html = stable(page.render().unwrap());
    assert!(
        html.contains("/ui/usage.csv?grain=day&amp;by=key&amp;range=7d")
            || html.contains("/ui/usage.csv?grain=day&#38;by=key&#38;range=7d"),
        "{html}"
    );
    insta::assert_snapshot!(html);
}

#[test]
fn no_template_has_inline_script_or_style() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for bad in [
            " style=",
            "<style",
            " onclick",
            " onload",
            " onchange",
            "hx-on",
            "javascript:",
        ] {
            assert!(!text.contains(bad), "{} contains {bad}", path.display());
        }
        for script in text.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap();
            assert!(tag.contains(" src="), "{}: inline <script>", path.display());
        }
    }
}

fn overview_fixture(l: &Layout) -> overview::Live {
    use overview::{Attention, Live, Tiles, TopRow, Verdict};
    Live {
        as_of: "2026-12-02 12:00:00 UTC".into(),
        verdict: Verdict {
            level: "warn",
            text: l.t("overview.verdict.credentials").replace(
                "{list}",
                &l.t("overview.verdict.cooling").replace("{n}", "1"),
            ),
        },
        tiles: Tiles {
            requests_24h: 1234,
            success_24h: "99.2 %".into(),
            saved_24h: 7,
            latency_p50: "300 ms".into(),
            latency_p95: "1.5 s".into(),
            ttft_p50: "200 ms".into(),
            ttft_p95: "750 ms".into(),
            tokens_today: 56_000,
            cost_today: "$0.42".into(),
            tokens_month: 900_000,
            cost_month: "$7.10".into(),
            quota_month: "$50.00".into(),
            creds_active: 3,
            creds_cooling: 1,
            creds_disabled: 0,
            keys_near: 1,
        },
        attention: vec![
            Attention {
                kind: "cooling",
                what: "openai / openai#1 · gpt-4o".into(),
                detail: l.t("reason.quota").into(),
                remaining_ms: Some(251_000),
            },
            Attention {
                kind: "near",
                what: "laptop (sk-a1b2c3d4...)".into(),
                detail: "Per day 90/100".into(),
                remaining_ms: None,
            },
        ],
        top_models: vec![TopRow {
            name: "gpt-4o".into(),
            requests: 1000,
            errors: "0.5 %".into(),
            ttft_p95: "750 ms".into(),
            cost: "$6.00".into(),
            spark: crate::svg::sparkline(&[1.0, 4.0, 2.0]),
        }],
        top_keys: vec![],
        top_credentials: vec![],
    }
}

#[test]
fn overview_page() {
    let layout = Layout::new(
        &headers("en"),
        Some(admin()),
        "overview.title",
        "/ui/overview",
    );
    let live = overview_fixture(&layout);
    let page = overview::OverviewPage {
        l: &layout,
        live: &live,
        range: "3h",
    };
    let html = stable(page.render().unwrap());
    assert!(html.contains("data-remaining-ms=\"251000\""), "{html}");
    assert!(html.contains("data-live=\"/ui/live/overview\""));
    insta::assert_snapshot!(html);
}

#[test]
fn overview_live_part_in_chinese() {
    let layout = Layout::new(
        &headers("zh-CN"),
        Some(admin()),
        "overview.title",
        "/ui/overview",
    );
    let live = overview_fixture(&layout);
    let part = overview::LiveFragment {
        l: &layout,
        live: &live,
    };
    let html = part.render().unwrap();
    assert!(!html.contains("<html"), "a fragment, not a page");
    assert!(html.contains("上游凭据：1 个冷却中。"), "{html}");
    insta::assert_snapshot!(html);
}

#[test]
fn request_detail_with_its_failover_timeline() {
    let layout = Layout::new(
        &headers("en"),
        Some(admin()),
        "requests.detail",
        "/ui/requests",
    );
    let row = sluice_store::UsageRow {
        request_id: "req-1".into(),
        time_ms: 1_780_000_000_000,
        endpoint: "openai.chat".into(),
        key_label: Some("key:7".into()),
        provider: Some("openai".into()),
        credential: Some("openai#1".into()),
        model_requested: Some("gpt-4o".into()),
        model_served: Some("gpt-4o".into()),
        status: 200,
        input_tokens: 12,
        output_tokens: 30,
        cost_nanos: 420_000,
        latency_ms: 812.0,
        ttft_ms: Some(301.0),
        attempts: 2,
        upstream_dialect: Some("openai_chat".into()),
        ..Default::default()
    };
    let row = requests::RequestRow::of_for_tests(row);
    let attempts = vec![
        requests::AttemptView {
            n: 1,
            a: sluice_store::rollup::AttemptRow {
                provider: "openai".into(),
                credential: "openai#0".into(),
                model: "gpt-4o".into(),
                status: 429,
                error: Some("quota exceeded".into()),
                latency_ms: 40.0,
                cooldown_until_ms: Some(1_780_000_030_000),
            },
            latency: "40 ms".into(),
            cooldown: "2026-05-28 20:27:10 UTC (30s)".into(),
        },
        requests::AttemptView {
            n: 2,
            a: sluice_store::rollup::AttemptRow {
                provider: "openai".into(),
                credential: "openai#1".into(),
                model: "gpt-4o".into(),
                status: 200,
                error: None,
                latency_ms: 770.0,
                cooldown_until_ms: None,
            },
            latency: "770 ms".into(),
            cooldown: "—".into(),
        },
    ];
    let page = requests::RequestPage {
        l: &layout,
        row: &row,
        attempts: &attempts,
    };
    insta::assert_snapshot!(stable(page.render().unwrap()));
}

#[test]
fn users_page_in_chinese() {
    let layout = Layout::new(&headers("zh-CN"), Some(admin()), "users.title", "/ui/users");
    let user = |id: i64, name: &str, role: Role, status: sluice_store::Status| sluice_store::User {
        id,
        username: name.into(),
        password_hash: "$argon2id$secret".into(),
        role,
        status,
        created_at: 1_780_000_000_000,
        ceilings: Default::default(),
    };
    let rows = vec![
        users::UserRow {
            user: user(1, "admin", Role::Admin, sluice_store::Status::Active),
            keys: 2,
            requests_month: 40,
            cost_month: "$0.40".into(),
            created: "2026-05-28 20:26:40 UTC".into(),
        },
        users::UserRow {
            user: user(2, "alice", Role::User, sluice_store::Status::Disabled),
            keys: 1,
            requests_month: 14,
            cost_month: "$1.25".into(),
            created: "2026-05-28 20:26:40 UTC".into(),
        },
    ];
    let page = users::UsersPage {
        l: &layout,
        rows: &rows,
        form: &users::UserForm::default(),
        notice: String::new(),
        me: 1,
    };
    let html = stable(page.render().unwrap());
    assert!(!html.contains("argon2"), "no password hash on the page");
    // The signed-in admin cannot demote or disable themselves from here.
    assert!(
        !html.contains("action=\"/ui/users/1\" class=\"inline\""),
        "{html}"
    );
    assert!(
        html.contains("action=\"/ui/users/2\" class=\"inline\""),
        "{html}"
    );
    insta::assert_snapshot!(html);
}

fn credentials_fixture() -> Vec<credentials::ProviderGroup> {
    use crate::{CredentialHealth, ModelHealth};
    use credentials::{Cooldown, CredRow, ProbeView};
    let strip = crate::svg::health_strip(
        &[
            (0, 0),
            (0, 0),
            (3, 0),
            (5, 1),
            (4, 4),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (2, 0),
            (9, 0),
        ],
        1_780_000_000_000,
        300_000,
    );
    let cooling = CredentialHealth {
        id: "openai#0".into(),
        provider: "openai".into(),
        platform: "openai".into(),
        origin: "config".into(),
        status: "cooling".into(),
        models: vec![ModelHealth {
            model: "gpt-4o-mini".into(),
            status: "cooling".into(),
            reason: Some("quota".into()),
            remaining_ms: Some(251_000),
        }],
        requests: 24,
        failures: 5,
        last_error: Some("quota".into()),
        last_error_detail: Some("HTTP 429: Rate limit reached for gpt-4o-mini".into()),
        last_used: Some("2026-12-02T11:47:51Z".into()),
        chat_models: vec!["gpt-4o-mini".into(), "gpt-4o".into()],
        ..CredentialHealth::default()
    };
    let disabled = CredentialHealth {
        id: "claude#0".into(),
        provider: "claude".into(),
        platform: "claude-official".into(),
        origin: "config".into(),
        token_file: Some("claude-alice.json".into()),
        status: "disabled".into(),
        disabled: Some("upstream answered HTTP 401 (authentication_error)".into()),
        requests: 3,
        failures: 1,
        last_error: Some("unauthorized".into()),
        chat_models: vec!["claude-sonnet-4-5".into()],
        ..CredentialHealth::default()
    };
    let row = |h: CredentialHealth, probe: Option<ProbeView>| CredRow {
        dom: credentials::dom_id(&h.id),
        q: h.id.replace('#', "%23"),
        cooldowns: h
            .models
            .iter()
            .map(|m| Cooldown {
                model: m.model.clone(),
                status: m.status.clone(),
                remaining_ms: m.remaining_ms,
                left: "4m 11s".into(),
                reason_key: "reason.quota",
            })
            .collect(),
        strip: strip.clone(),
        ttft_p95: "750 ms".into(),
        success_24h: "79.2 %".into(),
        probe,
        h,
    };
    vec![
        credentials::ProviderGroup {
            provider: "openai".into(),
            platform: "openai".into(),
            rows: vec![row(
                cooling,
                Some(ProbeView {
                    ok: false,
                    status: "429".into(),
                    model: "gpt-4o-mini".into(),
                    latency: "120 ms".into(),
                    ttft: "—".into(),
                    error: "Rate limit reached".into(),
                    when: "2026-12-02 11:50:00 UTC".into(),
                }),
            )],
        },
        credentials::ProviderGroup {
            provider: "claude".into(),
            platform: "claude-official".into(),
            rows: vec![row(disabled, None)],
        },
    ]
}

#[test]
fn credentials_page_with_a_cooldown_a_disabled_account_and_a_preview() {
    use crate::{RouteBlocked, RoutePreview, RouteStep};
    let layout = Layout::new(
        &headers("en"),
        Some(admin()),
        "cred.title",
        "/ui/credentials",
    );
    let groups = credentials_fixture();
    let models = vec![
        credentials::ModelLine {
            model: "gpt-4o-mini".into(),
            q: "gpt-4o-mini".into(),
            route: vec![],
            blocked: Some(RouteBlocked {
                status: "cooling".into(),
                remaining_ms: Some(251_000),
                ..RouteBlocked::default()
            }),
            left: "4m 11s".into(),
        },
        credentials::ModelLine {
            model: "gpt-4o".into(),
            q: "gpt-4o".into(),
            route: vec!["openai#1 → gpt-4o".into(), "openai#0 → gpt-4o".into()],
            blocked: None,
            left: String::new(),
        },
    ];
    let preview = RoutePreview {
        model: "gpt-4o".into(),
        steps: vec![
            RouteStep {
                model: "gpt-4o".into(),
                provider: "openai".into(),
                credential: "openai#1".into(),
                upstream_model: "gpt-4o".into(),
                priority: 0,
                probe: false,
            },
            RouteStep {
                model: "gpt-4o".into(),
                provider: "openai".into(),
                credential: "openai#0".into(),
                upstream_model: "gpt-4o".into(),
                priority: 0,
                probe: true,
            },
        ],
        unavailable: vec![RouteBlocked {
            provider: "claude".into(),
            credential: "claude#0".into(),
            upstream_model: "claude-sonnet-4-5".into(),
            status: "disabled".into(),
            reason: Some("upstream answered HTTP 401".into()),
            remaining_ms: None,
        }],
        blocked: None,
        attempts: 1,
    };
    let all_models = vec!["gpt-4o".to_string(), "gpt-4o-mini".to_string()];
    let keys = vec![key_fixture()];
    let query = credentials::PreviewQuery {
        model: "gpt-4o".into(),
        key: "7".into(),
    };
    let page = credentials::CredentialsPage {
        l: &layout,
        groups: &groups,
        models: &models,
        all_models: &all_models,
        keys: &keys,
        query: &query,
        preview: Some(preview),
        preview_error: String::new(),
    };
    let html = stable(page.render().unwrap());
    assert!(html.contains("<time class=\"countdown\" data-remaining-ms=\"251000\">4m 11s</time>"));
    assert!(html.contains("hx-trigger=\"expired\""));
    assert!(html.contains("<rect x=\"95\" y=\"0\" width=\"4\" height=\"12\" class=\"ok\">"));
    assert!(html.contains("HTTP 429: Rate limit reached for gpt-4o-mini"));
    assert!(html.contains("beyond one request"));
    insta::assert_snapshot!(html);
}

#[test]
fn credential_row_in_chinese() {
    let layout = Layout::new(
        &headers("zh-CN"),
        Some(admin()),
        "cred.title",
        "/ui/credentials",
    );
    let groups = credentials_fixture();
    let html = credentials::RowFragment {
        l: &layout,
        r: &groups[1].rows[0],
    }
    .render()
    .unwrap();
    assert!(html.starts_with("<tr id=\"cred-636c61756465233"), "{html}");
    assert!(html.contains("令牌文件"), "{html}");
    insta::assert_snapshot!(html);
}
