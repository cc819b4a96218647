//! The 180 Return Merchandise Authorization and Notification, in the subset
//! Backhaul reads and writes (versions 004010 and 005010, group `AN`):
//!
//! | segment | where | elements used |
//! |---|---|---|
//! | BGN | heading | 01 purpose, 02 reference, 03 date (CCYYMMDD), 06 original reference |
//! | RDR | heading, BLI loop | 01 returns disposition code (`RA` authorised, `RD` denied: the answer to a line), 02 return request reason code, 04 description |
//! | PRF | heading, BLI loop | 01 purchase order number |
//! | N1  | heading loop | 01 entity (`BY` buyer, `SF` ship-from…), 02 name, 03/04 id qualifier and code |
//! | BLI | detail loop start | 01/02 first product id pair, 03 quantity, 04 unit, 05/06 price id and unit price, 08-13 further id pairs |
//! | N9  | BLI loop | `LI` qualifier: the partner's line id |
//!
//! A heading RDR or PRF applies to every line that has none of its own. A
//! line's RDR needs RDR01 or RDR02: requests give the reason, answers the
//! disposition (RDR02 and RDR03 exclude each other, and RDR03, the
//! response reason, is not used).
//! Other segments (DTM, PER, N2-N4, SAC…) are skipped, not rejected, so that
//! partners sending more than the subset are still understood. The layout
//! follows the public X12 180 table (BLI detail loop with N9, RDR, PRF); it
//! does not come from a licensed copy of the standard. This module does not
//! check envelopes; `interchange` does.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::{Error, Problem};
use crate::interchange::{Group, Interchange, Segment, TransactionSet};
use crate::write::{self, Body, EnvelopeSettings};

/// Qualifier of the product id that Backhaul treats as the SKU.
const SKU_QUALIFIER: &str = "SK";

/// Price identifier written in BLI05 (unit cost price).
const PRICE_ID: &str = "UCP";

/// A party of an N1 loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// N101, e.g. `BY` or `SF`.
    pub entity: String,
    /// N102, when sent.
    pub name: Option<String>,
    /// N103, e.g. `92` (assigned by buyer) or `1` (DUNS).
    pub id_qualifier: String,
    /// N104.
    pub id: String,
}

/// A product id pair of a BLI segment other than the SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductId {
    /// E.g. `VP` vendor part, `UP` UPC, `BP` buyer part.
    pub qualifier: String,
    pub id: String,
}

/// One line (BLI loop) of a 180.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The partner's line id (N9*LI), or the 1-based line ordinal when absent.
    pub line_id: String,
    /// The `SK` product id, or the first product id when there is no `SK`.
    pub sku: String,
    /// The other product ids, in the order sent.
    pub other_ids: Vec<ProductId>,
    /// BLI03; requested quantity inbound, authorised quantity outbound.
    pub quantity: Decimal,
    /// BLI04, e.g. `EA`.
    pub uom: String,
    /// RDR02, the partner's reason code.
    pub reason_code: Option<String>,
    /// RDR01, the returns disposition code: on an answer, `RA` (return
    /// with the authorisation number) or `RD` (request denied).
    pub disposition: Option<String>,
    /// RDR04, free text clarifying the RDR (why a line was denied), 1 to
    /// 80 characters; written only with RDR01 or RDR02.
    pub description: Option<String>,
    /// BLI06.
    pub unit_price: Option<Decimal>,
    /// PRF01, the original purchase order.
    pub order_ref: Option<String>,
}

/// An inbound 180: a partner asks to return goods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnAuthorizationRequest {
    /// ST02 of the set it came from, for the 997.
    pub set_control: String,
    /// BGN01.
    pub purpose: String,
    /// The partner's `BY` (else `SF`) party.
    pub partner: Party,
    /// BGN02: the partner's return authorization request number.
    pub reference: String,
    /// BGN03.
    pub date: NaiveDate,
    pub lines: Vec<Line>,
}

/// An outbound 180: the RMA Backhaul grants back to the partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmaNotification {
    /// BGN02: our RMA number.
    pub rma_number: String,
    /// BGN06: the partner's request number this answers.
    pub request_reference: String,
    /// BGN03.
    pub date: NaiveDate,
    /// Written as the only N1 loop.
    pub partner: Party,
    /// Lines with the authorised quantities.
    pub lines: Vec<Line>,
}

/// BGN01 written on notifications: `11` response.
const PURPOSE_RESPONSE: &str = "11";

/// Every 180 in the interchange, each parsed on its own so that one bad set
/// does not hide the others (each is acknowledged separately).
/// Groups of acknowledgements (`FA`) are not read here (see
/// [`read_997`](crate::ack::read_997)).
pub fn requests(interchange: &Interchange) -> Vec<Result<ReturnAuthorizationRequest, Error>> {
    let mut out = Vec::new();
    for group in interchange
        .groups()
        .iter()
        .filter(|g| !crate::ack::is_acknowledgement(g))
    {
        for set in group.sets() {
            out.push(check_kind(group, set).and_then(|()| {
                let doc = Document::read(set)?;
                Ok(ReturnAuthorizationRequest {
                    set_control: set.control_number().to_owned(),
                    purpose: doc.purpose,
                    partner: doc.partner,
                    reference: doc.reference,
                    date: doc.date,
                    lines: doc.lines,
                })
            }));
        }
    }
    out
}

/// Reads a 180 written by [`generate_180`] (or a partner's RMA answer).
pub fn notifications(interchange: &Interchange) -> Vec<Result<RmaNotification, Error>> {
    let mut out = Vec::new();
    for group in interchange.groups() {
        for set in group.sets() {
            out.push(check_kind(group, set).and_then(|()| {
                let doc = Document::read(set)?;
                let bgn = doc.bgn;
                let request_reference = required(&bgn, 6)?.to_owned();
                Ok(RmaNotification {
                    rma_number: doc.reference,
                    request_reference,
                    date: doc.date,
                    partner: doc.partner,
                    lines: doc.lines,
                })
            }));
        }
    }
    out
}

/// Writes the RMA as a complete interchange with one 180.
pub fn generate_180(rma: &RmaNotification, envelope: &EnvelopeSettings) -> Result<String, Error> {
    let mut body = Body::new(envelope.separators);
    let date = rma.date.format("%Y%m%d").to_string();
    non_empty("BGN02 RMA number", &rma.rma_number)?;
    non_empty("BGN06 request reference", &rma.request_reference)?;
    body.push(
        "BGN",
        "BGN",
        &[
            PURPOSE_RESPONSE,
            &rma.rma_number,
            &date,
            "",
            "",
            &rma.request_reference,
        ],
    )?;
    let p = &rma.partner;
    non_empty("N101 entity", &p.entity)?;
    non_empty("N103 id qualifier", &p.id_qualifier)?;
    non_empty("N104 id", &p.id)?;
    body.push(
        "N1",
        "N1",
        &[
            &p.entity,
            p.name.as_deref().unwrap_or(""),
            &p.id_qualifier,
            &p.id,
        ],
    )?;
    for line in &rma.lines {
        write_line(&mut body, line)?;
    }
    write::interchange(envelope, "AN", "180", body)
}

fn non_empty(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::Write {
            field,
            message: "must not be empty".into(),
        });
    }
    Ok(())
}

fn write_line(body: &mut Body, line: &Line) -> Result<(), Error> {
    non_empty("BLI02 SKU", &line.sku)?;
    non_empty("N902 line id", &line.line_id)?;
    if line.uom.len() != 2 {
        return Err(Error::Write {
            field: "BLI04 unit",
            message: format!("{:?} must be 2 characters", line.uom),
        });
    }
    if line.other_ids.len() > 3 {
        return Err(Error::Write {
            field: "BLI product ids",
            message: "BLI holds the SKU and at most 3 more product ids".into(),
        });
    }
    let quantity = number("BLI03 quantity", line.quantity)?;
    let price = line
        .unit_price
        .map(|p| number("BLI06 unit price", p))
        .transpose()?;
    let mut elements: Vec<&str> = vec![
        SKU_QUALIFIER,
        &line.sku,
        &quantity,
        &line.uom,
        if price.is_some() { PRICE_ID } else { "" },
        price.as_deref().unwrap_or(""),
        "",
    ];
    for id in &line.other_ids {
        if id.qualifier.len() != 2 || id.qualifier == SKU_QUALIFIER || id.id.is_empty() {
            return Err(Error::Write {
                field: "BLI product ids",
                message: format!(
                    "{}/{:?}: qualifier must be 2 characters other than SK, id non-empty",
                    id.qualifier, id.id
                ),
            });
        }
        elements.push(&id.qualifier);
        elements.push(&id.id);
    }
    body.push("BLI", "BLI", &elements)?;
    body.push("N9", "N9", &["LI", &line.line_id])?;
    if line.reason_code.is_some() || line.disposition.is_some() || line.description.is_some() {
        if let Some(reason) = &line.reason_code {
            non_empty("RDR02 reason", reason)?;
        }
        if let Some(code) = &line.disposition
            && code.len() != 2
        {
            return Err(Error::Write {
                field: "RDR01 disposition",
                message: format!("{code:?} must be 2 characters"),
            });
        }
        if let Some(text) = &line.description {
            if text.is_empty() || text.chars().count() > 80 {
                return Err(Error::Write {
                    field: "RDR04 description",
                    message: format!("{text:?} must be 1 to 80 characters"),
                });
            }
            if line.reason_code.is_none() && line.disposition.is_none() {
                return Err(Error::Write {
                    field: "RDR04 description",
                    message: "is written only with RDR01 or RDR02".into(),
                });
            }
        }
        body.push(
            "RDR",
            "RDR",
            &[
                line.disposition.as_deref().unwrap_or(""),
                line.reason_code.as_deref().unwrap_or(""),
                "",
                line.description.as_deref().unwrap_or(""),
            ],
        )?;
    }
    if let Some(order) = &line.order_ref {
        non_empty("PRF01 order", order)?;
        body.push("PRF", "PRF", &[order])?;
    }
    Ok(())
}

fn number(field: &'static str, value: Decimal) -> Result<String, Error> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(Error::Write {
            field,
            message: format!("{value} must not be negative"),
        });
    }
    Ok(value.abs().normalize().to_string())
}

fn check_kind(group: &Group, set: &TransactionSet) -> Result<(), Error> {
    if set.id() != "180" {
        return Err(Error::Content {
            at: set.header().at(Some(1)),
            problem: Problem::Unsupported,
            message: format!("transaction set {:?} is not a 180", set.id()),
        });
    }
    let version = group.version();
    if !(version.starts_with("005010") || version.starts_with("004010")) {
        return Err(Error::Content {
            at: group.header().at(Some(8)),
            problem: Problem::Unsupported,
            message: format!("version {version:?} is not supported (004010 or 005010)"),
        });
    }
    Ok(())
}

fn required(seg: &Segment, n: usize) -> Result<&str, Error> {
    let value = seg.element(n);
    if value.is_empty() {
        return Err(Error::Content {
            at: seg.at(Some(n)),
            problem: Problem::MissingElement,
            message: format!("{}{n:02} is required", seg.id()),
        });
    }
    Ok(value)
}

fn optional(seg: &Segment, n: usize) -> Option<String> {
    Some(seg.element(n))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn decimal(seg: &Segment, n: usize, what: &str) -> Result<Decimal, Error> {
    let raw = required(seg, n)?;
    let invalid = || Error::Content {
        at: seg.at(Some(n)),
        problem: Problem::InvalidValue,
        message: format!("{what} {raw:?} is not a non-negative decimal number"),
    };
    // X12 `R` values are digits with an optional point; the stricter check
    // keeps exponents and signs that Decimal would accept out.
    if !raw.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || !raw.bytes().any(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    Decimal::from_str_exact(raw).map_err(|_| invalid())
}

/// The parts shared by requests and notifications.
struct Document {
    bgn: Segment,
    purpose: String,
    reference: String,
    date: NaiveDate,
    partner: Party,
    lines: Vec<Line>,
}

/// Line under construction, before heading defaults are applied.
struct Draft {
    line: Line,
    line_id: Option<String>,
}

impl Document {
    fn read(set: &TransactionSet) -> Result<Document, Error> {
        let mut body = set.body().iter();
        let bgn = match body.next() {
            Some(seg) if seg.id() == "BGN" => seg.clone(),
            Some(seg) => {
                return Err(Error::Content {
                    at: seg.at(None),
                    problem: Problem::MissingSegment,
                    message: format!("BGN must follow ST, found {}", seg.id()),
                });
            }
            None => {
                return Err(Error::Content {
                    at: set.trailer().at(None),
                    problem: Problem::MissingSegment,
                    message: "BGN must follow ST, found SE".into(),
                });
            }
        };
        let purpose = required(&bgn, 1)?.to_owned();
        let reference = required(&bgn, 2)?.to_owned();
        let raw_date = required(&bgn, 3)?;
        let date = Some(raw_date)
            .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
            .ok_or_else(|| Error::Content {
                at: bgn.at(Some(3)),
                problem: Problem::InvalidDate,
                message: format!("BGN03 {raw_date:?} is not a date (CCYYMMDD)"),
            })?;

        let mut parties: Vec<Party> = Vec::new();
        let mut heading_reason = None;
        let mut heading_order = None;
        let mut drafts: Vec<Draft> = Vec::new();
        for seg in body {
            match (seg.id(), drafts.last_mut()) {
                ("BLI", _) => drafts.push(read_bli(seg, drafts.len() + 1)?),
                ("N1", None) => parties.push(Party {
                    entity: required(seg, 1)?.to_owned(),
                    name: optional(seg, 2),
                    id_qualifier: seg.element(3).to_owned(),
                    id: seg.element(4).to_owned(),
                }),
                ("RDR", None) => heading_reason = optional(seg, 2),
                ("RDR", Some(draft)) => {
                    draft.line.disposition = optional(seg, 1);
                    draft.line.reason_code = match draft.line.disposition {
                        Some(_) => optional(seg, 2),
                        None => Some(required(seg, 2)?.to_owned()),
                    };
                    draft.line.description = optional(seg, 4);
                }
                ("PRF", None) => heading_order = Some(required(seg, 1)?.to_owned()),
                ("PRF", Some(draft)) => draft.line.order_ref = Some(required(seg, 1)?.to_owned()),
                ("N9", Some(draft)) if seg.element(1) == "LI" => {
                    draft.line_id = Some(required(seg, 2)?.to_owned());
                }
                // Outside the subset: skipped on purpose (see module docs).
                _ => {}
            }
        }
        let partner = ["BY", "SF"]
            .iter()
            .find_map(|code| parties.iter().find(|p| p.entity == *code))
            .or_else(|| parties.first())
            .cloned()
            .ok_or_else(|| Error::Content {
                at: set.trailer().at(None),
                problem: Problem::MissingSegment,
                message: "no N1 party (BY or SF) identifies the partner".into(),
            })?;
        if partner.id.is_empty() || partner.id_qualifier.is_empty() {
            return Err(Error::Content {
                at: set.trailer().at(None),
                problem: Problem::MissingElement,
                message: format!(
                    "N1 {} has no identification code (N103/N104)",
                    partner.entity
                ),
            });
        }
        if drafts.is_empty() {
            return Err(Error::Content {
                at: set.trailer().at(None),
                problem: Problem::MissingSegment,
                message: "a 180 needs at least one BLI line".into(),
            });
        }
        let lines = drafts
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let mut line = d.line;
                line.line_id = d.line_id.unwrap_or_else(|| (i + 1).to_string());
                line.reason_code = line.reason_code.or_else(|| heading_reason.clone());
                line.order_ref = line.order_ref.or_else(|| heading_order.clone());
                line
            })
            .collect();
        Ok(Document {
            purpose,
            reference,
            date,
            partner,
            lines,
            bgn,
        })
    }
}

fn read_bli(seg: &Segment, ordinal: usize) -> Result<Draft, Error> {
    let mut pairs = Vec::new();
    for (q, v) in [(1, 2), (8, 9), (10, 11), (12, 13)] {
        let qualifier = seg.element(q);
        let value = seg.element(v);
        match (qualifier.is_empty(), value.is_empty()) {
            (true, true) if q != 1 => {}
            (true, _) => {
                return Err(Error::Content {
                    at: seg.at(Some(q)),
                    problem: Problem::MissingElement,
                    message: format!("BLI{q:02} product id qualifier is required"),
                });
            }
            (false, true) => {
                return Err(Error::Content {
                    at: seg.at(Some(v)),
                    problem: Problem::MissingElement,
                    message: format!(
                        "BLI{v:02} product id is required after qualifier {qualifier}"
                    ),
                });
            }
            (false, false) => pairs.push(ProductId {
                qualifier: qualifier.to_owned(),
                id: value.to_owned(),
            }),
        }
    }
    let sku_at = pairs
        .iter()
        .position(|p| p.qualifier == SKU_QUALIFIER)
        .unwrap_or(0);
    let sku = if pairs
        .get(sku_at)
        .is_some_and(|p| p.qualifier == SKU_QUALIFIER)
    {
        pairs.remove(sku_at).id
    } else {
        pairs.first().map(|p| p.id.clone()).unwrap_or_default()
    };
    let quantity = decimal(seg, 3, "BLI03 quantity")?;
    let uom = required(seg, 4)?.to_owned();
    let unit_price = if seg.element(6).is_empty() {
        None
    } else {
        Some(decimal(seg, 6, "BLI06 unit price")?)
    };
    Ok(Draft {
        line: Line {
            line_id: ordinal.to_string(),
            sku,
            other_ids: pairs,
            quantity,
            uom,
            reason_code: None,
            disposition: None,
            description: None,
            unit_price,
            order_ref: None,
        },
        line_id: None,
    })
}
