//! `secapp simulate`: a fleet of producers and consumers against a server,
//! as the prototype's two simulator programs were (a producer publishing a
//! random level every 3 to 7 minutes, consumers polling every 3 to 7
//! minutes), sped up at will, checking its invariants as it goes.
//!
//! The run: consumers start, producers publish for `--duration` (simulated
//! time; real time is that divided by `--speed`), then stop; the server's
//! head at that moment is the final head, and consumers go on until each
//! has been told it or `--settle` passes. Any violation is printed as it is
//! seen and makes the exit code 5.
//!
//! - `check.rs`: the invariants, as pure bookkeeping.
//! - `tally.rs`: counts, lags and checks shared by the fleet.
//! - `fleet.rs`: the producer and consumer tasks.
//! - `report.rs`: the live display and the final report.

mod check;
mod fleet;
mod report;
mod tally;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};
use secapp_api::admin::{NewApp, NewToken};
use secapp_client::Client;
use serde::Serialize;
use tokio::sync::watch;

use crate::admin::client::Admin;
use crate::exit::{self, Failure};
use fleet::{Consumer, Shared, with};
use tally::Tally;

/// `secapp simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The server's base URL (or the balancer's).
    #[arg(
        long,
        env = "SECAPP_SERVER",
        value_name = "URL",
        default_value = "http://127.0.0.1:8000"
    )]
    server: String,

    /// An admin token: the simulator registers its applications (or issues
    /// them new tokens) through the admin API.
    #[arg(
        long,
        env = "SECAPP_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,

    /// Without --admin-token: the server's shared token (`--api-token`),
    /// used by every simulated application.
    #[arg(
        long,
        env = "SECAPP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// How many producers.
    #[arg(long, default_value_t = 1)]
    producers: usize,

    /// How many consumers.
    #[arg(long, default_value_t = 10)]
    consumers: usize,

    /// How consumers learn the level, given out to them in turn (repeat the
    /// flag or separate with commas).
    #[arg(
        long = "mode",
        value_enum,
        value_delimiter = ',',
        default_value = "plain,cursor,long-poll,stream"
    )]
    modes: Vec<Mode>,

    /// Time between a producer's publishes, as LOW..HIGH (a random time in
    /// between each time), in simulated time.
    #[arg(long, value_name = "RANGE", default_value = "3m..7m", value_parser = Interval::parse)]
    publish_every: Interval,

    /// Time between a plain or cursor consumer's polls, as LOW..HIGH.
    #[arg(long, value_name = "RANGE", default_value = "3m..7m", value_parser = Interval::parse)]
    poll_every: Interval,

    /// How long the producers publish, in simulated time.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// How many times faster than real time the fleet runs: at 60, an hour
    /// takes a minute.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    speed: f64,

    /// After the producers stop, how long (real time) consumers may take to
    /// reach the final head (default: the longest poll interval, sped up,
    /// plus 10 s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    settle: Option<Duration>,

    /// Levels are drawn from 1 to this.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..))]
    max_level: i64,

    /// The simulated applications are named PREFIX-producer-N and
    /// PREFIX-consumer-N.
    #[arg(long, default_value = "sim")]
    prefix: String,

    /// Print the final report as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// To test the checker: make the first consumer misbehave (`repeat`:
    /// report its first state twice; `stall`: stop after its first state).
    #[arg(long, value_enum)]
    fault: Option<Fault>,
}

/// How a consumer learns the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `GET /secapp/update`: the server-held cursor, every poll interval.
    Plain,
    /// `?after=<last id>` every poll interval.
    Cursor,
    /// `?after=<last id>&wait=30`, again at once.
    LongPoll,
    /// `GET /secapp/stream` through the library's `watch()`.
    Stream,
}

impl Mode {
    const ALL: [Self; 4] = [Self::Plain, Self::Cursor, Self::LongPoll, Self::Stream];

    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Cursor => "cursor",
            Self::LongPoll => "long-poll",
            Self::Stream => "stream",
        }
    }
}

/// A deliberate misbehaviour of the first consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// Reports its first state twice.
    Repeat,
    /// Stops after its first state.
    Stall,
}

/// A range of simulated durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    low: Duration,
    high: Duration,
}

impl Interval {
    fn parse(text: &str) -> Result<Self, String> {
        let (low, high) = text.split_once("..").unwrap_or((text, text));
        let parse = |part: &str| {
            humantime::parse_duration(part.trim()).map_err(|e| format!("{part:?}: {e}"))
        };
        let (low, high) = (parse(low)?, parse(high)?);
        if low > high {
            return Err(format!("{text:?}: the low end is above the high end"));
        }
        if high.is_zero() {
            return Err(format!("{text:?}: give a range above zero, such as 3m..7m"));
        }
        Ok(Self { low, high })
    }
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(speed) if speed.is_finite() && (0.001..=1_000_000.0).contains(&speed) => Ok(speed),
        _ => Err(format!(
            "{text:?}: give a factor from 0.001 to 1000000, such as 60"
        )),
    }
}

/// The intervals, sped up.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    publish: Interval,
    poll: Interval,
    speed: f64,
}

impl Pace {
    fn pick(&self, interval: Interval) -> Duration {
        let simulated = interval.low + (interval.high - interval.low).mul_f64(fastrand::f64());
        simulated.div_f64(self.speed)
    }

    /// The real time until a producer's next publish.
    pub fn publish(&self) -> Duration {
        self.pick(self.publish)
    }

    /// The real time until a consumer's next poll.
    pub fn poll(&self) -> Duration {
        self.pick(self.poll)
    }

    /// The real pause after a failed request: a second, sped up, at least
    /// 100 ms.
    pub fn retry(&self) -> Duration {
        Duration::from_secs(1)
            .div_f64(self.speed)
            .max(Duration::from_millis(100))
    }
}

/// One simulated application, with its token.
struct SimApp {
    name: String,
    token: String,
}

/// Runs the fleet; fails with exit code 5 when an invariant was violated.
pub async fn simulate(args: SimulateArgs) -> Result<(), Failure> {
    let modes = if args.modes.is_empty() {
        Mode::ALL.to_vec()
    } else {
        args.modes.clone()
    };
    let producers = apps(&args, "producer", args.producers, "publish").await?;
    let consumers = apps(&args, "consumer", args.consumers, "consume").await?;
    let client = |app: &SimApp| {
        Client::builder(&args.server)
            .app(&app.name)
            .token(&app.token)
            .build()
            .map_err(|e| Failure::client(&e))
    };
    let pace = Pace {
        publish: args.publish_every,
        poll: args.poll_every,
        speed: args.speed,
    };
    let fleet: Vec<Consumer> = consumers
        .iter()
        .enumerate()
        .map(|(index, app)| {
            Ok(Consumer {
                index,
                client: client(app)?,
                mode: modes[index % modes.len()],
                pace,
                fault: args.fault.filter(|_| index == 0),
            })
        })
        .collect::<Result<_, Failure>>()?;
    let tally: Shared = Arc::new(Mutex::new(Tally::new(
        fleet
            .iter()
            .zip(&consumers)
            .map(|(consumer, app)| (app.name.clone(), consumer.mode)),
    )));
    let run_for = args.duration.div_f64(args.speed);
    let settle = args
        .settle
        .unwrap_or_else(|| args.poll_every.high.div_f64(args.speed) + Duration::from_secs(10));
    let display = report::Display::start(tally.clone(), &args, run_for);

    let head_reader = fleet.first().map(|consumer| consumer.client.clone());
    let (stop_consumers, consumers_stop) = watch::channel(false);
    let consuming: Vec<_> = fleet
        .into_iter()
        .map(|consumer| tokio::spawn(consumer.run(tally.clone(), consumers_stop.clone())))
        .collect();
    let (stop_producers, producers_stop) = watch::channel(false);
    let producing: Vec<_> = producers
        .iter()
        .map(|app| {
            let client = client(app)?;
            Ok(tokio::spawn(fleet::produce(
                client,
                pace,
                args.max_level,
                tally.clone(),
                producers_stop.clone(),
            )))
        })
        .collect::<Result<_, Failure>>()?;

    let interrupted = tokio::select! {
        () = tokio::time::sleep(run_for) => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    let _ = stop_producers.send(true);
    for task in producing {
        let _ = task.await;
    }
    let head = match &head_reader {
        Some(client) => final_head(client).await?,
        None => None,
    };
    display.settling(head);
    let deadline = tokio::time::Instant::now() + settle;
    while !interrupted
        && !with(&tally, |t| t.all_on(head))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_consumers.send(true);
    for task in consuming {
        let _ = task.await;
    }
    with(&tally, |t| t.finish(head));
    display.finish();
    let violations = with(&tally, |t| t.violations().len());
    report::final_report(&tally, &args, &modes, head);
    if violations > 0 {
        return Err(Failure::new(
            exit::VIOLATION,
            format!("{violations} invariant violation(s); see above"),
        ));
    }
    Ok(())
}

/// The server's head once the producers stopped (asked without moving any
/// server-held cursor), retried briefly if the server does not answer.
/// Behind a balancer the server that answers may not have heard of the last
/// publish yet, so the head is then asked again with a long poll after it,
/// longer than a server takes to catch up (a second at most), until one
/// passes with nothing newer.
async fn final_head(client: &Client) -> Result<Option<i64>, Failure> {
    let mut tries = 0;
    let mut head = loop {
        match client.poll_after(0).await {
            Ok(state) => break state.map(|state| state.id),
            Err(e) if tries >= 10 => return Err(Failure::client(&e)),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    while let Some(id) = head {
        match client.wait(id, Duration::from_secs(2)).await {
            Ok(Some(newer)) if newer.id > id => head = Some(newer.id),
            Ok(_) => break,
            Err(e) => return Err(Failure::client(&e)),
        }
    }
    Ok(head)
}

/// The `count` applications of one kind, with tokens: registered (or given
/// a new token) with the admin token, or all on the shared token.
async fn apps(
    args: &SimulateArgs,
    kind: &str,
    count: usize,
    role: &str,
) -> Result<Vec<SimApp>, Failure> {
    let names: Vec<String> = (0..count)
        .map(|n| format!("{}-{kind}-{n}", args.prefix))
        .collect();
    if let Some(admin_token) = &args.admin_token {
        return register(args, admin_token, names, role).await;
    }
    let Some(token) = &args.token else {
        return Err(Failure::new(
            exit::USAGE,
            "give --admin-token (to register the simulated applications) or --token (the server's shared token)",
        ));
    };
    Ok(names
        .into_iter()
        .map(|name| SimApp {
            name,
            token: token.clone(),
        })
        .collect())
}

async fn register(
    args: &SimulateArgs,
    admin_token: &str,
    names: Vec<String>,
    role: &str,
) -> Result<Vec<SimApp>, Failure> {
    let admin = Admin::Online {
        client: reqwest::Client::new(),
        base: args.server.trim_end_matches('/').to_owned(),
        token: admin_token.to_owned(),
    };
    let failed = |e: crate::admin::CliError| Failure::new(exit::REFUSED, e.0);
    let known: std::collections::HashSet<String> = admin
        .apps()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|app| app.name)
        .collect();
    let mut apps = Vec::with_capacity(names.len());
    for name in names {
        if !known.contains(&name) {
            let new = NewApp {
                name: name.clone(),
                roles: vec![role.to_owned()],
                description: Some("secapp simulate".to_owned()),
                owner: None,
            };
            admin.create_app(new).await.map_err(failed)?;
        }
        let token = NewToken {
            expires_in: Some("1d".to_owned()),
            expires_at: None,
            label: Some("secapp simulate".to_owned()),
        };
        let issued = admin.issue_token(&name, token).await.map_err(failed)?;
        apps.push(SimApp {
            name,
            token: issued.token,
        });
    }
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Interval, Pace, parse_speed};

    #[test]
    fn intervals_read_as_ranges_and_are_sped_up() {
        let interval = Interval::parse("3m..7m").unwrap();
        assert_eq!(interval.low, Duration::from_secs(180));
        assert_eq!(interval.high, Duration::from_secs(420));
        assert_eq!(Interval::parse("90s").unwrap().low, Duration::from_secs(90));
        assert!(Interval::parse("7m..3m").is_err());
        assert!(Interval::parse("0s").is_err());
        assert!(Interval::parse("soon").is_err());
        let pace = Pace {
            publish: interval,
            poll: interval,
            speed: 60.0,
        };
        for _ in 0..100 {
            let real = pace.publish();
            assert!(real >= Duration::from_secs(3) && real <= Duration::from_secs(7));
        }
        assert!(parse_speed("0").is_err());
        assert!(parse_speed("NaN").is_err());
        assert!((parse_speed("600").unwrap() - 600.0).abs() < f64::EPSILON);
    }
}
