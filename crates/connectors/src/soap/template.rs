//! The envelope body templates of the SOAP connector, pure: a small
//! placeholder syntax over the canonical action, checked when the connector
//! is built and rendered per delivery with every value XML-escaped.
//!
//! Syntax:
//! - `{{name}}`: a field of the action (the table below), escaped.
//! - `{{#lines}}…{{/lines}}`: the part between repeated once per action
//!   line, in order; inside it the line's fields are available as well.
//!   Blocks do not nest.
//!
//! | field | where | value |
//! |---|---|---|
//! | `rma`, `return_id`, `customer`, `order_ref`, `site` | anywhere | the return's |
//! | `delivery_key` | anywhere | the delivery's idempotency key |
//! | `kind` | anywhere | the action kind (`erp_return_order`) |
//! | `prerequisite_number` | anywhere | the number of the document this action refers to (the return order a credit memo or a cancellation is for, the expected receipt a cancellation cancels) |
//! | `tracking_number` | anywhere | the label a void is for |
//! | `line_no`, `sku`, `quantity` | lines | the line's |
//! | `unit_price`, `amount` | lines | the decimal amount; `currency` inside a block is the line's currency |
//! | `reason_code`, `disposition` | lines | the target's code, through the crosswalk of the connector's `system` |
//! | `location`, `vendor` | lines | the line's |
//!
//! A field the action does not have when it is rendered (a `unit_price`
//! on a line without one) is a business error naming the field, never an
//! empty element the target might read as zero.

use backhaul_domain::action::{Action, ActionLine};
use backhaul_engine::{DeliveryRequest, SinkError};
use backhaul_master::CrosswalkKind;

/// A field of the action or of one of its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Rma,
    ReturnId,
    Customer,
    OrderRef,
    Site,
    DeliveryKey,
    Kind,
    PrerequisiteNumber,
    TrackingNumber,
    LineNo,
    Sku,
    Quantity,
    UnitPrice,
    Amount,
    Currency,
    ReasonCode,
    Disposition,
    Location,
    Vendor,
}

impl Name {
    const ALL: [(Name, &'static str); 19] = [
        (Name::Rma, "rma"),
        (Name::ReturnId, "return_id"),
        (Name::Customer, "customer"),
        (Name::OrderRef, "order_ref"),
        (Name::Site, "site"),
        (Name::DeliveryKey, "delivery_key"),
        (Name::Kind, "kind"),
        (Name::PrerequisiteNumber, "prerequisite_number"),
        (Name::TrackingNumber, "tracking_number"),
        (Name::LineNo, "line_no"),
        (Name::Sku, "sku"),
        (Name::Quantity, "quantity"),
        (Name::UnitPrice, "unit_price"),
        (Name::Amount, "amount"),
        (Name::Currency, "currency"),
        (Name::ReasonCode, "reason_code"),
        (Name::Disposition, "disposition"),
        (Name::Location, "location"),
        (Name::Vendor, "vendor"),
    ];

    fn parse(raw: &str) -> Option<Name> {
        Name::ALL.iter().find(|(_, s)| *s == raw).map(|(n, _)| *n)
    }

    fn as_str(self) -> &'static str {
        Name::ALL
            .iter()
            .find(|(n, _)| *n == self)
            .map_or("?", |(_, s)| s)
    }

    /// Whether the field belongs to a line (only inside `{{#lines}}`).
    fn is_line(self) -> bool {
        match self {
            Name::LineNo
            | Name::Sku
            | Name::Quantity
            | Name::UnitPrice
            | Name::Amount
            | Name::Currency
            | Name::ReasonCode
            | Name::Disposition
            | Name::Location
            | Name::Vendor => true,
            Name::Rma
            | Name::ReturnId
            | Name::Customer
            | Name::OrderRef
            | Name::Site
            | Name::DeliveryKey
            | Name::Kind
            | Name::PrerequisiteNumber
            | Name::TrackingNumber => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Name),
    Lines(Vec<Part>),
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// What rendering needs besides the delivery request.
pub(crate) struct Context<'a> {
    /// The connector's system, whose crosswalks translate codes.
    pub(crate) system: &'a str,
    pub(crate) prerequisite_number: Option<&'a str>,
}

impl Template {
    /// Parses `raw`; errors say what is wrong and where (`key` is the
    /// config key, `soap.actions.erp_return_order.body`).
    pub(crate) fn parse(key: &str, raw: &str) -> Result<Template, String> {
        let mut top: Vec<Part> = Vec::new();
        let mut block: Option<Vec<Part>> = None;
        let mut rest = raw;
        while let Some(open) = rest.find("{{") {
            let text = &rest[..open];
            let close = rest[open..]
                .find("}}")
                .ok_or_else(|| format!("{key}: a `{{{{` without its `}}}}`"))?
                + open;
            let name = rest[open + 2..close].trim();
            let into = block.as_mut().unwrap_or(&mut top);
            if !text.is_empty() {
                into.push(Part::Text(text.to_owned()));
            }
            match name {
                "#lines" => {
                    if block.is_some() {
                        return Err(format!("{key}: `{{{{#lines}}}}` blocks do not nest"));
                    }
                    block = Some(Vec::new());
                }
                "/lines" => {
                    let parts = block.take().ok_or_else(|| {
                        format!("{key}: `{{{{/lines}}}}` without its `{{{{#lines}}}}`")
                    })?;
                    top.push(Part::Lines(parts));
                }
                _ => {
                    let field = Name::parse(name).ok_or_else(|| {
                        format!(
                            "{key}: unknown field `{{{{{name}}}}}` (fields: {})",
                            Name::ALL
                                .iter()
                                .map(|(_, s)| *s)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                    if field.is_line() && block.is_none() {
                        return Err(format!(
                            "{key}: `{{{{{name}}}}}` is a line field, only inside `{{{{#lines}}}}…{{{{/lines}}}}`"
                        ));
                    }
                    block.as_mut().unwrap_or(&mut top).push(Part::Field(field));
                }
            }
            rest = &rest[close + 2..];
        }
        if block.is_some() {
            return Err(format!(
                "{key}: `{{{{#lines}}}}` without its `{{{{/lines}}}}`"
            ));
        }
        if rest.contains("}}") {
            return Err(format!("{key}: a `}}}}` without its `{{{{`"));
        }
        if !rest.is_empty() {
            top.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts: top })
    }

    /// The template with every field as `x` and the lines once: the shape
    /// of what it renders, to check that it is well-formed XML at build.
    pub(crate) fn skeleton(&self) -> String {
        fn walk(parts: &[Part], out: &mut String) {
            for part in parts {
                match part {
                    Part::Text(text) => out.push_str(text),
                    Part::Field(_) => out.push('x'),
                    Part::Lines(inner) => walk(inner, out),
                }
            }
        }
        let mut out = String::new();
        walk(&self.parts, &mut out);
        out
    }

    /// The rendered XML for one delivery.
    pub(crate) fn render(
        &self,
        request: &DeliveryRequest<'_>,
        context: &Context<'_>,
    ) -> Result<String, SinkError> {
        let mut out = String::new();
        render(&self.parts, request, context, None, &mut out)?;
        Ok(out)
    }
}

fn render(
    parts: &[Part],
    request: &DeliveryRequest<'_>,
    context: &Context<'_>,
    line: Option<&ActionLine>,
    out: &mut String,
) -> Result<(), SinkError> {
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Field(name) => {
                let value = value(*name, request, context, line)?;
                out.push_str(&escape(&value));
            }
            Part::Lines(inner) => {
                for line in &request.action.lines {
                    render(inner, request, context, Some(line), out)?;
                }
            }
        }
    }
    Ok(())
}

/// `&`, `<`, `>`, `"` and `'` as entities, so a value is text in an element
/// and in an attribute alike.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            other => out.push(other),
        }
    }
    out
}

fn value(
    name: Name,
    request: &DeliveryRequest<'_>,
    context: &Context<'_>,
    line: Option<&ActionLine>,
) -> Result<String, SinkError> {
    let action: &Action = request.action;
    let missing = || {
        SinkError::business(
            "missing_field",
            format!(
                "the {} template needs `{}`, which {} does not have",
                action.kind.as_str(),
                name.as_str(),
                match line {
                    Some(l) => format!("line {}", l.line_no.get()),
                    None => "the action".to_owned(),
                }
            ),
        )
    };
    let on_line = |read: fn(&ActionLine) -> Option<String>| line.and_then(read).ok_or_else(missing);
    Ok(match name {
        Name::Rma => action.rma_number.clone(),
        Name::ReturnId => action.return_id.to_string(),
        Name::Customer => action.customer.to_string(),
        Name::OrderRef => action.order_ref.to_string(),
        Name::Site => action.site.to_string(),
        Name::DeliveryKey => request.key.to_owned(),
        Name::Kind => action.kind.as_str().to_owned(),
        Name::PrerequisiteNumber => context
            .prerequisite_number
            .map(str::to_owned)
            .ok_or_else(missing)?,
        Name::TrackingNumber => action
            .tracking_number
            .as_ref()
            .map(ToString::to_string)
            .ok_or_else(missing)?,
        Name::LineNo => on_line(|l| Some(l.line_no.get().to_string()))?,
        Name::Sku => on_line(|l| Some(l.sku.to_string()))?,
        Name::Quantity => on_line(|l| Some(l.quantity.get().to_string()))?,
        Name::UnitPrice => on_line(|l| l.unit_price.map(|m| m.amount().to_string()))?,
        Name::Amount => on_line(|l| l.amount.map(|m| m.amount().to_string()))?,
        Name::Currency => on_line(|l| l.amount.or(l.unit_price).map(|m| m.currency().to_string()))?,
        Name::Location => on_line(|l| l.location.as_ref().map(ToString::to_string))?,
        Name::Vendor => on_line(|l| l.vendor.as_ref().map(ToString::to_string))?,
        Name::ReasonCode => {
            let code = on_line(|l| l.reason_code.as_ref().map(ToString::to_string))?;
            request.outbound_code(context.system, CrosswalkKind::Reason, &code)?
        }
        Name::Disposition => {
            let disposition = line.and_then(|l| l.disposition).ok_or_else(missing)?;
            // The canonical code is the disposition's serialized name
            // (`vendor_return`), as the crosswalks store it.
            let code = serde_json::to_value(disposition)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(missing)?;
            request.outbound_code(context.system, CrosswalkKind::Disposition, &code)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_refuse() {
        let t = Template::parse("k", "<a>{{rma}}</a>{{#lines}}<l>{{sku}}</l>{{/lines}}").unwrap();
        assert_eq!(t.skeleton(), "<a>x</a><l>x</l>");
        for (bad, why) in [
            ("{{nope}}", "unknown field `{{nope}}`"),
            ("{{sku}}", "line field"),
            ("{{#lines}}", "without its `{{/lines}}`"),
            ("{{/lines}}", "without its `{{#lines}}`"),
            ("{{#lines}}{{#lines}}", "do not nest"),
            ("{{rma", "without its `}}`"),
        ] {
            let message = Template::parse("k", bad).unwrap_err();
            assert!(message.contains(why), "{bad}: {message}");
            assert!(message.starts_with("k: "), "{message}");
        }
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape(r#"A&B <"x"> 'y'"#),
            "A&amp;B &lt;&quot;x&quot;&gt; &apos;y&apos;"
        );
    }
}
