//! Property tests: random command sequences, biased towards plausible ones,
//! are applied step by step through `decide` + `evolve` from an empty state,
//! and the lifecycle invariants are checked after every step. Quantities are
//! mostly "whatever is available" so sequences get deep enough to settle and
//! close, with enough random numbers, unknown lines, wrong currencies and
//! duplicate references mixed in to exercise the refusals.
//!
//! The clock is a counter: every step is one minute later, and `expire`
//! jumps it forward so that deadlines can pass.

mod support;

use std::collections::BTreeMap;

use backhaul_domain::command::{Approve, Receipt, Settlement};
use backhaul_domain::model::{
    CarrierMilestone, Disposition, FinancialDocumentKind, ReceiptLine, ReturnLine, SettlementLine,
};
use backhaul_domain::state::{LineState, Totals};
use backhaul_domain::values::{Currency, Money, Quantity};
use backhaul_domain::{Command, Event, ReturnState, Status, decide, evolve, fold};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use rust_decimal::Decimal;
use support::*;

// ------------------------------------------------------------- the steps ----

/// A quantity as the generator means it; resolved against the state when
/// the step runs, so "what is available" follows the return.
#[derive(Debug, Clone, Copy)]
enum Qty {
    /// What the line has available for this command (at least one unit).
    Available,
    Units(u32),
    /// `n + 0.5` units: quantities are exact decimals, not just integers.
    Half(u32),
}

#[derive(Debug, Clone, Copy)]
enum Amount {
    /// Everything still creditable for the units settled so far plus these.
    Max,
    Zero,
    Cents(u32),
    /// One cent more than allowed: must be refused.
    OverByCent,
}

/// Which SKU a receipt line carries.
#[derive(Debug, Clone, Copy)]
enum SkuPick {
    /// The SKU of the targeted line (or of line 1 when matching by SKU).
    OfLine,
    /// One of `SKU-A`, `SKU-B`, `SKU-C` or `SKU-Z` (never on a return).
    Index(usize),
}

/// Which line a step is about.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The first line with something available for this command (line 1
    /// when none has): keeps sequences moving towards the end.
    Busy,
    No(u32),
}

#[derive(Debug, Clone)]
struct LineSpec {
    sku: usize,
    units: u32,
    price_cents: u32,
    tax_cents: u32,
    eur_price: bool,
}

#[derive(Debug, Clone)]
enum Step {
    Request {
        lines: Vec<LineSpec>,
        /// Repeat line number 1 on the last line.
        duplicate_line: bool,
    },
    Approve {
        lines: Vec<(u32, u32)>,
        expires_in: Option<i64>,
    },
    Hold {
        blank: bool,
    },
    Reject {
        blank: bool,
    },
    Label {
        reference: u8,
        expires_in: Option<i64>,
    },
    Scan {
        milestone: CarrierMilestone,
        occurred: i64,
    },
    Receipt {
        reference: u8,
        lines: Vec<(Option<Pick>, SkuPick, Qty)>,
    },
    Inspect {
        lines: Vec<(Pick, Qty, bool)>,
    },
    Dispose {
        lines: Vec<(Pick, Qty, Disposition)>,
    },
    Link {
        kind: FinancialDocumentKind,
        number: u8,
        amount: Option<(u32, bool)>,
    },
    Settle {
        reference: u8,
        lines: Vec<(Pick, Qty, Amount, bool)>,
        /// Credit memos carried by the settlement: number and amount in cents.
        documents: Vec<(u8, Option<u32>)>,
    },
    Close,
    Cancel {
        blank: bool,
    },
    Expire {
        jump_minutes: i64,
    },
}

const SKUS: [&str; 4] = ["SKU-A", "SKU-B", "SKU-C", "SKU-Z"];

// ------------------------------------------------------------ strategies ----

fn qty() -> impl Strategy<Value = Qty> {
    prop_oneof![
        7 => Just(Qty::Available),
        3 => (0u32..=12).prop_map(Qty::Units),
        1 => (0u32..=12).prop_map(Qty::Half),
    ]
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        5 => Just(Amount::Max),
        1 => Just(Amount::Zero),
        2 => (0u32..=20_000).prop_map(Amount::Cents),
        1 => Just(Amount::OverByCent),
    ]
}

/// Mostly lines that exist (returns have up to three), sometimes unknown ones.
fn line_no() -> impl Strategy<Value = u32> {
    prop_oneof![5 => Just(1u32), 4 => 2u32..=3, 1 => 4u32..=9]
}

/// A line with work pending for the command, or any line number.
fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![4 => Just(Pick::Busy), 1 => line_no().prop_map(Pick::No)]
}

fn wrong_currency() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.05)
}

fn milestone() -> impl Strategy<Value = CarrierMilestone> {
    prop_oneof![
        Just(CarrierMilestone::PreTransit),
        Just(CarrierMilestone::InTransit),
        Just(CarrierMilestone::OutForDelivery),
        Just(CarrierMilestone::AvailableForPickup),
        Just(CarrierMilestone::Delivered),
        Just(CarrierMilestone::ReturnToSender),
        Just(CarrierMilestone::Failure),
        Just(CarrierMilestone::Exception),
    ]
}

fn disposition_kind() -> impl Strategy<Value = Disposition> {
    prop::sample::select(Disposition::ALL.to_vec())
}

fn document_kind() -> impl Strategy<Value = FinancialDocumentKind> {
    prop::sample::select(vec![
        FinancialDocumentKind::ErpReturnOrder,
        FinancialDocumentKind::CreditMemo,
        FinancialDocumentKind::Refund,
        FinancialDocumentKind::ReplacementOrder,
        FinancialDocumentKind::SupplierClaim,
        FinancialDocumentKind::InventoryAdjustment,
        FinancialDocumentKind::RepairOrder,
    ])
}

/// One to two entries, mostly one: a command fails as a whole if any entry
/// is wrong, so two random entries would mostly be refused.
fn entries<T: std::fmt::Debug>(entry: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<T>> {
    (
        prop::collection::vec(entry, 2..=2),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(mut list, both)| {
            if !both {
                list.truncate(1);
            }
            list
        })
}

fn request_step() -> impl Strategy<Value = Step> {
    let line = (
        0usize..3,
        // Zero units is possible but rare: it is refused.
        prop_oneof![1 => Just(0u32), 40 => 1u32..=12],
        0u32..=5_000,
        0u32..=1_000,
        // Rarer than elsewhere: a wrong line currency refuses the whole request.
        prop::bool::weighted(0.02),
    )
        .prop_map(|(sku, units, price_cents, tax_cents, eur_price)| LineSpec {
            sku,
            units,
            price_cents,
            tax_cents,
            eur_price,
        });
    (
        // No lines at all is possible but rare: it is refused.
        prop_oneof![1 => Just(Vec::new()), 19 => prop::collection::vec(line, 1..=3)],
        prop::bool::weighted(0.05),
    )
        .prop_map(|(lines, duplicate_line)| Step::Request {
            lines,
            duplicate_line,
        })
}

fn step() -> impl Strategy<Value = Step> {
    let blank = || prop::bool::weighted(0.1);
    let deadline = || prop::option::weighted(0.4, -10i64..=3_000);
    prop_oneof![
        1 => request_step(),
        3 => (
            prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec((line_no(), 0u32..=12), 1..=2)],
            deadline(),
        )
            .prop_map(|(lines, expires_in)| Step::Approve { lines, expires_in }),
        1 => blank().prop_map(|blank| Step::Hold { blank }),
        1 => blank().prop_map(|blank| Step::Reject { blank }),
        2 => (0u8..3, deadline())
            .prop_map(|(reference, expires_in)| Step::Label { reference, expires_in }),
        2 => (milestone(), 0i64..=300)
            .prop_map(|(milestone, occurred)| Step::Scan { milestone, occurred }),
        4 => (
            0u8..6,
            entries((
                prop::option::weighted(0.7, pick()),
                prop_oneof![8 => Just(SkuPick::OfLine), 2 => (0usize..4).prop_map(SkuPick::Index)],
                qty(),
            )),
        )
            .prop_map(|(reference, lines)| Step::Receipt { reference, lines }),
        10 => entries((pick(), qty(), any::<bool>()))
            .prop_map(|lines| Step::Inspect { lines }),
        10 => entries((pick(), qty(), disposition_kind()))
            .prop_map(|lines| Step::Dispose { lines }),
        2 => (document_kind(), 0u8..3, prop::option::weighted(0.5, (0u32..=10_000, wrong_currency())))
            .prop_map(|(kind, number, amount)| Step::Link { kind, number, amount }),
        10 => (
            0u8..4,
            entries((pick(), qty(), amount(), wrong_currency())),
            prop_oneof![
                6 => Just(Vec::new()),
                3 => prop::collection::vec((0u8..3, prop::option::weighted(0.5, 0u32..=5_000)), 1..=1),
                1 => prop::collection::vec((0u8..3, prop::option::weighted(0.5, 0u32..=5_000)), 2..=2),
            ],
        )
            .prop_map(|(reference, lines, documents)| Step::Settle { reference, lines, documents }),
        8 => Just(Step::Close),
        1 => blank().prop_map(|blank| Step::Cancel { blank }),
        1 => (0i64..=5_000).prop_map(|jump_minutes| Step::Expire { jump_minutes }),
    ]
}

/// A plain approval of every line, sometimes with a deadline.
fn approve_step() -> impl Strategy<Value = Step> {
    prop::option::weighted(0.3, 1i64..=3_000).prop_map(|expires_in| Step::Approve {
        lines: Vec::new(),
        expires_in,
    })
}

/// A sequence that almost always starts with a request and an approval (so
/// it gets somewhere) and then applies up to 60 random steps.
fn sequence() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::option::weighted(0.95, request_step()),
        prop::option::weighted(0.85, approve_step()),
        prop::collection::vec(step(), 1..60),
    )
        .prop_map(|(request, approve, rest)| {
            request.into_iter().chain(approve).chain(rest).collect()
        })
}

// ---------------------------------------------------- steps to commands ----

fn cents(c: u32) -> Decimal {
    Decimal::new(i64::from(c), 2)
}

fn currency(wrong: bool) -> Currency {
    if wrong { eur() } else { usd() }
}

fn reason(blank: bool) -> String {
    if blank {
        "  ".into()
    } else {
        "generated".into()
    }
}

/// The line number a pick means, given what each line has available.
fn resolve_line(p: Pick, state: &ReturnState, available: impl Fn(&LineState) -> Quantity) -> u32 {
    match p {
        Pick::No(n) => n,
        Pick::Busy => state
            .lines
            .values()
            .find(|l| !available(l).is_zero())
            .map_or(1, |l| l.line.line_no.get()),
    }
}

fn resolve_qty(q_spec: Qty, available: Quantity) -> Quantity {
    match q_spec {
        Qty::Available if available.is_zero() => q(1),
        Qty::Available => available,
        Qty::Units(n) => q(n),
        Qty::Half(n) => q(n).plus(qd("0.5")),
    }
}

/// Turns a step into a command against the current state.
fn command(step: &Step, state: &ReturnState, now: DateTime<Utc>) -> Command {
    let line_of = |n: u32| state.lines.get(&ln(n));
    match step {
        Step::Request {
            lines,
            duplicate_line,
        } => {
            let mut built: Vec<ReturnLine> = lines
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    let number = u32::try_from(i).expect("at most three lines") + 1;
                    let mut l = line(number, SKUS[spec.sku], spec.units);
                    l.unit_price = Money::new(cents(spec.price_cents), currency(spec.eur_price))
                        .expect("two decimals fit every currency used here");
                    l.unit_tax = Money::new(cents(spec.tax_cents), usd()).expect("valid tax");
                    l
                })
                .collect();
            if *duplicate_line && let Some(last) = built.last_mut() {
                last.line_no = ln(1);
            }
            request_cmd(built)
        }
        Step::Approve { lines, expires_in } => Command::Approve(Approve {
            lines: lines.iter().map(|&(n, u)| lq(n, u)).collect(),
            expires_at: expires_in.map(|m| now + Duration::minutes(m)),
        }),
        Step::Hold { blank } => Command::HoldForReview {
            reason: reason(*blank),
        },
        Step::Reject { blank } => Command::Reject {
            reason: reason(*blank),
        },
        Step::Label {
            reference,
            expires_in,
        } => issue_label(
            &format!("LBL-{reference}"),
            expires_in.map(|m| now + Duration::minutes(m)),
        ),
        Step::Scan {
            milestone,
            occurred,
        } => scan(*milestone, at(*occurred)),
        Step::Receipt { reference, lines } => {
            // Receipt lines fill in order, so "available" tracks this receipt too.
            let mut taken: BTreeMap<u32, Quantity> = BTreeMap::new();
            let built: Vec<ReceiptLine> = lines
                .iter()
                .map(|&(target, pick, q_spec)| {
                    let target = target.map(|p| {
                        resolve_line(p, state, |l| l.authorized.saturating_minus(l.received))
                    });
                    let n = target.unwrap_or(1);
                    let l = line_of(n);
                    let sku_code = match (pick, l) {
                        (SkuPick::OfLine, Some(l)) => l.line.sku.as_str().to_owned(),
                        (SkuPick::OfLine, None) => SKUS[0].to_owned(),
                        (SkuPick::Index(i), _) => SKUS[i].to_owned(),
                    };
                    let available = l.map_or(Quantity::ZERO, |l| {
                        l.authorized
                            .saturating_minus(l.received)
                            .saturating_minus(taken.get(&n).copied().unwrap_or_default())
                    });
                    let quantity = resolve_qty(q_spec, available);
                    let t = taken.entry(n).or_default();
                    *t = t.plus(quantity);
                    rline(target, &sku_code, quantity)
                })
                .collect();
            Command::RecordReceipt(Receipt {
                receipt_ref: xref(&format!("RCV-{reference}")),
                lines: built,
            })
        }
        Step::Inspect { lines } => Command::RecordInspection {
            inspections: lines
                .iter()
                .map(|&(p, q_spec, damaged)| {
                    let n = resolve_line(p, state, LineState::awaiting_inspection);
                    let available = line_of(n).map_or(Quantity::ZERO, |l| l.awaiting_inspection());
                    let mut i = inspection(n, resolve_qty(q_spec, available));
                    if damaged {
                        i.condition = cond("DAMAGED");
                    }
                    i
                })
                .collect(),
        },
        Step::Dispose { lines } => Command::RecordDisposition {
            dispositions: lines
                .iter()
                .map(|&(p, q_spec, d)| {
                    let n = resolve_line(p, state, LineState::awaiting_disposition);
                    let available = line_of(n).map_or(Quantity::ZERO, |l| l.awaiting_disposition());
                    disposition(n, resolve_qty(q_spec, available), d)
                })
                .collect(),
        },
        Step::Link {
            kind,
            number,
            amount,
        } => link(document(
            *kind,
            &format!("DOC-{number}"),
            amount
                .map(|(c, wrong)| Money::new(cents(c), currency(wrong)).expect("two decimals fit")),
        )),
        Step::Settle {
            reference,
            lines,
            documents,
        } => {
            // Units and money of this settlement so far, per line, so that
            // `Max` is the true remaining limit even with two entries per line.
            let mut so_far: BTreeMap<u32, (Quantity, Decimal)> = BTreeMap::new();
            let built: Vec<SettlementLine> = lines
                .iter()
                .map(|&(p, q_spec, a_spec, wrong)| {
                    let n = resolve_line(p, state, LineState::awaiting_settlement);
                    let l = line_of(n);
                    let (q_before, c_before) = so_far.get(&n).copied().unwrap_or_default();
                    let available = l.map_or(Quantity::ZERO, |l| {
                        l.awaiting_settlement().saturating_minus(q_before)
                    });
                    let quantity = resolve_qty(q_spec, available);
                    let limit = l.map_or(Decimal::ZERO, |l| {
                        l.creditable(l.settled.plus(q_before).plus(quantity))
                            - l.credited
                            - c_before
                    });
                    let raw = match a_spec {
                        Amount::Max => limit.max(Decimal::ZERO),
                        Amount::Zero => Decimal::ZERO,
                        Amount::Cents(c) => cents(c),
                        Amount::OverByCent => limit.max(Decimal::ZERO) + cents(1),
                    };
                    let entry = so_far.entry(n).or_default();
                    entry.0 = entry.0.plus(quantity);
                    entry.1 += raw;
                    let amount = Money::new(raw, currency(wrong))
                        .unwrap_or_else(|_| Money::zero(currency(wrong)));
                    settlement_line(n, quantity, amount)
                })
                .collect();
            Command::RecordSettlement(Settlement {
                settlement_ref: xref(&format!("STL-{reference}")),
                lines: built,
                documents: documents
                    .iter()
                    .map(|&(number, amount)| {
                        document(
                            FinancialDocumentKind::CreditMemo,
                            &format!("CM-{number}"),
                            amount.map(|c| usd_amt(&cents(c).to_string())),
                        )
                    })
                    .collect(),
            })
        }
        Step::Close => Command::Close,
        Step::Cancel { blank } => Command::Cancel {
            reason: reason(*blank),
        },
        Step::Expire { .. } => Command::Expire,
    }
}

// -------------------------------------------------------------- checking ----

/// The totals as the log tells them, computed without `evolve`, to compare
/// with `state.totals()`.
fn totals_from_events(events: &[Event]) -> Totals {
    let mut t = Totals::default();
    for e in events {
        match e {
            Event::ReturnRequested { request, .. } => {
                t.requested = request.lines.iter().map(|l| l.quantity).sum();
            }
            Event::ReturnApproved { authorized, .. } => {
                t.authorized = authorized.iter().map(|a| a.quantity).sum();
            }
            Event::UnitsReceived {
                lines, unexpected, ..
            } => {
                for l in lines {
                    t.received = t.received.plus(l.quantity);
                    t.over_received = t.over_received.plus(l.over_received);
                }
                for u in unexpected {
                    t.unexpected = t.unexpected.plus(u.quantity);
                }
            }
            Event::UnitsInspected { inspections, .. } => {
                for i in inspections {
                    t.inspected = t.inspected.plus(i.quantity);
                }
            }
            Event::UnitsDispositioned { dispositions, .. } => {
                for d in dispositions {
                    t.dispositioned = t.dispositioned.plus(d.quantity);
                }
            }
            Event::UnitsSettled { lines, .. } => {
                for l in lines {
                    t.settled = t.settled.plus(l.quantity);
                    t.credited += l.amount.amount();
                }
            }
            Event::EligibilityAssessed { .. }
            | Event::LineCorrected { .. }
            | Event::UpdateRefused { .. }
            | Event::ReturnHeldForReview { .. }
            | Event::ReturnRejected { .. }
            | Event::LabelIssued { .. }
            | Event::CarrierMilestoneRecorded { .. }
            | Event::DocumentLinked { .. }
            | Event::ReturnClosed { .. }
            | Event::ReturnCancelled { .. }
            | Event::ReturnExpired { .. } => {}
        }
    }
    t
}

/// The invariants, written out again here rather than trusting
/// `check_invariants` alone: if both agree, neither is vacuous.
fn check_state(state: &ReturnState) -> Result<(), TestCaseError> {
    prop_assert_eq!(state.check_invariants(), Ok(()));
    for (no, l) in &state.lines {
        let disp = l.dispositioned_total();
        // received = awaiting inspection + awaiting disposition + dispositioned
        prop_assert!(
            l.inspected <= l.received,
            "line {}: inspected > received",
            no
        );
        prop_assert!(
            disp <= l.inspected,
            "line {}: dispositioned > inspected",
            no
        );
        prop_assert_eq!(
            (l.received.get() - l.inspected.get()) + (l.inspected.get() - disp.get()) + disp.get(),
            l.received.get(),
            "line {}: units not conserved",
            no
        );
        prop_assert!(l.settled <= disp, "line {}: settled > dispositioned", no);
        prop_assert!(l.credited >= Decimal::ZERO, "line {}: negative credit", no);
        prop_assert!(
            l.credited <= l.settled.get() * (l.line.unit_price.amount() + l.line.unit_tax.amount()),
            "line {}: credited {} exceeds what was paid for {} units",
            no,
            l.credited,
            l.settled
        );
        let over = if l.received > l.authorized {
            l.received.get() - l.authorized.get()
        } else {
            Decimal::ZERO
        };
        prop_assert_eq!(l.over_received.get(), over, "line {}: over-receipt", no);
    }
    // A document is linked once: kind, system and number identify it.
    for (i, a) in state.documents.iter().enumerate() {
        for b in &state.documents[i + 1..] {
            prop_assert!(
                !(a.kind == b.kind && a.system == b.system && a.number == b.number),
                "document {}:{} is linked twice",
                a.system,
                a.number
            );
        }
    }
    // The status agrees with the quantities it is derived from.
    let t = state.totals();
    match state.status() {
        Status::Settled => prop_assert!(t.settled == t.received && !t.received.is_zero()),
        Status::Dispositioned => prop_assert!(t.dispositioned == t.received),
        Status::Inspected => prop_assert!(t.inspected == t.received),
        Status::PartiallyReceived => prop_assert!(t.received < t.authorized),
        Status::Received => prop_assert!(!t.received.is_zero()),
        Status::Requested | Status::PendingReview => prop_assert!(t.authorized.is_zero()),
        Status::Approved | Status::LabelIssued | Status::InTransit => {
            prop_assert!(t.received.is_zero() && !t.authorized.is_zero());
        }
        Status::Rejected | Status::Closed | Status::Cancelled | Status::Expired => {}
    }
    Ok(())
}

/// Quantities that only ever grow, per line: received, inspected,
/// dispositioned, settled, credited.
fn progress(state: &ReturnState) -> Vec<(Quantity, Quantity, Quantity, Quantity, Decimal)> {
    state
        .lines
        .values()
        .map(|l| {
            (
                l.received,
                l.inspected,
                l.dispositioned_total(),
                l.settled,
                l.credited,
            )
        })
        .collect()
}

/// What happened to one step, for the generator's own sanity check.
struct Outcome {
    status: Status,
    accepted: Option<&'static str>,
    rejected: Option<&'static str>,
}

/// Runs a sequence, checking every property after every step, and calls
/// `on_accepted` with each accepted command and its events.
fn run(
    steps: &[Step],
    mut on_accepted: impl FnMut(&Command, &[Event]) -> Result<(), TestCaseError>,
) -> Result<Vec<Outcome>, TestCaseError> {
    let mut state = ReturnState::default();
    let mut log: Vec<Event> = Vec::new();
    let mut now = at(0);
    let mut terminal: Option<Status> = None;
    let mut outcomes = Vec::new();

    for step in steps {
        now += Duration::minutes(1);
        if let Step::Expire { jump_minutes } = step {
            now += Duration::minutes(*jump_minutes);
        }
        let cmd = command(step, &state, now);
        let before = state.clone();
        let decided = decide(&state, &cmd, now);
        // decide is a function: the same state, command and time give the
        // same answer, which is what lets the engine retry it after a conflict.
        prop_assert_eq!(&decided, &decide(&state, &cmd, now));

        let (mut accepted, mut rejected) = (None, None);
        match decided {
            Ok(events) => {
                prop_assert!(
                    !events.is_empty(),
                    "an accepted {} recorded nothing",
                    cmd.name()
                );
                if events
                    .iter()
                    .any(|e| matches!(e, Event::ReturnClosed { .. }))
                {
                    let t = before.totals();
                    prop_assert!(
                        !t.received.is_zero() && t.settled == t.received,
                        "closed with {} received and {} settled",
                        t.received,
                        t.settled
                    );
                }
                for e in &events {
                    evolve(&mut state, e);
                }
                on_accepted(&cmd, &events)?;
                // Once the carrier has the parcel, only a return to sender
                // (or goods arriving) moves the return out of "in transit":
                // a delay or exception scan must not hand it back to the
                // customer or let it expire.
                if let Command::RecordCarrierMilestone(scan) = &cmd
                    && before.status() == Status::InTransit
                    && scan.milestone != CarrierMilestone::ReturnToSender
                {
                    prop_assert_eq!(
                        state.status(),
                        Status::InTransit,
                        "a {:?} scan moved the parcel out of transit",
                        scan.milestone
                    );
                }
                log.extend(events);
                accepted = Some(cmd.name());
                // Nothing that happened can be undone by a later fact.
                let (old, new) = (progress(&before), progress(&state));
                if !old.is_empty() {
                    prop_assert_eq!(old.len(), new.len());
                    for (o, n) in old.iter().zip(&new) {
                        prop_assert!(
                            o.0 <= n.0 && o.1 <= n.1 && o.2 <= n.2 && o.3 <= n.3 && o.4 <= n.4,
                            "{} moved a quantity backwards: {:?} -> {:?}",
                            cmd.name(),
                            o,
                            n
                        );
                    }
                }
            }
            Err(r) => {
                // A refusal changes nothing. `decide` only borrows the state,
                // so this holds by construction; the check keeps it so if the
                // signature or the state's types (interior mutability) change.
                prop_assert_eq!(&state, &before, "{} refused with {}", cmd.name(), r.code());
                rejected = Some(r.code());
            }
        }

        check_state(&state)?;
        // evolve is deterministic, and folding the log from scratch gives the
        // state built step by step (what a replay or a reload does).
        let rebuilt = fold(&log);
        prop_assert_eq!(&rebuilt, &state);
        prop_assert_eq!(&fold(&log), &rebuilt);
        prop_assert_eq!(totals_from_events(&log), state.totals());

        let status = state.status();
        if let Some(end) = terminal {
            prop_assert_eq!(status, end, "a terminal status changed");
        } else if status.is_terminal() {
            terminal = Some(status);
        }
        outcomes.push(Outcome {
            status,
            accepted,
            rejected,
        });
    }
    Ok(outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_step_keeps_the_lifecycle_invariants(steps in sequence()) {
        run(&steps, |_, _| Ok(()))?;
    }

    #[test]
    fn every_event_and_command_survives_a_json_round_trip(steps in sequence()) {
        run(&steps, |cmd, events| {
            // Events are the stored log and commands travel through the API
            // and the outbox: both must come back exactly as they went in.
            let json = serde_json::to_string(cmd).expect("commands serialise");
            let back: Command = serde_json::from_str(&json)
                .map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
            prop_assert_eq!(&back, cmd);
            for e in events {
                let json = serde_json::to_string(e).expect("events serialise");
                let back: Event = serde_json::from_str(&json)
                    .map_err(|err| TestCaseError::fail(format!("{json}: {err}")))?;
                prop_assert_eq!(&back, e);
                // Serialising again gives the same bytes: stored payloads are stable.
                prop_assert_eq!(serde_json::to_string(&back).expect("events serialise"), json);
            }
            Ok(())
        })?;
    }
}

/// The properties above are only as good as the sequences they see. This
/// samples the generator with a fixed seed and checks that it reaches every
/// status and has every command both accepted and refused, so a change that
/// makes the generator degenerate (say, every request invalid) fails here
/// instead of silently weakening the properties.
#[test]
fn the_generator_reaches_every_status_and_command() {
    let mut runner = TestRunner::deterministic();
    let strategy = sequence();
    let mut statuses: Vec<Status> = Vec::new();
    let mut accepted: Vec<&str> = Vec::new();
    let mut refused: Vec<&str> = Vec::new();
    for _ in 0..512 {
        let steps = strategy
            .new_tree(&mut runner)
            .expect("the strategy generates")
            .current();
        let outcomes = run(&steps, |_, _| Ok(())).expect("properties hold");
        for o in outcomes {
            statuses.push(o.status);
            accepted.extend(o.accepted);
            refused.extend(o.rejected);
        }
    }
    let missing: Vec<&str> = Status::ALL
        .iter()
        .filter(|s| !statuses.contains(s))
        .map(|s| s.as_str())
        .collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
    let names = [
        "request",
        "approve",
        "hold_for_review",
        "reject",
        "issue_label",
        "record_carrier_milestone",
        "record_receipt",
        "record_inspection",
        "record_disposition",
        "link_document",
        "record_settlement",
        "close",
        "cancel",
        "expire",
    ];
    for name in names {
        assert!(accepted.contains(&name), "{name} was never accepted");
    }
    for code in [
        "quantity_exceeds_available",
        "credit_exceeds_paid",
        "currency_mismatch",
        "unknown_line",
        "duplicate",
        "invalid_transition",
    ] {
        assert!(refused.contains(&code), "{code} never happened");
    }
}
