//! The CloudEvents 1.0 envelope of an event (JSON format, structured mode:
//! the whole envelope is the message body) and the NATS subject it goes to.
//!
//! Attribute mapping:
//! - `id` is the event id, so `source` + `id` is unique per event and a
//!   re-sent event keeps its id, as the specification asks;
//! - `type` is `dev.backhaul.return.<EventType>` ([`EVENT_TYPE_PREFIX`]):
//!   reverse-DNS of the project, the aggregate (a return), then the event
//!   type exactly as in the log, so a new event type needs no mapping;
//! - `subject` is the return id (the stream), `time` the recorded time;
//! - extensions (lowercase alphanumerics, as the specification requires):
//!   `correlationid`, `causationid`, `schemaversion` (of `data`),
//!   `sequence` (the event's version in its return) and `position` (its
//!   global log position). `sequence` follows the CloudEvents sequence
//!   extension, which asks for a lexicographically ordered string, so both
//!   numbers are zero-padded to 20 digits (every `i64` fits); CloudEvents
//!   integers are only 32 bits, too small for a log position.

use backhaul_store::{JsonText, RecordedEvent};
use chrono::SecondsFormat;
use serde::Serialize;
use uuid::Uuid;

use crate::config::is_subject_token;

/// What every CloudEvents `type` the hub emits starts with.
pub const EVENT_TYPE_PREFIX: &str = "dev.backhaul.return.";

#[derive(Serialize)]
struct Envelope<'a> {
    specversion: &'static str,
    id: Uuid,
    source: &'a str,
    #[serde(rename = "type")]
    kind: String,
    subject: Uuid,
    time: String,
    datacontenttype: &'static str,
    correlationid: Uuid,
    causationid: Uuid,
    schemaversion: i32,
    sequence: String,
    position: String,
    /// Written as it is stored: the payload is already JSON.
    data: &'a JsonText,
}

/// The envelope of `recorded` as JSON bytes.
pub fn envelope(recorded: &RecordedEvent, source: &str) -> Result<Vec<u8>, serde_json::Error> {
    let event = &recorded.event;
    serde_json::to_vec(&Envelope {
        specversion: "1.0",
        id: event.event_id,
        source,
        kind: format!("{EVENT_TYPE_PREFIX}{}", event.event_type),
        subject: recorded.stream_id,
        time: event
            .recorded_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        datacontenttype: "application/json",
        correlationid: event.correlation_id,
        causationid: event.causation_id,
        schemaversion: event.schema_version,
        sequence: format!("{:020}", recorded.version),
        position: format!("{:020}", recorded.position),
        data: &event.payload,
    })
}

/// `{prefix}.{event_type}`, or `None` when the event type is not a single
/// subject token (it would land on another subject or match none).
pub fn subject(prefix: &str, event_type: &str) -> Option<String> {
    is_subject_token(event_type).then(|| format!("{prefix}.{event_type}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_store::NewEvent;
    use chrono::TimeZone;
    use serde_json::json;

    fn recorded() -> RecordedEvent {
        RecordedEvent {
            position: 42,
            stream_id: Uuid::now_v7(),
            version: 3,
            event: NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "ReturnApproved".into(),
                schema_version: 1,
                payload: json!({"rma": "RMA-1", "lines": [1, 2]}).into(),
                correlation_id: Uuid::now_v7(),
                causation_id: Uuid::now_v7(),
                recorded_at: chrono::Utc
                    .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
                    .single()
                    .expect("a valid time"),
            },
        }
    }

    #[test]
    fn the_envelope_carries_every_attribute() {
        let r = recorded();
        let body: serde_json::Value =
            serde_json::from_slice(&envelope(&r, "urn:hub:eu").expect("encodes")).expect("JSON");
        assert_eq!(
            body,
            json!({
                "specversion": "1.0",
                "id": r.event.event_id,
                "source": "urn:hub:eu",
                "type": "dev.backhaul.return.ReturnApproved",
                "subject": r.stream_id,
                "time": "2026-11-02T09:00:00Z",
                "datacontenttype": "application/json",
                "correlationid": r.event.correlation_id,
                "causationid": r.event.causation_id,
                "schemaversion": 1,
                "sequence": "00000000000000000003",
                "position": "00000000000000000042",
                "data": {"rma": "RMA-1", "lines": [1, 2]},
            })
        );
        // The specification allows only lowercase letters and digits in
        // attribute names, extensions included.
        for name in body.as_object().expect("an object").keys() {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{name}"
            );
        }
    }

    #[test]
    fn event_types_that_are_not_one_token_have_no_subject() {
        assert_eq!(
            subject("backhaul.events", "ReturnApproved").as_deref(),
            Some("backhaul.events.ReturnApproved")
        );
        for bad in ["", "a.b", "a*", ">", "with space"] {
            assert_eq!(subject("p", bad), None, "{bad:?}");
        }
    }
}
