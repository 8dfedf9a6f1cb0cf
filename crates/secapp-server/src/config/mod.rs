//! Configuration, declared once: [`Config`] is one serde struct whose
//! fields are the settings and whose [`Default`] is their defaults. figment
//! layers it: the defaults, then the `--config` TOML file, then `SECAPP_*`
//! environment variables (the key in capitals), then the flags the binary
//! parsed (any serialisable value whose set fields are named as the keys).
//!
//! A setting added here is a file key and an environment variable at once;
//! the binary's flag type and the table of `docs/configuration.md` are held
//! to this struct by tests, so one forgotten in either fails the build's
//! tests. Unknown keys
//! in the file are an error, so a typo cannot silently leave a setting at
//! its default.

mod sinks;
#[cfg(test)]
mod tests;
mod webhooks;

pub use sinks::{SinkConfig, SinkKind, kafka_brokers, shown_url};
pub use webhooks::WebhookConfig;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use secapp_domain::{AppName, LevelRange};
use serde::{Deserialize, Serialize};

use crate::store::DatabaseUrl;
use crate::token::ApiToken;

/// Environment variable holding the shared API token (never a file key or
/// a flag, so it shows neither in a file nor in `ps`).
pub const API_TOKEN_ENV: &str = "SECAPP_API_TOKEN";

/// Prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "SECAPP_";

/// The settings of one server. Each field is a file key, an environment
/// variable (`SECAPP_` and the key in capitals) and a flag (`--` and the key
/// with `-` for `_`); durations are written as `200ms`, `15s`, `5m`, `24h`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen (used by the binary; tests bind their own listener).
    pub listen: SocketAddr,
    /// Holds the SQLite database by default (and `api-token` in the
    /// shared-token mode); created if missing, locked while in use.
    #[serde(deserialize_with = "path")]
    pub data_dir: PathBuf,
    /// The database; unset is SQLite in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    /// Lowest accepted criticality level.
    pub min_level: i64,
    /// Highest accepted criticality level.
    pub max_level: i64,
    /// How far ahead of the server's clock a `Change_at` may be.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// How often consumer records are written back to the store.
    #[serde(with = "humantime_serde")]
    pub cursor_flush_interval: Duration,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The longest a long poll is held.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// How often an idle stream sends a heartbeat.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// The most streams open at once.
    pub max_streams: usize,
    /// The most streams one application may hold open.
    pub max_streams_per_app: usize,
    /// The poll interval suggested to plain pollers (jittered ±20%).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a publish's `Idempotency-Key` is remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// Publishes per second per application (bursts of twice that); 0: no limit.
    pub publish_rate: u32,
    /// Reads per second per application (bursts of twice that); 0: no limit.
    pub read_rate: u32,
    /// Per-application overrides of the two rates: `[app_rate_limits.billing]`.
    pub app_rate_limits: BTreeMap<String, AppRateLimits>,
    /// How long a request head may take to arrive.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// How long a connection may stay idle between requests.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// The most connections open at once; unset derives it from the
    /// process's open-file limit when the server starts.
    pub max_connections: Option<usize>,
    /// Whether the shared token is accepted.
    pub shared_token: SharedTokenMode,
    /// How log lines are written: `text` or `json`.
    pub log_format: crate::telemetry::LogFormat,
    /// How many names spoken for with the shared token get their own `app`
    /// label in the metrics; the rest share `app="other"`.
    pub metrics_max_shared_apps: u64,
    /// Where to serve `GET /metrics` without a token, for a private
    /// network; unset serves it only on `listen`, with a token.
    pub metrics_listen: Option<SocketAddr>,
    /// How long a consumer application may go without polling or holding
    /// a stream before it counts as stale (each may have its own).
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// How often consumer applications are checked for staleness and due
    /// deliveries to webhooks and sinks are tried (a new event wakes the
    /// relay at once).
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
    /// How long the server holding the once-only duties (consumer alerts,
    /// relaying events) holds them without renewing: servers sharing a
    /// PostgreSQL database take them over this long after the holder
    /// stops, dies or is paused. It renews every quarter of it.
    #[serde(with = "humantime_serde")]
    pub leader_lease: Duration,
    /// How long one webhook attempt may take; also a sink's batch unless
    /// the sink sets its own `timeout`.
    #[serde(with = "humantime_serde")]
    pub webhook_timeout: Duration,
    /// How long an event is retried before it becomes a dead letter; also
    /// a sink's unless it sets its own `retry_for`.
    #[serde(with = "humantime_serde")]
    pub webhook_retry_for: Duration,
    /// Where events are sent: `[[webhooks]]` tables.
    pub webhooks: Vec<WebhookConfig>,
    /// The message brokers (and webhooks) events are relayed to: `[[sinks]]`
    /// tables.
    pub sinks: Vec<SinkConfig>,
    /// The shared token from [`API_TOKEN_ENV`]; when `None` the token stored
    /// in the data dir is used, if the compatibility mode is on.
    #[serde(skip)]
    pub api_token: Option<ApiToken>,
}

/// `[app_rate_limits.<app>]` in the config file; unset keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRateLimits {
    /// Publishes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<u32>,
    /// Reads per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_rate: Option<u32>,
}

/// The shared-token compatibility mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedTokenMode {
    /// On when `SECAPP_API_TOKEN` is set or the data dir holds an
    /// `api-token` file (an installation from before per-application
    /// tokens); off for new data dirs.
    #[default]
    Auto,
    /// Accept the shared token; generate one in the data dir if there is none.
    On,
    /// Accept registered tokens only.
    Off,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./secapp-data"),
            database_url: None,
            min_level: LevelRange::default().min(),
            max_level: LevelRange::default().max(),
            max_clock_skew: Duration::from_secs(300),
            cursor_flush_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(10),
            max_wait: Duration::from_secs(55),
            heartbeat: Duration::from_secs(15),
            max_streams: 50_000,
            max_streams_per_app: 5_000,
            poll_interval: Duration::from_secs(60),
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            publish_rate: 10,
            read_rate: 1000,
            app_rate_limits: BTreeMap::new(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: None,
            shared_token: SharedTokenMode::Auto,
            log_format: crate::telemetry::LogFormat::Text,
            metrics_max_shared_apps: 100,
            metrics_listen: None,
            stale_after: Duration::from_secs(15 * 60),
            watch_interval: Duration::from_secs(5),
            leader_lease: Duration::from_secs(15),
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_for: Duration::from_secs(24 * 60 * 60),
            webhooks: Vec::new(),
            sinks: Vec::new(),
            api_token: None,
        }
    }
}

/// Per-application rate limits, in requests per second (0: unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Publishes per second per application.
    pub publish_per_second: u32,
    /// Reads (polls, streams, reports) per second per application.
    pub read_per_second: u32,
    /// Applications with their own limits.
    pub per_app: HashMap<AppName, AppLimits>,
}

/// One application's own limits; `None` keeps the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLimits {
    /// Publishes per second.
    pub publish_per_second: Option<u32>,
    /// Reads per second.
    pub read_per_second: Option<u32>,
}

/// Why the configuration cannot be used; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    ReadFile {
        /// The file named by `--config`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A layer holds an unknown key or a value of the wrong form.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// `min_level` is greater than `max_level`.
    #[error(
        "{0}: set --min-level (SECAPP_MIN_LEVEL) no higher than --max-level (SECAPP_MAX_LEVEL)"
    )]
    Levels(secapp_domain::LevelError),
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// A duration too long to add to a clock safely.
    #[error("{0} must be at most 100 years (36500d)")]
    DurationTooLong(&'static str),
    /// A count that must be positive is zero.
    #[error("{0} must be at least 1")]
    ZeroCount(&'static str),
    /// An `[app_rate_limits.<app>]` table names no valid application.
    #[error("app_rate_limits.{name}: {error}")]
    AppName {
        /// The table's name.
        name: String,
        /// Why it is not an application name.
        error: secapp_domain::AppNameError,
    },
    /// A `[[sinks]]` table cannot be used.
    #[error("sinks[{index}]: {problem}")]
    Sink {
        /// Its place in the file, from 0.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// A `[[webhooks]]` table cannot be used.
    #[error("webhooks[{index}]: {problem}")]
    Webhook {
        /// Its place in the file, from 0.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// `SECAPP_API_TOKEN` is set but empty or not printable.
    #[error(
        "{API_TOKEN_ENV} must be printable ASCII with no spaces; unset it to use the token stored in the data dir"
    )]
    BadToken,
}

/// The shortest `--leader-lease`: renewing more often than every 250 ms
/// would keep the database busy with little gain.
const MIN_LEADER_LEASE: Duration = Duration::from_secs(1);

/// A path, also when the environment layer read it as a number or a
/// boolean (`SECAPP_DATA_DIR=2026` is the directory `2026`).
fn path<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    struct Path;
    impl serde::de::Visitor<'_> for Path {
        type Value = PathBuf;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a path")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<PathBuf, E> {
            Ok(PathBuf::from(text))
        }

        fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<PathBuf, E> {
            Ok(PathBuf::from(number.to_string()))
        }

        fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<PathBuf, E> {
            Ok(PathBuf::from(number.to_string()))
        }

        fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<PathBuf, E> {
            Ok(PathBuf::from(number.to_string()))
        }

        fn visit_bool<E: serde::de::Error>(self, flag: bool) -> Result<PathBuf, E> {
            Ok(PathBuf::from(flag.to_string()))
        }
    }
    deserializer.deserialize_any(Path)
}

/// The longest duration any setting takes: 100 years.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

impl Config {
    /// The defaults, with `data_dir` as given: what tests and embedders start from.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// Layers the defaults, the TOML file at `file` (if given), the
    /// `SECAPP_*` environment and `flags` (whose set fields are named as
    /// the keys), then checks the result. `api_token` is the value of
    /// [`API_TOKEN_ENV`], read by the caller.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting to fix.
    pub fn load(
        file: Option<&Path>,
        flags: &impl Serialize,
        api_token: Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(path) = file {
            // A missing file is an error here, not an empty layer.
            std::fs::metadata(path)
                .and_then(|_| std::fs::File::open(path))
                .map_err(|source| ConfigError::ReadFile {
                    path: path.to_owned(),
                    source,
                })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        let keys = Self::keys();
        let config = figment
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(move |key| keys.iter().any(|known| key == known.as_str())),
            )
            .merge(Serialized::defaults(flags));
        Self::extract(&config, api_token)
    }

    /// The configuration a config file's text gives, with no environment
    /// and no flags: what `--config` alone would load.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting to fix.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let figment =
            Figment::from(Serialized::defaults(Self::default())).merge(Toml::string(text));
        Self::extract(&figment, None)
    }

    /// Every setting's key, as in the file.
    #[must_use]
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn extract(figment: &Figment, api_token: Option<String>) -> Result<Self, ConfigError> {
        let mut config: Self = figment.extract().map_err(|e| {
            // figment names keys within its profile (`default.max_wait`);
            // the file and the flags know them without it.
            ConfigError::Invalid(e.to_string().replace("\"default.", "\""))
        })?;
        config.api_token = api_token
            .map(|raw| ApiToken::new(raw).ok_or(ConfigError::BadToken))
            .transpose()?;
        config.check()?;
        Ok(config)
    }

    /// Checks what serde cannot: the level range, positive and bounded
    /// durations, counts, application names. [`load`](Self::load) calls
    /// it, and so does the server before it uses a configuration built in
    /// code.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting to fix.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.levels()?;
        self.rate_limits()?;
        for (value, name) in [
            (self.cursor_flush_interval, "--cursor-flush-interval"),
            (self.heartbeat, "--heartbeat"),
            (self.poll_interval, "--poll-interval"),
            (self.header_read_timeout, "--header-read-timeout"),
            (self.body_read_timeout, "--body-read-timeout"),
            (self.keep_alive_timeout, "--keep-alive-timeout"),
            (self.stale_after, "--stale-after"),
            (self.watch_interval, "--watch-interval"),
            (self.leader_lease, "--leader-lease"),
            (self.webhook_timeout, "--webhook-timeout"),
            (self.webhook_retry_for, "--webhook-retry-for"),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        // Every duration is added to or taken from clocks: bounded so none
        // of those can overflow or leave the years secapp can store.
        for (value, name) in [
            (self.max_clock_skew, "--max-clock-skew"),
            (self.cursor_flush_interval, "--cursor-flush-interval"),
            (self.shutdown_grace, "--shutdown-grace"),
            (self.max_wait, "--max-wait"),
            (self.heartbeat, "--heartbeat"),
            (self.poll_interval, "--poll-interval"),
            (self.idempotency_window, "--idempotency-window"),
            (self.header_read_timeout, "--header-read-timeout"),
            (self.body_read_timeout, "--body-read-timeout"),
            (self.keep_alive_timeout, "--keep-alive-timeout"),
            (self.stale_after, "--stale-after"),
            (self.watch_interval, "--watch-interval"),
            (self.leader_lease, "--leader-lease"),
            (self.webhook_timeout, "--webhook-timeout"),
            (self.webhook_retry_for, "--webhook-retry-for"),
        ] {
            if value > MAX_DURATION {
                return Err(ConfigError::DurationTooLong(name));
            }
        }
        if self.leader_lease < MIN_LEADER_LEASE {
            return Err(ConfigError::Invalid(
                "--leader-lease must be at least 1s: it is renewed every quarter of it".into(),
            ));
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::ZeroCount("--max-connections"));
        }
        webhooks::check(&self.webhooks)?;
        sinks::check(
            &self.sinks,
            self.webhooks.iter().map(|hook| hook.name.as_str()),
        )
    }

    /// The accepted levels.
    ///
    /// # Errors
    /// [`ConfigError::Levels`] when `min_level` is above `max_level`.
    pub fn levels(&self) -> Result<LevelRange, ConfigError> {
        LevelRange::new(self.min_level, self.max_level).map_err(ConfigError::Levels)
    }

    /// The rate limits, with the per-application overrides by name.
    ///
    /// # Errors
    /// [`ConfigError::AppName`] for an override naming no valid application.
    pub fn rate_limits(&self) -> Result<RateLimitConfig, ConfigError> {
        let per_app = self
            .app_rate_limits
            .iter()
            .map(|(name, limits)| {
                let app = AppName::parse(name).map_err(|error| ConfigError::AppName {
                    name: name.clone(),
                    error,
                })?;
                let limits = AppLimits {
                    publish_per_second: limits.publish_rate,
                    read_per_second: limits.read_rate,
                };
                Ok((app, limits))
            })
            .collect::<Result<HashMap<_, _>, ConfigError>>()?;
        Ok(RateLimitConfig {
            publish_per_second: self.publish_rate,
            read_per_second: self.read_rate,
            per_app,
        })
    }

    /// The database to open: `database_url`, or SQLite in the data dir.
    #[must_use]
    pub fn database(&self) -> DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::sqlite_in(&self.data_dir))
    }
}
