//! When a consumer application is fresh, stale or never seen: a pure
//! function of what was stored, when it was last seen and the time.

use chrono::{DateTime, TimeDelta, Utc};

use crate::store::{AlertState, Standing};

/// What is known of one watched application at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Its stored state, if it was evaluated before.
    pub current: Option<Standing>,
    /// When it last polled or held a stream.
    pub last_seen: Option<DateTime<Utc>>,
    /// Since when it is watched: its registration, or the server's start
    /// if later; a never-seen application's allowance runs from here.
    pub watched_from: DateTime<Utc>,
    /// How long it may go unseen.
    pub allowance: TimeDelta,
}

/// Its state now.
///
/// - Seen within its allowance: fresh (since that sighting, or since it
///   was fresh already).
/// - Stale: stays stale until it is seen again; a restart or a later
///   `watched_from` never makes a stale application "recover".
/// - Otherwise stale once its allowance has run out since it was last
///   seen (or, never seen, since `watched_from`), stale since that moment.
/// - Otherwise never seen, since `watched_from`.
#[must_use]
pub fn standing(facts: &Facts, now: DateTime<Utc>) -> Standing {
    let current = facts.current;
    if let Some(seen) = facts.last_seen
        && now.signed_duration_since(seen) <= facts.allowance
    {
        return match current {
            Some(kept) if kept.state == AlertState::Fresh => kept,
            // A recovery is dated by the sighting that ended it; one seen
            // before the stale time (its allowance was raised) by now.
            Some(stale) if stale.state == AlertState::Stale => Standing {
                state: AlertState::Fresh,
                since: if seen > stale.since { seen } else { now },
            },
            _ => Standing {
                state: AlertState::Fresh,
                since: seen,
            },
        };
    }
    if let Some(stale) = current.filter(|s| s.state == AlertState::Stale) {
        return stale;
    }
    let reference = facts.last_seen.unwrap_or(facts.watched_from);
    let deadline = reference
        .checked_add_signed(facts.allowance)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if now > deadline {
        return Standing {
            state: AlertState::Stale,
            since: deadline,
        };
    }
    match current {
        Some(kept) => kept,
        None => Standing {
            state: AlertState::NeverSeen,
            since: facts.watched_from,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(minute)
    }

    fn facts(current: Option<Standing>, last_seen: Option<i64>) -> Facts {
        Facts {
            current,
            last_seen: last_seen.map(t),
            watched_from: t(0),
            allowance: TimeDelta::minutes(15),
        }
    }

    fn at(state: AlertState, minute: i64) -> Standing {
        Standing {
            state,
            since: t(minute),
        }
    }

    use AlertState::{Fresh, NeverSeen, Stale};

    #[test]
    fn a_registered_application_never_seen_goes_stale_when_its_allowance_runs_out() {
        assert_eq!(standing(&facts(None, None), t(10)), at(NeverSeen, 0));
        let waiting = Some(at(NeverSeen, 0));
        assert_eq!(standing(&facts(waiting, None), t(15)), at(NeverSeen, 0));
        assert_eq!(standing(&facts(waiting, None), t(16)), at(Stale, 15));
    }

    #[test]
    fn fresh_stale_and_recovered() {
        let fresh = standing(&facts(None, Some(2)), t(3));
        assert_eq!(fresh, at(Fresh, 2));
        // Seen again: still fresh since it first was.
        assert_eq!(standing(&facts(Some(fresh), Some(10)), t(20)), fresh);
        // Quiet for longer than the allowance: stale since it ran out.
        let stale = standing(&facts(Some(fresh), Some(10)), t(30));
        assert_eq!(stale, at(Stale, 25));
        // Seen again: recovered, dated by the sighting.
        assert_eq!(
            standing(&facts(Some(stale), Some(40)), t(41)),
            at(Fresh, 40)
        );
    }

    #[test]
    fn a_stale_application_stays_stale_however_late_it_is_watched_from() {
        let stale = Some(at(Stale, 15));
        let restarted = Facts {
            watched_from: t(100),
            ..facts(stale, None)
        };
        assert_eq!(standing(&restarted, t(101)), at(Stale, 15));
    }

    #[test]
    fn a_raised_allowance_ends_a_stale_state_at_once() {
        let raised = Facts {
            allowance: TimeDelta::minutes(60),
            ..facts(Some(at(Stale, 25)), Some(10))
        };
        assert_eq!(standing(&raised, t(30)), at(Fresh, 30));
    }
}
