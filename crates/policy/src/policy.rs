//! The compiled policy: loading (check everything, compile every expression
//! once) and the three pure evaluations, eligibility, disposition and fee.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use backhaul_domain::eligibility::{Assessment, LineVerdict, RuleOutcome, Verdict};
use backhaul_domain::model::Disposition;
use backhaul_domain::values::{Money, Quantity};
use cel::{Context, Env, Value};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::calendar::{Calendar, Warranty, WarrantyTerm};
use crate::decision::{
    DispositionDecision, FeeDecision, disposition_name, parse_disposition, postings, takes_location,
};
use crate::error::{PolicyError, PolicyErrors};
use crate::expr::{Checker, Expr, Origin, Template};
use crate::facts::{RequestFacts, UnitFacts};
use crate::file::{self, Spec};
use crate::source::{Diag, Text};
use crate::vars::{
    Frame, Scope, Synthetic, Want, Wants, customer_value, line_value, lists_value, request_value,
    sku_value, unit_frame,
};

const DEFAULT_RESTOCK_LOCATION: &str = "RETURNS";
const DEFAULT_QUARANTINE_LOCATION: &str = "QUARANTINE";

/// A loaded, checked and compiled policy. Cheap to share (`Arc<Policy>`)
/// and pure to evaluate: no I/O, no clock.
pub struct Policy {
    version: String,
    calendar: Calendar,
    approval_valid_days: i64,
    /// `lists` as a CEL value, built once.
    lists: Value,
    /// The root CEL context: the standard library and `lists`, converted
    /// once at load. Every evaluation runs in a child scope of it.
    base: Context<'static, 'static>,
    /// The fields of each variable that expressions and messages use.
    wants: Wants,
    eligibility: Vec<EligibilityRule>,
    fees: Vec<FeeRule>,
    dispositions: Vec<DispositionRule>,
    default_disposition: Disposition,
    restock_location: String,
    quarantine_location: String,
}

impl std::fmt::Debug for Policy {
    // `cel::Env` has no Debug; what identifies a policy is its version and
    // its rules.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("timezone", &self.calendar.tz)
            .field(
                "eligibility",
                &self.eligibility.iter().map(|r| &r.id).collect::<Vec<_>>(),
            )
            .field("fees", &self.fees.iter().map(|r| &r.id).collect::<Vec<_>>())
            .field(
                "dispositions",
                &self.dispositions.iter().map(|r| &r.id).collect::<Vec<_>>(),
            )
            .field("default_disposition", &self.default_disposition)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct EligibilityRule {
    id: String,
    scope: Scope,
    applies: Option<Expr>,
    require: Expr,
    on_fail: Verdict,
    message: Template,
    pass_message: Option<Template>,
}

#[derive(Debug)]
struct FeeRule {
    id: String,
    when: Expr,
    charge: Charge,
    message: Option<Template>,
}

#[derive(Debug, Clone, Copy)]
enum Charge {
    /// Percent of the unit price (net of tax).
    Percent(Decimal),
    /// A fixed amount per unit, in the unit price's currency.
    Amount(Decimal),
}

#[derive(Debug)]
struct DispositionRule {
    id: String,
    when: Expr,
    disposition: Disposition,
    location: Option<String>,
    message: Option<Template>,
}

impl Policy {
    /// Parses and checks a policy. `file` is only used in error messages.
    /// Every problem found is reported, each with its line and column.
    pub fn load(file: &str, text: &str) -> Result<Policy, PolicyErrors> {
        let mut diag = Diag::new(file, text);
        let Some(spec) = file::read(text, &mut diag) else {
            return Err(PolicyErrors::new(diag.into_errors()));
        };
        let policy = build(spec, &mut diag);
        match policy {
            Some(p) if !diag.has_errors() => Ok(p),
            _ => Err(PolicyErrors::new(diag.into_errors())),
        }
    }

    /// The policy's version as written in the file; recorded in every
    /// decision.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The policy's time zone, in which all day counts are made.
    pub fn timezone(&self) -> Tz {
        self.calendar.tz
    }

    /// The warranty of a unit of `category` as of `on`, under the terms in
    /// force when it was sold; `None` when no terms apply.
    pub fn warranty(
        &self,
        category: &str,
        sold_at: Option<DateTime<Utc>>,
        shipped_at: Option<DateTime<Utc>>,
        on: DateTime<Utc>,
    ) -> Option<Warranty> {
        self.calendar.warranty(category, sold_at, shipped_at, on)
    }

    /// Assesses a return request: every eligibility rule, in policy order,
    /// once for the request (`scope = "request"`) or once per line.
    ///
    /// A line's verdict is the worst `on_fail` of its failed rules and of
    /// the failed request rules (approve when none failed). The request is
    /// in review if any line is, rejected if every line is rejected (or
    /// there are no lines), and approved otherwise; rejected lines then get
    /// an eligible quantity of zero, the others their requested quantity.
    /// An approval expires `approval_valid_days` after the request.
    pub fn assess(&self, facts: &RequestFacts) -> Assessment {
        let cal = &self.calendar;
        let w = &self.wants;
        let request = request_value(facts, cal, &w.request);
        let customer = customer_value(&facts.customer, &w.customer);
        let line_frames: Vec<Frame> = facts
            .lines
            .iter()
            .map(|l| {
                Frame::new(vec![
                    ("request", request.clone()),
                    ("customer", customer.clone()),
                    (
                        "line",
                        line_value(l, facts.sold_at, facts.requested_at, cal, &w.line),
                    ),
                    ("sku", sku_value(l, &w.sku)),
                    ("lists", self.lists.clone()),
                ])
            })
            .collect();
        let has_line_rules = self.eligibility.iter().any(|r| r.scope == Scope::Line);
        let has_request_rules = self.eligibility.iter().any(|r| r.scope == Scope::Request);
        let lines = match w.lines {
            Want::Nothing => Value::List(Arc::new(Vec::new())),
            Want::All | Want::Fields(_) => Value::List(Arc::new(
                facts
                    .lines
                    .iter()
                    .map(|l| line_value(l, facts.sold_at, facts.requested_at, cal, &w.lines))
                    .collect(),
            )),
        };
        let request_frame = Frame::new(vec![
            ("request", request),
            ("customer", customer),
            ("lines", lines),
            ("lists", self.lists.clone()),
        ]);
        // Scopes: base (lists) → request and customer → one per line (line,
        // sku) or the request rules' (lines). Each is built once and reused
        // by every rule.
        let shared = request_frame.scope(&self.base, &["request", "customer"]);
        let line_contexts: Vec<Context<'_, 'static>> = if has_line_rules {
            line_frames
                .iter()
                .map(|f| f.scope(&shared, &["line", "sku"]))
                .collect()
        } else {
            Vec::new()
        };
        let request_context = has_request_rules.then(|| request_frame.scope(&shared, &["lines"]));

        let mut outcomes = Vec::new();
        let mut request_worst: Option<Verdict> = None;
        let mut line_worst: Vec<Option<Verdict>> = vec![None; facts.lines.len()];
        for rule in &self.eligibility {
            match (rule.scope, &request_context) {
                (Scope::Request, Some(ctx)) => {
                    let outcome = rule.evaluate(&request_frame, ctx, None);
                    if !outcome.passed {
                        request_worst = request_worst.max(Some(outcome.on_fail));
                    }
                    outcomes.push(outcome);
                }
                (Scope::Line, _) => {
                    for (i, (line, (frame, ctx))) in facts
                        .lines
                        .iter()
                        .zip(line_frames.iter().zip(&line_contexts))
                        .enumerate()
                    {
                        let outcome = rule.evaluate(frame, ctx, Some(line.line_no));
                        if !outcome.passed {
                            line_worst[i] = line_worst[i].max(Some(outcome.on_fail));
                        }
                        outcomes.push(outcome);
                    }
                }
                // Request-scoped rules always have their context; unit
                // scope is never an eligibility scope.
                (Scope::Request, None) | (Scope::Unit, _) => {}
            }
        }

        let lines: Vec<LineVerdict> = facts
            .lines
            .iter()
            .zip(&line_worst)
            .map(|(line, worst)| {
                let verdict = (*worst).max(request_worst).unwrap_or(Verdict::Approve);
                LineVerdict {
                    line_no: line.line_no,
                    verdict,
                    eligible_quantity: match verdict {
                        Verdict::Reject => Quantity::ZERO,
                        Verdict::Approve | Verdict::Review => line.quantity,
                    },
                }
            })
            .collect();
        let verdict = if lines.iter().any(|l| l.verdict == Verdict::Review) {
            Verdict::Review
        } else if lines.iter().all(|l| l.verdict == Verdict::Reject) {
            Verdict::Reject
        } else {
            Verdict::Approve
        };
        let expires_at = match verdict {
            Verdict::Approve => facts
                .requested_at
                .checked_add_signed(Duration::days(self.approval_valid_days)),
            Verdict::Review | Verdict::Reject => None,
        };
        Assessment {
            policy_version: self.version.clone(),
            verdict,
            lines,
            rules: outcomes,
            expires_at,
        }
    }

    /// Decides what happens to an inspected unit: the first
    /// `[[disposition]]` rule whose `when` holds, else
    /// `default_disposition`.
    pub fn disposition(&self, unit: &UnitFacts) -> DispositionDecision {
        let frame = unit_frame(unit, &self.calendar, &self.lists, &self.wants);
        let ctx = frame.scope(&self.base, &["line", "sku", "unit"]);
        let mut notes = Vec::new();
        let vendor = unit.line.vendor.as_deref();
        for rule in &self.dispositions {
            match rule.when.eval(&ctx) {
                Ok(true) => {
                    let location = rule
                        .location
                        .as_deref()
                        .unwrap_or_else(|| self.location_for(rule.disposition));
                    let name = disposition_name(rule.disposition);
                    return DispositionDecision {
                        policy_version: self.version.clone(),
                        rule: rule.id.clone(),
                        disposition: rule.disposition,
                        postings: postings(rule.disposition, location, vendor),
                        message: rule.message.as_ref().map_or_else(
                            || format!("{name} (rule {})", rule.id),
                            |m| m.render(&frame),
                        ),
                        notes,
                    };
                }
                Ok(false) => {}
                Err(e) => notes.push(format!(
                    "rule {:?} could not be evaluated and was skipped: {e}",
                    rule.id
                )),
            }
        }
        let d = self.default_disposition;
        DispositionDecision {
            policy_version: self.version.clone(),
            rule: "default_disposition".into(),
            disposition: d,
            postings: postings(d, self.location_for(d), vendor),
            message: format!(
                "no disposition rule matched; default {}",
                disposition_name(d)
            ),
            notes,
        }
    }

    /// The restocking fee for one inspected unit: the first `[[fee]]` rule
    /// whose `when` holds (first match wins, so put specific rules first),
    /// else no fee.
    pub fn fee(&self, unit: &UnitFacts) -> FeeDecision {
        let price = unit.line.unit_price;
        let currency = price.currency();
        let frame = unit_frame(unit, &self.calendar, &self.lists, &self.wants);
        let ctx = frame.scope(&self.base, &["line", "sku", "unit"]);
        let mut notes = Vec::new();
        for rule in &self.fees {
            match rule.when.eval(&ctx) {
                Ok(true) => {
                    let (raw, percent) = match rule.charge {
                        Charge::Percent(p) => (price.amount() * p / Decimal::ONE_HUNDRED, Some(p)),
                        Charge::Amount(a) => (a, None),
                    };
                    let amount = raw.min(price.amount()).round_dp_with_strategy(
                        currency.minor_units(),
                        RoundingStrategy::MidpointAwayFromZero,
                    );
                    let fee = Money::new(amount, currency).unwrap_or_else(|e| {
                        notes.push(format!(
                            "fee of rule {:?} is not a valid amount: {e}",
                            rule.id
                        ));
                        Money::zero(currency)
                    });
                    return FeeDecision {
                        policy_version: self.version.clone(),
                        rule: Some(rule.id.clone()),
                        percent,
                        message: rule.message.as_ref().map_or_else(
                            || format!("restocking fee {fee} (rule {})", rule.id),
                            |m| m.render(&frame),
                        ),
                        fee,
                        notes,
                    };
                }
                Ok(false) => {}
                Err(e) => notes.push(format!(
                    "rule {:?} could not be evaluated and was skipped: {e}",
                    rule.id
                )),
            }
        }
        FeeDecision {
            policy_version: self.version.clone(),
            rule: None,
            percent: None,
            fee: Money::zero(currency),
            message: "no restocking fee".into(),
            notes,
        }
    }

    fn location_for(&self, d: Disposition) -> &str {
        match d {
            Disposition::Quarantine => &self.quarantine_location,
            Disposition::Restock
            | Disposition::Refurbish
            | Disposition::Scrap
            | Disposition::VendorReturn
            | Disposition::Replacement => &self.restock_location,
        }
    }
}

impl EligibilityRule {
    fn evaluate(
        &self,
        frame: &Frame,
        ctx: &Context<'_, '_>,
        line_no: Option<backhaul_domain::values::LineNo>,
    ) -> RuleOutcome {
        let outcome = |passed: bool, message: String| RuleOutcome {
            rule: self.id.clone(),
            line_no,
            passed,
            on_fail: self.on_fail,
            message,
        };
        let could_not = |part: &str, e: String| {
            outcome(
                false,
                format!("the rule could not be evaluated ({part}): {e}"),
            )
        };
        if let Some(applies) = &self.applies {
            match applies.eval(ctx) {
                Ok(true) => {}
                Ok(false) => return outcome(true, "not applicable".into()),
                Err(e) => return could_not("applies", e),
            }
        }
        match self.require.eval(ctx) {
            Ok(true) => outcome(
                true,
                self.pass_message
                    .as_ref()
                    .map_or_else(|| "passed".into(), |m| m.render(frame)),
            ),
            Ok(false) => outcome(false, self.message.render(frame)),
            Err(e) => could_not("require", e),
        }
    }
}

/// Checks the spec's meaning and compiles it. Returns `None` when a part
/// needed to build the policy is missing (its error is recorded).
fn build(spec: Spec, diag: &mut Diag<'_>) -> Option<Policy> {
    let version = spec.version.as_ref().map(|v| {
        if v.value.trim().is_empty() {
            diag.error(v.at, None, Some("version"), "must not be empty");
        }
        v.value.clone()
    });
    let tz = spec.timezone.as_ref().and_then(|t| match Tz::from_str(&t.value) {
        Ok(tz) => Some(tz),
        Err(_) => {
            diag.error(
                t.at,
                None,
                Some("timezone"),
                format!(
                    "unknown time zone {:?} (use an IANA name such as \"Europe/Berlin\" or \"UTC\")",
                    t.value
                ),
            );
            None
        }
    });
    let approval_valid_days = spec.approval_valid_days.and_then(|d| {
        if (1..=365).contains(&d.value) {
            Some(d.value)
        } else {
            diag.error(
                d.at,
                None,
                Some("approval_valid_days"),
                format!("must be between 1 and 365 days, got {}", d.value),
            );
            None
        }
    });
    let default_disposition = spec
        .default_disposition
        .as_ref()
        .and_then(|d| disposition(d, None, "default_disposition", diag));
    let location = |t: &Option<Text>, field: &str, default: &str, diag: &mut Diag<'_>| match t {
        Some(t) if t.value.trim().is_empty() => {
            diag.error(t.at, None, Some(field), "must not be empty");
            default.to_owned()
        }
        Some(t) => t.value.clone(),
        None => default.to_owned(),
    };
    let restock_location = location(
        &spec.restock_location,
        "restock_location",
        DEFAULT_RESTOCK_LOCATION,
        diag,
    );
    let quarantine_location = location(
        &spec.quarantine_location,
        "quarantine_location",
        DEFAULT_QUARANTINE_LOCATION,
        diag,
    );

    let lists: Vec<(String, Vec<String>)> = spec
        .lists
        .iter()
        .map(|l| (l.name.value.clone(), l.items.clone()))
        .collect();
    // Expressions are checked against one sample entry per list, so that
    // conditions over list elements get evaluated too.
    let sample_lists: Vec<(String, Vec<String>)> = spec
        .lists
        .iter()
        .map(|l| (l.name.value.clone(), vec!["x".to_owned()]))
        .collect();

    let mut terms: Vec<WarrantyTerm> = Vec::new();
    let mut term_lines: HashMap<(String, chrono::NaiveDate), usize> = HashMap::new();
    for w in &spec.warranty {
        let months = w.months.and_then(|m| match u32::try_from(m.value) {
            Ok(v) if (1..=600).contains(&v) => Some(v),
            _ => {
                diag.error(
                    m.at,
                    None,
                    Some("warranty.months"),
                    format!("must be between 1 and 600 months, got {}", m.value),
                );
                None
            }
        });
        let category = w.category.as_ref().and_then(|c| {
            if c.value.trim().is_empty() {
                diag.error(
                    c.at,
                    None,
                    Some("warranty.category"),
                    "must name a SKU category, or \"*\" for any category",
                );
                None
            } else {
                Some(c.value.clone())
            }
        });
        let (Some(category), Some(sold_from), Some(months)) = (category, w.sold_from, months)
        else {
            continue;
        };
        let key = (category.clone(), sold_from.value);
        if term_lines.contains_key(&key) {
            diag.error(
                w.at,
                None,
                Some("warranty.sold_from"),
                format!(
                    "a second [[warranty]] term for category {category:?} from {}; each category may have one term per sold_from date",
                    sold_from.value
                ),
            );
            continue;
        }
        term_lines.insert(key, w.at);
        terms.push(WarrantyTerm {
            category,
            sold_from: sold_from.value,
            months,
        });
    }
    terms.sort_by_key(|t| t.sold_from);
    let calendar = Calendar {
        tz: tz.unwrap_or(Tz::UTC),
        terms,
    };

    let env = Arc::new(Env::stdlib());
    let sample_lists_value = lists_value(&sample_lists);
    let samples = match (Synthetic::new(false), Synthetic::new(true)) {
        (Ok(low), Ok(high)) => Scope::ALL
            .iter()
            .map(|&s| {
                (
                    s,
                    [
                        low.frame(s, &calendar, &sample_lists_value),
                        high.frame(s, &calendar, &sample_lists_value),
                    ],
                )
            })
            .collect(),
        (Err(e), _) | (_, Err(e)) => {
            diag.error(
                0,
                None,
                None,
                format!("internal error building sample facts: {e}"),
            );
            return None;
        }
    };
    let mut checker = Checker::new(Arc::clone(&env), samples);

    let mut ids = Ids::default();
    let mut eligibility = Vec::new();
    for r in &spec.eligibility {
        let id = ids.check(r.id.as_ref(), r.at, diag);
        // Errors name the rule by its id even when the id itself is wrong
        // (a duplicate), so the analyst can find it.
        let label = r.id.as_ref().map(|t| t.value.trim().to_owned());
        let rule = label.as_deref();
        let scope = match r.scope.as_ref().map(|s| s.value.as_str()) {
            None | Some("line") => Some(Scope::Line),
            Some("request") => Some(Scope::Request),
            Some(other) => {
                let at = r.scope.as_ref().map_or(r.at, |s| s.at);
                diag.error(
                    at,
                    rule,
                    Some("scope"),
                    format!("must be \"line\" or \"request\", got {other:?}"),
                );
                None
            }
        };
        let on_fail = r.on_fail.as_ref().and_then(|o| match o.value.as_str() {
            "reject" => Some(Verdict::Reject),
            "review" => Some(Verdict::Review),
            other => {
                diag.error(
                    o.at,
                    rule,
                    Some("on_fail"),
                    format!("must be \"reject\" or \"review\", got {other:?}"),
                );
                None
            }
        });
        // Without a valid scope the expressions cannot be checked; the scope
        // error says why.
        let Some(scope) = scope else { continue };
        let origin = |field| Origin { rule, field, scope };
        let applies = r
            .applies
            .as_ref()
            .map(|t| checker.compile(t, origin("applies"), diag));
        let require = r
            .require
            .as_ref()
            .and_then(|t| checker.compile(t, origin("require"), diag));
        let message = r
            .message
            .as_ref()
            .and_then(|t| checker.template(t, origin("message"), diag));
        let pass_message = r
            .pass_message
            .as_ref()
            .map(|t| checker.template(t, origin("pass_message"), diag));
        if let (Some(id), Some(require), Some(on_fail), Some(message)) =
            (id, require, on_fail, message)
        {
            let applies = match applies {
                Some(None) => continue,
                Some(Some(a)) => Some(a),
                None => None,
            };
            let pass_message = match pass_message {
                Some(None) => continue,
                Some(Some(m)) => Some(m),
                None => None,
            };
            eligibility.push(EligibilityRule {
                id,
                scope,
                applies,
                require,
                on_fail,
                message,
                pass_message,
            });
        }
    }

    let mut fees = Vec::new();
    for f in &spec.fee {
        let id = ids.check(f.id.as_ref(), f.at, diag);
        // Errors name the rule by its id even when the id itself is wrong
        // (a duplicate), so the analyst can find it.
        let label = f.id.as_ref().map(|t| t.value.trim().to_owned());
        let rule = label.as_deref();
        let origin = |field| Origin {
            rule,
            field,
            scope: Scope::Unit,
        };
        let when = f
            .when
            .as_ref()
            .and_then(|t| checker.compile(t, origin("when"), diag));
        let message = f
            .message
            .as_ref()
            .map(|t| checker.template(t, origin("message"), diag));
        let charge = match (f.percent, f.amount) {
            (Some(p), None) => {
                if p.value < Decimal::ZERO || p.value > Decimal::ONE_HUNDRED {
                    diag.error(
                        p.at,
                        rule,
                        Some("percent"),
                        format!("must be between 0 and 100, got {}", p.value),
                    );
                    None
                } else {
                    Some(Charge::Percent(p.value))
                }
            }
            (None, Some(a)) => {
                if a.value < Decimal::ZERO {
                    diag.error(
                        a.at,
                        rule,
                        Some("amount"),
                        format!("must not be negative, got {}", a.value),
                    );
                    None
                } else {
                    Some(Charge::Amount(a.value))
                }
            }
            (Some(_), Some(a)) => {
                diag.error(
                    a.at,
                    rule,
                    Some("amount"),
                    "give either percent or amount, not both",
                );
                None
            }
            (None, None) if f.charge_written => None,
            (None, None) => {
                diag.error(
                    f.at,
                    rule,
                    None,
                    "missing the charge: give percent = \"…\" or amount = \"…\"",
                );
                None
            }
        };
        if let (Some(id), Some(when), Some(charge)) = (id, when, charge) {
            let message = match message {
                Some(None) => continue,
                Some(Some(m)) => Some(m),
                None => None,
            };
            fees.push(FeeRule {
                id,
                when,
                charge,
                message,
            });
        }
    }

    let mut dispositions = Vec::new();
    for d in &spec.disposition {
        let id = ids.check(d.id.as_ref(), d.at, diag);
        // Errors name the rule by its id even when the id itself is wrong
        // (a duplicate), so the analyst can find it.
        let label = d.id.as_ref().map(|t| t.value.trim().to_owned());
        let rule = label.as_deref();
        let origin = |field| Origin {
            rule,
            field,
            scope: Scope::Unit,
        };
        let when = d
            .when
            .as_ref()
            .and_then(|t| checker.compile(t, origin("when"), diag));
        let message = d
            .message
            .as_ref()
            .map(|t| checker.template(t, origin("message"), diag));
        let kind = d
            .disposition
            .as_ref()
            .and_then(|t| disposition(t, rule, "disposition", diag));
        let location = match (&d.location, kind) {
            (Some(l), Some(k)) if !takes_location(k) => {
                diag.error(
                    l.at,
                    rule,
                    Some("location"),
                    format!(
                        "only restock and quarantine take a location, not {}",
                        disposition_name(k)
                    ),
                );
                None
            }
            (Some(l), _) if l.value.trim().is_empty() => {
                diag.error(l.at, rule, Some("location"), "must not be empty");
                None
            }
            (Some(l), _) => Some(Some(l.value.clone())),
            (None, _) => Some(None),
        };
        if let (Some(id), Some(when), Some(disposition), Some(location)) =
            (id, when, kind, location)
        {
            let message = match message {
                Some(None) => continue,
                Some(Some(m)) => Some(m),
                None => None,
            };
            dispositions.push(DispositionRule {
                id,
                when,
                disposition,
                location,
                message,
            });
        }
    }

    let wants = Wants::from_needs(checker.needs());
    let lists = lists_value(&lists);
    let mut base = Context::with_env(env);
    base.add_variable_from_value("lists", lists.clone());
    Some(Policy {
        version: version?,
        calendar,
        approval_valid_days: approval_valid_days?,
        lists,
        base,
        wants,
        eligibility,
        fees,
        dispositions,
        default_disposition: default_disposition?,
        restock_location,
        quarantine_location,
    })
}

fn disposition(
    t: &Text,
    rule: Option<&str>,
    field: &str,
    diag: &mut Diag<'_>,
) -> Option<Disposition> {
    let parsed = parse_disposition(&t.value);
    if parsed.is_none() {
        let names: Vec<&str> = Disposition::ALL.into_iter().map(disposition_name).collect();
        diag.error(
            t.at,
            rule,
            Some(field),
            format!(
                "unknown disposition {:?} (one of: {})",
                t.value,
                names.join(", ")
            ),
        );
    }
    parsed
}

/// Rule ids seen so far: unique across eligibility, fee and disposition
/// rules, so that an id in a decision names one rule.
#[derive(Default)]
struct Ids {
    seen: HashMap<String, usize>,
}

impl Ids {
    fn check(&mut self, id: Option<&Text>, rule_at: usize, diag: &mut Diag<'_>) -> Option<String> {
        let id = id?;
        let value = id.value.trim();
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            diag.error(
                id.at,
                None,
                Some("id"),
                format!(
                    "must be a non-empty name without spaces, got {:?}",
                    id.value
                ),
            );
            return None;
        }
        if let Some(&first) = self.seen.get(value) {
            let line = diag.line_of(first);
            diag.error(
                id.at,
                Some(value),
                Some("id"),
                format!(
                    "duplicate rule id {value:?}, first used by the rule on line {line}; ids must be unique across all rules"
                ),
            );
            return None;
        }
        self.seen.insert(value.to_owned(), rule_at);
        Some(value.to_owned())
    }
}

// Loaded policies are shared between request handlers.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<Context<'static, 'static>>();
    assert_send_sync::<PolicyError>();
};
