//! Outbound signing: the reference vector, headers, secrets and message ids.

use crate::{
    OTHER_SECRET, VECTOR_BODY, VECTOR_ID, VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_TIMESTAMP, at,
    id, secret,
};
use backhaul_webhooks::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MessageId, ParseError, Secret, headers, sign,
};
use base64::Engine as _;
use chrono::TimeDelta;
use hmac::{Hmac, Mac as _};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use sha2::Sha256;

#[test]
fn sign_reproduces_the_standard_webhooks_reference_vector() {
    let signature = sign(
        &secret(VECTOR_SECRET),
        &id(VECTOR_ID),
        at(VECTOR_TIMESTAMP),
        VECTOR_BODY,
    );
    assert_eq!(signature.to_string(), VECTOR_SIGNATURE);
}

#[test]
fn sub_second_precision_is_truncated_to_the_header_resolution() {
    let late_in_the_second = at(VECTOR_TIMESTAMP) + TimeDelta::milliseconds(999);
    let signature = sign(
        &secret(VECTOR_SECRET),
        &id(VECTOR_ID),
        late_in_the_second,
        VECTOR_BODY,
    );
    assert_eq!(signature.to_string(), VECTOR_SIGNATURE);
}

/// The crate pads keys to the SHA-256 block itself; an independent HMAC over the raw
/// key must agree for the shortest, a middle and the longest allowed key.
#[test]
fn signatures_agree_with_an_independent_hmac_for_every_key_size() {
    for len in [24_usize, 32, 63, 64] {
        let key: Vec<u8> = (0..len)
            .map(|i| u8::try_from(i * 7 % 251).expect("fits"))
            .collect();
        let text = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&key)
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(b"msg_1.1700000000.payload");
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        let actual = sign(&secret(&text), &id("msg_1"), at(1_700_000_000), b"payload");
        assert_eq!(actual.to_string(), expected, "key of {len} bytes");
    }
}

#[test]
fn headers_carry_id_timestamp_and_one_signature_per_secret_current_first() {
    let current = secret(OTHER_SECRET);
    let previous = [secret(VECTOR_SECRET)];
    let message = id(VECTOR_ID);
    let sent = headers(
        &current,
        &previous,
        &message,
        at(VECTOR_TIMESTAMP),
        VECTOR_BODY,
    );

    assert_eq!(sent[0], (HEADER_ID, VECTOR_ID.to_owned()));
    assert_eq!(sent[1], (HEADER_TIMESTAMP, VECTOR_TIMESTAMP.to_string()));
    let (name, value) = &sent[2];
    assert_eq!(*name, HEADER_SIGNATURE);
    let parts: Vec<&str> = value.split(' ').collect();
    let current_sig = sign(&current, &message, at(VECTOR_TIMESTAMP), VECTOR_BODY).to_string();
    assert_eq!(parts, [current_sig.as_str(), VECTOR_SIGNATURE]);
}

#[test]
fn headers_without_previous_secrets_hold_a_single_signature() {
    let sent = headers(
        &secret(VECTOR_SECRET),
        &[],
        &id(VECTOR_ID),
        at(VECTOR_TIMESTAMP),
        VECTOR_BODY,
    );
    assert_eq!(sent[2].1, VECTOR_SIGNATURE);
}

fn whsec_of_len(len: usize) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(vec![0x5a_u8; len])
    )
}

#[test]
fn secret_parsing_enforces_prefix_encoding_and_length() {
    let length = |actual| ParseError::SecretLength {
        min: 24,
        max: 64,
        actual,
    };
    let cases = [
        (
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            ParseError::SecretPrefix,
        ),
        (
            "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            ParseError::SecretPrefix,
        ),
        ("whsec_not base64!".to_owned(), ParseError::SecretEncoding),
        ("whsec_".to_owned(), length(0)),
        (whsec_of_len(23), length(23)),
        (whsec_of_len(65), length(65)),
    ];
    for (text, expected) in cases {
        assert_eq!(Secret::parse(&text), Err(expected), "{text}");
    }
    for len in [24, 64] {
        assert!(Secret::parse(&whsec_of_len(len)).is_ok(), "{len} bytes");
    }
}

#[test]
fn secret_padding_is_optional_and_round_trips_through_its_whsec_form() {
    let padded = secret(OTHER_SECRET);
    let unpadded = secret(OTHER_SECRET.trim_end_matches('='));
    assert_eq!(padded, unpadded);
    assert_eq!(unpadded.expose_whsec(), OTHER_SECRET);
    assert_eq!(secret(VECTOR_SECRET).expose_whsec(), VECTOR_SECRET);
}

#[test]
fn secret_debug_and_errors_never_show_key_material() {
    let shown = format!("{:?}", secret(VECTOR_SECRET));
    assert!(!shown.contains("MfKQ9r8G"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
    let error = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa").expect_err("too short");
    assert!(!error.to_string().contains("MfKQ9r8G"), "{error}");
}

#[test]
fn generated_secrets_come_from_the_given_rng_and_parse_back() {
    let first = Secret::generate(&mut StdRng::seed_from_u64(7));
    let same_seed = Secret::generate(&mut StdRng::seed_from_u64(7));
    let other_seed = Secret::generate(&mut StdRng::seed_from_u64(8));
    assert_eq!(first, same_seed);
    assert_ne!(first, other_seed);
    let text = first.expose_whsec();
    assert!(text.starts_with("whsec_"));
    assert_eq!(secret(&text), first);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text.trim_start_matches("whsec_"))
        .expect("base64");
    assert_eq!(decoded.len(), 32);
}

#[test]
fn message_ids_refuse_what_would_break_the_signed_content_or_the_header() {
    let long_ok = "a".repeat(256);
    assert_eq!(id(&long_ok).as_str(), long_ok);
    for bad in [
        "",
        "msg.1",
        "msg 1",
        "msg\t1",
        "msg\n1",
        "msg_é",
        &"a".repeat(257),
    ] {
        assert!(
            matches!(MessageId::parse(bad), Err(ParseError::MessageId(_))),
            "{bad:?} should be refused"
        );
    }
}

#[test]
fn a_secret_is_read_from_the_variable_it_is_configured_by() {
    use backhaul_webhooks::EnvSecretError;
    let env = |name: &str| match name {
        "HOOK_SECRET" => Some(format!("{VECTOR_SECRET}\n")),
        "NOT_A_SECRET" => Some("hunter2".to_owned()),
        _ => None,
    };
    assert_eq!(
        Secret::from_env("HOOK_SECRET", env).unwrap(),
        secret(VECTOR_SECRET),
        "a trailing newline from a secrets file is not part of the key"
    );
    assert_eq!(
        Secret::from_env("MISSING", env),
        Err(EnvSecretError::NotSet("MISSING".to_owned()))
    );
    let invalid = Secret::from_env("NOT_A_SECRET", env).unwrap_err();
    assert!(matches!(
        invalid,
        EnvSecretError::Invalid {
            reason: ParseError::SecretPrefix,
            ..
        }
    ));
    assert!(!invalid.to_string().contains("hunter2"), "{invalid}");
    for bad in ["", "A=B"] {
        assert_eq!(
            Secret::from_env(bad, env),
            Err(EnvSecretError::InvalidName(bad.to_owned()))
        );
    }
}
