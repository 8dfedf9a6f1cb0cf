//! Configuration, layered defaults → TOML file → environment → flags.
//!
//! Clap reads each flag and its `SECAPP_*` environment variable (a flag beats
//! its variable); whatever neither set is taken from the `--config` file, and
//! whatever that leaves unset from the defaults. Unknown keys in the file are
//! an error, so a typo cannot silently leave a setting at its default.
//!
//! - `flags.rs`: the flags of `secapp serve` ([`ServeArgs`]) and the
//!   shared-token mode they name.

mod flags;

pub use flags::{ServeArgs, SharedTokenMode};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;

use secapp_domain::{AppName, LevelRange};
use serde::Deserialize;

use crate::token::ApiToken;

/// Environment variable holding the shared API token.
pub const API_TOKEN_ENV: &str = "SECAPP_API_TOKEN";

/// The `--config` file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "database_url")]
    database_url: Option<crate::store::DatabaseUrl>,
    min_level: Option<i64>,
    max_level: Option<i64>,
    #[serde(default, with = "humantime_serde")]
    max_clock_skew: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    cursor_flush_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    shutdown_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_wait: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    heartbeat: Option<Duration>,
    max_streams: Option<usize>,
    max_streams_per_app: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    idempotency_window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    publish_rate: Option<u32>,
    read_rate: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    header_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    body_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    keep_alive_timeout: Option<Duration>,
    max_connections: Option<usize>,
    shared_token: Option<SharedTokenMode>,
    /// Per-application overrides: `[app_rate_limits.billing]`.
    #[serde(default)]
    app_rate_limits: HashMap<String, FileAppLimits>,
}

/// `[app_rate_limits.<app>]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAppLimits {
    publish_rate: Option<u32>,
    read_rate: Option<u32>,
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

/// The resolved configuration of one server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (used by the binary; tests bind their own listener).
    pub listen: SocketAddr,
    /// Directory of the SQLite database (and `api-token` in the shared-token mode).
    pub data_dir: PathBuf,
    /// The database; `None` is SQLite in `data_dir`.
    pub database_url: Option<crate::store::DatabaseUrl>,
    /// Accepted criticality levels.
    pub levels: LevelRange,
    /// How far ahead of the server's clock a `Change_at` may be.
    pub max_clock_skew: Duration,
    /// How often consumer cursors are written back to the store.
    pub cursor_flush_interval: Duration,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// The longest a long poll is held.
    pub max_wait: Duration,
    /// How often an idle stream sends a heartbeat.
    pub heartbeat: Duration,
    /// The most streams open at once.
    pub max_streams: usize,
    /// The most streams one application may hold open.
    pub max_streams_per_app: usize,
    /// The poll interval suggested to plain pollers (jittered ±20%).
    pub poll_interval: Duration,
    /// How long a publish's `Idempotency-Key` is remembered.
    pub idempotency_window: Duration,
    /// Per-application request rate limits.
    pub rate_limits: RateLimitConfig,
    /// How long a request head may take to arrive.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// How long a connection may stay idle between requests.
    pub keep_alive_timeout: Duration,
    /// The most connections open at once; `None` derives it from the
    /// process's open-file limit when the server starts.
    pub max_connections: Option<usize>,
    /// The shared token from the environment; when `None` the token stored in
    /// the data dir is used, if the compatibility mode is on.
    pub api_token: Option<ApiToken>,
    /// Whether the shared token is accepted.
    pub shared_token: SharedTokenMode,
}

/// Why the configuration could not be loaded; each message says what to fix.
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
    /// The `--config` file is not valid TOML or has an unknown key or bad value.
    #[error("the config file {path} is invalid: {message}")]
    ParseFile {
        /// The file named by `--config`.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// `--min-level` is greater than `--max-level`.
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
    /// `SECAPP_API_TOKEN` is set but empty or not printable.
    #[error(
        "{API_TOKEN_ENV} must be printable ASCII with no spaces; unset it to use the token stored in the data dir"
    )]
    BadToken,
}

impl Config {
    /// The defaults, with `data_dir` as given: what tests and embedders start from.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: data_dir.into(),
            database_url: None,
            levels: LevelRange::default(),
            max_clock_skew: Duration::from_secs(300),
            cursor_flush_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(10),
            max_wait: Duration::from_secs(55),
            heartbeat: Duration::from_secs(15),
            max_streams: 50_000,
            max_streams_per_app: 5_000,
            poll_interval: Duration::from_secs(60),
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            rate_limits: RateLimitConfig {
                publish_per_second: 10,
                read_per_second: 1000,
                per_app: HashMap::new(),
            },
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: None,
            api_token: None,
            shared_token: SharedTokenMode::Auto,
        }
    }

    /// Resolves flags (already merged with the environment by clap) over the
    /// config file over the defaults. `api_token` is the value of
    /// [`API_TOKEN_ENV`], read by the caller.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting to fix.
    pub fn load(args: ServeArgs, api_token: Option<String>) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(args, file, api_token)
    }

    /// The configuration a config file's text gives, with no flags: what
    /// `--config` would load.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting to fix.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let path = PathBuf::from("<config>");
        Self::resolve(ServeArgs::default(), parse_file(&path, text)?, None)
    }

    fn resolve(
        args: ServeArgs,
        file: FileConfig,
        api_token: Option<String>,
    ) -> Result<Self, ConfigError> {
        let defaults = Self::new("./secapp-data");
        let levels = LevelRange::new(
            layer(args.min_level, file.min_level, defaults.levels.min()),
            layer(args.max_level, file.max_level, defaults.levels.max()),
        )
        .map_err(ConfigError::Levels)?;
        let cursor_flush_interval = positive(
            layer(
                args.cursor_flush_interval,
                file.cursor_flush_interval,
                defaults.cursor_flush_interval,
            ),
            "--cursor-flush-interval",
        )?;
        let heartbeat = positive(
            layer(args.heartbeat, file.heartbeat, defaults.heartbeat),
            "--heartbeat",
        )?;
        let poll_interval = positive(
            layer(
                args.poll_interval,
                file.poll_interval,
                defaults.poll_interval,
            ),
            "--poll-interval",
        )?;
        let header_read_timeout = positive(
            layer(
                args.header_read_timeout,
                file.header_read_timeout,
                defaults.header_read_timeout,
            ),
            "--header-read-timeout",
        )?;
        let body_read_timeout = positive(
            layer(
                args.body_read_timeout,
                file.body_read_timeout,
                defaults.body_read_timeout,
            ),
            "--body-read-timeout",
        )?;
        let keep_alive_timeout = positive(
            layer(
                args.keep_alive_timeout,
                file.keep_alive_timeout,
                defaults.keep_alive_timeout,
            ),
            "--keep-alive-timeout",
        )?;
        let max_connections = args.max_connections.or(file.max_connections);
        if max_connections == Some(0) {
            return Err(ConfigError::ZeroCount("--max-connections"));
        }
        let api_token = api_token
            .map(|raw| ApiToken::new(raw).ok_or(ConfigError::BadToken))
            .transpose()?;
        let per_app = file
            .app_rate_limits
            .iter()
            .map(|(name, limits)| {
                let app = AppName::parse(name).map_err(|e| ConfigError::ParseFile {
                    path: args.config.clone().unwrap_or_default(),
                    message: format!("app_rate_limits.{name}: {e}"),
                })?;
                let limits = AppLimits {
                    publish_per_second: limits.publish_rate,
                    read_per_second: limits.read_rate,
                };
                Ok((app, limits))
            })
            .collect::<Result<HashMap<_, _>, ConfigError>>()?;
        let rate_limits = RateLimitConfig {
            publish_per_second: layer(
                args.publish_rate,
                file.publish_rate,
                defaults.rate_limits.publish_per_second,
            ),
            read_per_second: layer(
                args.read_rate,
                file.read_rate,
                defaults.rate_limits.read_per_second,
            ),
            per_app,
        };
        let config = Self {
            listen: layer(args.listen, file.listen, defaults.listen),
            data_dir: layer(args.data_dir, file.data_dir, defaults.data_dir),
            database_url: args.database_url.or(file.database_url),
            levels,
            max_clock_skew: layer(
                args.max_clock_skew,
                file.max_clock_skew,
                defaults.max_clock_skew,
            ),
            cursor_flush_interval,
            shutdown_grace: layer(
                args.shutdown_grace,
                file.shutdown_grace,
                defaults.shutdown_grace,
            ),
            max_wait: layer(args.max_wait, file.max_wait, defaults.max_wait),
            heartbeat,
            max_streams: layer(args.max_streams, file.max_streams, defaults.max_streams),
            max_streams_per_app: layer(
                args.max_streams_per_app,
                file.max_streams_per_app,
                defaults.max_streams_per_app,
            ),
            poll_interval,
            idempotency_window: layer(
                args.idempotency_window,
                file.idempotency_window,
                defaults.idempotency_window,
            ),
            rate_limits,
            header_read_timeout,
            body_read_timeout,
            keep_alive_timeout,
            max_connections,
            api_token,
            shared_token: layer(args.shared_token, file.shared_token, defaults.shared_token),
        };
        config.check_durations()?;
        Ok(config)
    }

    /// Every duration is added to or taken from clocks: bounded so none of
    /// those can overflow or leave the years secapp can store.
    fn check_durations(&self) -> Result<(), ConfigError> {
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
        ] {
            if value > MAX_DURATION {
                return Err(ConfigError::DurationTooLong(name));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The database to open: `--database-url`, or SQLite in the data dir.
    #[must_use]
    pub fn database(&self) -> crate::store::DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| crate::store::DatabaseUrl::sqlite_in(&self.data_dir))
    }
}

fn database_url<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<crate::store::DatabaseUrl>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    text.map(|text| text.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// The longest duration any setting takes: 100 years.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A flag (already merged with its environment variable), else the file's
/// key, else the default.
fn layer<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    parse_file(path, &text)
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn positive(value: Duration, name: &'static str) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        Err(ConfigError::ZeroDuration(name))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::load(ServeArgs::default(), None).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(config.data_dir, PathBuf::from("./secapp-data"));
        assert_eq!(config.levels, LevelRange::default());
        assert_eq!(config.max_clock_skew, Duration::from_secs(300));
        assert!(config.api_token.is_none());
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let f = file(
            "listen = \"127.0.0.1:9000\"\nmax_level = 9\nmin_level = 0\nmax_clock_skew = \"30s\"\n",
        );
        let args = ServeArgs {
            config: Some(f.path().to_owned()),
            max_level: Some(7),
            ..ServeArgs::default()
        };
        let config = Config::load(args, None).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.levels, LevelRange::new(0, 7).unwrap());
        assert_eq!(config.max_clock_skew, Duration::from_secs(30));
    }

    #[test]
    fn rate_limits_come_from_flags_and_per_app_overrides_from_the_file() {
        let f = file("read_rate = 50\n[app_rate_limits.billing]\nread_rate = 500\n");
        let args = ServeArgs {
            config: Some(f.path().to_owned()),
            publish_rate: Some(3),
            ..ServeArgs::default()
        };
        let limits = Config::load(args, None).unwrap().rate_limits;
        assert_eq!((limits.publish_per_second, limits.read_per_second), (3, 50));
        let billing = &limits.per_app[&AppName::parse("billing").unwrap()];
        assert_eq!(
            (billing.publish_per_second, billing.read_per_second),
            (None, Some(500))
        );
        let bad = file("[app_rate_limits.\"bad name \"]\nread_rate = 1\n");
        let args = ServeArgs {
            config: Some(bad.path().to_owned()),
            ..ServeArgs::default()
        };
        assert!(Config::load(args, None).is_err());
    }

    #[test]
    fn the_shared_token_mode_is_auto_unless_set_and_only_takes_its_three_values() {
        assert_eq!(
            Config::load(ServeArgs::default(), None)
                .unwrap()
                .shared_token,
            SharedTokenMode::Auto
        );
        let f = file("shared_token = \"off\"\n");
        let from_file = ServeArgs {
            config: Some(f.path().to_owned()),
            ..ServeArgs::default()
        };
        assert_eq!(
            Config::load(from_file.clone(), None).unwrap().shared_token,
            SharedTokenMode::Off
        );
        let flag = ServeArgs {
            shared_token: Some(SharedTokenMode::On),
            ..from_file
        };
        assert_eq!(
            Config::load(flag, None).unwrap().shared_token,
            SharedTokenMode::On
        );
        let bad = file("shared_token = \"maybe\"\n");
        let args = ServeArgs {
            config: Some(bad.path().to_owned()),
            ..ServeArgs::default()
        };
        assert!(Config::load(args, None).is_err());
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error_naming_it() {
        let f = file("max_levle = 9\n");
        let args = ServeArgs {
            config: Some(f.path().to_owned()),
            ..ServeArgs::default()
        };
        let err = Config::load(args, None).unwrap_err().to_string();
        assert!(err.contains("max_levle"), "{err}");
    }

    #[test]
    fn an_empty_level_range_is_refused_with_what_to_fix() {
        let args = ServeArgs {
            min_level: Some(4),
            max_level: Some(2),
            ..ServeArgs::default()
        };
        let err = Config::load(args, None).unwrap_err().to_string();
        assert!(err.contains("--min-level"), "{err}");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let config = Config::load(ServeArgs::default(), Some("s3cret-token".into())).unwrap();
        assert!(!format!("{config:?}").contains("s3cret-token"));
        assert!(matches!(
            Config::load(ServeArgs::default(), Some(" ".into())),
            Err(ConfigError::BadToken)
        ));
    }
}
