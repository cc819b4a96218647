//! Return requests from rows (`csv-returns`, `fixed-width-returns`): one
//! row per return line, the rows of one request grouped by `request_ref`.
//!
//! | column | meaning |
//! |---|---|
//! | `request_ref`* | the producer's id of the request: groups rows, kept as the return's external reference under the drop's `source` |
//! | `customer`*, `order_ref`*, `currency`*, `site`* | the request's header; every row of a request must agree |
//! | `channel` | `portal`, `crm`, `marketplace`, `edi`, `call_centre`, `batch` (default) |
//! | `region` | sales region code |
//! | `line_no` | the line's number; default its position in the request (1, 2…) |
//! | `sku`*, `quantity`*, `uom`* | what comes back |
//! | `reason`* | canonical reason code (or the source system's, with a crosswalk) |
//! | `requested_outcome`* | `refund`, `replacement`, `exchange`, `repair`, `store_credit` |
//! | `unit_price`*, `unit_tax`* | per unit, in `currency`, exact decimals (`19.99`) |
//! | `serials` | `;`-separated serial numbers, as many as the quantity |
//! | `lot`, `order_line_ref` | lot number; the original order line |
//!
//! (* required.) Every value goes through the domain's own `parse`, and
//! every problem of a row is reported with its line and column. A request
//! is all or nothing: one bad row rejects its whole group (the other rows
//! with code `group_rejected`), and other requests of the file are applied.

use std::collections::BTreeMap;

use backhaul_domain::model::{Channel, RequestedOutcome, ReturnLine, ReturnRequest};
use backhaul_domain::values::{
    Currency, CustomerAccount, ExternalRef, LineNo, LotNumber, Money, OrderRef, Quantity,
    ReasonCode, RegionCode, SerialNumber, SiteCode, Sku, Uom, ValueError,
};
use rust_decimal::Decimal;

use crate::table::{Problem, Row, Table};

/// Columns without which a file of return requests is refused whole.
pub(crate) const REQUIRED: &[&str] = &[
    "request_ref",
    "customer",
    "order_ref",
    "currency",
    "site",
    "sku",
    "quantity",
    "uom",
    "reason",
    "requested_outcome",
    "unit_price",
    "unit_tax",
];

/// The rows of one request and what they make.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) reference: String,
    /// Indices into the table's rows, in file order.
    pub(crate) rows: Vec<usize>,
    /// The request, or every problem of its rows (row index, problem).
    pub(crate) request: Result<ReturnRequest, Vec<(usize, Problem)>>,
}

/// The request's header as one row states it, to compare rows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    customer: CustomerAccount,
    order_ref: OrderRef,
    currency: Currency,
    site: SiteCode,
    channel: Channel,
    region: Option<RegionCode>,
}

/// Groups the rows by `request_ref` (in order of first appearance) and
/// builds each group's request. `source` names the external reference.
pub(crate) fn groups(table: &Table, source: &str) -> Vec<Group> {
    table
        .group_by("request_ref")
        .into_iter()
        .map(|(reference, rows)| {
            let request = build(table, &rows, &reference, source);
            Group {
                reference,
                rows,
                request,
            }
        })
        .collect()
}

fn build(
    table: &Table,
    rows: &[usize],
    reference: &str,
    source: &str,
) -> Result<ReturnRequest, Vec<(usize, Problem)>> {
    let mut problems = Vec::new();
    let mut header: Option<(Header, u64)> = None;
    let mut lines = Vec::new();
    for (position, &i) in rows.iter().enumerate() {
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
        // Checked on every row, so a bad reference is reported where it is.
        cells.required("request_ref", ExternalRef::parse);
        let row_header = cells.header();
        let line = cells.line(position, row_header.as_ref().map(|h| h.currency));
        let mut row_problems = cells.problems;
        if let Some(row_header) = row_header {
            match &header {
                None => header = Some((row_header, row.line)),
                Some((first, first_line)) => {
                    if let Some(field) = first.differs(&row_header) {
                        row_problems.push(Problem::new(
                            row.line,
                            field,
                            "inconsistent",
                            format!(
                                "{field} differs from line {first_line} of the same request {reference:?}"
                            ),
                        ));
                    }
                }
            }
        }
        if row_problems.is_empty() {
            if let Some(line) = line {
                lines.push(line);
            }
        } else {
            problems.extend(row_problems.into_iter().map(|p| (i, p)));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let Some((header, _)) = header else {
        return Err(Vec::new());
    };
    let mut external_refs = BTreeMap::new();
    if let Ok(r) = ExternalRef::parse(reference) {
        external_refs.insert(source.to_owned(), r);
    }
    Ok(ReturnRequest {
        channel: header.channel,
        customer: header.customer,
        order_ref: header.order_ref,
        currency: header.currency,
        site: header.site,
        region: header.region,
        external_refs,
        lines,
    })
}

impl Header {
    /// The first field in which `other` says something else.
    fn differs(&self, other: &Header) -> Option<&'static str> {
        if self.customer != other.customer {
            Some("customer")
        } else if self.order_ref != other.order_ref {
            Some("order_ref")
        } else if self.currency != other.currency {
            Some("currency")
        } else if self.site != other.site {
            Some("site")
        } else if self.channel != other.channel {
            Some("channel")
        } else if self.region != other.region {
            Some("region")
        } else {
            None
        }
    }
}

/// One row's cells, parsed one by one, collecting every problem.
pub(crate) struct Cells<'t> {
    pub(crate) table: &'t Table,
    pub(crate) row: &'t Row,
    pub(crate) problems: Vec<Problem>,
}

impl Cells<'_> {
    /// A required value, parsed; a problem if it is empty or invalid.
    pub(crate) fn required<T>(
        &mut self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match self.table.get(self.row, column) {
            None => {
                self.problems.push(Problem::new(
                    self.row.line,
                    column,
                    "missing_value",
                    format!("{column} is required"),
                ));
                None
            }
            Some(raw) => self.parsed(column, raw, parse),
        }
    }

    /// An optional value, parsed; `Ok(None)` when empty.
    pub(crate) fn optional<T>(
        &mut self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<Option<T>, ()> {
        match self.table.get(self.row, column) {
            None => Ok(None),
            Some(raw) => self.parsed(column, raw, parse).map(Some).ok_or(()),
        }
    }

    fn parsed<T>(
        &mut self,
        column: &str,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match parse(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(Problem::new(
                    self.row.line,
                    column,
                    "invalid_value",
                    format!("{raw:?}: {e}"),
                ));
                None
            }
        }
    }

    /// `;`-separated serial numbers.
    pub(crate) fn serials(&mut self) -> Vec<SerialNumber> {
        let Some(raw) = self.table.get(self.row, "serials") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(serial) = self.parsed("serials", part, SerialNumber::parse) {
                out.push(serial);
            }
        }
        out
    }

    fn header(&mut self) -> Option<Header> {
        let customer = self.required("customer", CustomerAccount::parse);
        let order_ref = self.required("order_ref", OrderRef::parse);
        let currency = self.required("currency", Currency::parse);
        let site = self.required("site", SiteCode::parse);
        let channel = self
            .optional("channel", |raw| named::<Channel>("channel", raw))
            .map(|c| c.unwrap_or(Channel::Batch));
        let region = self.optional("region", RegionCode::parse);
        Some(Header {
            customer: customer?,
            order_ref: order_ref?,
            currency: currency?,
            site: site?,
            channel: channel.ok()?,
            region: region.ok()?,
        })
    }

    fn line(&mut self, position: usize, currency: Option<Currency>) -> Option<ReturnLine> {
        let default_no = u32::try_from(position + 1).unwrap_or(u32::MAX);
        let line_no = self
            .optional("line_no", |raw| {
                let n: u32 = raw.parse().map_err(|_| ValueError {
                    kind: "line number",
                    reason: "must be a whole number".into(),
                })?;
                LineNo::parse(n)
            })
            .map(|n| n.map_or_else(|| LineNo::parse(default_no), Ok));
        let sku = self.required("sku", Sku::parse);
        let quantity = self.required("quantity", Quantity::parse);
        let uom = self.required("uom", Uom::parse);
        let reason = self.required("reason", ReasonCode::parse);
        let outcome = self.required("requested_outcome", |raw| {
            named::<RequestedOutcome>("requested outcome", raw)
        });
        // Without a currency the amounts cannot be checked; the currency's
        // own problem is reported already.
        let unit_price = self.required("unit_price", |raw| money(raw, currency));
        let unit_tax = self.required("unit_tax", |raw| money(raw, currency));
        let serial_numbers = self.serials();
        let lot = self.optional("lot", LotNumber::parse);
        let order_line_ref = self.optional("order_line_ref", ExternalRef::parse);
        let line_no = match line_no {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                self.problems.push(Problem::new(
                    self.row.line,
                    "line_no",
                    "invalid_value",
                    e.to_string(),
                ));
                None
            }
            Err(()) => None,
        };
        Some(ReturnLine {
            line_no: line_no?,
            sku: sku?,
            quantity: quantity?,
            uom: uom?,
            serial_numbers,
            lot_number: lot.ok()?,
            reason_code: reason?,
            requested_outcome: outcome?,
            unit_price: unit_price?,
            unit_tax: unit_tax?,
            order_line_ref: order_line_ref.ok()?,
        })
    }
}

/// A value of one of the model's named enums (`batch`, `store_credit`),
/// read through the model's own serde names.
fn named<T: serde::de::DeserializeOwned>(kind: &'static str, raw: &str) -> Result<T, ValueError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).map_err(|_| ValueError {
        kind,
        reason: format!("{raw:?} is not one of the known values"),
    })
}

/// An exact amount in `currency`, through the domain's [`Money::new`].
fn money(raw: &str, currency: Option<Currency>) -> Result<Money, ValueError> {
    let amount = Decimal::from_str_exact(raw).map_err(|_| ValueError {
        kind: "amount",
        reason: format!("{raw:?} is not a decimal number"),
    })?;
    let currency = currency.ok_or_else(|| ValueError {
        kind: "amount",
        reason: "cannot be checked without a valid currency".into(),
    })?;
    Money::new(amount, currency)
}
