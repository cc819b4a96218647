//! Envelope reading and validation through the public API: separators from
//! the ISA, positions, and every count/control-number error naming its
//! segment and element.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use backhaul_x12::{Error, Interchange};
use common::{GOOD_BODY, interchange, with_body};

fn first_error(input: &str) -> String {
    let parsed = Interchange::parse(input.as_bytes()).expect("structure is fine");
    let errors = parsed.validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].to_string()
}

#[test]
fn valid_interchange_has_tree_and_no_errors() {
    let parsed = Interchange::parse_valid(with_body(GOOD_BODY).as_bytes()).unwrap();
    assert_eq!(parsed.control_number(), "000000042");
    assert_eq!(parsed.sender(), ("ZZ", "PARTNER"));
    assert_eq!(parsed.groups().len(), 1);
    let set = &parsed.groups()[0].sets()[0];
    assert_eq!(set.id(), "180");
    assert_eq!(set.body().len(), 4);
    // ISA=1, GS=2, ST=3, BGN=4.
    assert_eq!(set.body()[0].position(), 4);
    assert_eq!(
        set.body()[0].offset(),
        with_body(GOOD_BODY).find("BGN").unwrap()
    );
    assert_eq!(parsed.separators().repetition(), Some('^'));
}

#[test]
fn wrong_se01_names_se_element_1() {
    let input = interchange(&[
        "GS*AN*P*B*20240312*0915*7*X*005010",
        "ST*180*0001",
        "BGN*00*R*20240312",
        "SE*2*0001",
        "GE*1*7",
        "IEA*1*000000042",
    ]);
    assert_eq!(
        first_error(&input),
        "segment 5 (SE), element 1: 3 segments counted, SE01 says 2"
    );
}

#[test]
fn wrong_iea01_names_iea_element_1() {
    let input = interchange(&[
        "GS*AN*P*B*20240312*0915*7*X*005010",
        "ST*180*0001",
        "SE*2*0001",
        "GE*1*7",
        "IEA*2*000000042",
    ]);
    assert_eq!(
        first_error(&input),
        "segment 6 (IEA), element 1: 1 functional groups counted, IEA01 says 2"
    );
}

#[test]
fn wrong_ge01_names_ge_element_1() {
    let input = interchange(&[
        "GS*AN*P*B*20240312*0915*7*X*005010",
        "GE*1*7",
        "IEA*1*000000042",
    ]);
    assert_eq!(
        first_error(&input),
        "segment 3 (GE), element 1: 0 transaction sets counted, GE01 says 1"
    );
}

#[test]
fn mismatched_control_numbers_name_the_trailer_element() {
    let se = interchange(&[
        "GS*AN*P*B*20240312*0915*7*X*005010",
        "ST*180*0001",
        "SE*2*0002",
        "GE*1*7",
        "IEA*1*000000042",
    ]);
    assert_eq!(
        first_error(&se),
        "segment 4 (SE), element 2: SE02 is \"0002\" but ST02 is \"0001\""
    );
    let ge = interchange(&[
        "GS*AN*P*B*20240312*0915*7*X*005010",
        "GE*0*8",
        "IEA*1*000000042",
    ]);
    assert_eq!(
        first_error(&ge),
        "segment 3 (GE), element 2: GE02 is \"8\" but GS06 is \"7\""
    );
    let iea = interchange(&["IEA*0*000000043"]);
    assert_eq!(
        first_error(&iea),
        "segment 2 (IEA), element 2: IEA02 is \"000000043\" but ISA13 is \"000000042\""
    );
}

#[test]
fn non_numeric_control_number_is_reported() {
    let input = interchange(&[
        "GS*AN*P*B*20240312*0915*7*X*005010",
        "ST*180*AB12",
        "SE*2*AB12",
        "GE*1*7",
        "IEA*1*000000042",
    ]);
    assert_eq!(
        first_error(&input),
        "segment 3 (ST), element 2: control number \"AB12\" must be 4 to 9 digits"
    );
}

#[test]
fn truncated_interchange_is_a_syntax_error() {
    let full = with_body(GOOD_BODY);
    let cut = &full[..full.find("GE*").unwrap()];
    let err = Interchange::parse(cut.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::Syntax { .. }));
    assert_eq!(
        err.to_string(),
        "segment 9 (end of input): input ends where ST or GE was expected: the interchange is truncated"
    );
    let mid = &full[..full.len() - 4];
    let err = Interchange::parse(mid.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "segment 10 (IEA): segment is not terminated by '~': the interchange is truncated"
    );
}

#[test]
fn bad_isa_width_names_the_element() {
    let input = with_body(GOOD_BODY).replace("*PARTNER        *", "*PARTNER*");
    let err = Interchange::parse(input.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "segment 1 (ISA), element 6: ISA06 is 7 characters wide, must be 15 (ISA is fixed-width, 106 characters)"
    );
}

#[test]
fn not_an_interchange() {
    let err = Interchange::parse(b"UNB+UNOC:3+X").unwrap_err();
    assert_eq!(
        err.to_string(),
        "segment 1 (ISA): an interchange must start with ISA"
    );
    assert!(Interchange::parse(b"").is_err());
    assert!(Interchange::parse(b"ISA*00").is_err());
}

#[test]
fn crlf_after_terminators_is_tolerated() {
    let plain = with_body(GOOD_BODY);
    let crlf = plain.replace('~', "~\r\n");
    let a = Interchange::parse_valid(plain.as_bytes()).unwrap();
    let b = Interchange::parse_valid(crlf.as_bytes()).unwrap();
    assert_eq!(a.groups()[0].sets()[0].body()[2].element(3), "2");
    assert_eq!(
        a.groups()[0].sets()[0].body().len(),
        b.groups()[0].sets()[0].body().len()
    );
    assert_eq!(b.groups()[0].sets()[0].body()[2].id(), "BLI");
}

#[test]
fn separators_come_from_the_isa() {
    let input = with_body(GOOD_BODY)
        .replace('*', "|")
        .replace('~', "\n")
        .replace("|^|", "|!|");
    let parsed = Interchange::parse_valid(input.as_bytes()).unwrap();
    let seps = parsed.separators();
    assert_eq!(
        (
            seps.element(),
            seps.repetition(),
            seps.component(),
            seps.segment()
        ),
        ('|', Some('!'), '>', '\n')
    );
    assert_eq!(parsed.groups()[0].sets()[0].body()[0].element(2), "RAR-1");
}

#[test]
fn segment_outside_envelope_is_rejected() {
    let input = interchange(&["BGN*00*R*20240312", "IEA*0*000000042"]);
    let err = Interchange::parse(input.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "segment 2 (BGN): expected GS or IEA, found BGN"
    );
}
