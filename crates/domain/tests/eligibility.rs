//! A request that arrives with the hub policy's assessment is approved, held
//! or rejected in the same step, and the explanation is kept with the return.

mod support;

use backhaul_domain::eligibility::{Assessment, LineVerdict, RuleOutcome, Verdict};
use backhaul_domain::{Command, Event, Rejection, ReturnSummary, Stage, Status};
use chrono::Duration;
use support::*;

fn verdict(n: u32, verdict: Verdict, eligible: u32) -> LineVerdict {
    LineVerdict {
        line_no: ln(n),
        verdict,
        eligible_quantity: q(eligible),
    }
}

fn rule(id: &str, line: Option<u32>, passed: bool, on_fail: Verdict) -> RuleOutcome {
    RuleOutcome {
        rule: id.into(),
        line_no: line.map(ln),
        passed,
        on_fail,
        message: format!("{id} says so"),
    }
}

fn assessment(verdict: Verdict, lines: Vec<LineVerdict>, rules: Vec<RuleOutcome>) -> Assessment {
    Assessment {
        policy_version: "2026.11".into(),
        verdict,
        lines,
        rules,
        expires_at: None,
    }
}

fn request_with(assessment: Assessment) -> Command {
    match request_cmd(vec![line(1, "SKU-A", 2), line(2, "SKU-B", 3)]) {
        Command::Request {
            return_id, request, ..
        } => Command::Request {
            return_id,
            request,
            assessment: Some(assessment),
        },
        other => panic!("request_cmd made {}", other.name()),
    }
}

fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::event_type).collect()
}

#[test]
fn an_approval_authorises_the_eligible_units_only() {
    let mut h = Harness::new();
    let mut a = assessment(
        Verdict::Approve,
        vec![
            verdict(1, Verdict::Approve, 2),
            verdict(2, Verdict::Reject, 0),
        ],
        vec![
            rule("window", Some(1), true, Verdict::Reject),
            rule("window", Some(2), false, Verdict::Reject),
        ],
    );
    a.expires_at = Some(h.now + Duration::days(14));
    let events = h.accept(request_with(a.clone()));
    assert_eq!(
        types(&events),
        ["ReturnRequested", "EligibilityAssessed", "ReturnApproved"]
    );
    h.expect(Status::Approved, Stage::AwaitingLabel, "carrier");
    assert_eq!(h.line(1).authorized, q(2));
    assert_eq!(h.line(2).authorized, q(0));
    assert_eq!(h.state.authorization_expires_at, a.expires_at);
    let summary = ReturnSummary::from_state(&h.state).unwrap();
    assert_eq!(summary.eligibility, Some(a));
}

#[test]
fn a_review_verdict_holds_the_return_naming_the_rules() {
    let mut h = Harness::new();
    let events = h.accept(request_with(assessment(
        Verdict::Review,
        vec![
            verdict(1, Verdict::Review, 2),
            verdict(2, Verdict::Approve, 3),
        ],
        vec![
            rule("value.threshold", None, false, Verdict::Review),
            rule("window", Some(2), true, Verdict::Reject),
        ],
    )));
    assert_eq!(
        types(&events),
        [
            "ReturnRequested",
            "EligibilityAssessed",
            "ReturnHeldForReview"
        ]
    );
    h.expect(Status::PendingReview, Stage::ManualReview, "support");
    let reason = h.state.reason.clone().unwrap();
    assert!(reason.contains("2026.11"), "{reason}");
    assert!(reason.contains("value.threshold"), "{reason}");
    assert!(!reason.contains("window"), "{reason}");
    // A person then decides as before.
    h.accept(approve_all());
    h.expect(Status::Approved, Stage::AwaitingLabel, "carrier");
}

#[test]
fn a_reject_verdict_rejects_with_the_failed_rules_per_line() {
    let mut h = Harness::new();
    let events = h.accept(request_with(assessment(
        Verdict::Reject,
        vec![
            verdict(1, Verdict::Reject, 0),
            verdict(2, Verdict::Reject, 0),
        ],
        vec![
            rule("blocked_customer", None, false, Verdict::Reject),
            rule("window", Some(2), false, Verdict::Reject),
        ],
    )));
    assert_eq!(
        types(&events),
        ["ReturnRequested", "EligibilityAssessed", "ReturnRejected"]
    );
    assert_eq!(h.state.status(), Status::Rejected);
    let reason = h.state.reason.clone().unwrap();
    assert!(reason.contains("blocked_customer"), "{reason}");
    assert!(reason.contains("window (line 2)"), "{reason}");
}

#[test]
fn an_assessment_that_does_not_match_the_request_is_refused() {
    let cases = [
        (
            "a line without a verdict",
            vec![verdict(1, Verdict::Approve, 2)],
        ),
        (
            "more eligible than requested",
            vec![
                verdict(1, Verdict::Approve, 3),
                verdict(2, Verdict::Approve, 3),
            ],
        ),
        (
            "a line twice",
            vec![
                verdict(1, Verdict::Approve, 2),
                verdict(1, Verdict::Approve, 2),
                verdict(2, Verdict::Approve, 3),
            ],
        ),
    ];
    for (case, lines) in cases {
        let mut h = Harness::new();
        let rejection = h.refuse(request_with(assessment(Verdict::Approve, lines, vec![])));
        assert!(
            matches!(&rejection, Rejection::Invalid { field, .. } if field == "assessment"),
            "{case}: {rejection:?}"
        );
    }
    // A line the request does not have is an unknown line.
    let mut h = Harness::new();
    let rejection = h.refuse(request_with(assessment(
        Verdict::Approve,
        vec![
            verdict(1, Verdict::Approve, 2),
            verdict(2, Verdict::Approve, 3),
            verdict(3, Verdict::Approve, 1),
        ],
        vec![],
    )));
    assert_eq!(rejection, Rejection::UnknownLine(ln(3)));
}

#[test]
fn an_approval_that_authorises_nothing_is_refused() {
    // The policy layer turns all-rejected lines into a reject verdict; an
    // approve verdict with nothing eligible is a bug it must not store.
    let mut h = Harness::new();
    let rejection = h.refuse(request_with(assessment(
        Verdict::Approve,
        vec![
            verdict(1, Verdict::Reject, 0),
            verdict(2, Verdict::Reject, 0),
        ],
        vec![],
    )));
    assert!(
        matches!(rejection, Rejection::Invalid { .. }),
        "{rejection:?}"
    );
}
