//! Reading 180s: the recorded-style fixture, heading defaults, and errors
//! naming the segment and element of a bad value; mapping to the canonical
//! return request.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use backhaul_domain::model::{Channel, RequestedOutcome};
use backhaul_domain::values::{Currency, ReasonCode, SiteCode};
use backhaul_x12::mapping::{MappingSettings, to_return_request};
use backhaul_x12::ts180::{notifications, requests};
use backhaul_x12::{Error, Interchange, Problem, ProductId};
use chrono::NaiveDate;
use common::with_body;
use rust_decimal::Decimal;

const FIXTURE: &[u8] = include_bytes!("fixtures/sample_180.edi");

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

#[test]
fn fixture_parses_into_a_request() {
    let interchange = Interchange::parse_valid(FIXTURE).unwrap();
    let mut all = requests(&interchange);
    assert_eq!(all.len(), 1);
    let request = all.remove(0).unwrap();
    assert_eq!(request.reference, "RAR-2024-0042");
    assert_eq!(request.date, NaiveDate::from_ymd_opt(2024, 3, 12).unwrap());
    assert_eq!(request.partner.entity, "BY");
    assert_eq!(request.partner.id, "MM-0042");
    assert_eq!(request.lines.len(), 2);

    let first = &request.lines[0];
    assert_eq!(first.line_id, "001");
    assert_eq!(first.sku, "SKU-AX100-BLK");
    assert_eq!(
        first.other_ids,
        vec![
            ProductId {
                qualifier: "VP".into(),
                id: "AX-100-BLK".into()
            },
            ProductId {
                qualifier: "UP".into(),
                id: "012345678905".into()
            },
        ]
    );
    assert_eq!(first.quantity, dec("2"));
    assert_eq!(first.unit_price, Some(dec("19.99")));
    assert_eq!(first.reason_code.as_deref(), Some("DM"));
    // The heading PRF applies where the line has none.
    assert_eq!(first.order_ref.as_deref(), Some("PO-88123"));

    let second = &request.lines[1];
    assert_eq!(second.quantity, dec("1.5"));
    assert_eq!(second.uom, "CA");
    assert_eq!(second.unit_price, Some(dec("120.5")));
    assert_eq!(second.order_ref.as_deref(), Some("PO-88124"));
}

#[test]
fn fixture_maps_to_canonical_request() {
    let interchange = Interchange::parse_valid(FIXTURE).unwrap();
    let request = requests(&interchange).remove(0).unwrap();
    let settings = MappingSettings {
        currency: Currency::parse("USD").unwrap(),
        site: SiteCode::parse("DC1").unwrap(),
        requested_outcome: RequestedOutcome::Refund,
        reasons: BTreeMap::from([
            ("DM".to_owned(), ReasonCode::parse("DAMAGED").unwrap()),
            ("WR".to_owned(), ReasonCode::parse("WRONG_ITEM").unwrap()),
        ]),
        default_reason: ReasonCode::parse("OTHER").unwrap(),
    };
    let canonical = to_return_request(&request, &settings).unwrap();
    assert_eq!(canonical.channel, Channel::Edi);
    assert_eq!(canonical.customer.as_str(), "MM-0042");
    assert_eq!(canonical.order_ref.as_str(), "PO-88123");
    assert_eq!(canonical.external_refs["edi"].as_str(), "RAR-2024-0042");
    assert_eq!(canonical.lines[1].quantity.get(), dec("1.5"));
    assert_eq!(canonical.lines[1].unit_price.amount(), dec("120.50"));
    assert_eq!(canonical.lines[1].reason_code.as_str(), "WRONG_ITEM");

    let mut unknown = settings;
    unknown.reasons.clear();
    let err = to_return_request(&request, &unknown).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 001: partner reason \"DM\" has no canonical reason code"
    );
}

fn content_error(body: &[&str]) -> Error {
    let input = with_body(body);
    let interchange = Interchange::parse_valid(input.as_bytes()).unwrap();
    requests(&interchange).remove(0).unwrap_err()
}

#[test]
fn bad_quantity_names_bli_element_3() {
    let err = content_error(&["BGN*00*R*20240312", "N1*BY**92*B1", "BLI*SK*S1*two*EA"]);
    assert_eq!(
        err.to_string(),
        "segment 6 (BLI), element 3: BLI03 quantity \"two\" is not a non-negative decimal number"
    );
    let err = content_error(&["BGN*00*R*20240312", "N1*BY**92*B1", "BLI*SK*S1*-1*EA"]);
    assert!(matches!(
        err,
        Error::Content {
            problem: Problem::InvalidValue,
            ..
        }
    ));
}

#[test]
fn missing_and_invalid_required_elements_are_named() {
    let err = content_error(&["BGN*00**20240312", "N1*BY**92*B1", "BLI*SK*S1*1*EA"]);
    assert_eq!(
        err.to_string(),
        "segment 4 (BGN), element 2: BGN02 is required"
    );
    let err = content_error(&["BGN*00*R*20241332", "N1*BY**92*B1", "BLI*SK*S1*1*EA"]);
    assert_eq!(
        err.to_string(),
        "segment 4 (BGN), element 3: BGN03 \"20241332\" is not a date (CCYYMMDD)"
    );
    let err = content_error(&["BGN*00*R*20240312", "N1*BY**92*B1", "BLI*SK*S1*1"]);
    assert_eq!(
        err.to_string(),
        "segment 6 (BLI), element 4: BLI04 is required"
    );
    let err = content_error(&["N1*BY**92*B1", "BLI*SK*S1*1*EA"]);
    assert_eq!(
        err.to_string(),
        "segment 4 (N1): BGN must follow ST, found N1"
    );
    let err = content_error(&["BGN*00*R*20240312", "N1*BY**92*B1"]);
    assert_eq!(
        err.to_string(),
        "segment 6 (SE): a 180 needs at least one BLI line"
    );
}

#[test]
fn unsupported_version_names_gs08() {
    let input = with_body(common::GOOD_BODY).replace("*X*005010", "*X*003050");
    let interchange = Interchange::parse_valid(input.as_bytes()).unwrap();
    let err = requests(&interchange).remove(0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "segment 2 (GS), element 8: version \"003050\" is not supported (004010 or 005010)"
    );
}

#[test]
fn a_line_s_rdr_carries_the_answer_or_the_reason() {
    let input = with_body(&[
        "BGN*11*RMA-1*20240312***RAR-1",
        "N1*BY**92*B1",
        "BLI*SK*S1*0*EA",
        "N9*LI*001",
        "RDR*RD****",
        "BLI*SK*S2*1*EA",
        "N9*LI*002",
        "RDR*RA*DM**NOT DAMAGED ON ARRIVAL",
    ]);
    let interchange = Interchange::parse_valid(input.as_bytes()).unwrap();
    let rma = notifications(&interchange).remove(0).unwrap();
    assert_eq!(rma.request_reference, "RAR-1");
    let first = &rma.lines[0];
    assert_eq!(
        (first.disposition.as_deref(), first.reason_code.as_deref()),
        (Some("RD"), None)
    );
    let second = &rma.lines[1];
    assert_eq!(second.disposition.as_deref(), Some("RA"));
    assert_eq!(second.reason_code.as_deref(), Some("DM"));
    assert_eq!(
        second.description.as_deref(),
        Some("NOT DAMAGED ON ARRIVAL")
    );

    // Neither a disposition nor a reason: nothing to read.
    let err = content_error(&[
        "BGN*00*R*20240312",
        "N1*BY**92*B1",
        "BLI*SK*S1*1*EA",
        "RDR***XX",
    ]);
    assert_eq!(
        err.to_string(),
        "segment 7 (RDR), element 2: RDR02 is required"
    );
}
