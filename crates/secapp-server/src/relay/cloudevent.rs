//! The one message format: an event as a CloudEvents 1.0 JSON document
//! (structured mode), the same body for every sink. Its JSON Schema is
//! `schemas/cloudevent-v1.schema.json`.
//!
//! - `specversion` `1.0`; `source` `/secapp`;
//! - `id`: for an event about a publish, the change's `status_change_id`
//!   (as text), so every sink and every attempt name the change alike; for
//!   a consumer alert, `evt_<outbox id>`. A receiver deduplicates by it.
//! - `type`: `secapp.publish.accepted`, `secapp.state.changed`,
//!   `secapp.level.changed`, `secapp.consumer.stale`,
//!   `secapp.consumer.recovered`;
//! - `time`: when it happened (RFC 3339, UTC, milliseconds);
//! - `datacontenttype` `application/json`; `data`: for a publish, the
//!   state as the API shows it (`current_status`, `status_change_id`,
//!   `Change_at`) with `outcome`, `head_version`, `previous_status` and
//!   `published_by`; for an alert, the application and its sighting.

use serde::Serialize;

use super::Outgoing;
use crate::store::Delivery;

/// The `source` of every event.
pub const SOURCE: &str = "/secapp";
/// The media type of a structured CloudEvent in JSON.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    datacontenttype: &'static str,
    data: &'a serde_json::Value,
}

/// The CloudEvents `id` of a delivery's event.
fn id(delivery: &Delivery, data: &serde_json::Value) -> String {
    let change = data
        .get("status_change_id")
        .and_then(serde_json::Value::as_i64);
    match change {
        Some(change) if delivery.kind.is_state() => change.to_string(),
        _ => format!("evt_{}", delivery.event_id),
    }
}

/// The delivery as every sink sends it.
#[must_use]
pub fn outgoing(delivery: Delivery) -> Outgoing {
    let data: serde_json::Value =
        serde_json::from_str(&delivery.data).unwrap_or(serde_json::Value::Null);
    let id = id(&delivery, &data);
    let event = CloudEvent {
        specversion: "1.0",
        id: &id,
        source: SOURCE,
        kind: delivery.kind.cloud_type(),
        time: secapp_domain::shown(delivery.occurred_at),
        datacontenttype: "application/json",
        data: &data,
    };
    let body = serde_json::to_vec(&event).unwrap_or_default();
    Outgoing {
        delivery,
        id,
        data,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventKind;

    fn delivery(kind: EventKind, data: serde_json::Value) -> Delivery {
        Delivery {
            event_id: 41,
            sink: "bus".into(),
            kind,
            occurred_at: "2026-03-01T12:00:00.250Z".parse().unwrap(),
            data: data.to_string(),
            attempts: 0,
        }
    }

    #[test]
    fn a_state_event_is_named_by_its_change_and_an_alert_by_its_outbox_row() {
        let state = outgoing(delivery(
            EventKind::StateChanged,
            serde_json::json!({"current_status": 4, "status_change_id": 17}),
        ));
        assert_eq!(state.id, "17");
        let body: serde_json::Value = serde_json::from_slice(&state.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "specversion": "1.0",
                "id": "17",
                "source": "/secapp",
                "type": "secapp.state.changed",
                "time": "2026-03-01T12:00:00.250Z",
                "datacontenttype": "application/json",
                "data": {"current_status": 4, "status_change_id": 17},
            })
        );
        let alert = outgoing(delivery(
            EventKind::ConsumerStale,
            serde_json::json!({"app": "billing", "status_change_id": 3}),
        ));
        assert_eq!(alert.id, "evt_41");
    }

    #[test]
    fn the_schema_in_the_repository_names_every_type_and_attribute() {
        let schema: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../schemas/cloudevent-v1.schema.json"
        ))
        .unwrap();
        let types = schema["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        let kinds: Vec<_> = EventKind::ALL
            .iter()
            .map(|kind| kind.cloud_type().to_owned())
            .collect();
        assert_eq!(types, kinds);
        let body: serde_json::Value = serde_json::from_slice(
            &outgoing(delivery(EventKind::LevelChanged, serde_json::json!({}))).body,
        )
        .unwrap();
        let required = schema["required"].as_array().unwrap();
        for attribute in body.as_object().unwrap().keys() {
            assert!(
                schema["properties"].get(attribute).is_some(),
                "{attribute} is not in the schema"
            );
        }
        for attribute in required {
            assert!(body.get(attribute.as_str().unwrap()).is_some());
        }
    }
}
