//! How a request looks at the head: whether it records what it delivers
//! ([`Look`]), the cursor a client holds ([`ClientCursor`]), and what
//! comparing the two found ([`Compared`]).

use std::sync::Arc;

use secapp_domain::{ChangeId, Head, Mode};

/// Whether a look at the state records what it delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A request that delivers its answer: what is sent is recorded, and
    /// whether it was held as a long poll.
    Deliver {
        /// Held with `?wait=`.
        long_poll: bool,
    },
    /// A request that delivers nothing (`HEAD`): nothing is recorded.
    Peek,
}

/// A cursor the client holds and sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCursor {
    /// `?after=<id>`.
    After(ChangeId),
    /// `If-None-Match`: `None` for `*` (any current state), else the ids listed.
    IfNoneMatch(Option<Vec<ChangeId>>),
    /// A reconnecting stream's `Last-Event-ID`.
    LastEventId(ChangeId),
}

impl ClientCursor {
    /// The state the client holds, given the current head; `None` when the
    /// client said `*` and there is no head.
    pub(super) fn id(&self, head: Option<&Head>) -> Option<ChangeId> {
        let head_id = head.map(|h| h.change.id);
        match self {
            Self::After(id) | Self::LastEventId(id) => Some(*id),
            Self::IfNoneMatch(None) => head_id,
            Self::IfNoneMatch(Some(ids)) => match head_id {
                Some(head_id) if ids.contains(&head_id) => Some(head_id),
                _ => ids.iter().max().copied(),
            },
        }
    }

    /// The newest id the client says it holds, if it names any.
    pub(super) fn newest(&self) -> Option<ChangeId> {
        match self {
            Self::After(id) | Self::LastEventId(id) => Some(*id),
            Self::IfNoneMatch(ids) => ids.as_ref()?.iter().max().copied(),
        }
    }

    pub(super) fn mode(&self) -> Mode {
        match self {
            Self::After(_) => Mode::After,
            Self::IfNoneMatch(_) => Mode::IfNoneMatch,
            Self::LastEventId(_) => Mode::Stream,
        }
    }
}

/// What comparing a client's cursor with the head found.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The head, when it is news to the client.
    pub news: Option<Arc<Head>>,
    /// The head it was compared with.
    pub head: Option<Arc<Head>>,
}
