//! The decider: given the state of a return and a command, the events that
//! happen, or why not. Pure: the clock comes in as `now`, nothing is read or
//! written.
//!
//! Transition table (a command not listed for a status is an
//! `invalid_transition`; terminal statuses accept nothing but `link_document`):
//!
//! | command                  | allowed when                                              |
//! |--------------------------|-----------------------------------------------------------|
//! | request                  | the return does not exist                                 |
//! | approve                  | requested, pending review                                  |
//! | hold_for_review          | requested                                                 |
//! | reject                   | requested, pending review                                 |
//! | issue_label              | approved and no label yet (also after an early receipt,   |
//! |                          | and after cancel/expiry: the late label is then voided)    |
//! | record_carrier_milestone | approved                                                  |
//! | record_receipt           | approved (before or after the label: goods are goods)     |
//! | record_inspection        | units await inspection                                    |
//! | record_disposition       | inspected units await disposition                         |
//! | link_document            | approved, any later status                                |
//! | record_settlement        | dispositioned units await settlement                      |
//! | close                    | units received and every one of them settled             |
//! | cancel                   | not terminal and nothing received (voids the label)       |
//! | expire                   | approved, nothing shipped or received, deadline passed    |

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::command::{Approve, CarrierEvent, Command, Receipt, Settlement};
use crate::eligibility::{Assessment, Verdict};
use crate::event::Event;
use crate::model::{
    DispositionLine, FinancialDocument, Inspection, Label, LineQuantity, ReceivedUnits,
    ReturnRequest, UnexpectedItem,
};
use crate::ownership::LineCorrection;
use crate::rejection::Rejection;
use crate::state::{LineState, ReturnState, Status};
use crate::values::{Currency, LineNo, Money, Quantity, ReturnId, SerialNumber};

/// Longest free-text reason accepted (cancel, reject, review).
const MAX_REASON: usize = 500;

/// Decides what happens when `command` is applied to `state` at `now`.
pub fn decide(
    state: &ReturnState,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    if let Command::Request {
        return_id,
        request,
        assessment,
    } = command
    {
        let requested = request_return(state, *return_id, request, now)?;
        return match assessment {
            None => Ok(requested),
            Some(assessment) => apply_assessment(requested, assessment, now),
        };
    }
    let Some(header) = &state.header else {
        return Err(Rejection::NotFound);
    };
    let currency = header.request.currency;
    let status = state.status();
    let not_allowed = || Rejection::InvalidTransition {
        command: command.name(),
        status,
    };
    // Documents may still be linked after the end (a refund confirmation
    // arrives after closing), and a label the carrier created before a
    // cancellation or expiry may still arrive: it is recorded so that it
    // can be voided. Everything else stops at a terminal status.
    let late_label = matches!(command, Command::IssueLabel(_))
        && matches!(status, Status::Cancelled | Status::Expired);
    // A refused update is recorded whatever the status: it is history.
    if let Command::RecordRefusedUpdate {
        system,
        refused,
        attributes,
    } = command
    {
        check_text("system", system, 64)?;
        return Ok(vec![Event::UpdateRefused {
            system: system.clone(),
            command: refused.clone(),
            attributes: attributes.clone(),
            refused_at: now,
        }]);
    }
    if status.is_terminal() && !matches!(command, Command::LinkDocument(_)) && !late_label {
        return Err(not_allowed());
    }
    match command {
        Command::Request { .. } => Err(Rejection::AlreadyExists),
        Command::Approve(approve) => {
            if !matches!(status, Status::Requested | Status::PendingReview) {
                return Err(not_allowed());
            }
            approve_return(state, approve, now)
        }
        Command::HoldForReview { reason } => {
            if status != Status::Requested {
                return Err(not_allowed());
            }
            Ok(vec![Event::ReturnHeldForReview {
                reason: check_reason(reason)?,
            }])
        }
        Command::Reject { reason } => {
            if !matches!(status, Status::Requested | Status::PendingReview) {
                return Err(not_allowed());
            }
            Ok(vec![Event::ReturnRejected {
                reason: check_reason(reason)?,
                rejected_at: now,
            }])
        }
        Command::IssueLabel(label) => {
            if !state.approved {
                return Err(not_allowed());
            }
            issue_label(state, label, now)
        }
        Command::RecordCarrierMilestone(event) => {
            if !state.approved {
                return Err(not_allowed());
            }
            record_milestone(state, event, now)
        }
        Command::RecordReceipt(receipt) => {
            if !state.approved {
                return Err(not_allowed());
            }
            record_receipt(state, receipt, now)
        }
        Command::RecordInspection { inspections } => {
            if state.totals().received.is_zero() {
                return Err(not_allowed());
            }
            record_inspection(state, inspections, now)
        }
        Command::RecordDisposition { dispositions } => {
            if state.totals().inspected.is_zero() {
                return Err(not_allowed());
            }
            record_disposition(state, dispositions, currency, now)
        }
        Command::LinkDocument(document) => {
            if !state.approved {
                return Err(not_allowed());
            }
            check_document(state, document, currency)?;
            Ok(vec![Event::DocumentLinked {
                document: document.clone(),
                linked_at: now,
            }])
        }
        Command::RecordSettlement(settlement) => {
            if state.totals().dispositioned.is_zero() {
                return Err(not_allowed());
            }
            record_settlement(state, settlement, currency, now)
        }
        Command::Close => close(state, now),
        Command::Cancel { reason } => {
            if !state.totals().received.is_zero() {
                return Err(Rejection::UnitsAlreadyReceived);
            }
            Ok(vec![Event::ReturnCancelled {
                reason: check_reason(reason)?,
                label_voided: state.label.is_some(),
                cancelled_at: now,
            }])
        }
        Command::Expire => expire(state, status, now),
        Command::CorrectLine { system, correction } => {
            correct_line(state, system, correction, currency, now)
        }
        Command::RecordRefusedUpdate { .. } => unreachable_refusal(),
    }
}

/// Handled before the status check; kept in the match so that it stays
/// exhaustive.
fn unreachable_refusal() -> Result<Vec<Event>, Rejection> {
    Err(Rejection::Invalid {
        field: "command".into(),
        reason: "a refused update is recorded before the status is checked".into(),
    })
}

/// An owner's correction. Price and tax may change until the line's credit
/// is computed (after that the ERP's documents carry the old amounts and a
/// correction would unbalance them); intent until the return ends.
fn correct_line(
    state: &ReturnState,
    system: &str,
    correction: &LineCorrection,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    check_text("system", system, 64)?;
    let l = line(state, correction.line_no)?;
    if correction.attributes().is_empty() {
        return Err(Rejection::Invalid {
            field: "correction".into(),
            reason: "names no attribute to correct".into(),
        });
    }
    let field = |name: &str| format!("lines[{}].{name}", correction.line_no);
    for (name, money) in [
        ("unit_price", &correction.unit_price),
        ("unit_tax", &correction.unit_tax),
    ] {
        if let Some(m) = money {
            same_currency(m, currency, || field(name))?;
            if !l.credit_due.is_zero() || !l.settled.is_zero() {
                return Err(Rejection::Invalid {
                    field: field(name),
                    reason: "the line's credit was already computed; correct it in the ERP's credit memo"
                        .into(),
                });
            }
        }
    }
    Ok(vec![Event::LineCorrected {
        system: system.to_owned(),
        correction: correction.clone(),
        corrected_at: now,
    }])
}

fn check_reason(reason: &str) -> Result<String, Rejection> {
    let trimmed = reason.trim();
    check_text("reason", trimmed, MAX_REASON)?;
    Ok(trimmed.to_owned())
}

/// Free text is printable: 1 to `max` bytes, no control characters. (A NUL
/// would also be refused by PostgreSQL's `jsonb`, turning a bad request into a
/// storage error on one backend only.)
fn check_text(field: &str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.is_empty() || text.len() > max {
        return Err(Rejection::Invalid {
            field: field.into(),
            reason: format!("must be 1 to {max} characters"),
        });
    }
    if text.chars().any(char::is_control) {
        return Err(Rejection::Invalid {
            field: field.into(),
            reason: "must not contain control characters".into(),
        });
    }
    Ok(())
}

fn positive(q: Quantity, field: impl Fn() -> String) -> Result<(), Rejection> {
    if q.is_zero() {
        return Err(Rejection::QuantityNotPositive { field: field() });
    }
    Ok(())
}

fn same_currency(
    m: &Money,
    expected: Currency,
    field: impl Fn() -> String,
) -> Result<(), Rejection> {
    if m.currency() != expected {
        return Err(Rejection::CurrencyMismatch {
            field: field(),
            expected: expected.to_string(),
            found: m.currency().to_string(),
        });
    }
    Ok(())
}

/// Serials, when given, identify each unit: one per unit, no repeats.
fn check_serials(
    line_no: LineNo,
    serials: &[SerialNumber],
    quantity: Quantity,
) -> Result<(), Rejection> {
    if serials.is_empty() {
        return Ok(());
    }
    let count_ok = quantity
        .whole_units()
        .is_some_and(|n| usize::try_from(n).is_ok_and(|n| n == serials.len()));
    if !count_ok {
        return Err(Rejection::SerialCountMismatch {
            line_no,
            count: serials.len(),
            quantity,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = serials.iter().find(|s| !seen.insert(*s)) {
        return Err(Rejection::Invalid {
            field: format!("lines[{line_no}].serial_numbers"),
            reason: format!("serial {dup} appears twice"),
        });
    }
    Ok(())
}

fn line(state: &ReturnState, line_no: LineNo) -> Result<&LineState, Rejection> {
    state
        .lines
        .get(&line_no)
        .ok_or(Rejection::UnknownLine(line_no))
}

fn request_return(
    state: &ReturnState,
    return_id: ReturnId,
    request: &ReturnRequest,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    if state.exists() {
        return Err(Rejection::AlreadyExists);
    }
    if request.lines.is_empty() {
        return Err(Rejection::NoLines);
    }
    for system in request.external_refs.keys() {
        check_text("external_refs", system, 64)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for l in &request.lines {
        if !seen.insert(l.line_no) {
            return Err(Rejection::DuplicateLine(l.line_no));
        }
        positive(l.quantity, || format!("lines[{}].quantity", l.line_no))?;
        same_currency(&l.unit_price, request.currency, || {
            format!("lines[{}].unit_price", l.line_no)
        })?;
        same_currency(&l.unit_tax, request.currency, || {
            format!("lines[{}].unit_tax", l.line_no)
        })?;
        check_serials(l.line_no, &l.serial_numbers, l.quantity)?;
    }
    Ok(vec![Event::ReturnRequested {
        return_id,
        rma_number: return_id.rma_number(),
        request: request.clone(),
        requested_at: now,
    }])
}

/// Records the policy's decision with the request and turns its verdict into
/// the approval, hold or rejection a partner would otherwise have sent. The
/// assessment must speak of exactly the requested lines.
fn apply_assessment(
    mut events: Vec<Event>,
    assessment: &Assessment,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let requested = crate::fold(&events);
    let invalid = |reason: String| Rejection::Invalid {
        field: "assessment".into(),
        reason,
    };
    let mut seen = std::collections::BTreeSet::new();
    for verdict in &assessment.lines {
        if !seen.insert(verdict.line_no) {
            return Err(invalid(format!("line {} appears twice", verdict.line_no)));
        }
        let l = line(&requested, verdict.line_no)?;
        if verdict.eligible_quantity > l.line.quantity {
            return Err(invalid(format!(
                "line {} is eligible for more than was requested",
                verdict.line_no
            )));
        }
    }
    if seen.len() != requested.lines.len() {
        return Err(invalid("every requested line needs a verdict".into()));
    }
    let outcome = match assessment.verdict {
        Verdict::Approve => {
            let approve = Approve {
                lines: assessment
                    .lines
                    .iter()
                    .map(|v| LineQuantity {
                        line_no: v.line_no,
                        quantity: v.eligible_quantity,
                    })
                    .collect(),
                expires_at: assessment.expires_at,
            };
            approve_return(&requested, &approve, now)?
        }
        Verdict::Review => vec![Event::ReturnHeldForReview {
            reason: truncate_reason(assessment.reason(Verdict::Review)),
        }],
        Verdict::Reject => vec![Event::ReturnRejected {
            reason: truncate_reason(assessment.reason(Verdict::Reject)),
            rejected_at: now,
        }],
    };
    events.push(Event::EligibilityAssessed {
        assessment: assessment.clone(),
        assessed_at: now,
    });
    events.extend(outcome);
    Ok(events)
}

/// A reason built from rule messages may be long; the full explanation is
/// in the assessment, so the reason is cut at a character boundary.
fn truncate_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON - 3;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
}

fn approve_return(
    state: &ReturnState,
    approve: &Approve,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let mut authorized: Vec<LineQuantity> = state
        .lines
        .values()
        .map(|l| LineQuantity {
            line_no: l.line.line_no,
            quantity: l.line.quantity,
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for lq in &approve.lines {
        if !seen.insert(lq.line_no) {
            return Err(Rejection::DuplicateLine(lq.line_no));
        }
        let l = line(state, lq.line_no)?;
        if lq.quantity > l.line.quantity {
            return Err(Rejection::QuantityExceeds {
                line_no: lq.line_no,
                what: "authorised quantity",
                requested: lq.quantity,
                available: l.line.quantity,
            });
        }
        if let Some(a) = authorized.iter_mut().find(|a| a.line_no == lq.line_no) {
            a.quantity = lq.quantity;
        }
    }
    if authorized.iter().all(|a| a.quantity.is_zero()) {
        return Err(Rejection::Invalid {
            field: "lines".into(),
            reason: "approval authorises no units; reject the return instead".into(),
        });
    }
    if let Some(at) = approve.expires_at
        && at <= now
    {
        return Err(Rejection::Invalid {
            field: "expires_at".into(),
            reason: format!("{at} is not in the future"),
        });
    }
    Ok(vec![Event::ReturnApproved {
        authorized,
        expires_at: approve.expires_at,
        approved_at: now,
    }])
}

fn issue_label(
    state: &ReturnState,
    label: &Label,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    if let Some(existing) = &state.label {
        return Err(Rejection::Duplicate {
            kind: "label",
            reference: existing.label_ref.to_string(),
        });
    }
    if let Some(at) = label.expires_at
        && at <= now
    {
        return Err(Rejection::Invalid {
            field: "expires_at".into(),
            reason: format!("label expiry {at} is not in the future"),
        });
    }
    Ok(vec![Event::LabelIssued {
        label: label.clone(),
        issued_at: now,
    }])
}

fn record_milestone(
    state: &ReturnState,
    event: &CarrierEvent,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    if let Some(location) = &event.location {
        check_text("location", location, MAX_REASON)?;
    }
    if state
        .milestones
        .contains(&(event.milestone, event.occurred_at))
    {
        return Err(Rejection::Duplicate {
            kind: "carrier milestone",
            reference: format!("{:?} at {}", event.milestone, event.occurred_at),
        });
    }
    Ok(vec![Event::CarrierMilestoneRecorded {
        event: event.clone(),
        recorded_at: now,
    }])
}

fn record_receipt(
    state: &ReturnState,
    receipt: &Receipt,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    if state.receipts.contains(receipt.receipt_ref.as_str()) {
        return Err(Rejection::Duplicate {
            kind: "receipt",
            reference: receipt.receipt_ref.to_string(),
        });
    }
    if receipt.lines.is_empty() {
        return Err(Rejection::Invalid {
            field: "lines".into(),
            reason: "a receipt needs at least one line".into(),
        });
    }
    // Running received quantity per line, including earlier lines of this receipt.
    let mut running: std::collections::BTreeMap<LineNo, Quantity> = state
        .lines
        .iter()
        .map(|(no, l)| (*no, l.received))
        .collect();
    let mut received = Vec::new();
    let mut unexpected = Vec::new();
    for (i, r) in receipt.lines.iter().enumerate() {
        positive(r.quantity, || format!("lines[{i}].quantity"))?;
        let candidates: Vec<&LineState> = match r.line_no {
            Some(no) => {
                let l = line(state, no)?;
                if l.line.sku != r.sku {
                    return Err(Rejection::SkuMismatch {
                        line_no: no,
                        expected: l.line.sku.to_string(),
                        found: r.sku.to_string(),
                    });
                }
                vec![l]
            }
            None => state
                .lines
                .values()
                .filter(|l| l.line.sku == r.sku)
                .collect(),
        };
        if candidates.is_empty() {
            // Goods that match nothing on the return are kept and flagged.
            unexpected.push(UnexpectedItem {
                receipt_ref: receipt.receipt_ref.clone(),
                sku: r.sku.clone(),
                quantity: r.quantity,
                serial_numbers: r.serial_numbers.clone(),
            });
            continue;
        }
        if !r.serial_numbers.is_empty() {
            check_serials(candidates[0].line.line_no, &r.serial_numbers, r.quantity)?;
        }
        // Fill lines up to their authorisation in order; whatever is left is
        // an over-receipt on the last candidate line.
        let mut left = r.quantity;
        let mut serials = r.serial_numbers.iter().cloned();
        for (idx, l) in candidates.iter().enumerate() {
            let no = l.line.line_no;
            let before = running.get(&no).copied().unwrap_or_default();
            let room = l.authorized.saturating_minus(before);
            let last = idx + 1 == candidates.len();
            let take = if last { left } else { room.min(left) };
            if take.is_zero() {
                continue;
            }
            left = left.saturating_minus(take);
            let after = before.plus(take);
            let over = after.saturating_minus(l.authorized.max(before));
            running.insert(no, after);
            let unit_serials: Vec<SerialNumber> = match take.whole_units() {
                Some(n) => serials
                    .by_ref()
                    .take(usize::try_from(n).unwrap_or(usize::MAX))
                    .collect(),
                None => Vec::new(),
            };
            received.push(ReceivedUnits {
                line_no: no,
                quantity: take,
                over_received: over,
                serial_numbers: unit_serials,
                lot_number: r.lot_number.clone(),
            });
        }
    }
    Ok(vec![Event::UnitsReceived {
        receipt_ref: receipt.receipt_ref.clone(),
        lines: received,
        unexpected,
        received_at: now,
    }])
}

/// One per-line item of a command that moves units from one bucket to the
/// next (inspection, disposition).
struct UnitMove<'a> {
    line_no: LineNo,
    quantity: Quantity,
    serials: &'a [SerialNumber],
}

/// Checks that every move names a line, a positive quantity and matching
/// serials, and that per line the moves together fit in what `available`
/// says is waiting.
fn check_moves<'a>(
    state: &ReturnState,
    field: &str,
    what: &'static str,
    moves: impl Iterator<Item = UnitMove<'a>>,
    available: impl Fn(&LineState) -> Quantity,
) -> Result<(), Rejection> {
    let mut used: std::collections::BTreeMap<LineNo, Quantity> = Default::default();
    let mut any = false;
    for m in moves {
        any = true;
        let l = line(state, m.line_no)?;
        positive(m.quantity, || format!("{field}[{}].quantity", m.line_no))?;
        check_serials(m.line_no, m.serials, m.quantity)?;
        let u = used.entry(m.line_no).or_default();
        *u = u.plus(m.quantity);
        let available = available(l);
        if *u > available {
            return Err(Rejection::QuantityExceeds {
                line_no: m.line_no,
                what,
                requested: *u,
                available,
            });
        }
    }
    if !any {
        return Err(Rejection::Invalid {
            field: field.into(),
            reason: format!("at least one line is needed in {field}"),
        });
    }
    Ok(())
}

fn record_inspection(
    state: &ReturnState,
    inspections: &[Inspection],
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let moves = inspections.iter().map(|i| UnitMove {
        line_no: i.line_no,
        quantity: i.quantity,
        serials: &i.serial_numbers,
    });
    check_moves(
        state,
        "inspections",
        "inspected quantity",
        moves,
        LineState::awaiting_inspection,
    )?;
    Ok(vec![Event::UnitsInspected {
        inspections: inspections.to_vec(),
        inspected_at: now,
    }])
}

fn record_disposition(
    state: &ReturnState,
    dispositions: &[DispositionLine],
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    for (i, d) in dispositions.iter().enumerate() {
        let Some(fee) = &d.restocking_fee else {
            continue;
        };
        let field = || format!("dispositions[{i}].restocking_fee");
        same_currency(fee, currency, field)?;
        let price = line(state, d.line_no)?.line.unit_price.amount();
        if fee.amount().is_sign_negative() || fee.amount() > price {
            return Err(Rejection::Invalid {
                field: field(),
                reason: format!("must be between 0 and the unit price {price}"),
            });
        }
    }
    let moves = dispositions.iter().map(|d| UnitMove {
        line_no: d.line_no,
        quantity: d.quantity,
        serials: &d.serial_numbers,
    });
    check_moves(
        state,
        "dispositions",
        "dispositioned quantity",
        moves,
        LineState::awaiting_disposition,
    )?;
    Ok(vec![Event::UnitsDispositioned {
        dispositions: dispositions.to_vec(),
        dispositioned_at: now,
    }])
}

fn check_document(
    state: &ReturnState,
    doc: &FinancialDocument,
    currency: Currency,
) -> Result<(), Rejection> {
    if let Some(amount) = &doc.amount {
        same_currency(amount, currency, || {
            format!("document {}.amount", doc.number)
        })?;
    }
    let duplicate = state
        .documents
        .iter()
        .any(|d| d.kind == doc.kind && d.system == doc.system && d.number == doc.number);
    if duplicate {
        return Err(Rejection::Duplicate {
            kind: "document",
            reference: format!("{}:{}", doc.system, doc.number),
        });
    }
    Ok(())
}

fn record_settlement(
    state: &ReturnState,
    settlement: &Settlement,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    if state
        .settlements
        .contains(settlement.settlement_ref.as_str())
    {
        return Err(Rejection::Duplicate {
            kind: "settlement",
            reference: settlement.settlement_ref.to_string(),
        });
    }
    if settlement.lines.is_empty() {
        return Err(Rejection::Invalid {
            field: "lines".into(),
            reason: "a settlement needs at least one line".into(),
        });
    }
    // Per line: units and money settled so far, including this settlement.
    let mut running: std::collections::BTreeMap<LineNo, (Quantity, Decimal)> = Default::default();
    for s in &settlement.lines {
        let l = line(state, s.line_no)?;
        positive(s.quantity, || format!("lines[{}].quantity", s.line_no))?;
        same_currency(&s.amount, currency, || {
            format!("lines[{}].amount", s.line_no)
        })?;
        let (qty, credit) = running.entry(s.line_no).or_insert((l.settled, l.credited));
        *qty = qty.plus(s.quantity);
        *credit += s.amount.amount();
        let dispositioned = l.dispositioned_total();
        if *qty > dispositioned {
            return Err(Rejection::QuantityExceeds {
                line_no: s.line_no,
                what: "settled quantity",
                requested: qty.saturating_minus(l.settled),
                available: l.awaiting_settlement(),
            });
        }
        let max = l.creditable(*qty);
        if *credit > max {
            return Err(Rejection::CreditExceedsPaid {
                line_no: s.line_no,
                requested: format!("{} {currency}", *credit - l.credited),
                max: format!("{} {currency}", max - l.credited),
            });
        }
    }
    let mut events = vec![Event::UnitsSettled {
        settlement_ref: settlement.settlement_ref.clone(),
        lines: settlement.lines.to_vec(),
        settled_at: now,
    }];
    let mut linked: Vec<FinancialDocument> = Vec::new();
    for doc in &settlement.documents {
        check_document(state, doc, currency)?;
        // The same document listed twice is linked once; two different
        // documents under one kind, system and number are a duplicate, as
        // they would be across two `link_document` commands.
        if let Some(earlier) = linked
            .iter()
            .find(|d| d.kind == doc.kind && d.system == doc.system && d.number == doc.number)
        {
            if earlier == doc {
                continue;
            }
            return Err(Rejection::Duplicate {
                kind: "document",
                reference: format!("{}:{}", doc.system, doc.number),
            });
        }
        linked.push(doc.clone());
        events.push(Event::DocumentLinked {
            document: doc.clone(),
            linked_at: now,
        });
    }
    Ok(events)
}

fn close(state: &ReturnState, now: DateTime<Utc>) -> Result<Vec<Event>, Rejection> {
    let t = state.totals();
    if t.received.is_zero() {
        return Err(Rejection::NotReadyToClose(
            "no units were received; cancel or expire the return instead".into(),
        ));
    }
    if let Some(l) = state.lines.values().find(|l| {
        !l.awaiting_inspection().is_zero()
            || !l.awaiting_disposition().is_zero()
            || !l.awaiting_settlement().is_zero()
    }) {
        return Err(Rejection::NotReadyToClose(format!(
            "line {} still has {} units awaiting inspection, {} awaiting disposition and {} awaiting settlement",
            l.line.line_no,
            l.awaiting_inspection(),
            l.awaiting_disposition(),
            l.awaiting_settlement()
        )));
    }
    Ok(vec![Event::ReturnClosed { closed_at: now }])
}

fn expire(
    state: &ReturnState,
    status: Status,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let not_allowed = || Rejection::InvalidTransition {
        command: "expire",
        status,
    };
    if !state.approved || !state.totals().received.is_zero() {
        return Err(not_allowed());
    }
    // A parcel the carrier has is on its way; it does not expire.
    if state.with_carrier() {
        return Err(not_allowed());
    }
    let deadline = state
        .label
        .as_ref()
        .and_then(|l| l.expires_at)
        .or(state.authorization_expires_at)
        .ok_or(Rejection::NoExpiry)?;
    if now < deadline {
        return Err(Rejection::NotExpired {
            until: deadline.to_rfc3339(),
        });
    }
    Ok(vec![Event::ReturnExpired { expired_at: now }])
}
