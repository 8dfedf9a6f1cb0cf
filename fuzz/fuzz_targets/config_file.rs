//! The `--config` file. Nothing may panic; an accepted configuration keeps
//! every duration within the bound clocks can take.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secapp_server::config::Config;

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::from_toml(text) {
        let century = std::time::Duration::from_secs(100 * 365 * 24 * 60 * 60);
        assert!(config.max_clock_skew <= century);
        assert!(config.idempotency_window <= century);
        assert!(!config.heartbeat.is_zero());
        assert!(config.stale_after <= century && !config.stale_after.is_zero());
        for webhook in &config.webhooks {
            let url = webhook.url.to_ascii_lowercase();
            assert!(url.starts_with("http://") || url.starts_with("https://"));
            assert!(webhook.secret.chars().count() >= 16);
        }
    }
});
