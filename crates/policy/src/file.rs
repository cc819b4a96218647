//! Reading the policy file: TOML text to plain, located specs. This layer
//! knows the file's shape (which tables and keys exist, of which TOML type)
//! and nothing of what the values mean; [`crate::policy`] checks meaning and
//! compiles expressions.
//!
//! It walks `toml_edit`'s syntax tree instead of deriving serde types,
//! because serde stops at the first error while an analyst needs every
//! problem at once, each with the line it is on.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::source::{Diag, Text, closest};

/// A value from the file with the byte offset it was written at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located<T> {
    pub(crate) value: T,
    pub(crate) at: usize,
}

/// The whole file, each part as written. Missing or mistyped parts are
/// `None` (the error is already recorded).
#[derive(Debug, Default)]
pub(crate) struct Spec {
    pub(crate) version: Option<Text>,
    pub(crate) timezone: Option<Text>,
    pub(crate) approval_valid_days: Option<Located<i64>>,
    pub(crate) default_disposition: Option<Text>,
    pub(crate) restock_location: Option<Text>,
    pub(crate) quarantine_location: Option<Text>,
    pub(crate) lists: Vec<ListSpec>,
    pub(crate) warranty: Vec<WarrantySpec>,
    pub(crate) eligibility: Vec<RuleSpec>,
    pub(crate) fee: Vec<FeeSpec>,
    pub(crate) disposition: Vec<DispositionSpec>,
}

#[derive(Debug)]
pub(crate) struct ListSpec {
    pub(crate) name: Text,
    pub(crate) items: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct WarrantySpec {
    pub(crate) at: usize,
    pub(crate) category: Option<Text>,
    pub(crate) sold_from: Option<Located<NaiveDate>>,
    pub(crate) months: Option<Located<i64>>,
}

#[derive(Debug)]
pub(crate) struct RuleSpec {
    pub(crate) at: usize,
    pub(crate) id: Option<Text>,
    pub(crate) scope: Option<Text>,
    pub(crate) applies: Option<Text>,
    pub(crate) require: Option<Text>,
    pub(crate) on_fail: Option<Text>,
    pub(crate) message: Option<Text>,
    pub(crate) pass_message: Option<Text>,
}

#[derive(Debug)]
pub(crate) struct FeeSpec {
    pub(crate) at: usize,
    pub(crate) id: Option<Text>,
    pub(crate) when: Option<Text>,
    pub(crate) percent: Option<Located<Decimal>>,
    pub(crate) amount: Option<Located<Decimal>>,
    /// Whether `percent` or `amount` was written at all, so that a
    /// malformed one is not also reported as missing.
    pub(crate) charge_written: bool,
    pub(crate) message: Option<Text>,
}

#[derive(Debug)]
pub(crate) struct DispositionSpec {
    pub(crate) at: usize,
    pub(crate) id: Option<Text>,
    pub(crate) when: Option<Text>,
    pub(crate) disposition: Option<Text>,
    pub(crate) location: Option<Text>,
    pub(crate) message: Option<Text>,
}

const TOP_KEYS: &[&str] = &[
    "version",
    "timezone",
    "approval_valid_days",
    "default_disposition",
    "restock_location",
    "quarantine_location",
    "lists",
    "warranty",
    "eligibility",
    "fee",
    "disposition",
];
const WARRANTY_KEYS: &[&str] = &["category", "sold_from", "months"];
const RULE_KEYS: &[&str] = &[
    "id",
    "scope",
    "applies",
    "require",
    "on_fail",
    "message",
    "pass_message",
];
const FEE_KEYS: &[&str] = &["id", "when", "percent", "amount", "message"];
const DISPOSITION_KEYS: &[&str] = &["id", "when", "disposition", "location", "message"];

/// Reads `text` into a spec, recording every problem in `diag`. Returns
/// `None` only for a TOML syntax error, after which nothing can be read.
pub(crate) fn read(text: &str, diag: &mut Diag<'_>) -> Option<Spec> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            diag.error(
                at,
                None,
                None,
                format!("TOML syntax: {}", e.message().trim()),
            );
            return None;
        }
    };
    let root = Fields {
        table: doc.as_table(),
        at: 0,
        text,
        rule: None,
        prefix: "",
    };
    root.unknown_keys(TOP_KEYS, "the top level", diag);
    let mut spec = Spec {
        version: root.required_string("version", diag),
        timezone: root.required_string("timezone", diag),
        approval_valid_days: root.required_integer("approval_valid_days", diag),
        default_disposition: root.required_string("default_disposition", diag),
        restock_location: root.string("restock_location", diag),
        quarantine_location: root.string("quarantine_location", diag),
        ..Spec::default()
    };
    if let Some(item) = doc.as_table().get("lists") {
        spec.lists = read_lists(item, text, diag);
    }
    for (at, table) in root.tables("warranty", diag) {
        let f = root.nested(table, at, None, "warranty.");
        f.unknown_keys(WARRANTY_KEYS, "a [[warranty]] term", diag);
        spec.warranty.push(WarrantySpec {
            at,
            category: f.required_string("category", diag),
            sold_from: f.date("sold_from", diag),
            months: f.required_integer("months", diag),
        });
    }
    for (at, table) in root.tables("eligibility", diag) {
        let id = root.nested(table, at, None, "").required_string("id", diag);
        let f = root.nested(table, at, id.as_ref().map(|t| t.value.clone()), "");
        f.unknown_keys(RULE_KEYS, "an [[eligibility]] rule", diag);
        spec.eligibility.push(RuleSpec {
            at,
            scope: f.string("scope", diag),
            applies: f.string("applies", diag),
            require: f.required_string("require", diag),
            on_fail: f.required_string("on_fail", diag),
            message: f.required_string("message", diag),
            pass_message: f.string("pass_message", diag),
            id,
        });
    }
    for (at, table) in root.tables("fee", diag) {
        let id = root.nested(table, at, None, "").required_string("id", diag);
        let f = root.nested(table, at, id.as_ref().map(|t| t.value.clone()), "");
        f.unknown_keys(FEE_KEYS, "a [[fee]] rule", diag);
        spec.fee.push(FeeSpec {
            at,
            when: f.required_string("when", diag),
            percent: f.decimal("percent", diag),
            amount: f.decimal("amount", diag),
            charge_written: table.contains_key("percent") || table.contains_key("amount"),
            message: f.string("message", diag),
            id,
        });
    }
    for (at, table) in root.tables("disposition", diag) {
        let id = root.nested(table, at, None, "").required_string("id", diag);
        let f = root.nested(table, at, id.as_ref().map(|t| t.value.clone()), "");
        f.unknown_keys(DISPOSITION_KEYS, "a [[disposition]] rule", diag);
        spec.disposition.push(DispositionSpec {
            at,
            when: f.required_string("when", diag),
            disposition: f.required_string("disposition", diag),
            location: f.string("location", diag),
            message: f.string("message", diag),
            id,
        });
    }
    Some(spec)
}

fn read_lists(item: &Item, text: &str, diag: &mut Diag<'_>) -> Vec<ListSpec> {
    let at = item.span().map_or(0, |s| s.start);
    let Some(table) = item.as_table_like() else {
        diag.error(
            at,
            None,
            Some("lists"),
            "must be a table of named lists, written [lists]",
        );
        return Vec::new();
    };
    let mut lists = Vec::new();
    for (name, value) in table.iter() {
        let key_at = key_offset(table, name).unwrap_or(at);
        let field = format!("lists.{name}");
        if !is_identifier(name) {
            diag.error(
                key_at,
                None,
                Some(&field),
                "a list name must be letters, digits and underscores, starting with a letter, so expressions can say lists.<name>",
            );
            continue;
        }
        let Some(array) = value.as_array() else {
            diag.error(
                item_offset(value).unwrap_or(key_at),
                None,
                Some(&field),
                format!("must be a list of strings, got {}", describe(value)),
            );
            continue;
        };
        let mut items = Vec::new();
        for element in array.iter() {
            match element.as_str() {
                Some(s) => items.push(s.to_owned()),
                None => diag.error(
                    element.span().map_or(key_at, |s| s.start),
                    None,
                    Some(&field),
                    format!("must be a list of strings, got {}", describe_value(element)),
                ),
            }
        }
        let raw = text.get(key_at..key_at + name.len()).unwrap_or(name);
        lists.push(ListSpec {
            name: Text::new(name.to_owned(), key_at, &format!("\"{raw}\"")),
            items,
        });
    }
    lists
}

/// A table being read, with what is needed to locate its errors.
struct Fields<'t> {
    table: &'t dyn TableLike,
    /// Where the table starts (its header), for "missing field" errors.
    at: usize,
    text: &'t str,
    rule: Option<String>,
    /// Prefix of field names in errors, e.g. `warranty.`.
    prefix: &'static str,
}

impl<'t> Fields<'t> {
    fn nested<'u>(
        &self,
        table: &'u dyn TableLike,
        at: usize,
        rule: Option<String>,
        prefix: &'static str,
    ) -> Fields<'u>
    where
        't: 'u,
    {
        Fields {
            table,
            at,
            text: self.text,
            rule,
            prefix,
        }
    }

    fn error(&self, diag: &mut Diag<'_>, at: usize, key: &str, message: impl Into<String>) {
        let field = format!("{}{key}", self.prefix);
        diag.error(at, self.rule.as_deref(), Some(&field), message);
    }

    fn unknown_keys(&self, allowed: &[&str], what: &str, diag: &mut Diag<'_>) {
        for (key, _) in self.table.iter() {
            if allowed.contains(&key) {
                continue;
            }
            let at = key_offset(self.table, key).unwrap_or(self.at);
            let hint = closest(key, allowed.iter().copied())
                .map(|c| format!("did you mean {c:?}? "))
                .unwrap_or_default();
            self.error(
                diag,
                at,
                key,
                format!(
                    "unknown field {key:?} in {what} ({hint}expected one of: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn get(&self, key: &str) -> Option<(&'t Item, usize)> {
        let item = self.table.get(key)?;
        let at = item_offset(item)
            .or_else(|| key_offset(self.table, key))
            .unwrap_or(self.at);
        Some((item, at))
    }

    fn missing(&self, key: &str, diag: &mut Diag<'_>) {
        self.error(diag, self.at, key, format!("missing field {key:?}"));
    }

    fn string(&self, key: &str, diag: &mut Diag<'_>) -> Option<Text> {
        let (item, at) = self.get(key)?;
        match item.as_str() {
            Some(s) => {
                let raw = item
                    .span()
                    .and_then(|span| self.text.get(span))
                    .unwrap_or("");
                Some(Text::new(s.to_owned(), at, raw))
            }
            None => {
                self.error(
                    diag,
                    at,
                    key,
                    format!("must be a string in quotes, got {}", describe(item)),
                );
                None
            }
        }
    }

    fn required_string(&self, key: &str, diag: &mut Diag<'_>) -> Option<Text> {
        if self.table.get(key).is_none() {
            self.missing(key, diag);
        }
        self.string(key, diag)
    }

    fn required_integer(&self, key: &str, diag: &mut Diag<'_>) -> Option<Located<i64>> {
        let Some((item, at)) = self.get(key) else {
            self.missing(key, diag);
            return None;
        };
        match item.as_integer() {
            Some(value) => Some(Located { value, at }),
            None => {
                self.error(
                    diag,
                    at,
                    key,
                    format!("must be a whole number, got {}", describe(item)),
                );
                None
            }
        }
    }

    /// An exact decimal: a string such as `"12.5"` or an integer. TOML
    /// floats are refused because they are binary approximations.
    fn decimal(&self, key: &str, diag: &mut Diag<'_>) -> Option<Located<Decimal>> {
        let (item, at) = self.get(key)?;
        let parsed = match item.as_value() {
            Some(Value::String(s)) => Decimal::from_str_exact(s.value().trim())
                .map_err(|_| format!("{:?} is not a decimal number", s.value())),
            Some(Value::Integer(i)) => Ok(Decimal::from(*i.value())),
            Some(Value::Float(f)) => Err(format!(
                "write decimals in quotes so they stay exact, e.g. \"{}\"",
                f.value()
            )),
            _ => Err(format!(
                "must be a decimal number in quotes, e.g. \"12.5\", got {}",
                describe(item)
            )),
        };
        match parsed {
            Ok(value) => Some(Located { value, at }),
            Err(message) => {
                self.error(diag, at, key, message);
                None
            }
        }
    }

    /// A calendar date: a TOML local date (`2025-01-01`) or a string.
    fn date(&self, key: &str, diag: &mut Diag<'_>) -> Option<Located<NaiveDate>> {
        let Some((item, at)) = self.get(key) else {
            self.missing(key, diag);
            return None;
        };
        let raw = match item.as_value() {
            Some(Value::String(s)) => s.value().clone(),
            Some(Value::Datetime(d)) => d.value().to_string(),
            _ => String::new(),
        };
        match NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
            Ok(value) => Some(Located { value, at }),
            Err(_) => {
                self.error(
                    diag,
                    at,
                    key,
                    format!(
                        "must be a date such as 2025-01-01, got {}",
                        if raw.is_empty() {
                            describe(item)
                        } else {
                            format!("{raw:?}")
                        }
                    ),
                );
                None
            }
        }
    }

    /// The tables of an array of tables (`[[fee]]`, or `fee = [{…}]`).
    fn tables(&self, key: &str, diag: &mut Diag<'_>) -> Vec<(usize, &'t dyn TableLike)> {
        let Some((item, at)) = self.get(key) else {
            return Vec::new();
        };
        if let Some(array) = item.as_array_of_tables() {
            return array
                .iter()
                .map(|t| (t.span().map_or(at, |s| s.start), t as &dyn TableLike))
                .collect();
        }
        if let Some(array) = item.as_array() {
            let mut tables = Vec::new();
            for value in array.iter() {
                let value_at = value.span().map_or(at, |s| s.start);
                match value.as_inline_table() {
                    Some(t) => tables.push((value_at, t as &dyn TableLike)),
                    None => self.error(
                        diag,
                        value_at,
                        key,
                        format!("must be a table, got {}", describe_value(value)),
                    ),
                }
            }
            return tables;
        }
        self.error(
            diag,
            at,
            key,
            format!(
                "must be written as [[{key}]] tables, got {}",
                describe(item)
            ),
        );
        Vec::new()
    }
}

fn key_offset(table: &dyn TableLike, key: &str) -> Option<usize> {
    table
        .get_key_value(key)
        .and_then(|(k, _)| k.span())
        .map(|s| s.start)
}

fn item_offset(item: &Item) -> Option<usize> {
    item.span().map(|s| s.start)
}

fn describe(item: &Item) -> String {
    match item {
        Item::None => "nothing".into(),
        Item::Value(v) => describe_value(v),
        Item::Table(_) => "a table".into(),
        Item::ArrayOfTables(_) => "an array of tables".into(),
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {:?}", s.value()),
        Value::Integer(i) => format!("the number {}", i.value()),
        Value::Float(f) => format!("the number {}", f.value()),
        Value::Boolean(b) => format!("{}", b.value()),
        Value::Datetime(d) => format!("the date {}", d.value()),
        Value::Array(_) => "a list".into(),
        Value::InlineTable(_) => "a table".into(),
    }
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
