//! `Policy::load` checks: every kind of mistake an analyst can make is
//! reported with its line, column, rule and field, all at once.

// Helpers outside #[test] functions unwrap test data too.
#![allow(clippy::unwrap_used)]

use backhaul_policy::{Policy, PolicyError};

fn errors(text: &str) -> Vec<PolicyError> {
    match Policy::load("policy.toml", text) {
        Ok(_) => panic!("expected errors, the policy loaded:\n{text}"),
        Err(e) => e.into_vec(),
    }
}

/// What one error should say: line, column (0 = don't care), rule, field
/// and a piece of the message.
struct Expect {
    line: usize,
    column: usize,
    rule: Option<&'static str>,
    field: Option<&'static str>,
    message: &'static str,
}

fn check(name: &str, text: &str, expected: &[Expect]) {
    let got = errors(text);
    assert_eq!(
        got.len(),
        expected.len(),
        "{name}: expected {} errors, got:\n{}",
        expected.len(),
        got.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.line, e.line, "{name}: line of {g}");
        if e.column != 0 {
            assert_eq!(g.column, e.column, "{name}: column of {g}");
        }
        assert_eq!(g.rule.as_deref(), e.rule, "{name}: rule of {g}");
        assert_eq!(g.field.as_deref(), e.field, "{name}: field of {g}");
        assert!(
            g.message.contains(e.message),
            "{name}: message of {g} should contain {:?}",
            e.message
        );
        assert_eq!(g.file, "policy.toml");
    }
}

const HEADER: &str = "version = \"v1\"\ntimezone = \"Europe/Berlin\"\napproval_valid_days = 30\ndefault_disposition = \"quarantine\"\n";

#[test]
fn unknown_field_in_an_expression_reads_like_the_docs_promise() {
    let text = format!(
        "{HEADER}
[[eligibility]]
id = \"window.electronics\"
applies = \"sku.categry == 'electronics'\"
require = \"line.days_since_ship <= 30\"
on_fail = \"reject\"
message = \"too late\"
"
    );
    let got = errors(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].to_string(),
        "policy.toml:8:12: rule \"window.electronics\", field \"applies\": \
         unknown field \"sku.categry\"; did you mean \"sku.category\"? \
         (sku has: category, code, known, lot_controlled, returnable, serial_controlled, vendor)"
    );
}

#[test]
fn each_kind_of_mistake_is_located() {
    let rule = |body: &str| {
        format!(
            "{HEADER}\n[[eligibility]]\nid = \"r1\"\non_fail = \"reject\"\nmessage = \"m\"\n{body}\n"
        )
    };
    // Rule bodies start on line 10.
    check(
        "TOML syntax",
        &format!("{HEADER}\n[[eligibility]]\nid = \"r1\nrequire = \"true\"\n"),
        &[Expect {
            line: 7,
            column: 0,
            rule: None,
            field: None,
            message: "TOML syntax",
        }],
    );
    check(
        "unknown top-level key",
        &format!("{HEADER}timezon = \"UTC\"\n"),
        &[Expect {
            line: 5,
            column: 1,
            rule: None,
            field: Some("timezon"),
            message: "unknown field \"timezon\" in the top level (did you mean \"timezone\"?",
        }],
    );
    check(
        "unknown key in a rule",
        &rule("require = \"true\"\nrequires = \"true\""),
        &[Expect {
            line: 11,
            column: 1,
            rule: Some("r1"),
            field: Some("requires"),
            message: "did you mean \"require\"?",
        }],
    );
    check(
        "missing require",
        &rule(""),
        &[Expect {
            line: 6,
            column: 1,
            rule: Some("r1"),
            field: Some("require"),
            message: "missing field \"require\"",
        }],
    );
    check(
        "duplicate rule ids",
        &format!(
            "{HEADER}\n[[eligibility]]\nid = \"r1\"\nrequire = \"true\"\non_fail = \"reject\"\nmessage = \"m\"\n\n[[disposition]]\nid = \"r1\"\nwhen = \"true\"\ndisposition = \"scrap\"\n"
        ),
        &[Expect {
            line: 13,
            column: 6,
            rule: Some("r1"),
            field: Some("id"),
            message: "duplicate rule id \"r1\", first used by the rule on line 6",
        }],
    );
    check(
        "bad time zone",
        &HEADER.replace("Europe/Berlin", "Europe/Berlinn"),
        &[Expect {
            line: 2,
            column: 12,
            rule: None,
            field: Some("timezone"),
            message: "unknown time zone \"Europe/Berlinn\"",
        }],
    );
    check(
        "bad decimal and float decimal",
        &format!(
            "{HEADER}\n[[fee]]\nid = \"f1\"\nwhen = \"true\"\npercent = \"12,5\"\n\n[[fee]]\nid = \"f2\"\nwhen = \"true\"\namount = 2.5\n"
        ),
        &[
            Expect {
                line: 9,
                column: 11,
                rule: Some("f1"),
                field: Some("percent"),
                message: "\"12,5\" is not a decimal number",
            },
            Expect {
                line: 14,
                column: 10,
                rule: Some("f2"),
                field: Some("amount"),
                message: "write decimals in quotes",
            },
        ],
    );
    check(
        "percent out of range, both and neither charge",
        &format!(
            "{HEADER}\n[[fee]]\nid = \"f1\"\nwhen = \"true\"\npercent = \"120\"\n\n[[fee]]\nid = \"f2\"\nwhen = \"true\"\npercent = \"1\"\namount = \"2\"\n\n[[fee]]\nid = \"f3\"\nwhen = \"true\"\n"
        ),
        &[
            Expect {
                line: 9,
                column: 0,
                rule: Some("f1"),
                field: Some("percent"),
                message: "between 0 and 100",
            },
            Expect {
                line: 15,
                column: 0,
                rule: Some("f2"),
                field: Some("amount"),
                message: "not both",
            },
            Expect {
                line: 17,
                column: 1,
                rule: Some("f3"),
                field: None,
                message: "missing the charge",
            },
        ],
    );
    check(
        "unknown dispositions, location where none applies",
        &format!(
            "{}\n[[disposition]]\nid = \"d1\"\nwhen = \"true\"\ndisposition = \"recycle\"\n\n[[disposition]]\nid = \"d2\"\nwhen = \"true\"\ndisposition = \"scrap\"\nlocation = \"BIN\"\n",
            HEADER.replace("\"quarantine\"", "\"shred\"")
        ),
        &[
            Expect {
                line: 4,
                column: 23,
                rule: None,
                field: Some("default_disposition"),
                message: "unknown disposition \"shred\" (one of: restock, refurbish, scrap, quarantine, vendor_return, replacement)",
            },
            Expect {
                line: 9,
                column: 15,
                rule: Some("d1"),
                field: Some("disposition"),
                message: "unknown disposition \"recycle\"",
            },
            Expect {
                line: 15,
                column: 12,
                rule: Some("d2"),
                field: Some("location"),
                message: "only restock and quarantine take a location, not scrap",
            },
        ],
    );
    check(
        "CEL syntax error with its column",
        &rule("require = \"line.quantity <= \""),
        &[Expect {
            line: 10,
            column: 29,
            rule: Some("r1"),
            field: Some("require"),
            message: "CEL syntax error",
        }],
    );
    check(
        "unknown variable",
        &rule("require = \"order.found\""),
        &[Expect {
            line: 10,
            column: 12,
            rule: Some("r1"),
            field: Some("require"),
            message: "unknown variable \"order\"",
        }],
    );
    check(
        "variable of another scope",
        &format!(
            "{HEADER}\n[[eligibility]]\nid = \"r1\"\nscope = \"request\"\non_fail = \"reject\"\nmessage = \"m\"\nrequire = \"line.returnable\"\n"
        ),
        &[Expect {
            line: 11,
            column: 12,
            rule: Some("r1"),
            field: Some("require"),
            message: "variable \"line\" is not available in eligibility rules with scope = \"request\"",
        }],
    );
    check(
        "type error found by evaluation",
        &rule("require = \"line.days_since_ship <= '30'\""),
        &[Expect {
            line: 10,
            column: 0,
            rule: Some("r1"),
            field: Some("require"),
            message: "type error: \"<=\" cannot be applied to (int, string)",
        }],
    );
    check(
        "comparison that can never be true",
        &rule("require = \"line.quantity == '2'\""),
        &[Expect {
            line: 10,
            column: 0,
            rule: Some("r1"),
            field: Some("require"),
            message: "compares a number with a string",
        }],
    );
    check(
        "membership of the wrong type",
        &rule("require = \"line.line_no in customer.ancestors\""),
        &[Expect {
            line: 10,
            column: 0,
            rule: Some("r1"),
            field: Some("require"),
            message: "looks for a number in a list of strings",
        }],
    );
    check(
        "result is not a boolean",
        &rule("require = \"line.days_since_ship\""),
        &[Expect {
            line: 10,
            column: 0,
            rule: Some("r1"),
            field: Some("require"),
            message: "must give true or false, but gives a whole number",
        }],
    );
    check(
        "unknown function",
        &rule("require = \"isBlocked(customer.account)\""),
        &[Expect {
            line: 10,
            column: 0,
            rule: Some("r1"),
            field: Some("require"),
            message: "unknown function or variable \"isBlocked\"",
        }],
    );
    check(
        "unknown list",
        &format!(
            "{HEADER}[lists]\nvip = [\"A\"]\n\n[[eligibility]]\nid = \"r1\"\non_fail = \"reject\"\nmessage = \"m\"\nrequire = \"customer.account in lists.vips\"\n"
        ),
        &[Expect {
            line: 12,
            column: 32,
            rule: Some("r1"),
            field: Some("require"),
            message: "unknown list \"vips\"; did you mean \"lists.vip\"? (lists has: vip)",
        }],
    );
    check(
        "placeholder naming nothing, unclosed placeholder",
        &format!(
            "{HEADER}\n[[eligibility]]\nid = \"r1\"\non_fail = \"reject\"\nrequire = \"true\"\nmessage = \"day {{line.days}}\"\npass_message = \"ok {{line.sku\"\n"
        ),
        &[
            Expect {
                line: 10,
                column: 17,
                rule: Some("r1"),
                field: Some("message"),
                message: "unknown field \"line.days\"",
            },
            Expect {
                line: 11,
                column: 20,
                rule: Some("r1"),
                field: Some("pass_message"),
                message: "never closed",
            },
        ],
    );
    check(
        "scope and on_fail values",
        &format!(
            "{HEADER}\n[[eligibility]]\nid = \"r1\"\nscope = \"order\"\non_fail = \"deny\"\nrequire = \"true\"\nmessage = \"m\"\n"
        ),
        &[
            Expect {
                line: 8,
                column: 9,
                rule: Some("r1"),
                field: Some("scope"),
                message: "must be \"line\" or \"request\", got \"order\"",
            },
            Expect {
                line: 9,
                column: 11,
                rule: Some("r1"),
                field: Some("on_fail"),
                message: "must be \"reject\" or \"review\", got \"deny\"",
            },
        ],
    );
    check(
        "warranty terms",
        &format!(
            "{HEADER}\n[[warranty]]\ncategory = \"tv\"\nsold_from = 2024-01-01\nmonths = 12\n\n[[warranty]]\ncategory = \"tv\"\nsold_from = \"2024-01-01\"\nmonths = 24\n\n[[warranty]]\ncategory = \"radio\"\nsold_from = \"January\"\nmonths = 0\n"
        ),
        &[
            Expect {
                line: 11,
                column: 1,
                rule: None,
                field: Some("warranty.sold_from"),
                message: "a second [[warranty]] term for category \"tv\"",
            },
            Expect {
                line: 18,
                column: 13,
                rule: None,
                field: Some("warranty.sold_from"),
                message: "must be a date such as 2025-01-01, got \"January\"",
            },
            Expect {
                line: 19,
                column: 10,
                rule: None,
                field: Some("warranty.months"),
                message: "between 1 and 600",
            },
        ],
    );
    check(
        "header values",
        "version = \"\"\ntimezone = 1\napproval_valid_days = 0\n",
        &[
            Expect {
                line: 1,
                column: 1,
                rule: None,
                field: Some("default_disposition"),
                message: "missing field \"default_disposition\"",
            },
            Expect {
                line: 1,
                column: 11,
                rule: None,
                field: Some("version"),
                message: "must not be empty",
            },
            Expect {
                line: 2,
                column: 12,
                rule: None,
                field: Some("timezone"),
                message: "must be a string in quotes, got the number 1",
            },
            Expect {
                line: 3,
                column: 23,
                rule: None,
                field: Some("approval_valid_days"),
                message: "between 1 and 365",
            },
        ],
    );
}

#[test]
fn errors_inside_multi_line_expressions_point_at_their_line() {
    let text = format!(
        "{HEADER}
[[eligibility]]
id = \"window\"
applies = \"\"\"
line.shipped
  && customer.segmnt != 'key_account'\"\"\"
require = \"true\"
on_fail = \"reject\"
message = \"m\"
"
    );
    let got = errors(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].line, got[0].column), (10, 6));
    assert!(
        got[0]
            .message
            .contains("did you mean \"customer.segment\"?")
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = format!(
        "{HEADER}colour = \"red\"

[[eligibility]]
id = \"a\"
require = \"line.nope\"
on_fail = \"reject\"
message = \"m\"

[[eligibility]]
id = \"a\"
require = \"true\"
on_fail = \"maybe\"
message = \"m\"

[[fee]]
id = \"f\"
when = \"unit.condition == 1\"
percent = \"x\"
"
    );
    let got = errors(&text);
    let lines: Vec<usize> = got.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![5, 9, 14, 16, 21, 22], "{got:#?}");
    assert_eq!(
        got[3].rule.as_deref(),
        Some("a"),
        "errors in a rule with a duplicate id still name it"
    );
    let rendered = Policy::load("policy.toml", &text).unwrap_err().to_string();
    assert_eq!(
        rendered.lines().count(),
        6,
        "one line per error:\n{rendered}"
    );
}

#[test]
fn a_valid_policy_with_every_section_loads() {
    let text = format!(
        "{HEADER}restock_location = \"A1\"
quarantine_location = \"Q1\"

[lists]
blocked = []

[[warranty]]
category = \"*\"
sold_from = 2020-01-01
months = 6

[[eligibility]]
id = \"r\"
scope = \"request\"
require = \"!(customer.account in lists.blocked)\"
on_fail = \"reject\"
message = \"{{customer.account}} is blocked {{{{sic}}}}\"

[[fee]]
id = \"f\"
when = \"unit.condition == 'OPENED'\"
amount = 5

[[disposition]]
id = \"d\"
when = \"unit.condition == 'NEW'\"
disposition = \"restock\"
location = \"A2\"
"
    );
    let p = Policy::load("policy.toml", &text).unwrap();
    assert_eq!(p.version(), "v1");
    assert_eq!(p.timezone(), chrono_tz::Europe::Berlin);
}
