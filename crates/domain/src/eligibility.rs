//! Eligibility assessments: the explained decision a policy made about a
//! return request. The policy itself (its rules, expressions and master
//! data) lives outside the domain, in `backhaul-policy`; the domain only
//! records what it decided and why, and turns the verdict into the usual
//! lifecycle events (approve, hold for review, reject).
//!
//! Serialized types here are stored in the event log (`EligibilityAssessed`)
//! and returned by the eligibility API: they are a compatibility promise.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{LineNo, Quantity};

/// What a policy decided about a request or one of its lines. Ordered from
/// best to worst, so the verdict of a whole is the worst of its parts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Eligible: authorise without a person looking at it.
    Approve,
    /// A person must decide (value above a threshold, a doubtful case).
    Review,
    /// Not eligible.
    Reject,
}

/// The result of one rule, for one line or for the whole request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleOutcome {
    /// The rule's id in the policy, e.g. `window.electronics`.
    pub rule: String,
    /// The line the rule was evaluated for; absent for request-level rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_no: Option<LineNo>,
    pub passed: bool,
    /// What failing this rule means: `review` or `reject`.
    pub on_fail: Verdict,
    /// Why, in words a support agent can read to a customer: the rule's
    /// message, with the facts it looked at.
    pub message: String,
}

/// The verdict on one requested line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineVerdict {
    pub line_no: LineNo,
    pub verdict: Verdict,
    /// Units of this line that may be authorised (zero when rejected).
    pub eligible_quantity: Quantity,
}

/// A policy's explained decision on a return request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    /// The version of the policy that decided, as written in its file.
    pub policy_version: String,
    /// The decision on the request: the worst line verdict, except that
    /// rejected lines beside approved ones are simply not authorised.
    pub verdict: Verdict,
    pub lines: Vec<LineVerdict>,
    /// Every rule evaluated, passed or not, in policy order.
    pub rules: Vec<RuleOutcome>,
    /// For an approval: the customer must ship before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Assessment {
    /// The failed rules, for a short reason on a review or a rejection.
    pub fn failures(&self) -> impl Iterator<Item = &RuleOutcome> {
        self.rules.iter().filter(|r| !r.passed)
    }

    /// One sentence naming the failed rules that led to `verdict`.
    pub fn reason(&self, verdict: Verdict) -> String {
        let failed: Vec<String> = self
            .failures()
            .filter(|r| r.on_fail == verdict)
            .map(|r| match r.line_no {
                Some(line) => format!("{} (line {line}): {}", r.rule, r.message),
                None => format!("{}: {}", r.rule, r.message),
            })
            .collect();
        if failed.is_empty() {
            format!("policy {}", self.policy_version)
        } else {
            format!("policy {}: {}", self.policy_version, failed.join("; "))
        }
    }
}
