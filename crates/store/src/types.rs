//! Rows and requests exchanged with the store. These are storage shapes, not
//! domain types: payloads are JSON, identifiers are plain UUIDs and strings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A JSON document kept as text. Writers serialise on their own threads and
/// the store moves the text as it is: no value trees are built, cloned or
/// dropped on the single commit path. Equality is by JSON value, because
/// PostgreSQL's `jsonb` gives back the same document with other spacing and
/// key order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonText(Box<serde_json::value::RawValue>);

impl JsonText {
    /// Serialises `value`.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// Checks that `text` is one JSON document and keeps it as it is.
    pub fn from_string(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The document as a raw JSON value, to embed in another document
    /// without parsing or serialising it again.
    pub fn as_raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// Deserialises the document.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The document as a value tree (for reading, not for the hot path).
    pub fn to_value(&self) -> serde_json::Value {
        self.parse().unwrap_or(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for JsonText {
    fn from(value: serde_json::Value) -> Self {
        // A `Value` always serialises; the fallback is unreachable in practice.
        Self::from_value(&value).unwrap_or_else(|_| Self::null())
    }
}

impl JsonText {
    fn null() -> Self {
        Self(serde_json::value::RawValue::NULL.to_owned())
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Unique id of the event, chosen by the writer (UUID v7).
    pub event_id: Uuid,
    /// Event type name, e.g. `ReturnRequested`; used for filtering and upcasting.
    pub event_type: String,
    /// Version of the payload schema, so old events can be upcast.
    pub schema_version: i32,
    /// The event body.
    pub payload: JsonText,
    /// Ties every event of one business transaction together across systems.
    pub correlation_id: Uuid,
    /// The id of the command or event that caused this event.
    pub causation_id: Uuid,
    /// When the hub recorded the event (from the injected clock).
    pub recorded_at: DateTime<Utc>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position in the log, assigned at commit, strictly increasing in
    /// commit order.
    pub position: i64,
    pub stream_id: Uuid,
    /// 1-based version of the event in its stream.
    pub version: i64,
    pub event: NewEvent,
}

/// The read-model row of one stream (one return). It doubles as the stream
/// head: `version` is the stream's current version and is what optimistic
/// concurrency checks against.
///
/// `reference`, `customer`, `order_ref` and `created_at` identify the stream
/// and are written once, when it is created; later appends keep them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub stream_id: Uuid,
    /// Current version of the stream (number of events).
    pub version: i64,
    /// Human-facing return number (RMA number once authorised).
    pub reference: String,
    pub status: String,
    pub stage: String,
    /// Whose move it is (e.g. `customer`, `carrier`, `warehouse`, `finance`).
    pub owner: String,
    /// False once the return reached a terminal status.
    pub open: bool,
    pub customer: String,
    pub order_ref: String,
    /// Distinct SKUs on the return, for filtering.
    pub skus: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The full summary document served by the API.
    pub body: JsonText,
}

/// How [`crate::EventStore::find_streams`] finds a stream from a reference
/// another system holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamLookup<'a> {
    /// The read-model row's `reference` (a return's RMA number), exactly.
    Reference(&'a str),
    /// The read-model row's `order_ref`, exactly: the returns of an order.
    OrderRef(&'a str),
    /// Both at once: a return's RMA number among the returns of its order.
    ReferenceInOrder {
        reference: &'a str,
        order_ref: &'a str,
    },
    /// The tracking number of a label recorded on the stream: a
    /// `LabelIssued` event's `label.tracking_number`, exactly. The one place
    /// the store reads inside a payload; its migration says why.
    TrackingNumber(&'a str),
}

impl StreamLookup<'_> {
    /// Whether a read-model row matches a lookup on its identity columns,
    /// which are fixed when the stream is created. Never for a tracking
    /// number, which only the log answers.
    pub(crate) fn matches(&self, row: &SummaryRow) -> bool {
        match *self {
            StreamLookup::Reference(reference) => row.reference == reference,
            StreamLookup::OrderRef(order_ref) => row.order_ref == order_ref,
            StreamLookup::ReferenceInOrder {
                reference,
                order_ref,
            } => row.reference == reference && row.order_ref == order_ref,
            StreamLookup::TrackingNumber(_) => false,
        }
    }
}

/// Filter for [`crate::EventStore::list_summaries`]; every field is optional
/// and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryFilter {
    /// Exact match on the status.
    pub status: Option<String>,
    /// Exact match on the stage.
    pub stage: Option<String>,
    /// Exact match on the owner (whose move it is).
    pub owner: Option<String>,
    /// Exact match on the customer.
    pub customer: Option<String>,
    /// Exact match on the order reference.
    pub order_ref: Option<String>,
    /// Returns with this SKU among their `skus`.
    pub sku: Option<String>,
    /// Created strictly before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Created strictly after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Only open (`true`) or only closed (`false`) returns.
    pub open: Option<bool>,
    /// Page size: 0 means the default of 100; larger values are capped at
    /// 1000 so one request cannot load the whole read model.
    pub limit: u32,
    /// Rows to skip, for paging in the list order.
    pub offset: u32,
}

/// One line of the per-stage backlog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacklogRow {
    pub status: String,
    pub stage: String,
    pub owner: String,
    pub count: i64,
    pub oldest_created_at: DateTime<Utc>,
}

/// The stored outcome of an idempotent command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Keys are scoped per partner, so two partners may use the same key.
    pub partner: String,
    pub key: String,
    /// Hash of the request (method, path and body) the key was first used with.
    pub request_hash: String,
    pub stream_id: Uuid,
    /// HTTP status of the original response.
    pub status: u16,
    /// The original response body.
    pub response: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// One command's writes: events for one stream, the new read-model row, and
/// optionally the idempotency record, all-or-nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRequest {
    pub stream_id: Uuid,
    /// The version the writer based its decision on; 0 for a new stream.
    pub expected_version: i64,
    /// May be empty: the request then only checks the expected version and
    /// records its idempotency key; the summary is not written and the
    /// answer is `Appended { new_version: expected_version, last_position: 0 }`.
    pub events: Vec<NewEvent>,
    /// Read-model row after the events; its `version` must equal
    /// `expected_version + events.len()`.
    pub summary: SummaryRow,
    pub idempotency: Option<IdempotencyRecord>,
    /// Outbound work the events call for, written with them (only if the
    /// request has events).
    pub deliveries: Vec<crate::NewDelivery>,
}

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub new_version: i64,
    /// Global position of the last event written.
    pub last_position: i64,
}

/// Why one append of a batch was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendConflict {
    /// The stream moved on (or already exists / does not exist).
    #[error("stream {stream_id} is at version {actual}, expected {expected}")]
    Version {
        stream_id: Uuid,
        expected: i64,
        /// 0 if the stream does not exist.
        actual: i64,
    },
    /// The partner's idempotency key was already used.
    #[error("idempotency key {key} of {partner} is already used")]
    IdempotencyKey { partner: String, key: String },
}

/// An API key as stored: the secret only as a SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public identifier, part of the presented token.
    pub key_id: String,
    pub partner: String,
    /// Hex SHA-256 of the secret part of the token.
    pub secret_hash: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A row for [`crate::EventStore::raw_insert`]: the event log's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEventRow {
    pub stream_id: Uuid,
    pub version: i64,
    pub event: NewEvent,
}
