//! CSV import of master data: one layout per kind, a header row required,
//! every bad row reported with its file, line and column, and nothing kept
//! unless the whole file is good.
//!
//! How a file is read: UTF-8 (a byte-order mark, as Excel writes, is
//! skipped), comma-separated, `"` quotes (a quoted value may contain
//! commas), spaces around values ignored, blank lines and rows of empty
//! cells skipped, LF or CRLF line ends.
//! Header names are matched ignoring case; every required column must be
//! there, optional columns may be left out, any other column is an error
//! (a typo in a header would otherwise lose a column silently). An empty
//! optional value means "none" (or the default given below).
//!
//! Values: decimals are written `12` or `12.5` (no thousands separators);
//! booleans `true`/`false` (also `yes`/`no`, `1`/`0`); times RFC 3339
//! (`2025-03-01T14:30:00Z`) or a date `2025-03-01`, meaning midnight UTC;
//! lists are `;`-separated.
//!
//! | file | columns (* required) |
//! |---|---|
//! | `skus.csv` | `sku`*, `description`*, `category`*, `control` (`none` default, `serial`, `lot`), `returnable`*, `vendor`, `base_uom`*, `conversions` (`CS=12;PL=480`: base units per unit) |
//! | `customers.csv` | `account`*, `name`*, `parent`, `segment`*, `region` |
//! | `sites.csv` | `site`*, `name`*, `default_location`*, `timezone` |
//! | `orders.csv` (one row per order line; the order's columns repeated on each) | `order_ref`*, `customer`*, `currency`*, `sold_at`*, `line_ref`*, `sku`*, `quantity`*, `uom`*, `unit_price`*, `unit_tax`* (amounts in the order's currency, per `uom`), `shipped_at`, `shipped_quantity` (0), `serials` (`;`-separated), `returned_quantity` (0) |
//! | `vendors.csv` | `vendor`*, `name`*, then the return-to-vendor agreement, all four or none: `accepts_returns`, `window_days`, `restocking_percent`, `requires_authorisation` |
//! | `crosswalks.csv` | `system`*, `kind`* (`reason`, `condition`, `disposition`), `external`*, `canonical`*, `preferred` (`false`) |
//!
//! Keys (a file may not repeat one): `sku`, `account`, `site`, `vendor`,
//! (`order_ref`, `line_ref`), (`system`, `kind`, `external`).
//!
//! Parsing catches what a row says on its own; [`dry_run`] and the store
//! import (`persist::import_csv`) then check references against the stored
//! data and the file together, and place those problems on lines too.

use std::collections::HashMap;

use backhaul_domain::values::{
    Currency, CustomerAccount, ExternalRef, Money, OrderRef, Quantity, RegionCode, SerialNumber,
    SiteCode, Sku, Uom,
};
use chrono::{DateTime, NaiveDate, Utc};

use crate::problem::{ImportError, ImportErrors};
use crate::record::{
    Control, CrosswalkEntry, CrosswalkKind, CustomerRecord, Kind, OrderLineRecord, OrderRecord,
    Record, RtvAgreement, SiteRecord, SkuRecord, UomConversion, VendorRecord,
};
use crate::snapshot::MasterData;
use crate::validate::{Changes, Plan, check};
use crate::values::{Code, ExternalCode, Factor, Percent, SystemName, VendorId, parse_decimal};

/// One column of a CSV layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub required: bool,
    /// What goes in it, for help texts and documentation.
    pub meaning: &'static str,
}

const fn req(name: &'static str, meaning: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        required: true,
        meaning,
    }
}

const fn opt(name: &'static str, meaning: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        required: false,
        meaning,
    }
}

const SKU_COLUMNS: &[ColumnSpec] = &[
    req("sku", "the SKU"),
    req("description", "what it is, one line"),
    req("category", "product family, e.g. electronics"),
    opt("control", "none (default), serial or lot"),
    req(
        "returnable",
        "whether customers may return it: true or false",
    ),
    opt("vendor", "the vendor id of its supplier"),
    req("base_uom", "the unit quantities are counted in, e.g. EA"),
    opt(
        "conversions",
        "other units as UOM=base units, ;-separated: CS=12;PL=480",
    ),
];

const CUSTOMER_COLUMNS: &[ColumnSpec] = &[
    req("account", "the customer account"),
    req("name", "the customer's name"),
    opt("parent", "the account it belongs to"),
    req("segment", "key_account, retail, marketplace…"),
    opt("region", "sales region code"),
];

const SITE_COLUMNS: &[ColumnSpec] = &[
    req("site", "the site code, e.g. DC1"),
    req("name", "the site's name"),
    req("default_location", "where returns are put until inspected"),
    opt("timezone", "IANA time zone, e.g. America/Chicago"),
];

const ORDER_COLUMNS: &[ColumnSpec] = &[
    req("order_ref", "the sales order"),
    req(
        "customer",
        "the customer account (same on every line of the order)",
    ),
    req(
        "currency",
        "ISO 4217 code (same on every line of the order)",
    ),
    req(
        "sold_at",
        "when it was sold (same on every line of the order)",
    ),
    req("line_ref", "the ERP's id of the line"),
    req("sku", "the SKU"),
    req("quantity", "ordered, in uom"),
    req("uom", "the unit of the line, one of the SKU's"),
    req("unit_price", "net price per uom, in the order's currency"),
    req("unit_tax", "tax per uom, in the order's currency"),
    opt("shipped_at", "when it shipped"),
    opt("shipped_quantity", "shipped, in uom (default 0)"),
    opt("serials", "serials shipped, ;-separated"),
    opt(
        "returned_quantity",
        "returned before or outside the hub, in uom (default 0)",
    ),
];

const VENDOR_COLUMNS: &[ColumnSpec] = &[
    req("vendor", "the vendor id"),
    req("name", "the vendor's name"),
    opt(
        "accepts_returns",
        "RTV agreement: whether it takes units back",
    ),
    opt("window_days", "RTV agreement: days after the sale"),
    opt(
        "restocking_percent",
        "RTV agreement: fee the vendor keeps, 0-100",
    ),
    opt(
        "requires_authorisation",
        "RTV agreement: whether its authorisation number is needed",
    ),
];

const CROSSWALK_COLUMNS: &[ColumnSpec] = &[
    req("system", "portal, erp, wms…"),
    req("kind", "reason, condition or disposition"),
    req("external", "the system's code"),
    req("canonical", "the hub's code"),
    opt(
        "preferred",
        "the code sent to the system when several mean one canonical code",
    ),
];

/// The CSV layout of `kind`.
pub fn columns(kind: Kind) -> &'static [ColumnSpec] {
    match kind {
        Kind::Sku => SKU_COLUMNS,
        Kind::Customer => CUSTOMER_COLUMNS,
        Kind::Site => SITE_COLUMNS,
        Kind::Order => ORDER_COLUMNS,
        Kind::Vendor => VENDOR_COLUMNS,
        Kind::Crosswalk => CROSSWALK_COLUMNS,
    }
}

/// Parses one CSV file of `kind`. `file_name` is only used in messages.
/// Reports every bad row; returns records only if there is none. References
/// to other records are not checked here (see [`dry_run`]).
pub fn parse_csv(kind: Kind, file_name: &str, bytes: &[u8]) -> Result<Vec<Record>, ImportErrors> {
    match parse_located(kind, file_name, bytes) {
        (parsed, None) => Ok(parsed.records),
        (_, Some(problems)) => Err(problems),
    }
}

/// Parses `bytes` and checks them against `base` and themselves: what
/// importing the file would change. Writes nothing.
pub fn dry_run(
    base: &MasterData,
    kind: Kind,
    file_name: &str,
    bytes: &[u8],
) -> Result<Changes, ImportErrors> {
    prepare(base, kind, file_name, bytes).map(|(_, plan)| plan.changes)
}

/// Parses and validates, with every problem placed on its line. The rows
/// that could be read are checked against `base` and each other even when
/// others could not, so one round reports both kinds of problem (a
/// reference to a row that could not be read is then reported too: fixing
/// that row fixes both).
pub(crate) fn prepare(
    base: &MasterData,
    kind: Kind,
    file_name: &str,
    bytes: &[u8],
) -> Result<(Parsed, Plan), ImportErrors> {
    let (parsed, problems) = parse_located(kind, file_name, bytes);
    let checked = check(base, &parsed.records).map_err(|e| parsed.place(e));
    match (problems, checked) {
        (None, Ok(plan)) => Ok((parsed, plan)),
        (Some(problems), Ok(_)) | (None, Err(problems)) => Err(problems),
        (Some(read), Err(references)) => {
            // Both passes check a read row's own rules: keep each problem once.
            let mut all = read.into_problems();
            for problem in references.into_problems() {
                if !all.contains(&problem) {
                    all.push(problem);
                }
            }
            all.sort_by_key(|p| p.line.unwrap_or(u64::MAX));
            Err(ImportErrors::new(all))
        }
    }
}

/// Records parsed from a file, with where each came from.
pub(crate) struct Parsed {
    pub(crate) records: Vec<Record>,
    file: String,
    /// Record key → the line of its (first) row.
    lines: HashMap<String, u64>,
    /// (order key, line_ref) → line.
    order_lines: HashMap<(String, String), u64>,
}

impl Parsed {
    /// Gives problems found by validation the file and line of the row they
    /// are about.
    pub(crate) fn place(&self, errors: ImportErrors) -> ImportErrors {
        let mut placed: Vec<ImportError> = errors
            .into_problems()
            .into_iter()
            .map(|mut problem| {
                problem.file = Some(self.file.clone());
                if let Some(record) = &problem.record {
                    let line = match &record.line_ref {
                        Some(line_ref) => self
                            .order_lines
                            .get(&(record.key.clone(), line_ref.clone()))
                            .copied(),
                        None => self.lines.get(&record.key).copied(),
                    };
                    if line.is_some() {
                        problem.line = line;
                        problem.record = None;
                    }
                }
                problem
            })
            .collect();
        placed.sort_by_key(|p| p.line.unwrap_or(u64::MAX));
        ImportErrors::new(placed)
    }
}

/// The rows that could be read, and every problem with the others (and
/// with the read rows' own rules), if any.
pub(crate) fn parse_located(
    kind: Kind,
    file_name: &str,
    bytes: &[u8],
) -> (Parsed, Option<ImportErrors>) {
    let mut parser = Parser {
        kind,
        file: file_name,
        problems: Vec::new(),
    };
    let (records, lines, order_lines) = parser.read(bytes);
    let parsed = Parsed {
        records,
        file: file_name.to_owned(),
        lines,
        order_lines,
    };
    // A record's own rules (shipped ≤ ordered, prices in the order's
    // currency…) are checked on every row that could be read, so one pass
    // reports them together with the rows that could not.
    let mut issues = Vec::new();
    for record in &parsed.records {
        for issue in record.issues() {
            issues.push(ImportError {
                file: None,
                line: None,
                record: Some(crate::record::RecordRef {
                    kind: record.kind(),
                    key: record.key(),
                    line_ref: issue.line_ref.map(|l| l.to_string()),
                }),
                column: Some(issue.column.to_owned()),
                message: issue.message,
            });
        }
    }
    if issues.is_empty() && parser.problems.is_empty() {
        return (parsed, None);
    }
    let mut problems = parser.problems;
    if !issues.is_empty() {
        problems.extend(parsed.place(ImportErrors::new(issues)).into_problems());
    }
    // Stable: problems of one line keep the order of its columns.
    problems.sort_by_key(|p| p.line.unwrap_or(u64::MAX));
    (parsed, Some(ImportErrors::new(problems)))
}

type ReadResult = (
    Vec<Record>,
    HashMap<String, u64>,
    HashMap<(String, String), u64>,
);

struct Parser<'f> {
    kind: Kind,
    file: &'f str,
    problems: Vec<ImportError>,
}

impl Parser<'_> {
    fn problem(&mut self, line: u64, column: Option<&str>, message: String) {
        self.problems.push(ImportError {
            file: Some(self.file.to_owned()),
            line: Some(line),
            record: None,
            column: column.map(str::to_owned),
            message,
        });
    }

    fn read(&mut self, bytes: &[u8]) -> ReadResult {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let lines = LineIndex::new(bytes);
        let mut rows = reader.byte_records();
        let specs = columns(self.kind);
        let expected: Vec<&str> = specs.iter().map(|c| c.name).collect();
        let header = match rows.next() {
            Some(Ok(header)) => header,
            Some(Err(e)) => {
                self.problem(1, None, format!("the header cannot be read: {e}"));
                return Default::default();
            }
            None => {
                self.problem(
                    1,
                    None,
                    format!(
                        "the file is empty; its first line must be the header: {}",
                        expected.join(",")
                    ),
                );
                return Default::default();
            }
        };
        let Some(index) = self.header(&header, specs) else {
            return Default::default();
        };
        let width = header.len();
        let mut out = Collector::new(self.kind);
        for row in rows {
            let row = match row {
                Ok(row) => row,
                Err(e) => {
                    let line = lines.at(e.position());
                    self.problem(line, None, format!("the row cannot be read: {e}"));
                    continue;
                }
            };
            let line = lines.at(row.position());
            // Spreadsheets export rows of empty cells below the data.
            if row.iter().all(<[u8]>::is_empty) {
                continue;
            }
            if row.len() != width {
                self.problem(
                    line,
                    None,
                    format!(
                        "the row has {} values but the header has {width} columns",
                        row.len()
                    ),
                );
                continue;
            }
            let mut values = Vec::with_capacity(width);
            let mut readable = true;
            for (i, field) in row.iter().enumerate() {
                match std::str::from_utf8(field) {
                    Ok(text) => values.push(text),
                    Err(_) => {
                        let column = header
                            .get(i)
                            .map(|h| String::from_utf8_lossy(h).into_owned());
                        self.problem(
                            line,
                            column.as_deref(),
                            "is not UTF-8 text; save the file as \"CSV UTF-8\"".to_owned(),
                        );
                        readable = false;
                    }
                }
            }
            if !readable {
                continue;
            }
            let mut cells = Row {
                line,
                values,
                index: &index,
                problems: Vec::new(),
            };
            out.row(&mut cells);
            for (column, message) in cells.problems {
                self.problem(line, Some(column), message);
            }
        }
        for (line, column, message) in out.problems.drain(..) {
            self.problem(line, Some(column), message);
        }
        out.finish()
    }

    /// Maps column names to positions, reporting unknown, repeated and
    /// missing columns.
    fn header(
        &mut self,
        header: &csv::ByteRecord,
        specs: &'static [ColumnSpec],
    ) -> Option<HashMap<&'static str, usize>> {
        let mut index = HashMap::new();
        let known: Vec<&str> = specs.iter().map(|c| c.name).collect();
        let mut ok = true;
        for (position, raw) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(raw).to_ascii_lowercase();
            match specs.iter().find(|c| c.name == name) {
                Some(spec) => {
                    if index.insert(spec.name, position).is_some() {
                        self.problem(1, Some(&name), "appears twice in the header".to_owned());
                        ok = false;
                    }
                }
                None => {
                    let message = if name.is_empty() {
                        format!("a column has no name; the columns are {}", known.join(","))
                    } else {
                        format!("unknown column; the columns are {}", known.join(","))
                    };
                    self.problem(1, Some(&name), message);
                    ok = false;
                }
            }
        }
        for spec in specs {
            if spec.required && !index.contains_key(spec.name) {
                self.problem(
                    1,
                    Some(spec.name),
                    "required column is missing from the header".to_owned(),
                );
                ok = false;
            }
        }
        ok.then_some(index)
    }
}

/// Line numbers of a file, from the byte offsets the CSV reader gives. The
/// reader's own line count is off for CRLF files and for rows after blank
/// lines, because a row's position is taken before the previous row's line
/// end and any blank lines are consumed.
struct LineIndex<'b> {
    bytes: &'b [u8],
    /// Offsets of every `\n`.
    newlines: Vec<usize>,
}

impl<'b> LineIndex<'b> {
    fn new(bytes: &'b [u8]) -> LineIndex<'b> {
        let newlines = bytes
            .iter()
            .enumerate()
            .filter_map(|(i, b)| (*b == b'\n').then_some(i))
            .collect();
        LineIndex { bytes, newlines }
    }

    /// The line a row starts on, given where the reader was when it began
    /// reading it.
    fn at(&self, position: Option<&csv::Position>) -> u64 {
        let mut start = position
            .map(|p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
            .unwrap_or(0)
            .min(self.bytes.len());
        while self
            .bytes
            .get(start)
            .is_some_and(|b| *b == b'\r' || *b == b'\n')
        {
            start += 1;
        }
        let before = self.newlines.partition_point(|n| *n < start);
        u64::try_from(before).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// One data row: its values by column, and the problems found so far.
struct Row<'r> {
    line: u64,
    values: Vec<&'r str>,
    index: &'r HashMap<&'static str, usize>,
    problems: Vec<(&'static str, String)>,
}

impl Row<'_> {
    /// The value of `column` ("" when the column is not in the file).
    fn raw(&self, column: &'static str) -> &str {
        self.index
            .get(column)
            .and_then(|i| self.values.get(*i))
            .copied()
            .unwrap_or("")
    }

    fn required<T>(
        &mut self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.raw(column).to_owned();
        if raw.is_empty() {
            self.problems.push((column, "is required".to_owned()));
            return None;
        }
        match parse(&raw) {
            Ok(value) => Some(value),
            Err(message) => {
                self.problems.push((column, message));
                None
            }
        }
    }

    /// `Some(None)` for an empty value, `None` for a bad one.
    fn optional<T>(
        &mut self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        let raw = self.raw(column).to_owned();
        if raw.is_empty() {
            return Some(None);
        }
        match parse(&raw) {
            Ok(value) => Some(Some(value)),
            Err(message) => {
                self.problems.push((column, message));
                None
            }
        }
    }

    fn text(&mut self, column: &'static str) -> Option<String> {
        self.required(column, |raw| Ok(raw.to_owned()))
    }
}

/// A value type's `parse`, with the value quoted in the message.
fn value<T, E: std::fmt::Display>(
    parse: fn(&str) -> Result<T, E>,
) -> impl Fn(&str) -> Result<T, String> {
    move |raw| parse(raw).map_err(|e| format!("{raw:?}: {e}"))
}

fn boolean(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        _ => Err(format!("{raw:?} is not true or false")),
    }
}

/// RFC 3339, or a date meaning midnight UTC.
fn time(raw: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .ok_or_else(|| {
            format!(
                "{raw:?} is not a date or time: write 2025-03-01 (midnight UTC) or \
                 2025-03-01T14:30:00Z"
            )
        })
}

fn parse_quantity(raw: &str) -> Result<Quantity, String> {
    parse_decimal(raw)?;
    Quantity::parse(raw).map_err(|e| format!("{raw:?}: {e}"))
}

fn parse_control(raw: &str) -> Result<Control, String> {
    match raw.to_ascii_lowercase().as_str() {
        "none" => Ok(Control::None),
        "serial" => Ok(Control::Serial),
        "lot" => Ok(Control::Lot),
        _ => Err(format!("{raw:?} is not none, serial or lot")),
    }
}

/// `CS=12;PL=480`.
fn parse_conversions(raw: &str) -> Result<Vec<UomConversion>, String> {
    let mut out = Vec::new();
    for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((uom, factor)) = part.split_once('=') else {
            return Err(format!("{part:?} is not UOM=factor (write e.g. CS=12)"));
        };
        let uom = Uom::parse(uom.trim()).map_err(|e| format!("{part:?}: {e}"))?;
        let factor = Factor::parse(factor.trim()).map_err(|e| format!("{part:?}: {e}"))?;
        out.push(UomConversion { uom, factor });
    }
    Ok(out)
}

fn parse_serials(raw: &str) -> Result<Vec<SerialNumber>, String> {
    raw.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SerialNumber::parse(s).map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

/// The columns that make up a record's key within a file.
fn key_columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Sku => &["sku"],
        Kind::Customer => &["account"],
        Kind::Site => &["site"],
        Kind::Order => &["order_ref", "line_ref"],
        Kind::Vendor => &["vendor"],
        Kind::Crosswalk => &["system", "kind", "external"],
    }
}

/// What the first row of an order said about the order, as far as it
/// could be read.
struct OrderHead {
    line: u64,
    customer: Option<CustomerAccount>,
    currency: Option<Currency>,
    sold_at: Option<DateTime<Utc>>,
}

/// Builds records from rows and finds keys repeated within the file.
/// Repeats are found on the key as written, so a row that is bad in some
/// other column still claims its key and a later repeat is still reported.
struct Collector {
    kind: Kind,
    records: Vec<Record>,
    /// Record key → the line of its (first) row, to place problems.
    lines: HashMap<String, u64>,
    /// (order key, line_ref) → line, to place problems of order lines.
    order_lines: HashMap<(String, String), u64>,
    /// Key as written → the line that has it.
    seen: HashMap<String, u64>,
    /// Orders: order_ref as written → what its first row said.
    heads: HashMap<String, OrderHead>,
    /// Order key → its index in `records`.
    orders: HashMap<String, usize>,
    problems: Vec<(u64, &'static str, String)>,
}

impl Collector {
    fn new(kind: Kind) -> Collector {
        Collector {
            kind,
            records: Vec::new(),
            lines: HashMap::new(),
            order_lines: HashMap::new(),
            seen: HashMap::new(),
            heads: HashMap::new(),
            orders: HashMap::new(),
            problems: Vec::new(),
        }
    }

    fn finish(self) -> ReadResult {
        (self.records, self.lines, self.order_lines)
    }

    fn row(&mut self, row: &mut Row<'_>) {
        let columns = key_columns(self.kind);
        let parts: Vec<&str> = columns.iter().map(|c| row.raw(c)).collect();
        if parts.iter().all(|p| !p.is_empty()) {
            let written = parts.join(":");
            if let Some(first) = self.seen.get(&written) {
                let message = match self.kind {
                    Kind::Order => format!(
                        "line {} of order {} is already on line {first} of this file",
                        parts[1], parts[0]
                    ),
                    Kind::Sku | Kind::Customer | Kind::Site | Kind::Vendor | Kind::Crosswalk => {
                        format!("{written:?} is already on line {first} of this file")
                    }
                };
                let column = columns.last().copied().unwrap_or("");
                self.problems.push((row.line, column, message));
                return;
            }
            self.seen.insert(written, row.line);
        }
        let record = match self.kind {
            Kind::Sku => sku(row).map(Record::Sku),
            Kind::Customer => customer(row).map(Record::Customer),
            Kind::Site => site(row).map(Record::Site),
            Kind::Vendor => vendor(row).map(Record::Vendor),
            Kind::Crosswalk => crosswalk(row).map(Record::Crosswalk),
            Kind::Order => {
                self.order_row(row);
                return;
            }
        };
        let Some(record) = record else { return };
        self.lines.insert(record.key(), row.line);
        self.records.push(record);
    }

    /// Adds one line to its order, checking that the order's own columns
    /// agree with its first row.
    fn order_row(&mut self, row: &mut Row<'_>) {
        let order_ref = row.required("order_ref", value(OrderRef::parse));
        let customer = row.required("customer", value(CustomerAccount::parse));
        let currency = row.required("currency", value(Currency::parse));
        let sold_at = row.required("sold_at", time);
        let line = order_line(row, currency);
        let written = row.raw("order_ref").to_owned();
        let mut consistent = true;
        match self.heads.get(&written) {
            Some(head) => {
                let first = head.line;
                let mut differs =
                    |column: &'static str, stored: Option<String>, here: Option<String>| {
                        if let (Some(stored), Some(here)) = (stored, here)
                            && stored != here
                        {
                            row.problems.push((
                                column,
                                format!(
                                    "order {written} has {stored} on line {first} and {here} here; \
                                 every line of an order repeats the same {column}"
                                ),
                            ));
                            consistent = false;
                        }
                    };
                differs(
                    "customer",
                    head.customer.as_ref().map(ToString::to_string),
                    customer.as_ref().map(ToString::to_string),
                );
                differs(
                    "currency",
                    head.currency.map(|c| c.to_string()),
                    currency.map(|c| c.to_string()),
                );
                differs(
                    "sold_at",
                    head.sold_at.map(|t| t.to_rfc3339()),
                    sold_at.map(|t| t.to_rfc3339()),
                );
            }
            None => {
                self.heads.insert(
                    written,
                    OrderHead {
                        line: row.line,
                        customer: customer.clone(),
                        currency,
                        sold_at,
                    },
                );
            }
        }
        let (Some(order_ref), Some(customer), Some(currency), Some(sold_at), Some(line), true) =
            (order_ref, customer, currency, sold_at, line, consistent)
        else {
            return;
        };
        let key = order_ref.to_string();
        self.order_lines
            .insert((key.clone(), line.line_ref.to_string()), row.line);
        match self.orders.get(&key).and_then(|i| self.records.get_mut(*i)) {
            Some(Record::Order(order)) => order.lines.push(line),
            // `orders` only points at orders.
            Some(
                Record::Sku(_)
                | Record::Customer(_)
                | Record::Site(_)
                | Record::Vendor(_)
                | Record::Crosswalk(_),
            )
            | None => {
                self.orders.insert(key.clone(), self.records.len());
                self.lines.insert(key, row.line);
                self.records.push(Record::Order(OrderRecord {
                    order_ref,
                    customer,
                    currency,
                    sold_at,
                    lines: vec![line],
                }));
            }
        }
    }
}

fn sku(row: &mut Row<'_>) -> Option<SkuRecord> {
    let sku = row.required("sku", value(Sku::parse));
    let description = row.text("description");
    let category = row.required("category", value(Code::parse));
    let control = row.optional("control", parse_control);
    let returnable = row.required("returnable", boolean);
    let vendor = row.optional("vendor", value(VendorId::parse));
    let base_uom = row.required("base_uom", value(Uom::parse));
    let conversions = row.optional("conversions", parse_conversions);
    Some(SkuRecord {
        sku: sku?,
        description: description?,
        category: category?,
        control: control?.unwrap_or_default(),
        returnable: returnable?,
        vendor: vendor?,
        base_uom: base_uom?,
        conversions: conversions?.unwrap_or_default(),
    })
}

fn customer(row: &mut Row<'_>) -> Option<CustomerRecord> {
    let account = row.required("account", value(CustomerAccount::parse));
    let name = row.text("name");
    let parent = row.optional("parent", value(CustomerAccount::parse));
    let segment = row.required("segment", value(Code::parse));
    let region = row.optional("region", value(RegionCode::parse));
    Some(CustomerRecord {
        account: account?,
        name: name?,
        parent: parent?,
        segment: segment?,
        region: region?,
    })
}

fn site(row: &mut Row<'_>) -> Option<SiteRecord> {
    let site = row.required("site", value(SiteCode::parse));
    let name = row.text("name");
    let default_location = row.text("default_location");
    let timezone = row.optional("timezone", |raw| Ok(raw.to_owned()));
    Some(SiteRecord {
        site: site?,
        name: name?,
        default_location: default_location?,
        timezone: timezone?,
    })
}

/// The line columns of an order row. Amounts need the order's currency; if
/// that is bad, they are still checked as decimals.
fn order_line(row: &mut Row<'_>, currency: Option<Currency>) -> Option<OrderLineRecord> {
    let money = |raw: &str| -> Result<Option<Money>, String> {
        let amount = parse_decimal(raw)?;
        match currency {
            Some(currency) => Money::new(amount, currency)
                .map(Some)
                .map_err(|e| format!("{raw:?}: {e}")),
            None => Ok(None),
        }
    };
    let line_ref = row.required("line_ref", value(ExternalRef::parse));
    let sku = row.required("sku", value(Sku::parse));
    let quantity = row.required("quantity", parse_quantity);
    let uom = row.required("uom", value(Uom::parse));
    let unit_price = row.required("unit_price", money);
    let unit_tax = row.required("unit_tax", money);
    let shipped_at = row.optional("shipped_at", time);
    let shipped_quantity = row.optional("shipped_quantity", parse_quantity);
    let serials = row.optional("serials", parse_serials);
    let returned_quantity = row.optional("returned_quantity", parse_quantity);
    Some(OrderLineRecord {
        line_ref: line_ref?,
        sku: sku?,
        quantity: quantity?,
        uom: uom?,
        unit_price: unit_price??,
        unit_tax: unit_tax??,
        shipped_at: shipped_at?,
        shipped_quantity: shipped_quantity?.unwrap_or(Quantity::ZERO),
        serials: serials?.unwrap_or_default(),
        returned_quantity: returned_quantity?.unwrap_or(Quantity::ZERO),
    })
}

fn vendor(row: &mut Row<'_>) -> Option<VendorRecord> {
    const AGREEMENT: [&str; 4] = [
        "accepts_returns",
        "window_days",
        "restocking_percent",
        "requires_authorisation",
    ];
    let vendor = row.required("vendor", value(VendorId::parse));
    let name = row.text("name");
    let agreement = if AGREEMENT.iter().all(|c| row.raw(c).is_empty()) {
        Some(None)
    } else {
        // Some terms given: all are needed, so none is silently assumed.
        let accepts_returns = row.required("accepts_returns", boolean);
        let window_days = row.required("window_days", |raw| {
            raw.parse::<u32>()
                .map_err(|_| format!("{raw:?} is not a whole number of days"))
        });
        let restocking_percent = row.required("restocking_percent", value(Percent::parse));
        let requires_authorisation = row.required("requires_authorisation", boolean);
        match (
            accepts_returns,
            window_days,
            restocking_percent,
            requires_authorisation,
        ) {
            (
                Some(accepts_returns),
                Some(window_days),
                Some(restocking_percent),
                Some(requires_authorisation),
            ) => Some(Some(RtvAgreement {
                accepts_returns,
                window_days,
                restocking_percent,
                requires_authorisation,
            })),
            _ => None,
        }
    };
    Some(VendorRecord {
        vendor: vendor?,
        name: name?,
        agreement: agreement?,
    })
}

fn crosswalk(row: &mut Row<'_>) -> Option<CrosswalkEntry> {
    let system = row.required("system", value(SystemName::parse));
    let kind = row.required("kind", |raw| {
        CrosswalkKind::parse(&raw.to_ascii_lowercase())
            .ok_or_else(|| format!("{raw:?} is not reason, condition or disposition"))
    });
    let external = row.required("external", value(ExternalCode::parse));
    let canonical = row.text("canonical");
    let preferred = row.optional("preferred", boolean);
    Some(CrosswalkEntry {
        system: system?,
        kind: kind?,
        external: external?,
        canonical: canonical?,
        preferred: preferred?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in this module's documentation is what analysts read: it
    /// must name every column of every layout, required ones starred.
    #[test]
    fn the_documented_layouts_are_the_real_ones() {
        let source = include_str!("import.rs");
        for kind in Kind::ALL {
            let file = format!("//! | `{}.csv`", kind.file_stem());
            let row = source
                .lines()
                .find(|l| l.starts_with(&file))
                .unwrap_or_else(|| panic!("no documentation row for {file}"));
            for column in columns(kind) {
                let starred = format!("`{}`*", column.name);
                let documented = if column.required {
                    row.contains(&starred)
                } else {
                    row.contains(&format!("`{}`", column.name)) && !row.contains(&starred)
                };
                assert!(
                    documented,
                    "{kind}: column {} is not documented as it is",
                    column.name
                );
            }
        }
    }
}
