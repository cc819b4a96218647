//! Warehouse receipts from rows (`csv-receipts`): one row per received
//! line, the rows of one receipt grouped by `receipt_ref`, each receipt
//! becoming the `record_receipt` command of an existing return, exactly as
//! `POST /v1/returns/{id}/receipts` builds it.
//!
//! | column | meaning |
//! |---|---|
//! | `receipt_ref`* | the WMS's id of the receipt: groups rows; a receipt is recorded once |
//! | `return_id` | the hub's id of the return (the WMS has it from the expected receipt) |
//! | `rma_number` | or the RMA number on the parcel's label, with… |
//! | `order_ref` | …the return's order reference: the hub looks the RMA up among that order's returns |
//! | `line_no` | the return line, when the WMS knows it; otherwise units are matched by SKU |
//! | `sku`*, `quantity`* | what arrived |
//! | `serials`, `lot` | `;`-separated serial numbers; lot number |
//!
//! (* required; and `return_id`, or `rma_number` with `order_ref`.) Why not
//! the RMA number alone: the read model indexes returns by order, customer,
//! status and stage but not by reference, and scanning every return per
//! receipt would not scale; the order narrows it to a handful.

use std::collections::BTreeMap;

use backhaul_domain::command::Receipt;
use backhaul_domain::model::ReceiptLine;
use backhaul_domain::values::{
    ExternalRef, LineNo, LotNumber, OrderRef, Quantity, ReturnId, Sku, ValueError,
};
use backhaul_engine::Engine;
use backhaul_store::{EventStore, SummaryFilter};

use crate::returns::Cells;
use crate::table::{Problem, Table};

/// Columns without which a receipts file is refused whole (`|`:
/// alternatives).
pub(crate) const REQUIRED: &[&str] = &["receipt_ref", "sku", "quantity", "return_id|rma_number"];

pub(crate) const KNOWN: &[&str] = &[
    "receipt_ref",
    "return_id",
    "rma_number",
    "order_ref",
    "line_no",
    "sku",
    "quantity",
    "serials",
    "lot",
];

/// Which return a receipt is for, as the file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Id(ReturnId),
    Rma { rma: String, order_ref: OrderRef },
}

/// The rows of one receipt and what they make.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) reference: String,
    pub(crate) rows: Vec<usize>,
    pub(crate) receipt: Result<(Target, Receipt), Vec<(usize, Problem)>>,
}

/// Refuses a file whose header cannot name a return: `rma_number` needs
/// `order_ref` unless `return_id` is there too.
pub(crate) fn check_header(table: &Table) -> Result<(), Problem> {
    table.check_columns(REQUIRED, KNOWN)?;
    if !table.has("return_id") && !table.has("order_ref") {
        return Err(Problem::new(
            1,
            "order_ref",
            "missing_column",
            "required column \"order_ref\" is missing: a receipt naming the return by rma_number needs its order_ref; nothing in the file was applied",
        ));
    }
    Ok(())
}

/// Groups the rows by `receipt_ref` and builds each receipt.
pub(crate) fn groups(table: &Table) -> Vec<Group> {
    let mut order: Vec<String> = Vec::new();
    let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, row) in table.rows.iter().enumerate() {
        let key = table
            .get(row, "receipt_ref")
            .map_or_else(|| format!("(line {})", row.line), str::to_owned);
        if !members.contains_key(&key) {
            order.push(key.clone());
        }
        members.entry(key).or_default().push(i);
    }
    order
        .into_iter()
        .map(|reference| {
            let rows = members.remove(&reference).unwrap_or_default();
            let receipt = build(table, &rows, &reference);
            Group {
                reference,
                rows,
                receipt,
            }
        })
        .collect()
}

fn build(
    table: &Table,
    rows: &[usize],
    reference: &str,
) -> Result<(Target, Receipt), Vec<(usize, Problem)>> {
    let mut problems = Vec::new();
    let mut target: Option<(Target, u64)> = None;
    let mut receipt_ref = None;
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
        let this_ref = cells.required("receipt_ref", ExternalRef::parse);
        let this_target = row_target(&mut cells);
        let line_no = cells.optional("line_no", |raw| {
            let n: u32 = raw.parse().map_err(|_| ValueError {
                kind: "line number",
                reason: "must be a whole number".into(),
            })?;
            LineNo::parse(n)
        });
        let sku = cells.required("sku", Sku::parse);
        let quantity = cells.required("quantity", Quantity::parse);
        let serial_numbers = cells.serials();
        let lot = cells.optional("lot", LotNumber::parse);
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
                        "names another return than line {first_line} of the same receipt {reference:?}"
                    ),
                )),
                Some(_) => {}
            }
        }
        if row_problems.is_empty()
            && let (Some(r), Ok(line_no), Some(sku), Some(quantity), Ok(lot_number)) =
                (this_ref, line_no, sku, quantity, lot)
        {
            receipt_ref.get_or_insert(r);
            lines.push(ReceiptLine {
                line_no,
                sku,
                quantity,
                serial_numbers,
                lot_number,
            });
        } else {
            problems.extend(row_problems.into_iter().map(|p| (i, p)));
        }
    }
    match (problems.is_empty(), target, receipt_ref) {
        (true, Some((target, _)), Some(receipt_ref)) => {
            Ok((target, Receipt { receipt_ref, lines }))
        }
        _ => Err(problems),
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
/// among the returns of its order (one indexed query).
pub(crate) async fn resolve(
    engine: &Engine,
    target: &Target,
) -> Result<Option<ReturnId>, backhaul_store::Error> {
    match target {
        Target::Id(id) => Ok(Some(*id)),
        Target::Rma { rma, order_ref } => {
            let rows = engine
                .store()
                .list_summaries(&SummaryFilter {
                    order_ref: Some(order_ref.to_string()),
                    limit: 1000,
                    ..SummaryFilter::default()
                })
                .await?;
            Ok(rows
                .iter()
                .find(|row| row.reference == *rma)
                .map(|row| ReturnId::from_uuid(row.stream_id)))
        }
    }
}
