//! Simulators on a manual clock, connectors built the way the hub builds
//! them, the canonical actions the tests deliver, and assertions on
//! results.

use backhaul_master::MasterData;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use backhaul_connectors::{BuildError, ConnectorConfig, ConnectorKind, build};
use backhaul_domain::action::{Action, ActionKind, ActionResult, Target};
use backhaul_domain::model::Label;
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{DeliveryPolicy, DeliveryRequest, Sink, SinkError};
use backhaul_sim::{ManualClock, Posting, Sim, SimConfig, SimDb, SimKind};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) const RETURN_ID: &str = "0190d8f2-7c1e-7a3b-9c4d-5e6f7a8b9c0d";
pub(crate) const RMA: &str = "RMA-000042";
/// Not the hub's most common currency on purpose, so a connector that
/// assumed one would show.
pub(crate) const CURRENCY: &str = "EUR";

pub(crate) fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

/// The targets with a simulator (`backhaul-sim`), which the contract,
/// mapping and fault tables run over. The `edi` target's connector writes
/// files instead and passes the same contract in `x12_partner`.
pub(crate) const SIMULATED: [Target; 4] =
    [Target::Erp, Target::Wms, Target::Carrier, Target::Portal];

pub(crate) fn sim_kind(target: Target) -> SimKind {
    match target {
        Target::Erp => SimKind::Erp,
        Target::Wms => SimKind::Wms,
        Target::Carrier => SimKind::Carrier,
        Target::Portal => SimKind::Portal,
        Target::Edi => panic!("the edi target has no simulator"),
    }
}

pub(crate) fn target_of(kind: SimKind) -> Target {
    match kind {
        SimKind::Erp => Target::Erp,
        SimKind::Wms => Target::Wms,
        SimKind::Carrier => Target::Carrier,
        SimKind::Portal => Target::Portal,
    }
}

pub(crate) fn connector_kind(target: Target) -> ConnectorKind {
    match target {
        Target::Erp => ConnectorKind::SimErp,
        Target::Wms => ConnectorKind::SimWms,
        Target::Carrier => ConnectorKind::SimCarrier,
        Target::Portal => ConnectorKind::SimPortal,
        Target::Edi => ConnectorKind::X12Partner,
    }
}

/// A connector wired in process to an in-memory simulator of its target.
pub(crate) struct Connected {
    pub(crate) sim: Sim,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) clock: ManualClock,
}

impl Connected {
    pub(crate) async fn postings(&self) -> Vec<Posting> {
        self.sim.postings().await.unwrap()
    }

    pub(crate) async fn deliver(
        &self,
        action: &Action,
        key: &str,
    ) -> Result<ActionResult, SinkError> {
        deliver(self.sink.as_ref(), action, key, &no_prerequisites()).await
    }

    pub(crate) async fn deliver_after(
        &self,
        action: &Action,
        key: &str,
        prerequisites: &Prerequisites,
    ) -> Result<ActionResult, SinkError> {
        deliver(self.sink.as_ref(), action, key, prerequisites).await
    }
}

/// A well-behaved simulator of `target` and its connector.
pub(crate) async fn connect(target: Target) -> Connected {
    connect_with(SimConfig::new(sim_kind(target))).await
}

pub(crate) async fn connect_with(config: SimConfig) -> Connected {
    let target = target_of(config.kind);
    let clock = ManualClock::new(start_time());
    let sim = Sim::open_with_clock(config, SimDb::Memory, Arc::new(clock.clone()))
        .await
        .unwrap();
    let sink = in_process_sink(target, sim.router());
    Connected { sim, sink, clock }
}

/// The settings of a connector of `target`'s kind at `url`.
pub(crate) fn config(target: Target, url: &str) -> ConnectorConfig {
    ConnectorConfig {
        kind: connector_kind(target),
        url: url.to_owned(),
        tls: None,
        system: None,
        delivery: DeliveryPolicy::default(),
        tryton: None,
        sap: None,
        dynamics_bc: None,
        netsuite: None,
        rest_wms: None,
        rest_carrier: None,
        soap: None,
        subscribers: Vec::new(),
        x12_partner: None,
    }
}

/// Builds the one connector of `target`, named as the config file names it.
pub(crate) fn build_one(
    target: Target,
    config: ConnectorConfig,
    in_process: BTreeMap<Target, Router>,
) -> Result<Arc<dyn Sink>, BuildError> {
    let connectors = BTreeMap::from([(target.as_str().to_owned(), config)]);
    let mut sinks = build(&connectors, &in_process)?;
    assert_eq!(sinks.len(), 1, "one section, one sink");
    Ok(sinks.remove(0).0)
}

/// The connector of `target` with an empty URL, served by `router`.
pub(crate) fn in_process_sink(target: Target, router: Router) -> Arc<dyn Sink> {
    build_one(
        target,
        config(target, ""),
        BTreeMap::from([(target, router)]),
    )
    .unwrap()
}

pub(crate) type Prerequisites = BTreeMap<ActionKind, Option<ActionResult>>;

pub(crate) fn no_prerequisites() -> Prerequisites {
    BTreeMap::new()
}

/// `kind` was delivered and produced document `number`.
pub(crate) fn delivered(kind: ActionKind, number: &str) -> Prerequisites {
    BTreeMap::from([(kind, Some(document(number)))])
}

pub(crate) fn document(number: &str) -> ActionResult {
    ActionResult::Document {
        number: ExternalRef::parse(number).unwrap(),
        amount: None,
    }
}

/// One attempt of one delivery, as the dispatcher would make it, with no
/// master data (every system speaks canonical codes).
pub(crate) async fn deliver(
    sink: &dyn Sink,
    action: &Action,
    key: &str,
    prerequisites: &Prerequisites,
) -> Result<ActionResult, SinkError> {
    deliver_with_master(sink, action, key, prerequisites, &MasterData::empty()).await
}

/// One attempt with `master` in force (crosswalks).
pub(crate) async fn deliver_with_master(
    sink: &dyn Sink,
    action: &Action,
    key: &str,
    prerequisites: &Prerequisites,
    master: &MasterData,
) -> Result<ActionResult, SinkError> {
    sink.deliver(DeliveryRequest {
        delivery_id: 1,
        key,
        attempt: 1,
        action,
        prerequisites,
        correlation_id: Uuid::from_u128(7),
        master,
    })
    .await
}

/// A typical action of `kind` for return [`RMA`], in the JSON shape the
/// outbox stores.
pub(crate) fn action(kind: ActionKind) -> Action {
    let mut value = json!({
        "kind": kind,
        "return_id": RETURN_ID,
        "rma_number": RMA,
        "customer": "CUST-001",
        "order_ref": "SO-1001",
        "site": "DC1",
    });
    let extra = match kind {
        ActionKind::ErpReturnOrder => json!({ "lines": [
            { "line_no": 1, "sku": "SKU-A", "quantity": "2",
              "unit_price": { "amount": "12.50", "currency": CURRENCY },
              "reason_code": "DAMAGED" },
            { "line_no": 2, "sku": "SKU-B", "quantity": "1",
              "unit_price": { "amount": "7.25", "currency": CURRENCY },
              "reason_code": "SIZE_FIT" },
        ]}),
        ActionKind::ErpInventoryAdjustment => json!({ "lines": [
            { "line_no": 1, "sku": "SKU-A", "quantity": "2", "disposition": "restock" },
            { "line_no": 2, "sku": "SKU-B", "quantity": "1", "disposition": "scrap" },
        ]}),
        ActionKind::ErpCreditMemo => json!({ "lines": [
            { "line_no": 1, "sku": "SKU-A", "quantity": "2",
              "amount": { "amount": "25.00", "currency": CURRENCY } },
            { "line_no": 2, "sku": "SKU-B", "quantity": "1",
              "amount": { "amount": "7.25", "currency": CURRENCY } },
        ]}),
        ActionKind::ErpSupplierClaim => json!({ "lines": [
            { "line_no": 1, "sku": "SKU-A", "quantity": "2", "vendor": "V-VOLTLINE" },
            { "line_no": 2, "sku": "SKU-B", "quantity": "1", "vendor": "V-VOLTLINE" },
        ]}),
        // One return line inspected twice is two entries with one line
        // number: the document numbers its own lines.
        ActionKind::ErpRepairOrder => json!({ "lines": [
            { "line_no": 1, "sku": "SKU-A", "quantity": "2" },
            { "line_no": 1, "sku": "SKU-A", "quantity": "1" },
        ]}),
        ActionKind::ErpReplacementOrder => json!({ "lines": [
            { "line_no": 2, "sku": "SKU-B", "quantity": "1" },
        ]}),
        ActionKind::WmsExpectedReceipt => json!({ "lines": [
            { "line_no": 1, "sku": "SKU-A", "quantity": "2" },
            { "line_no": 2, "sku": "SKU-B", "quantity": "1" },
        ]}),
        ActionKind::CarrierVoidLabel => json!({ "tracking_number": "SIMX0000000001" }),
        ActionKind::PortalStatus => json!({ "status": {
            "status": "approved",
            "stage": "awaiting_label",
            "owner": "carrier",
            "version": 3,
            "at": "2025-03-03T09:00:00Z",
        }}),
        // The answer to a partner's request: line 2 authorised for fewer
        // units than asked, in the partner's own line ids.
        ActionKind::EdiRmaNotification => json!({
            "lines": [
                { "line_no": 1, "sku": "SKU-A", "quantity": "2", "uom": "EA",
                  "order_line_ref": "001" },
                { "line_no": 2, "sku": "SKU-B", "quantity": "0", "uom": "CA",
                  "order_line_ref": "002" },
            ],
            "answer": {
                "decision": "approved",
                "request_ref": "RAR-2025-0042",
                "at": "2025-03-03T09:00:00Z",
            },
        }),
        ActionKind::WmsCancelExpectedReceipt
        | ActionKind::ErpCancelReturnOrder
        | ActionKind::CarrierLabel => json!({}),
    };
    merge(&mut value, extra);
    serde_json::from_value(value).unwrap()
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}

/// The action each connector exists for: the one that needs nothing
/// delivered before it.
pub(crate) fn primary(target: Target) -> ActionKind {
    match target {
        Target::Erp => ActionKind::ErpReturnOrder,
        Target::Wms => ActionKind::WmsExpectedReceipt,
        Target::Carrier => ActionKind::CarrierLabel,
        Target::Portal => ActionKind::PortalStatus,
        Target::Edi => ActionKind::EdiRmaNotification,
    }
}

/// What a fresh simulator answers to the first delivery of
/// [`primary`]`(target)`: its first number of each series.
pub(crate) fn first_primary_result(target: Target) -> ActionResult {
    match target {
        Target::Erp => document("RO-000001"),
        Target::Wms => document("ASN-000001"),
        Target::Carrier => ActionResult::Label(Label {
            carrier: ExternalRef::parse("SIMX").unwrap(),
            tracking_number: ExternalRef::parse("SIMX0000000001").unwrap(),
            label_ref: ExternalRef::parse("LBL-000001").unwrap(),
            // The carrier simulator's default validity is 14 days.
            expires_at: Some(start_time() + Duration::days(14)),
        }),
        Target::Portal => ActionResult::Accepted,
        // The interchange control number of delivery 1.
        Target::Edi => document("000000001"),
    }
}

/// The document number of a result that must be a document.
#[track_caller]
pub(crate) fn number_of(result: &ActionResult) -> String {
    match result {
        ActionResult::Document { number, .. } => number.as_str().to_owned(),
        ActionResult::Label(_) | ActionResult::Accepted => {
            panic!("expected a document, got {result:?}")
        }
    }
}

/// Asserts a business failure with `code` and `status`; returns its message.
#[track_caller]
pub(crate) fn assert_business(
    result: Result<ActionResult, SinkError>,
    code: &str,
    status: Option<u16>,
) -> String {
    match result {
        Err(SinkError::Business {
            code: got,
            message,
            status: got_status,
        }) => {
            assert_eq!((got.as_str(), got_status), (code, status), "{message}");
            message
        }
        other => panic!("expected business failure {code}, got {other:?}"),
    }
}

/// Asserts a technical failure with `code` and `status`; returns what the
/// target asked to wait.
#[track_caller]
pub(crate) fn assert_technical(
    result: Result<ActionResult, SinkError>,
    code: &str,
    status: Option<u16>,
) -> Option<std::time::Duration> {
    match result {
        Err(SinkError::Technical {
            code: got,
            message,
            status: got_status,
            retry_after,
        }) => {
            assert_eq!((got.as_str(), got_status), (code, status), "{message}");
            retry_after
        }
        other => panic!("expected technical failure {code}, got {other:?}"),
    }
}
