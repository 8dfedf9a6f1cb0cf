//! Domain values in their wire form, written once: the current state as
//! polls and streams answer it, and the next page of a paged list.

use secapp_api::CurrentState;
use secapp_domain::Head;

/// The wire form of a head: what a poll answers and a stream sends.
#[must_use]
pub fn current_state(head: &Head) -> CurrentState {
    CurrentState {
        current_status: head.change.level.get(),
        status_change_id: head.change.id.0,
        change_at: head.change.changed_at.to_string(),
    }
}

/// The `next_before` of a page, newest first: the id of its last entry when
/// the page is full (there may be more), none when it is not.
pub fn next_before<T>(page: &[T], limit: u32, id: impl Fn(&T) -> i64) -> Option<i64> {
    (page.len() == limit as usize)
        .then(|| page.last().map(id))
        .flatten()
}
