//! The field mapping of the generic REST connectors, pure: where each
//! canonical field of an action goes in the target's JSON body, where each
//! result field is read from in its answer, and the path templates with
//! their placeholders. Everything is checked when the connector is built,
//! so a typo in a mapping fails at start-up naming its config key, never on
//! the first return.
//!
//! Field paths (request side) are dotted names with at most one repeated
//! segment marked `[]`: `reference`, `header.site`, `items[].itemCode`. The
//! canonical fields of the action's lines (`lines[].sku`) must go into a
//! repeated segment, and every line field of one request into the same
//! array, one element per action line. Names containing a dot cannot be
//! written; no WMS or carrier API we have seen uses them.
//!
//! Answer paths are dotted names where a segment of digits indexes an
//! array: `data.asnNumber`, `labels.0.trackingNumber`.

use std::collections::BTreeMap;

use backhaul_domain::action::ActionLine;
use backhaul_engine::{DeliveryRequest, SinkError};
use serde_json::{Map, Value};

/// A canonical field of an action a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Rma,
    ReturnId,
    Customer,
    OrderRef,
    Site,
    /// The delivery's idempotency key, for targets that keep it in a field
    /// (their own reference) instead of a header.
    DeliveryKey,
    /// The number of the document this action refers to (the expected
    /// receipt a cancellation cancels).
    Number,
    /// The label a void is for.
    TrackingNumber,
    LineNo,
    Sku,
    Quantity,
}

/// The fields of the return every operation may carry, whatever its kind;
/// the line fields come on top where an action has lines.
pub(crate) const HEADER_FIELDS: [Field; 6] = [
    Field::Rma,
    Field::ReturnId,
    Field::Customer,
    Field::OrderRef,
    Field::Site,
    Field::DeliveryKey,
];

impl Field {
    const ALL: [Field; 11] = [
        Field::Rma,
        Field::ReturnId,
        Field::Customer,
        Field::OrderRef,
        Field::Site,
        Field::DeliveryKey,
        Field::Number,
        Field::TrackingNumber,
        Field::LineNo,
        Field::Sku,
        Field::Quantity,
    ];

    /// The field as mappings name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Rma => "rma",
            Field::ReturnId => "return_id",
            Field::Customer => "customer",
            Field::OrderRef => "order_ref",
            Field::Site => "site",
            Field::DeliveryKey => "delivery_key",
            Field::Number => "number",
            Field::TrackingNumber => "tracking_number",
            Field::LineNo => "lines[].line_no",
            Field::Sku => "lines[].sku",
            Field::Quantity => "lines[].quantity",
        }
    }

    fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the field is one per action line.
    pub(crate) fn is_line(self) -> bool {
        match self {
            Field::LineNo | Field::Sku | Field::Quantity => true,
            Field::Rma
            | Field::ReturnId
            | Field::Customer
            | Field::OrderRef
            | Field::Site
            | Field::DeliveryKey
            | Field::Number
            | Field::TrackingNumber => false,
        }
    }

    /// The value of a header field for one delivery; `None` for line fields.
    /// A value the action lacks is a business error naming the field.
    fn header_value(
        self,
        request: &DeliveryRequest<'_>,
        number: Option<&str>,
    ) -> Result<Option<String>, SinkError> {
        let a = request.action;
        let missing = |what: &str| {
            SinkError::business(
                "invalid_action",
                format!("{} has no {what} to send", a.kind.as_str()),
            )
        };
        Ok(Some(match self {
            Field::Rma => a.rma_number.clone(),
            Field::ReturnId => a.return_id.to_string(),
            Field::Customer => a.customer.to_string(),
            Field::OrderRef => a.order_ref.to_string(),
            Field::Site => a.site.to_string(),
            Field::DeliveryKey => request.key.to_owned(),
            Field::Number => number.ok_or_else(|| missing("document number"))?.to_owned(),
            Field::TrackingNumber => a
                .tracking_number
                .as_ref()
                .ok_or_else(|| missing("tracking number"))?
                .to_string(),
            Field::LineNo | Field::Sku | Field::Quantity => return Ok(None),
        }))
    }

    /// The JSON value of a line field: line numbers and quantities as JSON
    /// numbers (checked to be exact), SKUs as strings.
    fn line_value(self, line: &ActionLine) -> Result<Value, SinkError> {
        match self {
            Field::LineNo => Ok(Value::from(line.line_no.get())),
            Field::Sku => Ok(Value::from(line.sku.to_string())),
            Field::Quantity => crate::vendor::number(line.quantity.get(), "quantity"),
            Field::Rma
            | Field::ReturnId
            | Field::Customer
            | Field::OrderRef
            | Field::Site
            | Field::DeliveryKey
            | Field::Number
            | Field::TrackingNumber => Err(SinkError::business(
                "encode_failed",
                format!("{} is not a line field", self.name()),
            )),
        }
    }
}

/// A target field path: the object keys before the repeated segment, and
/// those inside each element of the array if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetPath {
    head: Vec<String>,
    /// Keys inside each array element, when the path has a `[]` segment.
    element: Option<Vec<String>>,
}

impl TargetPath {
    /// Parses `items[].itemCode`; the error says what is wrong with it.
    pub(crate) fn parse(raw: &str) -> Result<TargetPath, String> {
        let mut head = Vec::new();
        let mut element: Option<Vec<String>> = None;
        if raw.is_empty() {
            return Err("an empty field path".to_owned());
        }
        for segment in raw.split('.') {
            let (name, repeated) = match segment.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (segment, false),
            };
            if name.is_empty() || name.contains(['[', ']']) {
                return Err(format!(
                    "`{raw}`: `{segment}` is not a field name (write `a.b`, or `items[].b` for one element per line)"
                ));
            }
            let keys = match element.as_mut() {
                Some(_) if repeated => {
                    return Err(format!("`{raw}`: only one `[]` segment is supported"));
                }
                Some(keys) => keys,
                None => &mut head,
            };
            keys.push(name.to_owned());
            if repeated {
                element = Some(Vec::new());
            }
        }
        if element.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!(
                "`{raw}`: a `[]` segment must be followed by the field inside each element"
            ));
        }
        Ok(TargetPath { head, element })
    }

    fn is_repeated(&self) -> bool {
        self.element.is_some()
    }

    /// Every key of the path in order, `[]` marking the array, for conflict
    /// checks.
    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.head.iter().map(String::as_str).collect();
        if let Some(element) = &self.element {
            keys.push("[]");
            keys.extend(element.iter().map(String::as_str));
        }
        keys
    }
}

/// A request body mapping, checked: canonical fields to target paths and
/// constant values at target paths.
#[derive(Debug, Clone)]
pub(crate) struct BodyMapping {
    fields: Vec<(Field, TargetPath)>,
    constants: Vec<(TargetPath, Value)>,
}

impl BodyMapping {
    /// Checks a mapping from config. `allowed` are the canonical fields this
    /// operation can fill; `key` is the config key errors name
    /// (`rest_wms.receipt`).
    pub(crate) fn compile(
        key: &str,
        fields: &BTreeMap<String, String>,
        constants: &BTreeMap<String, Value>,
        allowed: &[Field],
    ) -> Result<BodyMapping, String> {
        let mut out = BodyMapping {
            fields: Vec::new(),
            constants: Vec::new(),
        };
        let names = || {
            allowed
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (canonical, target) in fields {
            let field = Field::parse(canonical)
                .filter(|f| allowed.contains(f))
                .ok_or_else(|| {
                    format!(
                        "{key}.fields: unknown canonical field `{canonical}` (this operation has: {})",
                        names()
                    )
                })?;
            let path = TargetPath::parse(target)
                .map_err(|e| format!("{key}.fields.\"{canonical}\": {e}"))?;
            if field.is_line() != path.is_repeated() {
                return Err(format!(
                    "{key}.fields.\"{canonical}\": `{target}` {}",
                    if field.is_line() {
                        "must have a `[]` segment: a line field is one value per line"
                    } else {
                        "must not have a `[]` segment: the field is one value per request"
                    }
                ));
            }
            out.fields.push((field, path));
        }
        for (target, value) in constants {
            let path =
                TargetPath::parse(target).map_err(|e| format!("{key}.static.\"{target}\": {e}"))?;
            if path.is_repeated() {
                return Err(format!(
                    "{key}.static.\"{target}\": constants cannot go into line elements"
                ));
            }
            out.constants.push((path, value.clone()));
        }
        // One array of lines: two line fields into different arrays would
        // make two arrays the target would have to zip back together.
        let mut arrays = out
            .fields
            .iter()
            .filter(|(_, p)| p.is_repeated())
            .map(|(_, p)| &p.head);
        if let Some(first) = arrays.next()
            && let Some(other) = arrays.find(|h| *h != first)
        {
            return Err(format!(
                "{key}.fields: line fields go into one array, not both `{}[]` and `{}[]`",
                first.join("."),
                other.join(".")
            ));
        }
        // No path may be another's prefix or equal to it: the body would
        // need a value and an object at the same place.
        let paths: Vec<(String, Vec<&str>)> = out
            .fields
            .iter()
            .map(|(f, p)| (format!("fields.\"{}\"", f.name()), p.keys()))
            .chain(
                out.constants
                    .iter()
                    .map(|(p, _)| (format!("static.\"{}\"", p.keys().join(".")), p.keys())),
            )
            .collect();
        for (i, (name, keys)) in paths.iter().enumerate() {
            for (other_name, other) in &paths[i + 1..] {
                let shorter = keys.len().min(other.len());
                if keys[..shorter] == other[..shorter] {
                    return Err(format!(
                        "{key}: {name} and {other_name} write to the same place in the body"
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Whether the mapping sends a body at all (a `DELETE` usually does not).
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.constants.is_empty()
    }

    /// The body for one delivery; `number` is the prerequisite's document
    /// number, when the action refers to one.
    pub(crate) fn body(
        &self,
        request: &DeliveryRequest<'_>,
        number: Option<&str>,
    ) -> Result<Value, SinkError> {
        let mut body = Value::Object(Map::new());
        for (path, value) in &self.constants {
            set(&mut body, &path.head, value.clone());
        }
        let mut elements: Vec<Value> = request
            .action
            .lines
            .iter()
            .map(|_| Value::Object(Map::new()))
            .collect();
        let mut array: Option<&[String]> = None;
        for (field, path) in &self.fields {
            match &path.element {
                None => {
                    if let Some(value) = field.header_value(request, number)? {
                        set(&mut body, &path.head, Value::from(value));
                    }
                }
                Some(inner) => {
                    array = Some(&path.head);
                    for (element, line) in elements.iter_mut().zip(&request.action.lines) {
                        set(element, inner, field.line_value(line)?);
                    }
                }
            }
        }
        if let Some(head) = array {
            set(&mut body, head, Value::Array(elements));
        }
        Ok(body)
    }
}

/// Writes `value` at `keys`, making objects on the way. Paths were checked
/// for conflicts at build, so every step finds an object or nothing.
fn set(into: &mut Value, keys: &[String], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut at = into;
    for key in parents {
        let Value::Object(map) = at else { return };
        at = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(map) = at {
        map.insert(last.clone(), value);
    }
}

/// A path into an answer: `data.items.0.asn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnswerPath(Vec<String>);

impl AnswerPath {
    /// Parses a dotted answer path; the empty path is the whole answer.
    pub(crate) fn parse(raw: &str) -> Result<AnswerPath, String> {
        if raw.is_empty() {
            return Ok(AnswerPath(Vec::new()));
        }
        let keys: Vec<String> = raw.split('.').map(str::to_owned).collect();
        if keys.iter().any(|k| k.is_empty() || k.contains(['[', ']'])) {
            return Err(format!(
                "`{raw}` is not an answer path (write `data.number`, or `items.0.number` for the first element)"
            ));
        }
        Ok(AnswerPath(keys))
    }

    /// The value at the path, if there is one (JSON `null` counts as none).
    pub(crate) fn read<'v>(&self, answer: &'v Value) -> Option<&'v Value> {
        let mut at = answer;
        for key in &self.0 {
            at = match at {
                Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                Value::Object(map) => map.get(key)?,
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                    return None;
                }
            };
        }
        (!at.is_null()).then_some(at)
    }

    /// The text at the path: a string, or a number written out.
    pub(crate) fn text(&self, answer: &Value) -> Option<String> {
        match self.read(answer)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
        }
    }

    pub(crate) fn display(&self) -> String {
        self.0.join(".")
    }
}

/// A path template (`/asn/{rma}`), checked: its placeholders are canonical
/// header fields, filled in percent-encoded as one path segment or query
/// value each.
#[derive(Debug, Clone)]
pub(crate) struct PathTemplate {
    parts: Vec<PathPart>,
}

#[derive(Debug, Clone)]
enum PathPart {
    Text(String),
    Field(Field),
}

impl PathTemplate {
    pub(crate) fn compile(key: &str, raw: &str, allowed: &[Field]) -> Result<PathTemplate, String> {
        if !raw.starts_with('/') {
            return Err(format!("{key}: `{raw}` must start with `/`"));
        }
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            parts.push(PathPart::Text(rest[..open].to_owned()));
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{key}: `{raw}` has a `{{` without its `}}`"))?
                + open;
            let name = &rest[open + 1..close];
            let field = Field::parse(name)
                .filter(|f| allowed.contains(f) && !f.is_line())
                .ok_or_else(|| {
                    format!(
                        "{key}: unknown placeholder `{{{name}}}` in `{raw}` (this operation has: {})",
                        allowed
                            .iter()
                            .filter(|f| !f.is_line())
                            .map(|f| f.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            parts.push(PathPart::Field(field));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("{key}: `{raw}` has a `}}` without its `{{`"));
        }
        parts.push(PathPart::Text(rest.to_owned()));
        Ok(PathTemplate { parts })
    }

    pub(crate) fn render(
        &self,
        request: &DeliveryRequest<'_>,
        number: Option<&str>,
    ) -> Result<String, SinkError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                PathPart::Text(text) => out.push_str(text),
                PathPart::Field(field) => {
                    let value = field.header_value(request, number)?.unwrap_or_default();
                    out.push_str(&crate::http::wire::path_segment(&value));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_paths_parse_and_refuse() {
        let p = TargetPath::parse("items[].itemCode").unwrap();
        assert_eq!(p.keys(), ["items", "[]", "itemCode"]);
        for bad in ["", "a..b", "items[]", "a[].b[].c", "a[0].b", "a.[]"] {
            assert!(TargetPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answer_paths_index_arrays() {
        let answer = serde_json::json!({ "items": [{ "n": "A-1" }], "count": 3 });
        let read = |p: &str| AnswerPath::parse(p).unwrap().text(&answer);
        assert_eq!(read("items.0.n").as_deref(), Some("A-1"));
        assert_eq!(read("count").as_deref(), Some("3"));
        assert_eq!(read("items.1.n"), None);
    }
}
