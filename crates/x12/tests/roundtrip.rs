//! Property: any valid RMA notification, written with any separators and
//! either version, parses back to the same value, and its envelopes
//! validate. Also: parsing arbitrary bytes never panics.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use backhaul_x12::ts180::{notifications, requests};
use backhaul_x12::{
    EnvelopeSettings, Interchange, Line, Party, ProductId, RmaNotification, Separators, Usage,
    Version, generate_180,
};
use chrono::NaiveDate;
use proptest::prelude::*;
use proptest::sample::subsequence;
use rust_decimal::Decimal;

/// Candidate delimiters: none can occur in the generated values below.
const POOL: &[char] = &[
    '*', '|', '!', '^', '~', ':', '>', '+', '\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}', '\n',
];

fn separators() -> impl Strategy<Value = (Separators, Version)> {
    (subsequence(POOL.to_vec(), 4).prop_shuffle(), any::<bool>()).prop_map(|(c, five)| {
        let version = if five { Version::V5010 } else { Version::V4010 };
        let rep = five.then_some(c[2]);
        (Separators::new(c[0], c[1], rep, c[3]).unwrap(), version)
    })
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (0i64..100_000_000, 0u32..5).prop_map(|(n, scale)| Decimal::new(n, scale))
}

fn code() -> impl Strategy<Value = String> {
    "[A-Z0-9][A-Z0-9.-]{0,11}"
}

fn line() -> impl Strategy<Value = Line> {
    (
        code(),
        code(),
        proptest::collection::vec(
            (prop::sample::select(vec!["VP", "UP", "BP", "VN"]), code()),
            0..=3,
        ),
        decimal(),
        "[A-Z]{2}",
        proptest::option::of("[A-Z0-9]{2}"),
        proptest::option::of(decimal()),
        proptest::option::of(code()),
        // An answer's RDR01, with or without an RDR04 text.
        proptest::option::of((
            prop::sample::select(vec!["RA", "RD", "PA"]),
            proptest::option::of("[A-Z][A-Z0-9 .-]{0,20}"),
        )),
    )
        .prop_map(
            |(line_id, sku, ids, quantity, uom, reason_code, unit_price, order_ref, answer)| Line {
                line_id,
                sku,
                other_ids: ids
                    .into_iter()
                    .map(|(q, id)| ProductId {
                        qualifier: q.to_owned(),
                        id,
                    })
                    .collect(),
                quantity,
                uom,
                reason_code,
                disposition: answer.as_ref().map(|(code, _)| (*code).to_owned()),
                description: answer.and_then(|(_, text)| text),
                unit_price,
                order_ref,
            },
        )
}

fn rma() -> impl Strategy<Value = RmaNotification> {
    (
        code(),
        code(),
        (2000i32..2100, 1u32..=12, 1u32..=28),
        prop::sample::select(vec!["BY", "SF"]),
        proptest::option::of("[A-Z][A-Z0-9 .-]{0,20}"),
        code(),
        proptest::collection::vec(line(), 1..6),
    )
        .prop_map(
            |(rma_number, request_reference, (y, m, d), entity, name, id, lines)| RmaNotification {
                rma_number,
                request_reference,
                date: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
                partner: Party {
                    entity: entity.to_owned(),
                    name,
                    id_qualifier: "92".into(),
                    id,
                },
                lines,
            },
        )
}

fn settings(separators: Separators, version: Version, control: u32) -> EnvelopeSettings {
    EnvelopeSettings {
        separators,
        version,
        usage: Usage::Test,
        sender_qualifier: "ZZ".into(),
        sender_id: "BACKHAUL".into(),
        receiver_qualifier: "ZZ".into(),
        receiver_id: "PARTNER".into(),
        application_sender: "BACKHAUL".into(),
        application_receiver: "PARTNER".into(),
        interchange_control: control,
        group_control: control,
        set_control: control,
        timestamp: NaiveDate::from_ymd_opt(2024, 3, 13)
            .unwrap()
            .and_hms_opt(23, 59, 0)
            .unwrap(),
        ack_requested: false,
    }
}

proptest! {
    #[test]
    fn generate_then_parse_round_trips(
        rma in rma(),
        (seps, version) in separators(),
        control in 1u32..=999_999_999,
        crlf in any::<bool>(),
    ) {
        let mut text = generate_180(&rma, &settings(seps, version, control)).unwrap();
        if crlf {
            text = text.replace(seps.segment(), &format!("{}\r\n", seps.segment()));
        }
        let parsed = Interchange::parse_valid(text.as_bytes()).unwrap();
        prop_assert_eq!(parsed.separators().element(), seps.element());
        prop_assert_eq!(parsed.separators().segment(), seps.segment());
        prop_assert_eq!(parsed.control_number(), format!("{control:09}"));
        let back = notifications(&parsed).remove(0).unwrap();
        prop_assert_eq!(&back, &rma);
        // The same set read as a request carries the same lines.
        let request = requests(&parsed).remove(0).unwrap();
        prop_assert_eq!(request.lines, rma.lines);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(i) = Interchange::parse(&bytes) {
            let _ = i.validate();
            let _ = requests(&i);
        }
    }

    #[test]
    fn mutating_a_valid_interchange_never_panics(
        rma in rma(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let text = generate_180(&rma, &settings(Separators::STANDARD, Version::V5010, 1)).unwrap();
        let mut bytes = text.into_bytes();
        let i = at.index(bytes.len());
        if cut { bytes.truncate(i) } else { bytes[i] = byte }
        if let Ok(i) = Interchange::parse(&bytes) {
            let _ = i.validate();
            let _ = requests(&i);
        }
    }
}

#[test]
fn value_containing_a_delimiter_is_refused() {
    let rma = RmaNotification {
        rma_number: "RMA*1".into(),
        request_reference: "R".into(),
        date: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        partner: Party {
            entity: "BY".into(),
            name: None,
            id_qualifier: "92".into(),
            id: "B".into(),
        },
        lines: vec![],
    };
    let err = generate_180(&rma, &settings(Separators::STANDARD, Version::V5010, 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot write BGN: \"RMA*1\" contains the delimiter '*'"
    );
}
