//! What the simulator shows: on a terminal a progress bar with the live
//! summary (publishes, deliveries, lag p50/p99, errors, violations) and each
//! violation above it as it is seen; elsewhere a summary line on stderr
//! every ten seconds. At the end, a report on stdout, as text or JSON.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::fleet::{Shared, with};
use super::{Mode, SimulateArgs};

/// The live display, refreshed by its own task.
pub struct Display {
    bar: Option<ProgressBar>,
    task: tokio::task::JoinHandle<()>,
    tally: Shared,
}

impl Display {
    /// Starts showing the run, which lasts `run_for` before settling.
    pub fn start(tally: Shared, args: &SimulateArgs, run_for: Duration) -> Self {
        eprintln!(
            "secapp simulate: {} producer(s), {} consumer(s) against {}; {} simulated at x{} ({:.1} s)",
            args.producers,
            args.consumers,
            args.server,
            humantime::format_duration(args.duration),
            args.speed,
            run_for.as_secs_f64()
        );
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(u64::try_from(run_for.as_millis()).unwrap_or(u64::MAX));
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        let task = {
            let tally = tally.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let tick = if bar.is_some() {
                    Duration::from_millis(200)
                } else {
                    Duration::from_secs(10)
                };
                // The first line after one tick: at once it would say nothing.
                let mut ticker = tokio::time::interval_at(started + tick, tick);
                loop {
                    ticker.tick().await;
                    report_violations(&tally, bar.as_ref());
                    let line = summary_line(&tally);
                    match &bar {
                        Some(bar) => {
                            let elapsed = started.elapsed().as_millis();
                            bar.set_position(u64::try_from(elapsed).unwrap_or(u64::MAX));
                            bar.set_message(line);
                        }
                        None => eprintln!("secapp simulate: {line}"),
                    }
                }
            })
        };
        Self { bar, task, tally }
    }

    /// The producers stopped; consumers go on to `head`.
    pub fn settling(&self, head: Option<i64>) {
        let said = match head {
            Some(head) => format!("producers stopped; consumers settling on the final head {head}"),
            None => "producers stopped; nothing was published".to_owned(),
        };
        match &self.bar {
            Some(bar) => {
                bar.println(said);
            }
            None => eprintln!("secapp simulate: {said}"),
        }
    }

    /// Stops the display, showing any violation not shown yet.
    pub fn finish(self) {
        self.task.abort();
        report_violations(&self.tally, self.bar.as_ref());
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Prints each violation not yet printed, loudly.
fn report_violations(tally: &Shared, bar: Option<&ProgressBar>) {
    for violation in with(tally, |t| t.take_unreported()) {
        let line = format!("VIOLATION: {violation}");
        match bar {
            Some(bar) => bar.println(line),
            None => eprintln!("secapp simulate: {line}"),
        }
    }
}

fn summary_line(tally: &Shared) -> String {
    with(tally, |t| {
        let (publishes, deliveries, errors) = t.counts();
        let lag = t.lag(None);
        format!(
            "publishes {publishes} · deliveries {deliveries} · lag p50 {:.0} ms p99 {:.0} ms · errors {errors} · violations {}",
            lag.p50_ms,
            lag.p99_ms,
            t.violations().len()
        )
    })
}

/// The report at the end, on stdout.
pub fn final_report(tally: &Shared, args: &SimulateArgs, modes: &[Mode], head: Option<i64>) {
    let (publishes, deliveries, errors, violations, lag, per_mode) = with(tally, |t| {
        let (publishes, deliveries, errors) = t.counts();
        let per_mode: Vec<(Mode, usize, super::tally::Lag)> = Mode::ALL
            .into_iter()
            .filter(|mode| modes.contains(mode))
            .map(|mode| (mode, t.consumers_in(mode), t.lag(Some(mode))))
            .collect();
        let violations: Vec<String> = t.violations().iter().map(ToString::to_string).collect();
        (
            publishes,
            deliveries,
            errors,
            violations,
            t.lag(None),
            per_mode,
        )
    });
    if args.json {
        let modes: Vec<_> = per_mode
            .iter()
            .map(|(mode, consumers, lag)| json!({"mode": mode, "consumers": consumers, "lag": lag}))
            .collect();
        let report = json!({
            "producers": args.producers,
            "consumers": args.consumers,
            "publishes": publishes,
            "deliveries": deliveries,
            "errors": errors,
            "final_head": head,
            "lag": lag,
            "modes": modes,
            "violations": violations,
        });
        crate::level::print_line(&report.to_string());
        return;
    }
    let mut text = format!(
        "publishes {publishes}, deliveries {deliveries}, errors {errors}, final head {}\n",
        head.map_or_else(|| "none".to_owned(), |head| head.to_string())
    );
    text.push_str("mode        consumers  timed  lag p50 ms  lag p99 ms\n");
    for (mode, consumers, lag) in &per_mode {
        text.push_str(&format!(
            "{:<10}  {consumers:>9}  {:>5}  {:>10.1}  {:>10.1}\n",
            mode.name(),
            lag.timed,
            lag.p50_ms,
            lag.p99_ms
        ));
    }
    if violations.is_empty() {
        text.push_str("violations: none");
    } else {
        text.push_str(&format!("violations: {}", violations.len()));
        for violation in &violations {
            text.push_str(&format!("\n  {violation}"));
        }
    }
    crate::level::print_line(&text);
}
