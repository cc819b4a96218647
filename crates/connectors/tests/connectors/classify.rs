//! `http::classify` on its own: which HTTP answers are successes, which are
//! worth retrying (technical) and which need a person (business), and what
//! the failure says.

use std::time::Duration;

use backhaul_connectors::http::classify;
use backhaul_engine::SinkError;
use http::{HeaderMap, HeaderValue, StatusCode, header};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

fn problem(code: &str, detail: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": format!("https://example.test/problems/{code}"),
        "title": "Something went wrong",
        "status": 422,
        "code": code,
        "detail": detail,
    }))
    .unwrap()
}

fn retry_after(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
    headers
}

/// The retry delay of a technical failure; panics on anything else.
#[track_caller]
fn technical_retry_after(result: Result<(), SinkError>) -> Option<Duration> {
    match result {
        Err(SinkError::Technical { retry_after, .. }) => retry_after,
        other => panic!("expected a technical failure, got {other:?}"),
    }
}

#[test]
fn success_statuses_are_ok() {
    for code in [200, 201, 202, 204] {
        assert_eq!(
            classify(status(code), &HeaderMap::new(), b""),
            Ok(()),
            "{code}"
        );
    }
}

#[test]
fn timeouts_throttling_and_server_errors_are_technical() {
    for code in [408, 425, 429, 500, 502, 503, 504] {
        let result = classify(status(code), &HeaderMap::new(), b"");

        match result {
            Err(SinkError::Technical { status, .. }) => assert_eq!(status, Some(code)),
            other => panic!("{code}: expected technical, got {other:?}"),
        }
    }
}

#[test]
fn other_client_errors_are_business() {
    for code in [400, 401, 403, 404, 409, 410, 422] {
        let result = classify(status(code), &HeaderMap::new(), b"");

        match result {
            Err(SinkError::Business { status, .. }) => assert_eq!(status, Some(code)),
            other => panic!("{code}: expected business, got {other:?}"),
        }
    }
}

#[test]
fn a_problem_documents_code_and_detail_become_the_failures() {
    let body = problem("period_closed", "the posting period is closed");

    let result = classify(status(422), &HeaderMap::new(), &body);

    assert_eq!(
        result,
        Err(SinkError::Business {
            code: "period_closed".to_owned(),
            message: "the posting period is closed".to_owned(),
            status: Some(422),
        })
    );
}

#[test]
fn a_technical_failure_keeps_the_problem_documents_code_too() {
    let body = problem("unavailable", "try again later");

    let result = classify(status(503), &HeaderMap::new(), &body);

    assert_eq!(
        result,
        Err(SinkError::Technical {
            code: "unavailable".to_owned(),
            message: "try again later".to_owned(),
            status: Some(503),
            retry_after: None,
        })
    );
}

#[test]
fn a_problem_without_detail_is_described_by_its_title() {
    let body = br#"{"title":"Order locked","code":"locked"}"#;

    let result = classify(status(409), &HeaderMap::new(), body);

    assert_eq!(
        result,
        Err(SinkError::Business {
            code: "locked".to_owned(),
            message: "Order locked".to_owned(),
            status: Some(409),
        })
    );
}

#[test]
fn a_body_that_is_not_json_is_classified_by_its_status() {
    let body = b"<html><body>Bad Gateway</body></html>";

    assert_eq!(
        classify(status(502), &HeaderMap::new(), body),
        Err(SinkError::Technical {
            code: "http_502".to_owned(),
            message: "Bad Gateway".to_owned(),
            status: Some(502),
            retry_after: None,
        })
    );
    assert_eq!(
        classify(status(404), &HeaderMap::new(), body),
        Err(SinkError::Business {
            code: "http_404".to_owned(),
            message: "Not Found".to_owned(),
            status: Some(404),
        })
    );
}

#[test]
fn json_without_a_code_is_named_by_its_status() {
    let body = br#"{"error":"nope","code":17}"#;

    let result = classify(status(400), &HeaderMap::new(), body);

    match result {
        Err(SinkError::Business { code, .. }) => assert_eq!(code, "http_400"),
        other => panic!("expected business, got {other:?}"),
    }
}

#[test]
fn retry_after_in_seconds_is_the_delay_asked_for() {
    let result = classify(status(429), &retry_after("7"), b"");

    assert_eq!(technical_retry_after(result), Some(Duration::from_secs(7)));
}

#[test]
fn retry_after_as_a_future_http_date_is_a_delay() {
    let result = classify(
        status(503),
        &retry_after("Fri, 01 Jan 2100 00:00:00 GMT"),
        b"",
    );

    let delay = technical_retry_after(result).expect("a delay until 2100");
    assert!(delay > Duration::from_secs(365 * 24 * 3600), "{delay:?}");
}

#[test]
fn retry_after_that_cannot_be_read_is_ignored() {
    for value in ["soon", "-5", "1.5", ""] {
        let result = classify(status(429), &retry_after(value), b"");

        assert_eq!(technical_retry_after(result), None, "{value}");
    }
}

#[test]
fn retry_after_as_a_past_http_date_asks_for_no_wait() {
    let result = classify(
        status(503),
        &retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        b"",
    );

    assert_eq!(technical_retry_after(result), None);
}
