//! Any bytes through the whole inbound path: parse, validate, read 180s
//! and partners' 997s, and acknowledge. The target passes when nothing panics.
//! Run on stable from `crates/x12` with
//! `cargo fuzz run parse_interchange -s none fuzz/corpus/parse_interchange fuzz/seeds`;
//! the seeds get libFuzzer past the fixed-width ISA.

#![no_main]

use backhaul_x12::ts180::requests;
use backhaul_x12::{
    AckOutcome, Interchange, ReplyEnvelope, generate_997, is_acknowledgement, read_997,
};
use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(received) = Interchange::parse(data) else {
        return;
    };
    let mut errors = received.validate();
    errors.extend(requests(&received).into_iter().filter_map(Result::err));
    for group in received.groups().iter().filter(|g| is_acknowledgement(g)) {
        for set in group.sets() {
            let _ = read_997(set);
        }
    }
    let Some(timestamp) = NaiveDate::from_ymd_opt(2024, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0))
    else {
        return;
    };
    let reply = ReplyEnvelope {
        interchange_control: 1,
        group_control: 1,
        set_control: 1,
        timestamp,
        from: None,
    };
    let _ = generate_997(&received, &AckOutcome { reply, errors });
});
