//! The config parser (`sluice::config::Config`) from YAML text: environment expansion and
//! validation never panic, and a config that loads is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `${SET_…}` variables are set, any other is missing.
    let env = |name: &str| name.starts_with("SET").then(|| format!("value-of-{name}"));
    let _ = Config::parse(text);
    let Ok(config) = Config::from_yaml(text, env) else {
        return;
    };
    assert!(
        config.validate().is_empty(),
        "a loaded config validates again"
    );
    let _ = config.timezone();
    let _ = config.store_location();
    let _ = config.data_path();
    let _ = config.token_pool_path();
});
