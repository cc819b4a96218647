//! Helpers shared by the test binaries: small interchanges built segment by
//! segment so each test can break exactly one thing.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]
#![allow(dead_code, unreachable_pub)]

pub const ISA: &str = "ISA*00*          *00*          *ZZ*PARTNER        *ZZ*BACKHAUL       *240312*0915*^*00501*000000042*0*P*>~";

/// Joins segments (without terminators) after the standard ISA.
pub fn interchange(segments: &[&str]) -> String {
    let mut out = ISA.to_owned();
    for s in segments {
        out.push_str(s);
        out.push('~');
    }
    out
}

/// A valid one-set interchange around the given 180 body segments.
pub fn with_body(body: &[&str]) -> String {
    let se = format!("SE*{}*0001", body.len() + 2);
    let mut segs = vec![
        "GS*AN*PARTNER*BACKHAUL*20240312*0915*7*X*005010",
        "ST*180*0001",
    ];
    segs.extend_from_slice(body);
    segs.push(&se);
    segs.push("GE*1*7");
    segs.push("IEA*1*000000042");
    interchange(&segs)
}

pub const GOOD_BODY: &[&str] = &[
    "BGN*00*RAR-1*20240312",
    "N1*BY*BUYER*92*B1",
    "BLI*SK*SKU-1*2*EA",
    "N9*LI*1",
];
