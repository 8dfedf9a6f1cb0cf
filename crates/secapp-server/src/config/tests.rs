// figment's test jail returns its large error type from each closure.
#![allow(clippy::result_large_err)]

use std::io::Write as _;

use serde_json::json;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn no_flags() -> serde_json::Value {
    json!({})
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    figment::Jail::expect_with(|_| {
        let config = Config::load(None, &no_flags(), None).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(config.data_dir, PathBuf::from("./secapp-data"));
        assert_eq!(config.levels().unwrap(), LevelRange::default());
        assert_eq!(config.max_clock_skew, Duration::from_secs(300));
        assert_eq!(
            config.database(),
            DatabaseUrl::sqlite_in(Path::new("./secapp-data"))
        );
        assert!(config.api_token.is_none());
        Ok(())
    });
}

#[test]
fn flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults() {
    figment::Jail::expect_with(|jail| {
        let f = file(
            "listen = \"127.0.0.1:9000\"\nmax_level = 9\nmin_level = 0\nmax_clock_skew = \"30s\"\n\
             max_wait = \"20s\"\n",
        );
        jail.set_env("SECAPP_MAX_LEVEL", "8");
        jail.set_env("SECAPP_MAX_WAIT", "300ms");
        jail.set_env("SECAPP_HEARTBEAT", "2s");
        // A directory named like a number is still a directory.
        jail.set_env("SECAPP_DATA_DIR", "2026");
        // Variables that are not settings are left alone.
        jail.set_env("SECAPP_SERVER", "http://elsewhere");
        jail.set_env("SECAPP_CONFIG", "ignored.toml");
        let flags = json!({"max_level": 7, "heartbeat": "1s"});
        let config = Config::load(Some(f.path()), &flags, None).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.levels().unwrap(), LevelRange::new(0, 7).unwrap());
        assert_eq!(config.max_clock_skew, Duration::from_secs(30));
        assert_eq!(config.max_wait, Duration::from_millis(300));
        assert_eq!(config.heartbeat, Duration::from_secs(1));
        assert_eq!(config.data_dir, PathBuf::from("2026"));
        Ok(())
    });
}

#[test]
fn rate_limits_come_from_flags_and_per_app_overrides_from_the_file() {
    figment::Jail::expect_with(|_| {
        let f = file("read_rate = 50\n[app_rate_limits.billing]\nread_rate = 500\n");
        let limits = Config::load(Some(f.path()), &json!({"publish_rate": 3}), None)
            .unwrap()
            .rate_limits()
            .unwrap();
        assert_eq!((limits.publish_per_second, limits.read_per_second), (3, 50));
        let billing = &limits.per_app[&AppName::parse("billing").unwrap()];
        assert_eq!(
            (billing.publish_per_second, billing.read_per_second),
            (None, Some(500))
        );
        let bad = file("[app_rate_limits.\"bad name \"]\nread_rate = 1\n");
        assert!(Config::load(Some(bad.path()), &no_flags(), None).is_err());
        Ok(())
    });
}

#[test]
fn the_shared_token_mode_is_auto_unless_set_and_only_takes_its_three_values() {
    figment::Jail::expect_with(|_| {
        let load = |file: Option<&Path>, flags: serde_json::Value| Config::load(file, &flags, None);
        assert_eq!(
            load(None, no_flags()).unwrap().shared_token,
            SharedTokenMode::Auto
        );
        let f = file("shared_token = \"off\"\n");
        assert_eq!(
            load(Some(f.path()), no_flags()).unwrap().shared_token,
            SharedTokenMode::Off
        );
        assert_eq!(
            load(Some(f.path()), json!({"shared_token": "on"}))
                .unwrap()
                .shared_token,
            SharedTokenMode::On
        );
        let bad = file("shared_token = \"maybe\"\n");
        assert!(load(Some(bad.path()), no_flags()).is_err());
        Ok(())
    });
}

#[test]
fn an_unknown_key_in_the_file_is_an_error_naming_it() {
    let err = Config::from_toml("max_levle = 9\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_levle"), "{err}");
    let err = Config::from_toml("api_token = \"in a file\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("api_token"),
        "the shared token is never a file key: {err}"
    );
}

#[test]
fn a_value_of_the_wrong_form_is_an_error_naming_its_key() {
    for (text, key) in [
        ("max_wait = \"soon\"\n", "max_wait"),
        ("max_streams = -1\n", "max_streams"),
        ("database_url = \"mysql://x\"\n", "database_url"),
        ("listen = \"nowhere\"\n", "listen"),
    ] {
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}

#[test]
fn an_empty_level_range_is_refused_with_what_to_fix() {
    figment::Jail::expect_with(|_| {
        let flags = json!({"min_level": 4, "max_level": 2});
        let err = Config::load(None, &flags, None).unwrap_err().to_string();
        assert!(err.contains("--min-level"), "{err}");
        Ok(())
    });
}

#[test]
fn zero_and_endless_durations_are_refused_wherever_they_come_from() {
    assert!(matches!(
        Config::from_toml("heartbeat = \"0s\"\n"),
        Err(ConfigError::ZeroDuration("--heartbeat"))
    ));
    assert!(matches!(
        Config::from_toml("max_wait = \"36501d\"\n"),
        Err(ConfigError::DurationTooLong("--max-wait"))
    ));
    let mut config = Config::new("/tmp/x");
    config.max_connections = Some(0);
    assert!(matches!(
        config.check(),
        Err(ConfigError::ZeroCount("--max-connections"))
    ));
}

#[test]
fn the_token_never_shows_in_debug_output() {
    figment::Jail::expect_with(|_| {
        let config = Config::load(None, &no_flags(), Some("s3cret-token".into())).unwrap();
        assert!(!format!("{config:?}").contains("s3cret-token"));
        assert!(matches!(
            Config::load(None, &no_flags(), Some(" ".into())),
            Err(ConfigError::BadToken)
        ));
        Ok(())
    });
}

#[test]
fn every_key_round_trips_through_a_file() {
    // The defaults, written as a file and read back, are the defaults: each
    // key's serialised form is one the file accepts.
    let text = toml::to_string(&Config::default()).unwrap();
    let read = Config::from_toml(&text).unwrap();
    assert_eq!(
        serde_json::to_value(read).unwrap(),
        serde_json::to_value(Config::default()).unwrap()
    );
}

#[test]
fn webhooks_are_read_from_the_file_with_every_event_by_default() {
    let config = Config::from_toml(
        r#"
        stale_after = "5m"

        [[webhooks]]
        name = "pager"
        url = "https://hooks.example.com/secapp"
        secret = "0123456789abcdef"
        events = ["consumer_stale"]

        [[webhooks]]
        name = "chat_2"
        url = "http://127.0.0.1:9000/hook"
        secret = "fedcba9876543210"
        "#,
    )
    .unwrap();
    assert_eq!(config.stale_after, Duration::from_secs(300));
    assert_eq!(config.webhooks.len(), 2);
    assert_eq!(config.webhooks[0].events, ["consumer_stale"]);
    assert_eq!(
        config.webhooks[1].events,
        ["level_changed", "consumer_stale", "consumer_recovered"]
    );
    let shown = format!("{config:?}");
    assert!(!shown.contains("0123456789abcdef"), "secrets are not shown");
}

#[test]
fn a_webhook_that_cannot_be_used_is_refused_with_its_place_and_problem() {
    let hook = |fields: &str| {
        let text = format!("[[webhooks]]\n{fields}\n");
        Config::from_toml(&text).unwrap_err().to_string()
    };
    let ok = r#"url = "https://h.example/x"
secret = "0123456789abcdef""#;
    for (fields, expected) in [
        (format!("name = \"a b\"\n{ok}"), "webhooks[0]: name"),
        (format!("name = \"\"\n{ok}"), "webhooks[0]: name"),
        (
            "name = \"a\"\nurl = \"ftp://h.example/x\"\nsecret = \"0123456789abcdef\"".to_owned(),
            "http:// or https://",
        ),
        (
            "name = \"a\"\nurl = \"https://h.example/ x\"\nsecret = \"0123456789abcdef\""
                .to_owned(),
            "spaces",
        ),
        (
            "name = \"a\"\nurl = \"not a url\"\nsecret = \"0123456789abcdef\"".to_owned(),
            "webhooks[0]: url",
        ),
        (
            "name = \"a\"\nurl = \"https://h.example/x\"\nsecret = \"short\"".to_owned(),
            "at least 16",
        ),
        (
            format!("name = \"a\"\n{ok}\nevents = []"),
            "at least one event",
        ),
        (
            format!("name = \"a\"\n{ok}\nevents = [\"level_change\"]"),
            "`level_change` is not an event",
        ),
        (format!("name = \"a\"\n{ok}\ncolour = \"red\""), "colour"),
    ] {
        let error = hook(&fields);
        assert!(error.contains(expected), "{fields}: {error}");
    }
    let twice = format!("[[webhooks]]\nname = \"a\"\n{ok}\n[[webhooks]]\nname = \"a\"\n{ok}\n");
    let error = Config::from_toml(&twice).unwrap_err().to_string();
    assert!(
        error.contains("webhooks[1]: the name `a` is used twice"),
        "{error}"
    );
    let zero = Config::from_toml("stale_after = \"0s\"")
        .unwrap_err()
        .to_string();
    assert!(zero.contains("--stale-after"), "{zero}");
}
