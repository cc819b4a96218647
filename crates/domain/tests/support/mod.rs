//! Builders shared by the domain test binaries: values, commands and events
//! with sensible defaults, a table runner for given/when/then cases, and a
//! harness that drives one return through `decide` + `evolve` with a fake
//! clock. Nothing here reads the real clock or shares state between tests.
//!
//! Every test binary uses a different subset of these helpers, so unused ones
//! are expected in each binary.
#![allow(dead_code)]

use std::fmt::Write as _;

use backhaul_domain::command::{Approve, CarrierEvent, Receipt, Settlement};
use backhaul_domain::model::{
    CarrierMilestone, Channel, Disposition, DispositionLine, FinancialDocument,
    FinancialDocumentKind, Inspection, Label, LineQuantity, ReceiptLine, ReceivedUnits,
    RequestedOutcome, ReturnLine, ReturnRequest, SettlementLine, UnexpectedItem,
};
use backhaul_domain::state::LineState;
use backhaul_domain::values::{
    ConditionCode, Currency, CustomerAccount, ExternalRef, LineNo, Money, OrderRef, Quantity,
    ReasonCode, ReturnId, SerialNumber, SiteCode, Sku, Uom,
};
use backhaul_domain::{
    Command, Event, Rejection, ReturnState, Stage, Status, decide, evolve, fold,
};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

// ---------------------------------------------------------------- clock ----

/// A fixed origin for every test timeline, so no test depends on the real
/// clock and every timestamp in an expected event is predictable.
pub(crate) fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-01T09:00:00Z")
        .expect("valid RFC 3339")
        .with_timezone(&Utc)
        + Duration::minutes(minutes)
}

/// The `now` at which table commands are decided: after every timestamp used
/// in the `given` histories, so "in the past"/"in the future" read naturally.
pub(crate) fn now() -> DateTime<Utc> {
    at(1_000)
}

// --------------------------------------------------------------- values ----

pub(crate) fn return_id() -> ReturnId {
    ReturnId::parse("0190d8f2-7c1e-7a3b-9c4d-5e6f7a8b9c0d").expect("valid uuid")
}

/// A second return, e.g. another return against the same order.
pub(crate) fn other_return_id() -> ReturnId {
    ReturnId::parse("0190d8f2-7c1e-7a3b-9c4d-aaaaaaaaaaaa").expect("valid uuid")
}

pub(crate) fn usd() -> Currency {
    Currency::parse("USD").expect("USD is supported")
}

pub(crate) fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR is supported")
}

pub(crate) fn dec(raw: &str) -> Decimal {
    Decimal::from_str_exact(raw).expect("valid decimal literal")
}

pub(crate) fn money(raw: &str, currency: Currency) -> Money {
    Money::new(dec(raw), currency).expect("valid money")
}

pub(crate) fn usd_amt(raw: &str) -> Money {
    money(raw, usd())
}

pub(crate) fn q(units: u32) -> Quantity {
    Quantity::from_units(units)
}

pub(crate) fn qd(raw: &str) -> Quantity {
    Quantity::parse(raw).expect("valid quantity")
}

pub(crate) fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("valid sku")
}

pub(crate) fn xref(raw: &str) -> ExternalRef {
    ExternalRef::parse(raw).expect("valid external reference")
}

pub(crate) fn ln(n: u32) -> LineNo {
    LineNo::parse(n).expect("valid line number")
}

pub(crate) fn cond(raw: &str) -> ConditionCode {
    ConditionCode::parse(raw).expect("valid condition code")
}

/// `n` distinct serials `PREFIX-1`, `PREFIX-2`, …
pub(crate) fn serials(prefix: &str, n: u32) -> Vec<SerialNumber> {
    (1..=n)
        .map(|i| SerialNumber::parse(&format!("{prefix}-{i}")).expect("valid serial"))
        .collect()
}

// ---------------------------------------------------------------- model ----

/// Unit price 10.00 + tax 2.00 USD, so one unit is worth exactly 12.00:
/// credit limits in the tables are easy to read.
pub(crate) const UNIT_PAID: &str = "12";

pub(crate) fn line(n: u32, sku_code: &str, units: u32) -> ReturnLine {
    ReturnLine {
        line_no: ln(n),
        sku: sku(sku_code),
        quantity: q(units),
        uom: Uom::parse("EA").expect("valid uom"),
        serial_numbers: Vec::new(),
        lot_number: None,
        reason_code: ReasonCode::parse("DAMAGED").expect("valid reason"),
        requested_outcome: RequestedOutcome::Refund,
        unit_price: usd_amt("10.00"),
        unit_tax: usd_amt("2.00"),
        order_line_ref: None,
    }
}

pub(crate) fn request(lines: Vec<ReturnLine>) -> ReturnRequest {
    request_for_order("SO-1001", lines)
}

pub(crate) fn request_for_order(order: &str, lines: Vec<ReturnLine>) -> ReturnRequest {
    ReturnRequest {
        channel: Channel::Portal,
        customer: CustomerAccount::parse("CUST-42").expect("valid customer"),
        order_ref: OrderRef::parse(order).expect("valid order ref"),
        currency: usd(),
        site: SiteCode::parse("DC1").expect("valid site"),
        region: None,
        external_refs: Default::default(),
        lines,
    }
}

pub(crate) fn lq(n: u32, units: u32) -> LineQuantity {
    LineQuantity {
        line_no: ln(n),
        quantity: q(units),
    }
}

pub(crate) fn label(label_ref: &str, expires_at: Option<DateTime<Utc>>) -> Label {
    Label {
        carrier: xref("UPS"),
        tracking_number: xref(&format!("1Z-{label_ref}")),
        label_ref: xref(label_ref),
        expires_at,
    }
}

pub(crate) fn carrier_event(
    milestone: CarrierMilestone,
    occurred_at: DateTime<Utc>,
) -> CarrierEvent {
    CarrierEvent {
        milestone,
        occurred_at,
        location: None,
    }
}

/// A receipt line; `line_no: None` lets the hub match the units by SKU.
pub(crate) fn rline(line_no: Option<u32>, sku_code: &str, quantity: Quantity) -> ReceiptLine {
    ReceiptLine {
        line_no: line_no.map(ln),
        sku: sku(sku_code),
        quantity,
        serial_numbers: Vec::new(),
        lot_number: None,
    }
}

pub(crate) fn received_units(n: u32, quantity: Quantity, over: Quantity) -> ReceivedUnits {
    ReceivedUnits {
        line_no: ln(n),
        quantity,
        over_received: over,
        serial_numbers: Vec::new(),
        lot_number: None,
    }
}

pub(crate) fn inspection(n: u32, quantity: Quantity) -> Inspection {
    Inspection {
        line_no: ln(n),
        quantity,
        condition: cond("OPENED"),
        serial_numbers: Vec::new(),
        lot_number: None,
        evidence_ref: None,
    }
}

pub(crate) fn disposition(n: u32, quantity: Quantity, disposition: Disposition) -> DispositionLine {
    DispositionLine {
        line_no: ln(n),
        quantity,
        disposition,
        serial_numbers: Vec::new(),
        restocking_fee: None,
        location: None,
        vendor: None,
        decided_by: None,
    }
}

pub(crate) fn settlement_line(n: u32, quantity: Quantity, amount: Money) -> SettlementLine {
    SettlementLine {
        line_no: ln(n),
        quantity,
        amount,
    }
}

pub(crate) fn document(
    kind: FinancialDocumentKind,
    number: &str,
    amount: Option<Money>,
) -> FinancialDocument {
    FinancialDocument {
        kind,
        system: xref("erp"),
        number: xref(number),
        amount,
    }
}

pub(crate) fn credit_memo(number: &str) -> FinancialDocument {
    document(FinancialDocumentKind::CreditMemo, number, None)
}

// ------------------------------------------------------------- commands ----

pub(crate) fn request_cmd(lines: Vec<ReturnLine>) -> Command {
    Command::Request {
        return_id: return_id(),
        request: request(lines),
        assessment: None,
    }
}

/// Approve every line in full, without a deadline.
pub(crate) fn approve_all() -> Command {
    Command::Approve(Approve::default())
}

pub(crate) fn approve(lines: &[(u32, u32)], expires_at: Option<DateTime<Utc>>) -> Command {
    Command::Approve(Approve {
        lines: lines.iter().map(|&(n, u)| lq(n, u)).collect(),
        expires_at,
    })
}

pub(crate) fn hold(reason: &str) -> Command {
    Command::HoldForReview {
        reason: reason.into(),
    }
}

pub(crate) fn reject(reason: &str) -> Command {
    Command::Reject {
        reason: reason.into(),
    }
}

pub(crate) fn cancel(reason: &str) -> Command {
    Command::Cancel {
        reason: reason.into(),
    }
}

pub(crate) fn issue_label(label_ref: &str, expires_at: Option<DateTime<Utc>>) -> Command {
    Command::IssueLabel(label(label_ref, expires_at))
}

pub(crate) fn scan(milestone: CarrierMilestone, occurred_at: DateTime<Utc>) -> Command {
    Command::RecordCarrierMilestone(carrier_event(milestone, occurred_at))
}

pub(crate) fn receipt(receipt_ref: &str, lines: Vec<ReceiptLine>) -> Command {
    Command::RecordReceipt(Receipt {
        receipt_ref: xref(receipt_ref),
        lines,
    })
}

/// Receipt of whole units against explicit line numbers.
pub(crate) fn receive(receipt_ref: &str, lines: &[(u32, &str, u32)]) -> Command {
    receipt(
        receipt_ref,
        lines
            .iter()
            .map(|&(n, s, u)| rline(Some(n), s, q(u)))
            .collect(),
    )
}

pub(crate) fn inspect(lines: &[(u32, u32)]) -> Command {
    Command::RecordInspection {
        inspections: lines.iter().map(|&(n, u)| inspection(n, q(u))).collect(),
    }
}

pub(crate) fn dispose(lines: &[(u32, u32, Disposition)]) -> Command {
    Command::RecordDisposition {
        dispositions: lines
            .iter()
            .map(|&(n, u, d)| disposition(n, q(u), d))
            .collect(),
    }
}

pub(crate) fn settle(settlement_ref: &str, lines: &[(u32, u32, &str)]) -> Command {
    settle_with_documents(settlement_ref, lines, Vec::new())
}

pub(crate) fn settle_with_documents(
    settlement_ref: &str,
    lines: &[(u32, u32, &str)],
    documents: Vec<FinancialDocument>,
) -> Command {
    Command::RecordSettlement(Settlement {
        settlement_ref: xref(settlement_ref),
        lines: lines
            .iter()
            .map(|&(n, u, a)| settlement_line(n, q(u), usd_amt(a)))
            .collect(),
        documents,
    })
}

pub(crate) fn link(doc: FinancialDocument) -> Command {
    Command::LinkDocument(doc)
}

// --------------------------------------------------------------- events ----
// Events for `given` histories. Their timestamps are fixed points before
// `now()`, and their payloads are what `decide` would have produced.

pub(crate) fn requested(lines: Vec<ReturnLine>) -> Event {
    Event::ReturnRequested {
        return_id: return_id(),
        rma_number: return_id().rma_number(),
        request: request(lines),
        requested_at: at(0),
    }
}

pub(crate) fn held(reason: &str) -> Event {
    Event::ReturnHeldForReview {
        reason: reason.into(),
    }
}

pub(crate) fn approved(lines: &[(u32, u32)], expires_at: Option<DateTime<Utc>>) -> Event {
    Event::ReturnApproved {
        authorized: lines.iter().map(|&(n, u)| lq(n, u)).collect(),
        expires_at,
        approved_at: at(1),
    }
}

pub(crate) fn rejected(reason: &str) -> Event {
    Event::ReturnRejected {
        reason: reason.into(),
        rejected_at: at(1),
    }
}

pub(crate) fn label_issued(label_ref: &str, expires_at: Option<DateTime<Utc>>) -> Event {
    Event::LabelIssued {
        label: label(label_ref, expires_at),
        issued_at: at(2),
    }
}

pub(crate) fn scanned(milestone: CarrierMilestone, occurred_at: DateTime<Utc>) -> Event {
    Event::CarrierMilestoneRecorded {
        event: carrier_event(milestone, occurred_at),
        recorded_at: occurred_at,
    }
}

/// Units received as `(line, units, over_received)`.
pub(crate) fn received(receipt_ref: &str, lines: &[(u32, u32, u32)]) -> Event {
    Event::UnitsReceived {
        receipt_ref: xref(receipt_ref),
        lines: lines
            .iter()
            .map(|&(n, u, o)| received_units(n, q(u), q(o)))
            .collect(),
        unexpected: Vec::new(),
        received_at: at(100),
    }
}

pub(crate) fn unexpected_item(receipt_ref: &str, sku_code: &str, units: u32) -> UnexpectedItem {
    UnexpectedItem {
        receipt_ref: xref(receipt_ref),
        sku: sku(sku_code),
        quantity: q(units),
        serial_numbers: Vec::new(),
    }
}

pub(crate) fn inspected(lines: &[(u32, u32)]) -> Event {
    Event::UnitsInspected {
        inspections: lines.iter().map(|&(n, u)| inspection(n, q(u))).collect(),
        inspected_at: at(200),
    }
}

pub(crate) fn dispositioned(lines: &[(u32, u32, Disposition)]) -> Event {
    Event::UnitsDispositioned {
        dispositions: lines
            .iter()
            .map(|&(n, u, d)| disposition(n, q(u), d))
            .collect(),
        dispositioned_at: at(300),
    }
}

pub(crate) fn settled(settlement_ref: &str, lines: &[(u32, u32, &str)]) -> Event {
    Event::UnitsSettled {
        settlement_ref: xref(settlement_ref),
        lines: lines
            .iter()
            .map(|&(n, u, a)| settlement_line(n, q(u), usd_amt(a)))
            .collect(),
        settled_at: at(400),
    }
}

pub(crate) fn linked(doc: FinancialDocument) -> Event {
    Event::DocumentLinked {
        document: doc,
        linked_at: at(450),
    }
}

pub(crate) fn closed() -> Event {
    Event::ReturnClosed { closed_at: at(500) }
}

pub(crate) fn cancelled(label_voided: bool) -> Event {
    Event::ReturnCancelled {
        reason: "customer changed their mind".into(),
        label_voided,
        cancelled_at: at(500),
    }
}

pub(crate) fn expired() -> Event {
    Event::ReturnExpired {
        expired_at: at(500),
    }
}

// ---------------------------------------------------------------- table ----

/// What a case expects: exactly these events, or a rejection with this code.
#[derive(Debug)]
pub(crate) enum Then {
    Events(Vec<Event>),
    Rejected(&'static str),
}

/// One given/when/then row.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) given: Vec<Event>,
    pub(crate) when: Command,
    pub(crate) then: Then,
}

pub(crate) fn case(name: impl Into<String>, given: Vec<Event>, when: Command, then: Then) -> Case {
    Case {
        name: name.into(),
        given,
        when,
        then,
    }
}

/// Runs every case at [`now`] and fails once, listing every case that did
/// not behave, so one broken rule does not hide the others.
pub(crate) fn run_table(cases: &[Case]) {
    let mut failures = String::new();
    for c in cases {
        let state = fold(&c.given);
        // A hand-written history that breaks an invariant would make the case
        // meaningless, so the table checks its own input first.
        if let Err(e) = state.check_invariants() {
            let _ = writeln!(failures, "- {}: given history is inconsistent: {e}", c.name);
            continue;
        }
        let outcome = decide(&state, &c.when, now());
        match (&c.then, outcome) {
            (Then::Events(expected), Ok(actual)) => {
                if *expected != actual {
                    let _ = writeln!(
                        failures,
                        "- {}: expected events\n    {expected:?}\n  got\n    {actual:?}",
                        c.name
                    );
                    continue;
                }
                // Accepted events must keep the state consistent too.
                let mut after = state.clone();
                for e in &actual {
                    evolve(&mut after, e);
                }
                if let Err(e) = after.check_invariants() {
                    let _ = writeln!(failures, "- {}: events break an invariant: {e}", c.name);
                }
            }
            (Then::Events(expected), Err(r)) => {
                let _ = writeln!(
                    failures,
                    "- {}: expected events {expected:?}, got rejection {} ({r})",
                    c.name,
                    r.code()
                );
            }
            (Then::Rejected(code), Ok(actual)) => {
                let _ = writeln!(
                    failures,
                    "- {}: expected rejection {code}, got events {actual:?}",
                    c.name
                );
            }
            (Then::Rejected(code), Err(r)) => {
                if r.code() != *code {
                    let _ = writeln!(
                        failures,
                        "- {}: expected rejection {code}, got {} ({r})",
                        c.name,
                        r.code()
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{failures}",
        failures.lines().filter(|l| l.starts_with("- ")).count()
    );
}

// -------------------------------------------------------------- harness ----

/// Drives one return step by step with a fake clock. Every accepted step is
/// checked against the invariants and against a fresh fold of the whole log,
/// so a scenario cannot pass on a state that the log would not rebuild.
pub(crate) struct Harness {
    pub(crate) state: ReturnState,
    pub(crate) events: Vec<Event>,
    pub(crate) now: DateTime<Utc>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self {
            state: ReturnState::default(),
            events: Vec::new(),
            now: at(0),
        }
    }

    /// Moves the fake clock forward.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Decides `command`, which must be accepted, and applies its events.
    #[track_caller]
    pub(crate) fn accept(&mut self, command: Command) -> Vec<Event> {
        let events = match decide(&self.state, &command, self.now) {
            Ok(events) => events,
            Err(r) => panic!(
                "{} was refused in status {}: {} ({r})",
                command.name(),
                self.state.status().as_str(),
                r.code()
            ),
        };
        assert!(
            !events.is_empty(),
            "an accepted {} recorded nothing",
            command.name()
        );
        for e in &events {
            evolve(&mut self.state, e);
        }
        self.events.extend(events.iter().cloned());
        if let Err(e) = self.state.check_invariants() {
            panic!("invariant broken after {}: {e}", command.name());
        }
        assert_eq!(
            fold(&self.events),
            self.state,
            "the log does not rebuild the state"
        );
        events
    }

    /// Decides `command`, which must be refused, and checks that nothing changed.
    #[track_caller]
    pub(crate) fn refuse(&mut self, command: Command) -> Rejection {
        let before = self.state.clone();
        match decide(&self.state, &command, self.now) {
            Ok(events) => panic!(
                "{} was accepted in status {}: {events:?}",
                command.name(),
                self.state.status().as_str()
            ),
            Err(r) => {
                assert_eq!(self.state, before, "a refused command changed the state");
                r
            }
        }
    }

    /// Checks the derived status, stage and owner together: they are the
    /// three answers an operator reads off a return.
    #[track_caller]
    pub(crate) fn expect(&self, status: Status, stage: Stage, owner: &str) {
        assert_eq!(
            (
                self.state.status(),
                self.state.stage(),
                self.state.stage().owner()
            ),
            (status, stage, owner),
            "status/stage/owner after {:?}",
            self.events.last().map(Event::event_type)
        );
    }

    pub(crate) fn line(&self, n: u32) -> &LineState {
        self.state
            .lines
            .get(&ln(n))
            .unwrap_or_else(|| panic!("line {n} is not on the return"))
    }
}
