//! Inbound verification: success, every failure kind, rotation and tolerance edges.

use crate::{
    OTHER_SECRET, VECTOR_BODY, VECTOR_ID, VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_TIMESTAMP, at,
    id, secret,
};
use backhaul_webhooks::{LookupFn, Tolerance, Verified, VerifyError, headers, verify};
use chrono::TimeDelta;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::HashMap;

fn vector_headers() -> Vec<(String, String)> {
    vec![
        ("webhook-id".to_owned(), VECTOR_ID.to_owned()),
        ("webhook-timestamp".to_owned(), VECTOR_TIMESTAMP.to_string()),
        ("webhook-signature".to_owned(), VECTOR_SIGNATURE.to_owned()),
    ]
}

fn with(name: &str, value: &str) -> Vec<(String, String)> {
    let mut list = vector_headers();
    for pair in &mut list {
        if pair.0 == name {
            pair.1 = value.to_owned();
        }
    }
    list
}

fn check(headers: &[(String, String)], now: i64) -> Result<Verified, VerifyError> {
    verify(
        &[secret(VECTOR_SECRET)],
        headers,
        VECTOR_BODY,
        at(now),
        Tolerance::DEFAULT,
    )
}

#[test]
fn the_reference_vector_verifies_and_yields_id_and_timestamp() {
    let verified = check(&vector_headers(), VECTOR_TIMESTAMP).expect("verifies");
    assert_eq!(
        verified,
        Verified {
            id: id(VECTOR_ID),
            timestamp: at(VECTOR_TIMESTAMP)
        }
    );
}

#[test]
fn header_names_match_case_insensitively_and_closures_can_supply_them() {
    let shouting = [
        ("Webhook-Id", VECTOR_ID.to_owned()),
        ("WEBHOOK-TIMESTAMP", VECTOR_TIMESTAMP.to_string()),
        ("webhook-Signature", VECTOR_SIGNATURE.to_owned()),
    ];
    let now = at(VECTOR_TIMESTAMP);
    let secrets = [secret(VECTOR_SECRET)];
    assert!(verify(&secrets, &shouting, VECTOR_BODY, now, Tolerance::DEFAULT).is_ok());

    let map: HashMap<String, String> = vector_headers().into_iter().collect();
    let lookup = LookupFn::new(|name: &str| map.get(name).map(String::as_str));
    assert!(verify(&secrets, &lookup, VECTOR_BODY, now, Tolerance::DEFAULT).is_ok());
}

#[test]
fn what_sign_produces_verify_accepts() {
    let key = secret(OTHER_SECRET);
    let sent = headers(&key, &[], &id("msg_roundtrip"), at(1_700_000_000), b"{}");
    let verified =
        verify(&[key], &sent, b"{}", at(1_700_000_000), Tolerance::DEFAULT).expect("round trip");
    assert_eq!(verified.id, id("msg_roundtrip"));
}

#[test]
fn each_missing_header_is_named() {
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let headers: Vec<_> = vector_headers()
            .into_iter()
            .filter(|(n, _)| n != name)
            .collect();
        let error = check(&headers, VECTOR_TIMESTAMP).expect_err("missing header");
        assert_eq!(error, VerifyError::MissingHeader(name));
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[test]
fn an_empty_secret_list_is_a_configuration_error_not_a_mismatch() {
    let result = verify(
        &[],
        &vector_headers(),
        VECTOR_BODY,
        at(VECTOR_TIMESTAMP),
        Tolerance::DEFAULT,
    );
    assert_eq!(result, Err(VerifyError::NoSecrets));
}

#[test]
fn malformed_ids_are_refused() {
    for bad in ["", "msg.1", "msg 1", "msg\u{7f}"] {
        assert!(
            matches!(
                check(&with("webhook-id", bad), VECTOR_TIMESTAMP),
                Err(VerifyError::MalformedId(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn malformed_timestamps_are_refused() {
    for bad in [
        "",
        "abc",
        "-1614265330",
        "+1614265330",
        "1614265330.0",
        "1.6e9",
        "0x60",
        "1614265330s",
        "99999999999999999999",
        "9999999999999",
        "١٦١٤٢٦٥٣٣٠",
    ] {
        assert_eq!(
            check(&with("webhook-timestamp", bad), VECTOR_TIMESTAMP),
            Err(VerifyError::MalformedTimestamp),
            "{bad:?}"
        );
    }
}

#[test]
fn tolerance_is_inclusive_at_both_edges_and_one_second_beyond_fails() {
    let limit = i64::from(Tolerance::DEFAULT.seconds());
    assert_eq!(limit, 300);
    // The receiver's clock runs ahead of the sender's: the message is old.
    assert!(check(&vector_headers(), VECTOR_TIMESTAMP + limit).is_ok());
    assert!(matches!(
        check(&vector_headers(), VECTOR_TIMESTAMP + limit + 1),
        Err(VerifyError::TooOld { .. })
    ));
    // The receiver's clock runs behind: the message is from the future.
    assert!(check(&vector_headers(), VECTOR_TIMESTAMP - limit).is_ok());
    assert!(matches!(
        check(&vector_headers(), VECTOR_TIMESTAMP - limit - 1),
        Err(VerifyError::TooNew { .. })
    ));
}

#[test]
fn a_fraction_of_a_second_does_not_move_the_edge() {
    let now = at(VECTOR_TIMESTAMP + 300) + TimeDelta::milliseconds(999);
    let result = verify(
        &[secret(VECTOR_SECRET)],
        &vector_headers(),
        VECTOR_BODY,
        now,
        Tolerance::DEFAULT,
    );
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn a_custom_tolerance_applies() {
    let tight = Tolerance::from_seconds(10);
    let secrets = [secret(VECTOR_SECRET)];
    let headers = vector_headers();
    assert!(
        verify(
            &secrets,
            &headers,
            VECTOR_BODY,
            at(VECTOR_TIMESTAMP + 10),
            tight
        )
        .is_ok()
    );
    assert!(
        verify(
            &secrets,
            &headers,
            VECTOR_BODY,
            at(VECTOR_TIMESTAMP + 11),
            tight
        )
        .is_err()
    );
}

#[test]
fn timestamp_errors_state_both_times() {
    let error = check(&vector_headers(), VECTOR_TIMESTAMP + 301).expect_err("too old");
    let message = error.to_string();
    assert!(message.contains("2021-02-25 15:02:10"), "{message}");
    assert!(message.contains("2021-02-25 15:07:11"), "{message}");
    assert!(message.contains("300s"), "{message}");
    let error = check(&vector_headers(), VECTOR_TIMESTAMP - 301).expect_err("too new");
    let message = error.to_string();
    assert!(
        message.contains("2021-02-25 15:02:10") && message.contains("2021-02-25 14:57:09"),
        "{message}"
    );
}

#[test]
fn a_stale_timestamp_is_refused_even_with_a_valid_signature_for_it() {
    // An attacker replaying a captured request an hour later.
    let result = check(&vector_headers(), VECTOR_TIMESTAMP + 3600);
    assert!(
        matches!(result, Err(VerifyError::TooOld { .. })),
        "{result:?}"
    );
}

#[test]
fn tampering_with_secret_body_id_or_timestamp_breaks_the_signature() {
    let now = at(VECTOR_TIMESTAMP);
    let wrong_secret = verify(
        &[secret(OTHER_SECRET)],
        &vector_headers(),
        VECTOR_BODY,
        now,
        Tolerance::DEFAULT,
    );
    assert_eq!(wrong_secret, Err(VerifyError::NoMatchingSignature));

    let other_body = verify(
        &[secret(VECTOR_SECRET)],
        &vector_headers(),
        br#"{"test": 2432232315}"#,
        now,
        Tolerance::DEFAULT,
    );
    assert_eq!(other_body, Err(VerifyError::NoMatchingSignature));

    assert_eq!(
        check(&with("webhook-id", "msg_other"), VECTOR_TIMESTAMP),
        Err(VerifyError::NoMatchingSignature)
    );
    let shifted = (VECTOR_TIMESTAMP + 1).to_string();
    assert_eq!(
        check(&with("webhook-timestamp", &shifted), VECTOR_TIMESTAMP),
        Err(VerifyError::NoMatchingSignature)
    );
    // Same instant, different text: the signature covers the header as sent.
    let zero_padded = format!("0{VECTOR_TIMESTAMP}");
    assert_eq!(
        check(&with("webhook-timestamp", &zero_padded), VECTOR_TIMESTAMP),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn rotation_accepts_old_and_new_secrets_on_either_side() {
    let old = secret(VECTOR_SECRET);
    let new = secret(OTHER_SECRET);
    let message = id("msg_rotation");
    let now = at(1_700_000_000);

    // Receiver already holds both; sender switched to the new secret only.
    let new_only = headers(&new, &[], &message, now, b"x");
    assert!(
        verify(
            &[old.clone(), new.clone()],
            &new_only,
            b"x",
            now,
            Tolerance::DEFAULT
        )
        .is_ok()
    );
    // Sender signs with both; receiver has not switched yet, or already has.
    let both = headers(&new, std::slice::from_ref(&old), &message, now, b"x");
    assert!(
        verify(
            std::slice::from_ref(&old),
            &both,
            b"x",
            now,
            Tolerance::DEFAULT
        )
        .is_ok()
    );
    assert!(
        verify(
            std::slice::from_ref(&new),
            &both,
            b"x",
            now,
            Tolerance::DEFAULT
        )
        .is_ok()
    );
    // Once the old secret is retired on the sender, a receiver holding only it fails.
    assert_eq!(
        verify(&[old], &new_only, b"x", now, Tolerance::DEFAULT),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn unknown_schemes_junk_and_extra_spaces_are_skipped_when_one_v1_matches() {
    let header = format!(
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzC==  v2,abc garbage v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {VECTOR_SIGNATURE}"
    );
    assert!(check(&with("webhook-signature", &header), VECTOR_TIMESTAMP).is_ok());
}

#[test]
fn signature_header_failures_are_classified() {
    use VerifyError::{MalformedSignature, NoMatchingSignature};
    let cases: [(&str, VerifyError); 13] = [
        ("", MalformedSignature { position: 0 }),
        ("   ", MalformedSignature { position: 0 }),
        ("garbage", MalformedSignature { position: 0 }),
        ("v1a,abc garbage", MalformedSignature { position: 1 }),
        (",abc", MalformedSignature { position: 0 }),
        ("v1,", MalformedSignature { position: 0 }),
        // Well-formed but wrong, as in the reference libraries' own test.
        ("v1,dawfeoifkpqwoekfpqoekf", NoMatchingSignature),
        // A v1 entry that is not canonical base64 cannot match: a wrong signature.
        ("v1,not*base64", NoMatchingSignature),
        (
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
            NoMatchingSignature,
        ),
        ("v1,AAAA", NoMatchingSignature),
        (
            "garbage v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            NoMatchingSignature,
        ),
        // Only a scheme this receiver does not check.
        ("v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw", NoMatchingSignature),
        // A correct signature in an unchecked scheme's slot does not count.
        (
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            NoMatchingSignature,
        ),
    ];
    for (header, expected) in cases {
        assert_eq!(
            check(&with("webhook-signature", header), VECTOR_TIMESTAMP),
            Err(expected),
            "{header:?}"
        );
    }
}

#[test]
fn arbitrary_header_content_is_refused_without_panicking() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let fixed = [
        "\u{0}",
        "v1,",
        "v1,=",
        "v1,====",
        ",",
        " , ",
        "v1,,",
        "\u{feff}v1,abc",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
        "💥",
        "9223372036854775807",
        "-9223372036854775808",
        "00000000000",
        "v1 ,abc",
    ];
    for round in 0..2_000 {
        let random: String = if round < fixed.len() {
            fixed[round].to_owned()
        } else {
            let len = rng.gen_range(0..48);
            let bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let result = check(&with(name, &random), VECTOR_TIMESTAMP);
            assert!(result.is_err(), "{name}: {random:?} verified");
        }
    }
}
