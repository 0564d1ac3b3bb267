#![allow(clippy::unwrap_used, clippy::panic)]
use std::collections::BTreeMap;
use std::time::Duration;

use super::health::Outcome;
use super::*;
use crate::config::Config;

fn router(yaml: &str) -> Router {
    let config = Config::from_yaml(yaml, |_| None).unwrap_or_else(|e| panic!("{e:?}"));
    Router::new(&config, crate::gateway::build_catalog(&config).unwrap())
}

const TWO_PROVIDERS: &str = "
providers:
  - {name: a, kind: openai-compatible, platform: openai, base-url: 'http://a', api-keys: [k0, k1], models: [{name: m1, alias: fast}, {name: shared}]}
  - {name: b, kind: openai-compatible, platform: qwen, base-url: 'http://b', api-keys: [k2], models: [{name: shared}]}
";

/// The credential a fresh plan picks first.
fn first(r: &Router, model: &str) -> String {
    r.plan(model, None, None)
        .unwrap()
        .next_pick()
        .unwrap()
        .credential
        .id
        .to_string()
}

fn cool(r: &Router, credential: &str, model: &str, secs: u64) {
    r.health.report(
        credential,
        model,
        &Outcome::Quota {
            retry_after: Some(Duration::from_secs(secs)),
        },
        r.clock.now(),
    );
}

#[test]
fn aliases_names_and_platforms() {
    let r = router(TWO_PROVIDERS);
    let pick = r.plan("fast", None, None).unwrap().next_pick().unwrap();
    assert_eq!(
        (pick.target.provider.name(), &*pick.target.upstream_model),
        ("a", "m1")
    );
    let err = r.plan("nope", None, None).unwrap_err();
    assert_eq!(err.body.code.as_deref(), Some("model_not_found"));
    let names: Vec<_> = r.catalog.models().map(|(m, _)| m).collect();
    assert_eq!(names, vec!["m1", "fast", "shared"]);
    for _ in 0..3 {
        assert_eq!(first(&r, "qwen,shared"), "b#0");
    }
    assert!(r.plan("qwen,m1", None, None).is_err());
    assert!(r.plan("gemini,shared", None, None).is_err());
    let only = r
        .plan("shared", Some("qwen"), None)
        .unwrap()
        .next_pick()
        .unwrap();
    assert_eq!(only.target.provider.name(), "b");
    assert!(r.plan("openai,shared", Some("qwen"), None).is_err());
    assert!(r.plan("m1", Some("qwen"), None).is_err());
}

#[test]
fn round_robin_takes_every_credential_in_turn_and_skips_cooling_ones() {
    let r = router(TWO_PROVIDERS);
    let picks: Vec<String> = (0..6).map(|_| first(&r, "shared")).collect();
    assert_eq!(picks, ["a#0", "a#1", "b#0", "a#0", "a#1", "b#0"]);
    cool(&r, "a#1", "shared", 60);
    let picks: Vec<String> = (0..4).map(|_| first(&r, "shared")).collect();
    assert!(!picks.contains(&"a#1".to_string()), "{picks:?}");
    // The cooldown is per model: a#1 still serves m1.
    cool(&r, "a#0", "m1", 60);
    assert_eq!(first(&r, "m1"), "a#1");
    // The window ends by itself.
    r.clock.advance(Duration::from_secs(60));
    let picks: Vec<String> = (0..3).map(|_| first(&r, "shared")).collect();
    assert!(picks.contains(&"a#1".to_string()), "{picks:?}");
}

#[test]
fn weighted_shares_follow_weights_exactly() {
    let r = router(
        "
routing: {strategy: weighted}
providers:
  - {name: a, kind: openai-compatible, base-url: 'http://a', api-keys: [k0, k1], weight: 3, models: [{name: m}]}
  - {name: b, kind: openai-compatible, base-url: 'http://b', api-keys: [k2], weight: 1, models: [{name: m}]}
",
    );
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..400 {
        *counts.entry(first(&r, "m")).or_default() += 1;
    }
    // Provider a gets 3/4, spread over its two keys; b gets 1/4.
    assert_eq!(counts["a#0"] + counts["a#1"], 300);
    assert_eq!(counts["a#0"], 150);
    assert_eq!(counts["b#0"], 100);
}

#[test]
fn fill_first_uses_one_credential_until_it_steps_aside() {
    let r =
        router(&TWO_PROVIDERS.replace("providers:", "routing: {strategy: fill-first}\nproviders:"));
    for _ in 0..5 {
        assert_eq!(first(&r, "shared"), "a#0");
    }
    cool(&r, "a#0", "shared", 30);
    assert_eq!(first(&r, "shared"), "a#1");
    cool(&r, "a#1", "shared", 30);
    assert_eq!(first(&r, "shared"), "b#0");
    r.clock.advance(Duration::from_secs(30));
    assert_eq!(first(&r, "shared"), "a#0");
}

#[test]
fn higher_priority_tiers_serve_first() {
    let r = router(
        "
providers:
  - {name: backup, kind: openai-compatible, base-url: 'http://a', api-keys: [k0], priority: 0, models: [{name: m}]}
  - {name: main, kind: openai-compatible, base-url: 'http://b', api-keys: [k1, k2], priority: 10, models: [{name: m}]}
",
    );
    let picks: Vec<String> = (0..4).map(|_| first(&r, "m")).collect();
    assert_eq!(picks, ["main#0", "main#1", "main#0", "main#1"]);
    cool(&r, "main#0", "m", 10);
    cool(&r, "main#1", "m", 10);
    assert_eq!(first(&r, "m"), "backup#0");
    r.clock.advance(Duration::from_secs(10));
    assert!(first(&r, "m").starts_with("main#"));
}

#[test]
fn a_retry_tries_the_same_provider_first_then_the_next() {
    let r = router(TWO_PROVIDERS);
    let mut plan = r.plan("shared", None, None).unwrap();
    let order: Vec<String> = std::iter::from_fn(|| plan.next_pick().ok())
        .map(|p| p.credential.id.to_string())
        .collect();
    assert_eq!(order, ["a#0", "a#1", "b#0"]);
    assert_eq!(plan.next_pick().unwrap_err(), Exhausted::NoneLeft);
}

#[test]
fn exhausted_says_when_the_first_credential_returns() {
    let r = router(TWO_PROVIDERS);
    cool(&r, "a#0", "m1", 5);
    cool(&r, "a#1", "m1", 9);
    let err = r.plan("m1", None, None).unwrap().next_pick().unwrap_err();
    let Exhausted::Cooling { until } = err else {
        panic!("{err:?}")
    };
    assert_eq!(seconds_until(until, r.clock.now()), 5);
    let error = failover::exhausted_error(&err, "m1", r.clock.now());
    assert_eq!(error.status.as_u16(), 429);
    assert_eq!(error.retry_after().unwrap(), "5");
}

#[test]
fn preview_model_takes_over_when_the_model_is_exhausted() {
    let yaml = "
providers:
  - {name: a, kind: openai-compatible, base-url: 'http://a', api-keys: [k0], models: [{name: pro, preview-model: pro-preview}]}
  - {name: b, kind: openai-compatible, base-url: 'http://b', api-keys: [k1], models: [{name: pro-preview}]}
";
    let r = router(yaml);
    cool(&r, "a#0", "pro", 60);
    let mut plan = r.plan("pro", None, None).unwrap();
    let pick = plan.next_pick().unwrap();
    assert_eq!(
        (&*pick.credential.id, &*pick.target.upstream_model),
        ("b#0", "pro-preview")
    );
    assert!(plan.fell_back());
    let off = router(&format!(
        "quota-exceeded: {{switch-preview-model: false}}\n{yaml}"
    ));
    cool(&off, "a#0", "pro", 60);
    assert!(off.plan("pro", None, None).unwrap().next_pick().is_err());
}

#[test]
fn sticky_sessions_hold_and_release() {
    let r = router(&TWO_PROVIDERS.replace(
        "providers:",
        "routing: {sticky-sessions: true, sticky-ttl: 10m}\nproviders:",
    ));
    let pick = |session: &str| {
        let plan = r.plan("shared", None, Some(session)).unwrap();
        let mut plan = plan;
        let p = plan.next_pick().unwrap();
        r.bind_session(&plan, &p.credential.id);
        p.credential.id.to_string()
    };
    let bound = pick("s1");
    for _ in 0..5 {
        assert_eq!(pick("s1"), bound, "the session stays");
    }
    assert_eq!(r.sessions(), 1);
    cool(&r, &bound, "shared", 60);
    let moved = pick("s1");
    assert_ne!(moved, bound, "released when its credential cools");
    r.clock.advance(Duration::from_secs(60));
    assert_eq!(pick("s1"), moved, "and stays on the new one");
    r.clock.advance(Duration::from_secs(601));
    assert_eq!(r.sessions(), 0, "bindings expire");
}

#[test]
fn retry_after_headers() {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("retry-after", "7".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    h.insert("retry-after-ms", "250".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    let mut date = reqwest::header::HeaderMap::new();
    date.insert(
        "retry-after",
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&date), Some(Duration::ZERO), "a past date");
    date.insert("retry-after", "soon".parse().unwrap());
    assert_eq!(retry_after(&date), None);
}

#[test]
fn a_reload_keeps_cooldowns_and_sessions_but_re_enables_disabled_credentials() {
    let yaml = TWO_PROVIDERS.replace("providers:", "routing: {sticky-sessions: true}\nproviders:");
    let old = router(&yaml);
    cool(&old, "a#0", "shared", 60);
    old.health.report(
        "b#0",
        "shared",
        &Outcome::Unauthorized {
            reason: "HTTP 401".into(),
        },
        old.clock.now(),
    );
    let mut plan = old.plan("shared", None, Some("s")).unwrap();
    let p = plan.next_pick().unwrap();
    old.bind_session(&plan, &p.credential.id);

    let new = router(&yaml);
    new.inherit(&old);
    let now = new.clock.now();
    assert!(
        !new.health.availability("a#0", "shared", now).eligible(),
        "still cooling"
    );
    assert!(
        new.health.availability("b#0", "shared", now).eligible(),
        "another chance"
    );
    assert_eq!(new.sessions(), 1);
    new.clock.advance(Duration::from_secs(60));
    assert!(
        new.health
            .availability("a#0", "shared", new.clock.now())
            .eligible()
    );
}

#[test]
fn a_preview_is_the_plans_order_and_takes_nothing() {
    let r = router(TWO_PROVIDERS);
    let order = |r: &Router| -> Vec<String> {
        r.plan("shared", None, None)
            .unwrap()
            .preview()
            .steps
            .iter()
            .map(|s| s.credential.id.to_string())
            .collect()
    };
    let first_look = order(&r);
    assert_eq!(first_look.len(), 3);
    assert_eq!(order(&r), first_look, "previewing moved nothing");
    // The real plan takes them in the previewed order.
    let mut plan = r.plan("shared", None, None).unwrap();
    let taken: Vec<String> = (0..3)
        .map(|_| plan.next_pick().unwrap().credential.id.to_string())
        .collect();
    assert_eq!(taken, first_look);
    // A cooling credential is out, with its window; the next look at it is the probe.
    cool(&r, "b#0", "shared", 30);
    let p = r.plan("shared", None, None).unwrap().preview();
    assert!(p.steps.iter().all(|s| &*s.credential.id != "b#0"));
    assert_eq!(p.unavailable.len(), 1);
    assert!(matches!(
        p.unavailable[0].2,
        health::Availability::Cooling { .. }
    ));
    r.clock.advance(Duration::from_secs(31));
    let p = r.plan("shared", None, None).unwrap().preview();
    let b = p.steps.iter().find(|s| &*s.credential.id == "b#0").unwrap();
    assert!(b.probe);
    assert_eq!(
        first(&r, "qwen,shared"),
        "b#0",
        "the preview took no probe lease"
    );
    // Nothing left: why.
    cool(&r, "b#0", "shared", 30);
    let p = r.plan("qwen,shared", None, None).unwrap().preview();
    assert!(p.steps.is_empty());
    assert!(matches!(p.exhausted, Some(Exhausted::Cooling { .. })));
}
