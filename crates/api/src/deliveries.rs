//! The exception queue: what operators see of the outbox and what they may
//! do to it. Written once here and used by both the HTTP routes
//! (`routes::v1::deliveries`) and the `backhaul deliveries` command, so the
//! two cannot disagree on who should look at a delivery, what a valid
//! correction is, or what an item looks like.
//!
//! What lives here: the operator's view of a delivery ([`DeliveryView`],
//! [`DeliveryDetail`]), [`suggested_owner`], [`validate_correction`], the
//! [`Reason`] an operator must give, the list query and its limits, and
//! [`operate`], which checks a retry, skip or cancel and applies it with its
//! audit entry.
//!
//! What does not: the state rules of the outbox (`backhaul_store`'s
//! `Operation::next_state`, applied in the store's transaction), delivering
//! (the engine's dispatcher), HTTP status codes (`error`).

use std::collections::HashMap;
use std::fmt;

use backhaul_domain::action::{Action, ActionKind, Target};
use backhaul_domain::values::ReturnId;
use backhaul_store::{
    AnyStore, AuditEntry, Delivery, DeliveryFilter, DeliveryState, DeliveryStore, EventStore,
    JsonText, OperateError, Operation,
};
use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Page size of a list when none is asked for.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page a list may ask for (the store's own cap).
pub const MAX_LIMIT: u32 = 1000;
/// Longest reason an operator may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Who looks at a dead letter whose error names nobody: the people who run
/// the connectors, since a technical failure is theirs to understand first.
const INTEGRATION_OWNER: &str = "integration";

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A list filter is out of range.
    #[error("{0}")]
    InvalidQuery(String),
    #[error("delivery {0} does not exist")]
    NotFound(i64),
    /// The action does not apply to the delivery's state (the store's rules).
    #[error("cannot {action} a delivery that is {state}")]
    WrongState {
        /// `retry`, `skip` or `cancel`.
        action: &'static str,
        state: DeliveryState,
    },
    #[error("invalid corrected payload: {0}")]
    InvalidCorrection(#[from] CorrectionError),
    #[error(transparent)]
    Store(#[from] backhaul_store::Error),
}

/// Why a corrected payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorrectionError {
    /// Not JSON, or JSON that is not a canonical action. `line` and `column`
    /// are 1-based positions in the correction's own text.
    #[error("{}", path_message(path.as_deref(), message))]
    Unparsable {
        /// Where in the document (`lines[0]`); `None` for the document itself.
        path: Option<String>,
        line: usize,
        column: usize,
        message: String,
    },
    /// A correction fixes the content of one document; sending another kind
    /// of document is a different action, not a correction.
    #[error(
        "the correction's kind is {corrected} but the delivery's is {stored}; \
         a correction must keep the kind"
    )]
    KindChanged { stored: String, corrected: String },
    /// The delivery belongs to its return; a correction cannot move it.
    #[error(
        "the correction is for return {corrected} but the delivery is for return {stored}; \
         a correction must keep the return_id"
    )]
    ReturnChanged { stored: String, corrected: String },
}

fn path_message(path: Option<&str>, message: &str) -> String {
    match path {
        Some(path) => format!("{path}: {message}"),
        None => message.to_owned(),
    }
}

/// Checks an operator's corrected payload against the delivery's stored one
/// and returns it in canonical form (as the dispatcher will read it).
///
/// The correction must be one canonical [`Action`] (unknown fields are
/// refused, so a typo cannot silently drop a field) with the same `kind`
/// and `return_id` as the stored payload.
pub fn validate_correction(stored: &JsonText, raw: &str) -> Result<JsonText, CorrectionError> {
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    let action: Action = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        unparsable((path != ".").then_some(path), &e.into_inner())
    })?;
    // Trailing bytes after the document are as wrong as a broken document.
    deserializer.end().map_err(|e| unparsable(None, &e))?;

    let stored = stored.to_value();
    let field = |name: &str| {
        stored
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("(none)")
            .to_owned()
    };
    let stored_kind = field("kind");
    if stored_kind != action.kind.as_str() {
        return Err(CorrectionError::KindChanged {
            stored: stored_kind,
            corrected: action.kind.as_str().to_owned(),
        });
    }
    let stored_return = field("return_id");
    if ReturnId::parse(&stored_return).ok() != Some(action.return_id) {
        return Err(CorrectionError::ReturnChanged {
            stored: stored_return,
            corrected: action.return_id.to_string(),
        });
    }
    JsonText::from_value(&action).map_err(|e| unparsable(None, &e))
}

/// serde_json's message without the " at line L column C" it appends, since
/// the position is kept apart.
fn unparsable(path: Option<String>, error: &serde_json::Error) -> CorrectionError {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    CorrectionError::Unparsable {
        path,
        line: error.line(),
        column: error.column(),
        message,
    }
}

/// Who should look at a delivery first, for the deliveries that wait for a
/// person (exceptions and dead letters); `None` for the others, which wait
/// for nobody (pending, done) or are settled (skipped, cancelled).
///
/// In order: the owner the failure names (`last_error.suggested_owner`, set
/// by the dispatcher); for a business refusal, the owner of the action's
/// kind ([`ActionKind::suggested_owner`]); otherwise `integration`, since a
/// dead letter is a technical failure.
pub fn suggested_owner(delivery: &Delivery) -> Option<String> {
    match delivery.state {
        DeliveryState::Exception | DeliveryState::Dead => {}
        DeliveryState::Pending
        | DeliveryState::Done
        | DeliveryState::Skipped
        | DeliveryState::Cancelled => return None,
    }
    let error = delivery
        .last_error
        .as_ref()
        .map_or(Value::Null, JsonText::to_value);
    if let Some(owner) = error
        .get("suggested_owner")
        .and_then(Value::as_str)
        .filter(|o| !o.trim().is_empty())
    {
        return Some(owner.to_owned());
    }
    // Every exception is a business refusal, whatever its error says.
    let business = delivery.state == DeliveryState::Exception
        || error.get("class").and_then(Value::as_str) == Some("business");
    let kind_owner = ActionKind::parse(&delivery.kind).map(ActionKind::suggested_owner);
    match kind_owner {
        Some(owner) if business => Some(owner.to_owned()),
        Some(_) | None => Some(INTEGRATION_OWNER.to_owned()),
    }
}

/// Why an operator acted, as the audit trail keeps it: 1 to 500 characters
/// once trimmed, no control characters (a NUL would also be refused by
/// PostgreSQL's `jsonb` on one backend only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Reason(String);

/// Why a reason was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("must be 1 to {MAX_REASON_CHARS} characters")]
    Length,
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl Reason {
    pub fn parse(raw: &str) -> Result<Reason, ReasonError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > MAX_REASON_CHARS {
            return Err(ReasonError::Length);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ReasonError::ControlCharacter);
        }
        Ok(Reason(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = ReasonError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Reason::parse(&raw)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Reason {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OperatorReasonText".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_REASON_CHARS,
            "description": "Why, for the audit trail: 1 to 500 characters, no control characters.",
        })
    }
}

/// `DeliveryState` as a JSON Schema enum, from the store's own list.
fn state_schema(_: &mut SchemaGenerator) -> Schema {
    let names = DeliveryState::ALL.map(DeliveryState::as_str);
    schemars::json_schema!({ "type": "string", "enum": names })
}

/// Which deliveries to list; the filters combine with AND. The query string
/// of `GET /v1/deliveries` and the flags of `backhaul deliveries list`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only deliveries in this state (`exception` and `dead` are the ones
    /// waiting for a person).
    #[serde(default)]
    #[schemars(schema_with = "state_schema")]
    pub state: Option<DeliveryState>,
    /// Only deliveries of this return.
    pub return_id: Option<ReturnId>,
    /// Only deliveries to this system.
    pub target: Option<Target>,
    /// Page size, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// Only deliveries with a greater id: the previous page's
    /// `next_after_id`.
    #[schemars(range(min = 0))]
    pub after_id: Option<i64>,
}

impl DeliveryQuery {
    /// The store's filter, or why the query is out of range.
    pub fn filter(&self) -> Result<DeliveryFilter, Error> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::InvalidQuery(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        let after_id = self.after_id.unwrap_or(0);
        if after_id < 0 {
            return Err(Error::InvalidQuery(format!(
                "after_id must not be negative, got {after_id}"
            )));
        }
        Ok(DeliveryFilter {
            state: self.state,
            stream_id: self.return_id.map(|r| r.as_uuid()),
            target: self.target.map(|t| t.as_str().to_owned()),
            limit,
            after_id,
        })
    }
}

/// One page of deliveries, in id order (oldest first).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
    /// Pass as `after_id` for the next page; `null` on the last page.
    pub next_after_id: Option<i64>,
}

/// A delivery as an operator sees it: the outbox row, the return's stage
/// and owner from the read model, and who should look at it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub return_id: ReturnId,
    /// The return's RMA number (the payload's `rma_number`).
    pub rma: Option<String>,
    /// The system it goes to (`erp`, `wms`, `carrier`, `portal`).
    pub target: String,
    /// What it is (`erp_credit_memo`…).
    pub kind: String,
    #[schemars(schema_with = "state_schema")]
    pub state: DeliveryState,
    /// Attempts since it was written or last retried by an operator.
    pub attempts: i32,
    /// When a pending delivery is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The target's idempotency key for this delivery.
    pub delivery_key: String,
    /// The last failure: `{"class": "technical"|"business", "code",
    /// "message", ...}`.
    #[schemars(with = "Option<Value>")]
    pub last_error: Option<JsonText>,
    /// What the target answered (done only).
    #[schemars(with = "Option<Value>")]
    pub result: Option<JsonText>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where the return waits (its read-model row); `null` if the row is
    /// missing.
    pub stage: Option<String>,
    /// Whose move it is on the return.
    pub owner: Option<String>,
    /// Who should look at this delivery first (exceptions and dead letters
    /// only): `finance`, `warehouse`, `logistics`, `support`, `integration`.
    pub suggested_owner: Option<String>,
}

/// One delivery with the canonical action it carries and its audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The canonical action (`Action` in the canonical schema).
    #[schemars(with = "Value")]
    pub payload: JsonText,
    /// Operator actions, oldest first.
    pub audit: Vec<AuditView>,
}

/// One operator action on a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AuditView {
    /// `retry`, `retry_with_correction`, `skip` or `cancel`.
    pub action: String,
    /// The API key's partner, or the CLI's `--actor`.
    pub actor: String,
    pub reason: String,
    /// `{"from", "to"}` states, and the corrected and previous payloads of a
    /// corrected retry.
    #[schemars(with = "Value")]
    pub detail: JsonText,
    pub at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            action: e.action,
            actor: e.actor,
            reason: e.reason,
            detail: e.detail,
            at: e.at,
        }
    }
}

/// The part of a payload the view shows; the rest is ignored, so a payload
/// written by a newer hub still lists.
#[derive(Deserialize)]
struct PayloadHead {
    rma_number: Option<String>,
}

/// The stage and owner of a return, from its read-model row.
type StageOwner = Option<(String, String)>;

async fn stage_owner(store: &AnyStore, stream_id: Uuid) -> Result<StageOwner, Error> {
    Ok(store
        .get_summary(stream_id)
        .await?
        .map(|row| (row.stage, row.owner)))
}

fn to_view(delivery: Delivery, return_state: StageOwner) -> DeliveryView {
    let suggested_owner = suggested_owner(&delivery);
    let rma = delivery
        .payload
        .parse::<PayloadHead>()
        .ok()
        .and_then(|h| h.rma_number);
    let (stage, owner) = return_state.unzip();
    DeliveryView {
        id: delivery.id,
        return_id: ReturnId::from_uuid(delivery.stream_id),
        rma,
        target: delivery.target,
        kind: delivery.kind,
        state: delivery.state,
        attempts: delivery.attempts,
        next_attempt_at: delivery.next_attempt_at,
        delivery_key: delivery.delivery_key,
        last_error: delivery.last_error,
        result: delivery.result,
        created_at: delivery.created_at,
        updated_at: delivery.updated_at,
        stage,
        owner,
        suggested_owner,
    }
}

/// The operator's view of one delivery.
pub async fn view(store: &AnyStore, delivery: Delivery) -> Result<DeliveryView, Error> {
    let return_state = stage_owner(store, delivery.stream_id).await?;
    Ok(to_view(delivery, return_state))
}

/// One page of deliveries matching `query`. Each return's read-model row is
/// read once per page, however many of its deliveries the page holds.
pub async fn list(store: &AnyStore, query: &DeliveryQuery) -> Result<DeliveryList, Error> {
    let filter = query.filter()?;
    let deliveries = store.list_deliveries(&filter).await?;
    let full_page = deliveries.len() >= usize::try_from(filter.limit).unwrap_or(usize::MAX);
    let next_after_id = if full_page {
        deliveries.last().map(|d| d.id)
    } else {
        None
    };
    let mut returns: HashMap<Uuid, StageOwner> = HashMap::new();
    let mut items = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let return_state = match returns.get(&delivery.stream_id) {
            Some(known) => known.clone(),
            None => {
                let found = stage_owner(store, delivery.stream_id).await?;
                returns.insert(delivery.stream_id, found.clone());
                found
            }
        };
        items.push(to_view(delivery, return_state));
    }
    Ok(DeliveryList {
        items,
        next_after_id,
    })
}

/// One delivery with its payload and audit trail.
pub async fn detail(store: &AnyStore, id: i64) -> Result<DeliveryDetail, Error> {
    let delivery = store.get_delivery(id).await?.ok_or(Error::NotFound(id))?;
    let payload = delivery.payload.clone();
    let audit = store
        .delivery_audit(id)
        .await?
        .into_iter()
        .map(AuditView::from)
        .collect();
    Ok(DeliveryDetail {
        delivery: view(store, delivery).await?,
        payload,
        audit,
    })
}

/// What an operator does to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Deliver again, optionally with a corrected payload (its JSON text,
    /// checked by [`validate_correction`]).
    Retry { correction: Option<String> },
    /// Handled by hand; deliveries waiting for it go ahead.
    Skip,
    /// Must not happen.
    Cancel,
}

impl OperatorCommand {
    /// The verb, as the operator said it.
    pub fn verb(&self) -> &'static str {
        match self {
            OperatorCommand::Retry { .. } => "retry",
            OperatorCommand::Skip => "skip",
            OperatorCommand::Cancel => "cancel",
        }
    }
}

/// Applies an operator command to delivery `id` and records it in the audit
/// trail under `actor`, at `now`. Returns the delivery as it is afterwards.
///
/// The state is checked before the correction, so an operator who retries a
/// delivery that already moved on learns that first; the store checks it
/// again in the transaction that applies the command, so two operators
/// acting at once cannot both succeed.
pub async fn operate(
    store: &AnyStore,
    id: i64,
    command: OperatorCommand,
    actor: &str,
    reason: &Reason,
    now: DateTime<Utc>,
) -> Result<DeliveryView, Error> {
    let action = command.verb();
    let delivery = store.get_delivery(id).await?.ok_or(Error::NotFound(id))?;
    // Which states a retry applies to does not depend on its payload.
    let plain = match &command {
        OperatorCommand::Retry { .. } => Operation::Retry { payload: None },
        OperatorCommand::Skip => Operation::Skip,
        OperatorCommand::Cancel => Operation::Cancel,
    };
    if plain.next_state(delivery.state).is_none() {
        return Err(Error::WrongState {
            action,
            state: delivery.state,
        });
    }
    let operation = match command {
        OperatorCommand::Retry {
            correction: Some(raw),
        } => Operation::Retry {
            payload: Some(validate_correction(&delivery.payload, &raw)?),
        },
        OperatorCommand::Retry { correction: None }
        | OperatorCommand::Skip
        | OperatorCommand::Cancel => plain,
    };
    match store
        .operate_delivery(id, operation, actor, reason.as_str(), now)
        .await?
    {
        Ok(updated) => view(store, updated).await,
        Err(OperateError::NotFound(id)) => Err(Error::NotFound(id)),
        Err(OperateError::WrongState { state, .. }) => Err(Error::WrongState { action, state }),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    const RETURN_ID: &str = "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    fn action(kind: &str) -> Value {
        json!({
            "kind": kind,
            "return_id": RETURN_ID,
            "rma_number": "RMA-0195A1B2C3D4-0C1D2E3F4A5B",
            "customer": "CUST-001",
            "order_ref": "SO-1001",
            "site": "DC1",
            "lines": [{ "line_no": 1, "sku": "SKU-RED", "quantity": "3" }]
        })
    }

    fn delivery(kind: &str, state: DeliveryState, last_error: Option<Value>) -> Delivery {
        let at = Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap();
        Delivery {
            id: 7,
            stream_id: Uuid::parse_str(RETURN_ID).unwrap(),
            target: "erp".into(),
            kind: kind.into(),
            delivery_key: "k".into(),
            requires: Vec::new(),
            payload: JsonText::from(action(kind)),
            correlation_id: Uuid::nil(),
            state,
            attempts: 1,
            next_attempt_at: at,
            lease_owner: None,
            lease_until: None,
            last_error: last_error.map(JsonText::from),
            result: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn the_suggested_owner_comes_from_the_error_then_the_kind_then_integration() {
        use DeliveryState::{Cancelled, Dead, Done, Exception, Pending, Skipped};
        let named = json!({ "class": "business", "code": "x", "suggested_owner": "support" });
        let business = json!({ "class": "business", "code": "x" });
        let technical = json!({ "class": "technical", "code": "timeout" });
        let cases = [
            (
                "erp_credit_memo",
                Exception,
                Some(named.clone()),
                Some("support"),
            ),
            (
                "erp_credit_memo",
                Exception,
                Some(business.clone()),
                Some("finance"),
            ),
            ("wms_expected_receipt", Exception, None, Some("warehouse")),
            (
                "carrier_label",
                Dead,
                Some(technical.clone()),
                Some("integration"),
            ),
            ("carrier_label", Dead, Some(business), Some("logistics")),
            ("carrier_label", Dead, Some(named.clone()), Some("support")),
            ("portal_status", Dead, None, Some("integration")),
            (
                "a_kind_from_a_newer_hub",
                Exception,
                None,
                Some("integration"),
            ),
            ("erp_credit_memo", Pending, Some(named.clone()), None),
            ("erp_credit_memo", Pending, Some(technical), None),
            ("erp_credit_memo", Done, None, None),
            ("erp_credit_memo", Skipped, Some(named.clone()), None),
            ("erp_credit_memo", Cancelled, Some(named), None),
        ];
        for (kind, state, error, expected) in cases {
            let d = delivery(kind, state, error.clone());
            assert_eq!(
                suggested_owner(&d).as_deref(),
                expected,
                "{kind} {state} {error:?}"
            );
        }
    }

    #[test]
    fn a_correction_is_returned_in_canonical_form() {
        let stored = JsonText::from(action("erp_return_order"));
        let mut corrected = action("erp_return_order");
        corrected["site"] = json!("DC2");
        let text = serde_json::to_string_pretty(&corrected).unwrap();
        let canonical = validate_correction(&stored, &text).unwrap();
        assert_eq!(canonical.to_value(), corrected);
        assert!(!canonical.as_str().contains('\n'));
    }

    #[test]
    fn a_broken_correction_says_where() {
        let stored = JsonText::from(action("erp_return_order"));
        let text = "{\n  \"kind\": \"erp_return_order\",\n    \"foo\": 1\n}";
        let Err(CorrectionError::Unparsable {
            path,
            line,
            column,
            message,
        }) = validate_correction(&stored, text)
        else {
            panic!("accepted an unknown field");
        };
        assert_eq!((path.as_deref(), line, column), (Some("foo"), 3, 9));
        assert!(message.starts_with("unknown field `foo`"), "{message}");
        assert!(!message.contains(" at line "), "{message}");

        let trailing = format!("{} x", action("erp_return_order"));
        for (text, expected) in [
            ("{\"kind\": ", "EOF while parsing"),
            (trailing.as_str(), "trailing characters"),
            ("[]", "expected struct Action"),
        ] {
            let error = validate_correction(&stored, text).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_correction_keeps_kind_and_return() {
        let stored = JsonText::from(action("erp_return_order"));
        let other_kind = action("wms_expected_receipt").to_string();
        assert!(matches!(
            validate_correction(&stored, &other_kind),
            Err(CorrectionError::KindChanged { .. })
        ));
        let mut other_return = action("erp_return_order");
        other_return["return_id"] = json!("0195a1b2-c3d4-7e5f-8a9b-000000000000");
        assert!(matches!(
            validate_correction(&stored, &other_return.to_string()),
            Err(CorrectionError::ReturnChanged { .. })
        ));
    }

    #[test]
    fn reasons_are_trimmed_bounded_and_printable() {
        assert_eq!(Reason::parse("  why  ").unwrap().as_str(), "why");
        assert!(Reason::parse(&"é".repeat(MAX_REASON_CHARS)).is_ok());
        assert_eq!(
            Reason::parse(&"é".repeat(MAX_REASON_CHARS + 1)),
            Err(ReasonError::Length)
        );
        assert_eq!(Reason::parse(" \t "), Err(ReasonError::Length));
        assert_eq!(Reason::parse("a\u{0}b"), Err(ReasonError::ControlCharacter));
        assert_eq!(Reason::parse("a\nb"), Err(ReasonError::ControlCharacter));
    }

    #[test]
    fn list_limits_are_checked() {
        let query = |limit, after_id| DeliveryQuery {
            limit,
            after_id,
            ..DeliveryQuery::default()
        };
        assert_eq!(query(None, None).filter().unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(query(Some(1000), Some(5)).filter().unwrap().after_id, 5);
        for (limit, after_id) in [(Some(0), None), (Some(1001), None), (None, Some(-1))] {
            assert!(matches!(
                query(limit, after_id).filter(),
                Err(Error::InvalidQuery(_))
            ));
        }
    }
}
