//! Reading request bodies: JSON into typed requests, with errors that name
//! the failing field (`lines[0].quantity: expected a decimal string…`), and
//! the canonical form of a JSON document that idempotency compares.
//!
//! The reader walks a `serde_json::Value` by hand rather than deriving
//! `Deserialize`, because plain serde errors do not say *where* a body is
//! wrong, and the hub's tests rely on that. Unknown fields are refused, and
//! quantities and amounts must be decimal strings: a JSON number for them is
//! refused, since a float has already lost the exact value the sender meant.

use std::collections::HashSet;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Code, Problem};

/// Why a body does not fit its request; `field` is the path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyError {
    pub(crate) field: Option<String>,
    pub(crate) message: String,
}

impl BodyError {
    fn at(field: &str, message: impl Into<String>) -> Self {
        BodyError {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        BodyError {
            field: None,
            message: message.into(),
        }
    }
}

impl From<BodyError> for Problem {
    fn from(error: BodyError) -> Self {
        let detail = match &error.field {
            Some(field) => format!("{field}: {}", error.message),
            None => error.message,
        };
        Problem {
            field: error.field,
            ..Problem::new(Code::InvalidBody, detail)
        }
    }
}

/// Parses `raw` as one JSON document.
pub(crate) fn parse_json(raw: &[u8]) -> Result<Value, BodyError> {
    if raw.is_empty() {
        return Err(BodyError::whole(
            "the body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(raw).map_err(|e| BodyError::whole(format!("not valid JSON: {e}")))
}

/// Parses a body that may be absent: no bytes at all reads as `{}`, so that
/// an empty POST and `{}` are the same request to idempotency.
pub(crate) fn parse_optional_json(raw: &[u8]) -> Result<Value, BodyError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Object(Map::new()))
    } else {
        parse_json(raw)
    }
}

/// The canonical text of a JSON document: object keys sorted at every
/// level, no insignificant whitespace. Two bodies are "the same request"
/// when their canonical texts are equal, whatever their key order or
/// formatting.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            // Scalars print the same however the document was formatted.
            let _ = write!(out, "{value}");
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    let _ = write!(out, "{}", Value::String(s.to_owned()));
}

/// One JSON object of a request, with its path in the body, read field by
/// field.
#[derive(Debug, Clone)]
pub(crate) struct Object<'a> {
    /// `""` for the body itself, `lines[0]` for a nested object.
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    /// The body itself, which must be an object with no fields but `allowed`.
    pub(crate) fn root(value: &'a Value, allowed: &[&str]) -> Result<Self, BodyError> {
        Object::at(value, String::new(), allowed)
    }

    fn at(value: &'a Value, path: String, allowed: &[&str]) -> Result<Self, BodyError> {
        let Value::Object(map) = value else {
            let message = format!("expected a JSON object, got {}", type_name(value));
            return Err(if path.is_empty() {
                BodyError::whole(message)
            } else {
                BodyError::at(&path, message)
            });
        };
        let object = Object { path, map };
        // Sorted so the error names the same field whatever the key order.
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        if let Some(unknown) = keys.into_iter().find(|k| !allowed.contains(&k.as_str())) {
            return Err(BodyError::at(
                &object.path_of(unknown),
                format!("unknown field; expected one of {}", allowed.join(", ")),
            ));
        }
        Ok(object)
    }

    pub(crate) fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&'a Value, BodyError> {
        self.get(name)
            .ok_or_else(|| BodyError::at(&self.path_of(name), "missing"))
    }

    /// A non-empty string without surrounding whitespace.
    pub(crate) fn text(&self, name: &str) -> Result<String, BodyError> {
        let value = self.required(name)?;
        let Value::String(s) = value else {
            return Err(self.wrong_type(name, "a string", value));
        };
        if s.is_empty() || s.trim() != s {
            return Err(BodyError::at(
                &self.path_of(name),
                "must be non-empty, without surrounding whitespace",
            ));
        }
        Ok(s.clone())
    }

    /// Like [`Object::text`], but the field may be absent or `null`.
    pub(crate) fn optional_text(&self, name: &str) -> Result<Option<String>, BodyError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.text(name).map(Some),
        }
    }

    pub(crate) fn uuid(&self, name: &str) -> Result<Uuid, BodyError> {
        let text = self.text(name)?;
        Uuid::parse_str(&text)
            .map_err(|_| BodyError::at(&self.path_of(name), format!("{text:?} is not a UUID")))
    }

    /// An ISO 4217-shaped currency code: three upper-case letters.
    pub(crate) fn currency(&self, name: &str) -> Result<String, BodyError> {
        let text = self.text(name)?;
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(text)
        } else {
            Err(BodyError::at(
                &self.path_of(name),
                format!("{text:?} is not a currency code (three upper-case letters)"),
            ))
        }
    }

    /// An exact decimal given as a string (`"2"`, `"10.00"`). JSON numbers
    /// are refused.
    pub(crate) fn decimal(&self, name: &str) -> Result<Decimal, BodyError> {
        let value = self.required(name)?;
        let Value::String(s) = value else {
            return Err(self.wrong_type(
                name,
                "a decimal string such as \"2\" or \"10.00\"",
                value,
            ));
        };
        if s.trim() != s {
            return Err(BodyError::at(
                &self.path_of(name),
                "must not have surrounding whitespace",
            ));
        }
        Decimal::from_str_exact(s).map_err(|_| {
            BodyError::at(
                &self.path_of(name),
                format!("{s:?} is not a decimal number"),
            )
        })
    }

    /// A decimal string greater than zero (a quantity).
    pub(crate) fn positive_decimal(&self, name: &str) -> Result<Decimal, BodyError> {
        let value = self.decimal(name)?;
        if value > Decimal::ZERO {
            Ok(value)
        } else {
            Err(BodyError::at(
                &self.path_of(name),
                format!("must be greater than 0, got {value}"),
            ))
        }
    }

    /// A decimal string of zero or more (a price or an amount).
    pub(crate) fn non_negative_decimal(&self, name: &str) -> Result<Decimal, BodyError> {
        let value = self.decimal(name)?;
        if value >= Decimal::ZERO {
            Ok(value)
        } else {
            Err(BodyError::at(
                &self.path_of(name),
                format!("must not be negative, got {value}"),
            ))
        }
    }

    /// A JSON integer of at least `min` (line numbers, parcels, versions).
    pub(crate) fn integer(&self, name: &str, min: u64) -> Result<u64, BodyError> {
        let value = self.required(name)?;
        let Some(n) = value.as_u64() else {
            return Err(self.wrong_type(name, &format!("an integer of at least {min}"), value));
        };
        if n < min || i64::try_from(n).is_err() {
            return Err(BodyError::at(
                &self.path_of(name),
                format!("must be an integer of at least {min}, got {n}"),
            ));
        }
        Ok(n)
    }

    /// An RFC 3339 timestamp string.
    pub(crate) fn timestamp(&self, name: &str) -> Result<DateTime<Utc>, BodyError> {
        let text = self.text(name)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                BodyError::at(
                    &self.path_of(name),
                    format!("{text:?} is not an RFC 3339 timestamp"),
                )
            })
    }

    /// The objects of a non-empty array field, each allowed only the fields
    /// in `allowed`.
    pub(crate) fn objects(
        &self,
        name: &str,
        allowed: &[&str],
    ) -> Result<Vec<Object<'a>>, BodyError> {
        let value = self.required(name)?;
        let Value::Array(items) = value else {
            return Err(self.wrong_type(name, "an array", value));
        };
        if items.is_empty() {
            return Err(BodyError::at(&self.path_of(name), "must not be empty"));
        }
        let base = self.path_of(name);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| Object::at(item, format!("{base}[{i}]"), allowed))
            .collect()
    }

    fn wrong_type(&self, name: &str, expected: &str, got: &Value) -> BodyError {
        BodyError::at(
            &self.path_of(name),
            format!("expected {expected}, got {}", type_name(got)),
        )
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a JSON number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that line numbers are unique; `field` is the array's path.
pub(crate) fn unique_line_numbers(
    field: &str,
    numbers: impl IntoIterator<Item = u64>,
) -> Result<(), BodyError> {
    let mut seen = HashSet::new();
    for (i, number) in numbers.into_iter().enumerate() {
        if !seen.insert(number) {
            return Err(BodyError::at(
                &format!("{field}[{i}].line_no"),
                format!("line {number} appears twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_form_ignores_key_order_and_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é\""}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é\"","y":2}]}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":null,"b":[1,{"x":"é\"","y":2}]}"#);
        assert_ne!(canonical(&json!({"a": "1"})), canonical(&json!({"a": 1})));
    }

    #[test]
    fn errors_name_the_field() {
        let body = json!({"lines": [{"quantity": "1"}, {"quantity": 2.5}]});
        let root = Object::root(&body, &["lines"]).unwrap();
        let lines = root.objects("lines", &["quantity"]).unwrap();
        assert_eq!(lines[0].positive_decimal("quantity").unwrap(), Decimal::ONE);
        let error = lines[1].positive_decimal("quantity").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("lines[1].quantity"));
        assert!(error.message.contains("JSON number"), "{}", error.message);

        let error = Object::root(&json!({"rma": "R", "extra": 1}), &["rma"]).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("extra"));
        let error = root.text("missing").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("missing"));
    }

    #[test]
    fn decimals_are_exact_strings() {
        let body = json!({"a": "10.00", "b": "-1", "c": "1,5", "d": " 1", "e": "0"});
        let root = Object::root(&body, &["a", "b", "c", "d", "e"]).unwrap();
        assert_eq!(root.decimal("a").unwrap().to_string(), "10.00");
        assert!(root.non_negative_decimal("b").is_err());
        assert!(root.decimal("c").is_err());
        assert!(root.decimal("d").is_err());
        assert!(root.positive_decimal("e").is_err());
        assert!(root.non_negative_decimal("e").is_ok());
    }

    #[test]
    fn empty_optional_bodies_read_as_empty_objects() {
        assert_eq!(parse_optional_json(b"").unwrap(), json!({}));
        assert_eq!(parse_optional_json(b" {} ").unwrap(), json!({}));
        assert!(parse_json(b"").is_err());
        assert!(parse_json(b"{").is_err());
    }
}
