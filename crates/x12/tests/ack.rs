//! 997 generation: accepted, set rejected with AK3/AK4, group and
//! interchange errors rejected; the 997 is itself a valid interchange. TA1
//! for interchanges that cannot be read past their ISA.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use backhaul_x12::ts180::requests;
use backhaul_x12::{
    AckOutcome, Error, Interchange, InterchangeHeader, ReplyEnvelope, generate_997, generate_ta1,
};
use chrono::NaiveDate;
use common::{GOOD_BODY, interchange, with_body};

fn reply() -> ReplyEnvelope {
    ReplyEnvelope {
        interchange_control: 900,
        group_control: 91,
        set_control: 1,
        timestamp: NaiveDate::from_ymd_opt(2024, 3, 13)
            .unwrap()
            .and_hms_opt(8, 30, 0)
            .unwrap(),
        from: None,
    }
}

/// Validates and parses like the inbound pipeline does, then acknowledges.
fn ack(input: &str) -> (Interchange, Vec<String>) {
    let received = Interchange::parse(input.as_bytes()).unwrap();
    let mut errors = received.validate();
    errors.extend(requests(&received).into_iter().filter_map(Result::err));
    let text = generate_997(
        &received,
        &AckOutcome {
            reply: reply(),
            errors,
        },
    )
    .unwrap();
    let parsed = Interchange::parse_valid(text.as_bytes()).expect("997 is a valid interchange");
    let body = parsed.groups()[0].sets()[0]
        .body()
        .iter()
        .map(|s| {
            (1..=s.element_count()).fold(s.id().to_owned(), |acc, n| {
                format!("{acc}*{}", s.element(n))
            })
        })
        .collect();
    (parsed, body)
}

#[test]
fn accepted_interchange() {
    let (parsed, body) = ack(&with_body(GOOD_BODY));
    assert_eq!(
        body,
        ["AK1*AN*7*005010", "AK2*180*0001", "AK5*A", "AK9*A*1*1*1"]
    );
    assert_eq!(parsed.groups()[0].functional_id(), "FA");
    assert_eq!(parsed.groups()[0].sets()[0].id(), "997");
    assert_eq!(parsed.control_number(), "000000900");
    // Parties are reversed.
    assert_eq!(parsed.sender(), ("ZZ", "BACKHAUL"));
    assert_eq!(parsed.receiver(), ("ZZ", "PARTNER"));
}

#[test]
fn set_with_bad_element_is_rejected_with_ak3_ak4() {
    let input = with_body(&["BGN*00*R*20240312", "N1*BY**92*B1", "BLI*SK*S1*x*EA"]);
    let (_, body) = ack(&input);
    assert_eq!(
        body,
        [
            "AK1*AN*7*005010",
            "AK2*180*0001",
            "AK3*BLI*4**8",
            "AK4*3**7",
            "AK5*R*5",
            "AK9*R*1*1*0"
        ]
    );
}

#[test]
fn wrong_se01_rejects_the_set() {
    let input = with_body(GOOD_BODY).replace("SE*6*0001", "SE*5*0001");
    let (_, body) = ack(&input);
    assert_eq!(body[2], "AK5*R*4");
    assert_eq!(body[3], "AK9*R*1*1*0");
}

#[test]
fn wrong_ge02_rejects_the_group() {
    let input = with_body(GOOD_BODY).replace("GE*1*7", "GE*1*8");
    let (_, body) = ack(&input);
    assert_eq!(body[2], "AK5*A");
    assert_eq!(body[3], "AK9*R*1*1*1*4");
}

#[test]
fn interchange_error_rejects_every_group() {
    let input = with_body(GOOD_BODY).replace("IEA*1*", "IEA*3*");
    let (_, body) = ack(&input);
    assert_eq!(body[3], "AK9*R*1*1*1");
}

#[test]
fn partially_accepted_group() {
    let input = interchange(&[
        "GS*AN*PARTNER*BACKHAUL*20240312*0915*7*X*005010",
        "ST*180*0001",
        "BGN*00*R*20240312",
        "N1*BY**92*B1",
        "BLI*SK*S1*1*EA",
        "SE*5*0001",
        "ST*180*0002",
        "BGN*00*R*20240312",
        "SE*3*0002",
        "GE*2*7",
        "IEA*1*000000042",
    ]);
    let (_, body) = ack(&input);
    assert_eq!(body[2], "AK5*A");
    assert_eq!(body[3], "AK2*180*0002");
    assert_eq!(body[4], "AK3*SE*3**3");
    assert_eq!(body[5], "AK5*R*5");
    assert_eq!(body[6], "AK9*P*2*2*1");
}

#[test]
fn invalid_reply_control_number_is_a_write_error() {
    let received = Interchange::parse(with_body(GOOD_BODY).as_bytes()).unwrap();
    let mut r = reply();
    r.interchange_control = 0;
    let err = generate_997(
        &received,
        &AckOutcome {
            reply: r,
            errors: vec![],
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
}

/// The TA1 answering an input `Interchange::parse` refuses, as segments.
fn ta1(input: &str) -> Vec<String> {
    let error = Interchange::parse(input.as_bytes()).expect_err("unreadable");
    let header = InterchangeHeader::parse(input.as_bytes()).expect("the ISA reads");
    let text = generate_ta1(&header, &error, &reply()).unwrap();
    text.split('~')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_truncated_interchange_is_answered_with_a_rejecting_ta1() {
    let good = with_body(GOOD_BODY);
    let cut = &good[..good.find("BLI").unwrap() + 4];
    let segments = ta1(cut);
    assert_eq!(segments.len(), 3, "{segments:?}");
    assert!(
        segments[0].starts_with("ISA*00*          *00*          *ZZ*BACKHAUL       *ZZ*PARTNER        *240313*0830*^*00501*000000900*0*P*>"),
        "parties reversed: {}",
        segments[0]
    );
    assert_eq!(segments[1], "TA1*000000042*240312*0915*R*023");
    assert_eq!(segments[2], "IEA*0*000000900");
    // Without a segment terminator at the end the input is truncated too.
    let unterminated = good.trim_end_matches('~');
    assert_eq!(ta1(unterminated)[1], "TA1*000000042*240312*0915*R*023");
}

#[test]
fn envelopes_out_of_order_are_an_invalid_control_structure() {
    let input = interchange(&["ST*180*0001", "SE*2*0001", "IEA*0*000000042"]);
    assert_eq!(ta1(&input)[1], "TA1*000000042*240312*0915*R*022");
}

#[test]
fn the_header_reads_alone_and_a_broken_isa_has_no_answer() {
    let good = with_body(GOOD_BODY);
    let header = InterchangeHeader::parse(&good.as_bytes()[..106]).unwrap();
    assert_eq!(header.sender(), ("ZZ", "PARTNER"));
    assert_eq!(header.receiver(), ("ZZ", "BACKHAUL"));
    assert_eq!(header.control_number(), "000000042");
    assert!(InterchangeHeader::parse(&good.as_bytes()[..50]).is_err());
}
