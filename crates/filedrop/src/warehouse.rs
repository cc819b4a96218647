//! Warehouse events from rows: receipts (`csv-receipts`), inspections
//! (`csv-inspections`) and putaways (`csv-putaways`) of existing returns,
//! one row per line, the rows of one event grouped by its reference column
//! (`receipt_ref`, `inspection_ref`, `putaway_ref`), each event becoming
//! one command exactly as the API (or the WMS webhook) builds it:
//! `record_receipt`, `record_inspection`, `record_disposition` with the
//! location (a putaway is the warehouse carrying out a disposition; see
//! the webhook mapping).
//!
//! Columns every kind has (* required; and `return_id`, or `rma_number`
//! with `order_ref`):
//!
//! | column | meaning |
//! |---|---|
//! | `receipt_ref`*, `inspection_ref`*, `putaway_ref`* | the kind's reference: groups rows; an event is applied once per file content |
//! | `return_id` | the hub's id of the return (the WMS has it from the expected receipt) |
//! | `rma_number` | or the RMA number on the parcel's label, with… |
//! | `order_ref` | …the return's order reference: the hub looks the RMA up among that order's returns |
//! | `quantity`* | units |
//! | `serials` | `;`-separated serial numbers |
//!
//! Receipts: `line_no` (optional: units are matched by SKU without it),
//! `sku`*, `lot`. Inspections: `line_no`*, `condition`* (a condition code),
//! `lot`, `evidence_ref` (the
//! WMS's reference to the photos or report). Putaways: `line_no`*,
//! `disposition`* (`restock`, `refurbish`, `scrap`, `quarantine`,
//! `vendor_return`, `replacement`), `location`* (bin, cage or zone).
//!
//! Why not the RMA number alone: the read model indexes returns by order,
//! customer, status and stage but not by reference, and scanning every
//! return per event would not scale; the order narrows it to a handful.

use backhaul_domain::Command;
use backhaul_domain::command::Receipt;
use backhaul_domain::model::{Disposition, DispositionLine, Inspection, ReceiptLine};
use backhaul_domain::values::{
    ConditionCode, ExternalRef, LineNo, LotNumber, OrderRef, Quantity, ReturnId, Sku, ValueError,
};
use backhaul_engine::Engine;
use backhaul_store::{EventStore, StreamLookup};

use crate::returns::Cells;
use crate::table::{Problem, Table};

/// Which warehouse event a drop's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Events {
    Receipts,
    Inspections,
    Putaways,
}

impl Events {
    /// The column whose value groups rows into one event.
    fn reference(self) -> &'static str {
        match self {
            Events::Receipts => "receipt_ref",
            Events::Inspections => "inspection_ref",
            Events::Putaways => "putaway_ref",
        }
    }

    /// Columns without which a file is refused whole (`|`: alternatives).
    pub(crate) fn required(self) -> &'static [&'static str] {
        match self {
            Events::Receipts => &["receipt_ref", "sku", "quantity", "return_id|rma_number"],
            Events::Inspections => &[
                "inspection_ref",
                "line_no",
                "quantity",
                "condition",
                "return_id|rma_number",
            ],
            Events::Putaways => &[
                "putaway_ref",
                "line_no",
                "quantity",
                "disposition",
                "location",
                "return_id|rma_number",
            ],
        }
    }

    pub(crate) fn known(self) -> &'static [&'static str] {
        match self {
            Events::Receipts => &[
                "receipt_ref",
                "return_id",
                "rma_number",
                "order_ref",
                "line_no",
                "sku",
                "quantity",
                "serials",
                "lot",
            ],
            Events::Inspections => &[
                "inspection_ref",
                "return_id",
                "rma_number",
                "order_ref",
                "line_no",
                "quantity",
                "condition",
                "serials",
                "lot",
                "evidence_ref",
            ],
            Events::Putaways => &[
                "putaway_ref",
                "return_id",
                "rma_number",
                "order_ref",
                "line_no",
                "quantity",
                "disposition",
                "location",
                "serials",
            ],
        }
    }
}

/// Which return an event is for, as the file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Id(ReturnId),
    Rma { rma: String, order_ref: OrderRef },
}

/// The rows of one event and the command they make.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) reference: String,
    pub(crate) rows: Vec<usize>,
    pub(crate) command: Result<(Target, Command), Vec<(usize, Problem)>>,
}

/// Refuses a file whose header lacks a required column or cannot name a
/// return: `rma_number` needs `order_ref` unless `return_id` is there too.
pub(crate) fn check_header(table: &Table, events: Events) -> Result<(), Problem> {
    table.check_columns(events.required(), events.known())?;
    if !table.has("return_id") && !table.has("order_ref") {
        return Err(Problem::new(
            1,
            "order_ref",
            "missing_column",
            "required column \"order_ref\" is missing: an event naming the return by rma_number needs its order_ref; nothing in the file was applied",
        ));
    }
    Ok(())
}

/// Groups the rows by the kind's reference column and builds each event.
pub(crate) fn groups(table: &Table, events: Events) -> Vec<Group> {
    table
        .group_by(events.reference())
        .into_iter()
        .map(|(reference, rows)| {
            let command = build(table, &rows, &reference, events);
            Group {
                reference,
                rows,
                command,
            }
        })
        .collect()
}

/// One row's part of its event.
enum Line {
    Receipt(ReceiptLine),
    Inspection(Inspection),
    Putaway(DispositionLine),
}

fn build(
    table: &Table,
    rows: &[usize],
    reference: &str,
    events: Events,
) -> Result<(Target, Command), Vec<(usize, Problem)>> {
    let mut problems = Vec::new();
    let mut target: Option<(Target, u64)> = None;
    let mut event_ref = None;
    let mut lines = Vec::new();
    for &i in rows {
        let Some(row) = table.rows.get(i) else {
            continue;
        };
        if let Some(problem) = table.width_problem(row) {
            problems.push((i, problem));
            continue;
        }
        let mut cells = Cells {
            table,
            row,
            problems: Vec::new(),
        };
        let this_ref = cells.required(events.reference(), ExternalRef::parse);
        let this_target = row_target(&mut cells);
        let line = row_line(&mut cells, events);
        let mut row_problems = cells.problems;
        if let Some(t) = this_target {
            match &target {
                None => target = Some((t, row.line)),
                Some((first, first_line)) if *first != t => row_problems.push(Problem::new(
                    row.line,
                    if table.has("return_id") {
                        "return_id"
                    } else {
                        "rma_number"
                    },
                    "inconsistent",
                    format!(
                        "names another return than line {first_line} of the same event {reference:?}"
                    ),
                )),
                Some(_) => {}
            }
        }
        if row_problems.is_empty()
            && let (Some(r), Some(line)) = (this_ref, line)
        {
            event_ref.get_or_insert(r);
            lines.push(line);
        } else {
            problems.extend(row_problems.into_iter().map(|p| (i, p)));
        }
    }
    match (problems.is_empty(), target, event_ref) {
        (true, Some((target, _)), Some(event_ref)) => {
            Ok((target, command(events, event_ref, lines)))
        }
        _ => Err(problems),
    }
}

/// The row's line of its kind of event; `None` when a cell was refused
/// (the problem is in `cells`).
fn row_line(cells: &mut Cells<'_>, events: Events) -> Option<Line> {
    let line_no = |raw: &str| {
        let n: u32 = raw.parse().map_err(|_| ValueError {
            kind: "line number",
            reason: "must be a whole number".into(),
        })?;
        LineNo::parse(n)
    };
    match events {
        Events::Receipts => {
            let line_no = cells.optional("line_no", line_no);
            let sku = cells.required("sku", Sku::parse);
            let quantity = cells.required("quantity", Quantity::parse);
            let serial_numbers = cells.serials();
            let lot = cells.optional("lot", LotNumber::parse);
            let (Ok(line_no), Some(sku), Some(quantity), Ok(lot_number)) =
                (line_no, sku, quantity, lot)
            else {
                return None;
            };
            Some(Line::Receipt(ReceiptLine {
                line_no,
                sku,
                quantity,
                serial_numbers,
                lot_number,
            }))
        }
        Events::Inspections => {
            let line_no = cells.required("line_no", line_no);
            let quantity = cells.required("quantity", Quantity::parse);
            let condition = cells.required("condition", ConditionCode::parse);
            let serial_numbers = cells.serials();
            let lot = cells.optional("lot", LotNumber::parse);
            let evidence = cells.optional("evidence_ref", ExternalRef::parse);
            let (Some(line_no), Some(quantity), Some(condition), Ok(lot_number), Ok(evidence_ref)) =
                (line_no, quantity, condition, lot, evidence)
            else {
                return None;
            };
            Some(Line::Inspection(Inspection {
                line_no,
                quantity,
                condition,
                serial_numbers,
                lot_number,
                evidence_ref,
            }))
        }
        Events::Putaways => {
            let line_no = cells.required("line_no", line_no);
            let quantity = cells.required("quantity", Quantity::parse);
            let disposition = cells.required("disposition", parse_disposition);
            let location = cells.required("location", ExternalRef::parse);
            let serial_numbers = cells.serials();
            let (Some(line_no), Some(quantity), Some(disposition), Some(location)) =
                (line_no, quantity, disposition, location)
            else {
                return None;
            };
            Some(Line::Putaway(DispositionLine {
                line_no,
                quantity,
                disposition,
                serial_numbers,
                // Money is the ERP's and the policy's; a warehouse's
                // putaway carries none.
                restocking_fee: None,
                location: Some(location),
                vendor: None,
                decided_by: None,
            }))
        }
    }
}

/// A disposition by its canonical name (`vendor_return`).
fn parse_disposition(raw: &str) -> Result<Disposition, ValueError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).map_err(|_| ValueError {
        kind: "disposition",
        reason: "must be one of restock, refurbish, scrap, quarantine, vendor_return, replacement"
            .into(),
    })
}

/// The command of one event of kind `events` from its lines (all of that
/// kind: `row_line` builds them by it).
fn command(events: Events, event_ref: ExternalRef, lines: Vec<Line>) -> Command {
    let lines = lines.into_iter();
    match events {
        Events::Receipts => Command::RecordReceipt(Receipt {
            receipt_ref: event_ref,
            lines: lines
                .filter_map(|l| match l {
                    Line::Receipt(r) => Some(r),
                    Line::Inspection(_) | Line::Putaway(_) => None,
                })
                .collect(),
        }),
        Events::Inspections => Command::RecordInspection {
            inspections: lines
                .filter_map(|l| match l {
                    Line::Inspection(i) => Some(i),
                    Line::Receipt(_) | Line::Putaway(_) => None,
                })
                .collect(),
        },
        Events::Putaways => Command::RecordDisposition {
            dispositions: lines
                .filter_map(|l| match l {
                    Line::Putaway(d) => Some(d),
                    Line::Receipt(_) | Line::Inspection(_) => None,
                })
                .collect(),
        },
    }
}

/// The return a row names: `return_id` if given, else `rma_number` with
/// `order_ref`.
fn row_target(cells: &mut Cells<'_>) -> Option<Target> {
    if cells.table.get(cells.row, "return_id").is_some() {
        return cells.required("return_id", ReturnId::parse).map(Target::Id);
    }
    let rma = cells.required("rma_number", |raw| {
        if raw.starts_with("RMA-") {
            Ok(raw.to_owned())
        } else {
            Err(ValueError {
                kind: "RMA number",
                reason: "must start with RMA-".into(),
            })
        }
    });
    let order_ref = cells.required("order_ref", OrderRef::parse);
    Some(Target::Rma {
        rma: rma?,
        order_ref: order_ref?,
    })
}

/// The return `target` names, if it exists: by id as given, by RMA number
/// among the returns of its order (one indexed lookup, as current as the
/// last commit).
pub(crate) async fn resolve(
    engine: &Engine,
    target: &Target,
) -> Result<Option<ReturnId>, backhaul_store::Error> {
    match target {
        Target::Id(id) => Ok(Some(*id)),
        Target::Rma { rma, order_ref } => {
            let found = engine
                .store()
                .find_streams(
                    StreamLookup::ReferenceInOrder {
                        reference: rma,
                        order_ref: order_ref.as_str(),
                    },
                    1,
                )
                .await?;
            Ok(found.first().copied().map(ReturnId::from_uuid))
        }
    }
}
