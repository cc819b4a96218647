//! Subscriber filters and their config.

use crate::{OTHER_SECRET, VECTOR_SECRET, at, id, secret};
use backhaul_webhooks::{EndpointUrl, EventPattern, ParseError, Subscription, Tolerance, verify};

fn pattern(text: &str) -> EventPattern {
    EventPattern::parse(text).expect("pattern parses")
}

#[test]
fn event_patterns_match_exactly_by_prefix_or_everything() {
    let table = [
        ("*", "return.received", true),
        ("*", "x", true),
        ("return.received", "return.received", true),
        ("return.received", "return.received.late", false),
        ("return.received", "return", false),
        ("return.*", "return.received", true),
        ("return.*", "return.line.disposed", true),
        ("return.*", "return", false),
        ("return.*", "returns.received", false),
        ("return.*", "refund.posted", false),
        ("return.line.*", "return.line.disposed", true),
        ("return.line.*", "return.received", false),
        ("Return.*", "return.received", false),
    ];
    for (text, event, expected) in table {
        assert_eq!(pattern(text).matches(event), expected, "{text} vs {event}");
    }
}

#[test]
fn event_patterns_round_trip_and_refuse_malformed_text() {
    for text in ["*", "return.received", "return.*", "a_b.c1.*"] {
        assert_eq!(pattern(text).to_string(), text);
    }
    for bad in [
        "",
        ".",
        "return.",
        ".return",
        "return..received",
        "return*",
        "re turn",
        "*.received",
        "return.*.x",
        "**",
        ".*",
        "return-received",
    ] {
        assert!(
            matches!(EventPattern::parse(bad), Err(ParseError::EventPattern(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn endpoint_urls_need_an_http_scheme_and_a_host() {
    assert_eq!(
        EndpointUrl::parse("https://crm.example.com/hooks")
            .expect("ok")
            .as_str(),
        "https://crm.example.com/hooks"
    );
    assert!(EndpointUrl::parse("http://localhost:8080").is_ok());
    for bad in [
        "",
        "crm.example.com",
        "ftp://x",
        "https://",
        "https:///path",
        "https://a b",
        "https://x\n",
    ] {
        assert!(
            matches!(EndpointUrl::parse(bad), Err(ParseError::EndpointUrl(_))),
            "{bad:?}"
        );
    }
}

fn from_toml(text: &str) -> Result<Subscription, toml::de::Error> {
    toml::from_str(text)
}

const CONFIG: &str = r#"
url = "https://crm.example.com/hooks"
secret = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
previous_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
event_types = ["return.status_changed", "refund.*"]
statuses = ["received", "inspected"]
"#;

#[test]
fn matches_combines_event_type_and_status_filters() {
    let subscription = from_toml(CONFIG).expect("config parses");
    let table = [
        ("return.status_changed", Some("received"), true),
        ("return.status_changed", Some("inspected"), true),
        ("return.status_changed", Some("closed"), false),
        ("return.status_changed", Some("Received"), false),
        ("return.status_changed", None, false),
        ("refund.posted", Some("received"), true),
        ("return.created", Some("received"), false),
    ];
    for (event, status, expected) in table {
        assert_eq!(
            subscription.matches(event, status),
            expected,
            "{event} {status:?}"
        );
    }
}

#[test]
fn without_statuses_any_status_or_none_matches() {
    let subscription = from_toml(
        r#"
url = "https://portal.example.com/in"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
event_types = ["*"]
"#,
    )
    .expect("config parses");
    assert!(subscription.matches("return.status_changed", None));
    assert!(subscription.matches("anything", Some("whatever")));
    assert_eq!(subscription.statuses(), None);
    assert_eq!(subscription.event_types(), [EventPattern::Any]);
}

#[test]
fn config_refuses_unknown_fields_and_filters_that_match_nothing() {
    let cases = [
        (CONFIG.replace("statuses", "status"), "unknown field"),
        (
            CONFIG.replace(r#"["return.status_changed", "refund.*"]"#, "[]"),
            "event_types",
        ),
        (
            CONFIG.replace(r#"["received", "inspected"]"#, "[]"),
            "statuses",
        ),
        (CONFIG.replace(r#""received""#, r#""""#), "statuses"),
        (CONFIG.replace("refund.*", "refund.*.x"), "event pattern"),
        (CONFIG.replace("https://crm", "crm"), "endpoint url"),
        (CONFIG.replace("whsec_AQEB", "whsec_!!!!"), "base64"),
    ];
    for (text, expected) in cases {
        let error = from_toml(&text).expect_err("must be refused").to_string();
        assert!(
            error.contains(expected),
            "expected {expected:?} in: {error}"
        );
        // toml quotes the offending source line above the message; our own message,
        // the last line, must not repeat a secret.
        let ours = error.trim_end().lines().last().unwrap_or_default();
        assert!(
            !ours.contains("AQEBAQEB") && !ours.contains("MfKQ9r8G"),
            "secret leaked: {ours}"
        );
    }
}

#[test]
fn subscription_headers_sign_with_current_and_previous_secrets() {
    let subscription = from_toml(CONFIG).expect("config parses");
    assert_eq!(subscription.url().as_str(), "https://crm.example.com/hooks");
    let now = at(1_700_000_000);
    let sent = subscription.headers(&id("msg_sub"), now, b"{}");
    for receiver_secret in [OTHER_SECRET, VECTOR_SECRET] {
        let verified = verify(
            &[secret(receiver_secret)],
            &sent,
            b"{}",
            now,
            Tolerance::DEFAULT,
        );
        assert!(verified.is_ok(), "{receiver_secret}: {verified:?}");
    }
}
