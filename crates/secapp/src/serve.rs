//! `secapp serve`: the flags, and running the server until a signal.
//!
//! The settings themselves are declared once, in
//! [`secapp_server::config::Config`]; this file only names their flags. Each
//! flag is `--` and a setting's key with `-` for `_`; a flag left out is not
//! serialised, so the environment, the file or the default decides it. The
//! tests below hold these flags, the settings and the configuration reference's table
//! (`docs/configuration.md`) to one
//! another.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use secapp_server::config::{API_TOKEN_ENV, Config};
use secapp_server::shutdown::Signals;
use secapp_server::store::DatabaseUrl;
use secapp_server::token::TokenOrigin;
use secapp_server::{Server, telemetry};
use serde::Serialize;

/// Flags of `secapp serve`. Each setting can also be given by its
/// environment variable (`SECAPP_` and the flag's name in capitals, `_` for
/// `-`) or in the `--config` file (the name with `_` for `-`).
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct ServeArgs {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "SECAPP_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on [default: 127.0.0.1:8000].
    #[arg(long, value_name = "IP:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,

    /// Directory holding the SQLite database (and `api-token` in the
    /// shared-token mode); created if missing, locked while in use
    /// [default: ./secapp-data].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,

    /// The database: `sqlite://PATH` for the embedded SQLite file
    /// [default: sqlite://<data-dir>/secapp.db].
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,

    /// Lowest accepted criticality level [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_level: Option<i64>,

    /// Highest accepted criticality level [default: 5].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_level: Option<i64>,

    /// How far ahead of the server's clock a `Change_at` may be, e.g. `5m`,
    /// `30s` [default: 5m].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_clock_skew: Option<Duration>,

    /// How often consumer records are written back to the store, e.g.
    /// `200ms` [default: 200ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub cursor_flush_interval: Option<Duration>,

    /// How long a graceful shutdown waits for in-flight requests [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<Duration>,

    /// The longest a long poll (`?wait=`) is held; longer waits are cut to it
    /// [default: 55s, under common load balancers' 60 s idle limit].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Duration>,

    /// How often an idle stream sends a heartbeat comment [default: 15s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Duration>,

    /// The most streams open at once on this server [default: 50000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<usize>,

    /// The most streams one application may hold open at once [default: 5000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_streams_per_app: Option<usize>,

    /// The poll interval suggested to plain pollers in `Secapp-Poll-After`,
    /// jittered by ±20% [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<Duration>,

    /// How long a publish's `Idempotency-Key` is remembered [default: 24h].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub idempotency_window: Option<Duration>,

    /// Publishes per second each application may make (bursts of twice
    /// that); 0 for no limit [default: 10].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<u32>,

    /// Polls, stream connects and reports per second each application may
    /// make (bursts of twice that); 0 for no limit [default: 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_rate: Option<u32>,

    /// How long a client may take to send a request head: from the
    /// connection's start, or from the first byte of each later request
    /// [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<Duration>,

    /// How long a client may take to send a request body once its head has
    /// arrived [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub body_read_timeout: Option<Duration>,

    /// How long a connection may stay idle between requests; held long
    /// polls and open streams are not idle [default: 75s, above common load
    /// balancers' 60 s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub keep_alive_timeout: Option<Duration>,

    /// The most connections open at once; at the cap new connections wait
    /// until one closes [default: derived from the open-file limit, keeping a
    /// tenth of it (64 to 1024) for the database and logs].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,

    /// Whether the prototype's single shared token is accepted (publish and
    /// consume as any unregistered App-name): `auto` turns it on only for a
    /// data dir that already has one, or when SECAPP_API_TOKEN is set
    /// [default: auto].
    #[arg(long, value_parser = ["auto", "on", "off"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_token: Option<String>,

    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object per line) for log collectors [default: text].
    #[arg(long, value_parser = ["text", "json"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,

    /// How many application names spoken for with the shared token get
    /// their own `app` label in `/metrics`; the rest share `app="other"`
    /// [default: 100].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_max_shared_apps: Option<u64>,

    /// Also serve `GET /metrics` here, without a token, for Prometheus on a
    /// private network [default: none: only on --listen, with a token].
    #[arg(long, value_name = "IP:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,

    /// How long a consumer application may go without polling or holding a
    /// stream before it counts as stale; `secapp apps update NAME
    /// --stale-after` sets one application's own [default: 15m].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<Duration>,

    /// How often consumer applications are checked for staleness and due
    /// webhook deliveries are tried [default: 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub watch_interval: Option<Duration>,

    /// How long the server holding the once-only duties (consumer alerts,
    /// relaying events) holds them without renewing; replicas on one
    /// PostgreSQL database take them over this long after it stops, dies
    /// or is paused [default: 15s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub leader_lease: Option<Duration>,

    /// How long one webhook attempt may take [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub webhook_timeout: Option<Duration>,

    /// How long an event is retried before it becomes a dead letter
    /// [default: 24h].
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub webhook_retry_for: Option<Duration>,
}

/// Loads the configuration, opens the server and serves until SIGTERM or
/// SIGINT.
pub async fn serve(args: ServeArgs) -> ExitCode {
    let config = match Config::load(
        args.config.as_deref(),
        &args,
        std::env::var(API_TOKEN_ENV).ok(),
    ) {
        Ok(config) => config,
        Err(e) => return crate::fail(&e.to_string()),
    };
    let telemetry = telemetry::init(config.log_format);
    let code = serve_with(config).await;
    // The last spans are sent on a blocking thread: the exporter blocks.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn serve_with(config: Config) -> ExitCode {
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => return crate::fail(&format!("cannot install signal handlers: {e}")),
    };
    let listen = config.listen;
    let server = match Server::open(config).await {
        Ok(server) => server,
        Err(e) => return crate::fail(&e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            return crate::fail(&format!(
                "cannot listen on {listen}: {e}; choose another address with --listen or SECAPP_LISTEN"
            ));
        }
    };
    let local = listener.local_addr().unwrap_or(listen);
    announce(&server, local);
    match server.run(listener, signals.recv()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::fail(&e.to_string()),
    }
}

/// Tells the operator where the server is and, the first time only, the
/// first admin token (and a generated shared token).
fn announce(server: &Server, local: SocketAddr) {
    let base = if local.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", local.port())
    } else {
        format!("http://{local}")
    };
    tracing::info!(address = %local, "secapp is listening; API docs at {base}/docs");
    if let Some(metrics) = server.metrics_addr() {
        tracing::info!(address = %metrics, "serving GET /metrics without a token");
    }
    if let Some(issued) = server.first_admin() {
        let token = &issued.token;
        println!(
            "\nsecapp registered the application `admin` and issued its first token ({id}).\n\
             It is shown only this once: secapp keeps only its hash.\n\n\
             \x20 admin token: {token}\n\n\
             \x20 register a producer:  secapp apps add security-team --role publish --server {base} --token {token}\n\
             \x20 register a consumer:  secapp apps add billing --role consume --server {base} --token {token}\n\
             \x20 the same over HTTP:   curl -X POST {base}/admin/apps -H 'Authorization: Bearer {token}' \
             -H 'Content-Type: application/json' -d '{{\"name\": \"billing\", \"roles\": [\"consume\"]}}'\n\
             \x20 docs:                 {base}/docs\n",
            id = issued.details.id,
        );
    }
    match server.shared_token() {
        Some((token, TokenOrigin::Generated(path))) => {
            let token = token.expose();
            println!(
                "\nsecapp generated a shared compatibility token and stored it in {path} (mode 0600).\n\
                 It is shown only this once; read the file or set {API_TOKEN_ENV} later.\n\n\
                 \x20 shared token: {token}\n\
                 \x20 poll:         curl {base}/secapp/update -H 'App-name: billing' -H 'Token: {token}'\n",
                path = path.display(),
            );
        }
        Some((_, TokenOrigin::Stored(path))) => {
            tracing::info!(token_file = %path.display(), "accepting the shared token stored in the data dir");
        }
        Some((_, TokenOrigin::Environment)) => {
            tracing::info!("accepting the shared token from {API_TOKEN_ENV}");
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::Args as _;
    use secapp_server::config::{Config, ENV_PREFIX};

    use super::ServeArgs;

    /// Settings that have no flag: tables, which a flag cannot hold.
    const FILE_ONLY: [&str; 3] = ["app_rate_limits", "sinks", "webhooks"];

    fn flags() -> BTreeSet<String> {
        ServeArgs::augment_args(clap::Command::new("serve"))
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .filter(|long| long != "config")
            .collect()
    }

    #[test]
    fn every_setting_has_its_flag_and_every_flag_is_a_setting() {
        let from_settings: BTreeSet<String> = Config::keys()
            .into_iter()
            .filter(|key| !FILE_ONLY.contains(&key.as_str()))
            .map(|key| key.replace('_', "-"))
            .collect();
        assert_eq!(flags(), from_settings);
    }

    #[test]
    fn a_flag_left_out_is_not_serialised_and_one_given_is_under_its_key() {
        let none = serde_json::to_value(ServeArgs::default()).unwrap();
        assert_eq!(none, serde_json::json!({}));
        let args = ServeArgs {
            max_wait: Some(std::time::Duration::from_millis(1500)),
            shared_token: Some("off".into()),
            ..ServeArgs::default()
        };
        let config = Config::load(None, &args, None).unwrap();
        assert_eq!(config.max_wait, std::time::Duration::from_millis(1500));
        assert_eq!(
            config.shared_token,
            secapp_server::config::SharedTokenMode::Off
        );
    }

    /// The rows of the configuration reference's table
    /// (`docs/configuration.md`): flag, environment variable, file key and
    /// default, as written there.
    fn reference_rows() -> Vec<[String; 4]> {
        let reference = include_str!("../../../docs/configuration.md");
        let table = reference
            .split("## Configuration")
            .nth(1)
            .expect("docs/configuration.md has a Configuration section");
        table
            .lines()
            .skip_while(|line| !line.starts_with("| flag |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<String> = line
                    .split('|')
                    .skip(1)
                    .take(4)
                    .map(|cell| cell.trim().trim_matches('`').to_owned())
                    .collect();
                [
                    cells[0].clone(),
                    cells[1].clone(),
                    cells[2].clone(),
                    cells[3].clone(),
                ]
            })
            .collect()
    }

    #[test]
    fn the_configuration_reference_lists_every_setting_with_its_flag_variable_and_default() {
        let rows = reference_rows();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut documented = BTreeSet::new();
        for [flag, env, key, default] in &rows {
            if key == "—" || key.starts_with('[') {
                continue;
            }
            documented.insert(key.clone());
            assert_eq!(*flag, format!("--{}", key.replace('_', "-")), "{key}");
            assert_eq!(*env, format!("{ENV_PREFIX}{}", key.to_uppercase()), "{key}");
            let value = &defaults[key.as_str()];
            match value {
                // Derived at start: docs/configuration.md says from what.
                serde_json::Value::Null => {}
                serde_json::Value::String(text) => {
                    let same = text == default
                        || humantime::parse_duration(text).ok()
                            == humantime::parse_duration(default)
                                .ok()
                                .filter(|_| humantime::parse_duration(text).is_ok());
                    assert!(
                        same,
                        "{key}: docs/configuration.md says {default}, the default is {text}"
                    );
                }
                other => assert_eq!(other.to_string(), *default, "{key}"),
            }
        }
        assert!(
            rows.iter()
                .any(|[.., key, _]| key == "[app_rate_limits.<app>]"),
            "the per-application table is documented"
        );
        let settings: BTreeSet<String> = Config::keys()
            .into_iter()
            .filter(|key| !FILE_ONLY.contains(&key.as_str()))
            .collect();
        assert_eq!(
            documented, settings,
            "the configuration reference and the settings differ"
        );
    }
}
