//! `[[webhooks]]` in the config file: where events go, and the checks a
//! table must pass before the server starts.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::sinks::{MIN_SECRET, event_kinds, name_ok, parse_url};
use crate::store::EventKind;

/// One `[[webhooks]]` table: where to send which events, and the secret
/// they are signed with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name: deliveries are kept under it, so the URL or secret may
    /// change without losing events waiting for it.
    pub name: String,
    /// Where to `POST` events: `http://` or `https://`.
    pub url: String,
    /// The key of each event's `Secapp-Signature` (at least 16 characters).
    pub secret: String,
    /// Which events: `level_changed`, `consumer_stale` and
    /// `consumer_recovered` when left out; `state_changed` or
    /// `publish_accepted` instead of `level_changed` (one of the three).
    #[serde(default = "every_event")]
    pub events: Vec<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

fn every_event() -> Vec<String> {
    [
        EventKind::LevelChanged,
        EventKind::ConsumerStale,
        EventKind::ConsumerRecovered,
    ]
    .iter()
    .map(|kind| kind.as_str().to_owned())
    .collect()
}

/// Checks every table: a unique name, an http(s) URL, a long enough
/// secret, known events.
pub(super) fn check(webhooks: &[WebhookConfig]) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    for (index, webhook) in webhooks.iter().enumerate() {
        let invalid = |problem: String| ConfigError::Webhook { index, problem };
        if !name_ok(&webhook.name) {
            return Err(invalid(
                "name must be 1 to 64 letters, digits, `-` or `_`".into(),
            ));
        }
        if !names.insert(webhook.name.as_str()) {
            return Err(invalid(format!(
                "the name `{}` is used twice",
                webhook.name
            )));
        }
        let url = parse_url(&webhook.url).map_err(&invalid)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "url `{}` must be an http:// or https:// address",
                webhook.url
            )));
        }
        if webhook.secret.chars().count() < MIN_SECRET {
            return Err(invalid(format!(
                "secret must be at least {MIN_SECRET} characters"
            )));
        }
        let kinds = event_kinds(&webhook.events).map_err(&invalid)?;
        if kinds.iter().filter(|kind| kind.is_state()).count() > 1 {
            return Err(invalid(
                "events may name only one of publish_accepted, state_changed and level_changed"
                    .into(),
            ));
        }
    }
    Ok(())
}
