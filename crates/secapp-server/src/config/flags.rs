//! The flags of `secapp serve`, each also read from its `SECAPP_*`
//! environment variable by clap; the layering over the config file and the
//! defaults is in [`super::Config::load`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Flags of `secapp serve`. Every one can also be set by its environment
/// variable or in the `--config` file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "SECAPP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "SECAPP_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,

    /// Directory holding the SQLite database (and `api-token` in the shared-token mode); created if
    /// missing [default: ./secapp-data].
    #[arg(long, env = "SECAPP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The database: `sqlite://PATH` for the embedded SQLite file
    /// [default: sqlite://<data-dir>/secapp.db].
    #[arg(long, env = "SECAPP_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<crate::store::DatabaseUrl>,

    /// Lowest accepted criticality level [default: 1].
    #[arg(long, env = "SECAPP_MIN_LEVEL", allow_negative_numbers = true)]
    pub min_level: Option<i64>,

    /// Highest accepted criticality level [default: 5].
    #[arg(long, env = "SECAPP_MAX_LEVEL", allow_negative_numbers = true)]
    pub max_level: Option<i64>,

    /// How far ahead of the server's clock a `Change_at` may be, e.g. `5m`,
    /// `30s` [default: 5m].
    #[arg(long, env = "SECAPP_MAX_CLOCK_SKEW", value_parser = humantime::parse_duration)]
    pub max_clock_skew: Option<Duration>,

    /// How often consumer cursors are written back to the store, e.g. `200ms`
    /// [default: 200ms].
    #[arg(long, env = "SECAPP_CURSOR_FLUSH_INTERVAL", value_parser = humantime::parse_duration)]
    pub cursor_flush_interval: Option<Duration>,

    /// How long a graceful shutdown waits for in-flight requests, e.g. `10s`
    /// [default: 10s].
    #[arg(long, env = "SECAPP_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,

    /// The longest a long poll (`?wait=`) is held; longer waits are cut to it
    /// [default: 55s, under common load balancers' 60 s idle limit].
    #[arg(long, env = "SECAPP_MAX_WAIT", value_parser = humantime::parse_duration)]
    pub max_wait: Option<Duration>,

    /// How often an idle stream sends a heartbeat comment [default: 15s].
    #[arg(long, env = "SECAPP_HEARTBEAT", value_parser = humantime::parse_duration)]
    pub heartbeat: Option<Duration>,

    /// The most streams open at once on this server [default: 50000].
    #[arg(long, env = "SECAPP_MAX_STREAMS")]
    pub max_streams: Option<usize>,

    /// The most streams one application may hold open at once [default: 5000].
    #[arg(long, env = "SECAPP_MAX_STREAMS_PER_APP")]
    pub max_streams_per_app: Option<usize>,

    /// Publishes per second each application may make (bursts of twice
    /// that); 0 for no limit [default: 10].
    #[arg(long, env = "SECAPP_PUBLISH_RATE")]
    pub publish_rate: Option<u32>,

    /// Polls, stream connects and reports per second each application may
    /// make (bursts of twice that); 0 for no limit [default: 1000].
    #[arg(long, env = "SECAPP_READ_RATE")]
    pub read_rate: Option<u32>,

    /// How long a publish's `Idempotency-Key` is remembered, e.g. `24h`
    /// [default: 24h].
    #[arg(long, env = "SECAPP_IDEMPOTENCY_WINDOW", value_parser = humantime::parse_duration)]
    pub idempotency_window: Option<Duration>,

    /// The poll interval suggested to plain pollers in `Secapp-Poll-After`,
    /// jittered by ±20% [default: 60s].
    #[arg(long, env = "SECAPP_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,

    /// How long a client may take to send a request head: from the
    /// connection's start, or from the first byte of each later request
    /// [default: 10s].
    #[arg(long, env = "SECAPP_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Option<Duration>,

    /// How long a client may take to send a request body once its head has
    /// arrived [default: 10s].
    #[arg(long, env = "SECAPP_BODY_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Option<Duration>,

    /// How long a connection may stay idle between requests; held long
    /// polls and open streams are not idle [default: 75s, above common load
    /// balancers' 60 s].
    #[arg(long, env = "SECAPP_KEEP_ALIVE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub keep_alive_timeout: Option<Duration>,

    /// The most connections open at once; at the cap new connections wait
    /// until one closes [default: derived from the open-file limit, keeping a
    /// tenth of it (64 to 1024) for the database and logs].
    #[arg(long, env = "SECAPP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Whether the prototype's single shared token is accepted (publish and
    /// consume as any unregistered App-name): `auto` turns it on only for a
    /// data dir that already has one, or when SECAPP_API_TOKEN is set
    /// [default: auto].
    #[arg(long, env = "SECAPP_SHARED_TOKEN", value_enum)]
    pub shared_token: Option<SharedTokenMode>,
}

/// The shared-token compatibility mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
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
