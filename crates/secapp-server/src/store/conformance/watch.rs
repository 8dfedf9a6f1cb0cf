//! The consumer watch: sightings only move forward, a change of alert
//! state is recorded once however many servers evaluate, and one server
//! leads the once-only duties at a time.

use chrono::{DateTime, TimeDelta, Utc};
use secapp_domain::AppName;

use super::{Backend, now_micros};
use crate::store::{AlertState, EventKind, NewEvent, Standing, WatchChange};

fn app(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}

fn standing(state: AlertState, since: DateTime<Utc>) -> Standing {
    Standing { state, since }
}

/// A last sighting never moves back, whoever writes it.
pub async fn sightings_only_move_forward(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let t = now_micros();
    a.watch(vec![(app("billing"), t)]).await.unwrap();
    let read = b
        .watch(vec![(app("billing"), t - TimeDelta::minutes(5))])
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].last_seen, Some(t), "an older sighting is ignored");
    assert_eq!(read[0].standing, None);
    let later = t + TimeDelta::seconds(1);
    let read = a.watch(vec![(app("billing"), later)]).await.unwrap();
    assert_eq!(read[0].last_seen, Some(later));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Two servers raising one alert record it, its history entry and its
/// event once between them.
pub async fn two_watchers_record_a_change_of_state_once(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let t = now_micros();
    let first = WatchChange {
        app: app("billing"),
        from: None,
        to: standing(AlertState::Fresh, t),
        last_seen: Some(t),
        event: None,
    };
    assert_eq!(a.change_watch(vec![first]).await.unwrap(), [true]);
    let stale = |by: &str| WatchChange {
        app: app("billing"),
        from: Some(standing(AlertState::Fresh, t)),
        to: standing(AlertState::Stale, t + TimeDelta::minutes(15)),
        last_seen: Some(t),
        event: Some(NewEvent {
            kind: EventKind::ConsumerStale,
            at: t + TimeDelta::minutes(16),
            data: serde_json::json!({"app": "billing", "by": by}),
            sinks: vec!["ops".into()],
        }),
    };
    let (from_a, from_b) = tokio::join!(
        a.change_watch(vec![stale("a")]),
        b.change_watch(vec![stale("b")])
    );
    let applied = [from_a.unwrap()[0], from_b.unwrap()[0]];
    assert_eq!(applied.iter().filter(|won| **won).count(), 1, "{applied:?}");
    let history = b.watch_history(Some(app("billing")), 10).await.unwrap();
    assert_eq!(history.len(), 1, "the first state has no history entry");
    assert_eq!(
        (history[0].from, history[0].to),
        (AlertState::Fresh, AlertState::Stale)
    );
    assert_eq!(history[0].at, t + TimeDelta::minutes(15));
    let later = t + TimeDelta::hours(1);
    let lease = super::lease(&a).await;
    let due = a
        .claim_deliveries(&lease, "ops", later, later + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "one event between them");
    assert_eq!(due[0].kind, EventKind::ConsumerStale);
    let read = a.watch(Vec::new()).await.unwrap();
    assert_eq!(
        read[0].standing,
        Some(standing(AlertState::Stale, t + TimeDelta::minutes(15)))
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A term longer than any check.
const TERM: std::time::Duration = std::time::Duration::from_secs(60);

/// One server at a time holds the once-only duties; when it goes, another
/// takes them under a greater epoch. Alone on a database (no notices), a
/// store always leads.
pub async fn one_server_leads_at_a_time(backend: &dyn Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    if a.notices().is_none() {
        assert!(a.lead(TERM).await.unwrap().is_some());
        a.close().await.unwrap();
        b.close().await.unwrap();
        return;
    }
    let first = a.lead(TERM).await.unwrap().expect("the first to ask leads");
    assert!(
        b.lead(TERM).await.unwrap().is_none(),
        "one leader at a time"
    );
    let renewed = a
        .lead(TERM)
        .await
        .unwrap()
        .expect("the leader keeps leading");
    assert_eq!(renewed.epoch, first.epoch, "a renewal keeps the epoch");
    a.close().await.unwrap();
    let taken = b
        .lead(TERM)
        .await
        .unwrap()
        .expect("a clean stop gives the duties up at once");
    assert!(
        taken.epoch > first.epoch,
        "each new holder has a greater epoch"
    );
    b.close().await.unwrap();
}
