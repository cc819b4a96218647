//! The variables CEL expressions see, built from facts. This is the one
//! place that decides their names and types: the loader checks expressions
//! against values built here from synthetic facts, and evaluation uses
//! values built here from real ones, so the two cannot drift apart.
//!
//! Derived facts (days since shipping, available quantity, warranty) are
//! computed exactly with `Decimal` and `chrono` and only then converted to
//! CEL values. Money is exposed as integer minor units, quantities as
//! doubles (exact for whole numbers and for the few decimals quantities
//! carry), dates as day counts or `YYYY-MM-DD` strings.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use backhaul_domain::model::{Channel, RequestedOutcome};
use backhaul_domain::values::{
    ConditionCode, Currency, CustomerAccount, LineNo, Money, OrderRef, Quantity, ReasonCode, Sku,
    Uom, ValueError,
};
use cel::objects::{Key, Map};
use cel::{Context, Env, Value};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::calendar::Calendar;
use crate::facts::{CustomerFacts, LineFacts, RequestFacts, UnitFacts, VendorAgreementFacts};

/// Where an expression is evaluated, which decides the variables it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// An eligibility rule with `scope = "request"`: once per request.
    Request,
    /// An eligibility rule with `scope = "line"`: once per requested line.
    Line,
    /// A fee or disposition rule: once per inspected unit.
    Unit,
}

impl Scope {
    pub(crate) fn variables(self) -> &'static [&'static str] {
        match self {
            Scope::Request => &["request", "customer", "lines", "lists"],
            Scope::Line => &["request", "customer", "line", "sku", "lists"],
            Scope::Unit => &["line", "sku", "unit", "lists"],
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Scope::Request => "eligibility rules with scope = \"request\"",
            Scope::Line => "eligibility rules with scope = \"line\"",
            Scope::Unit => "fee and disposition rules",
        }
    }

    pub(crate) const ALL: [Scope; 3] = [Scope::Request, Scope::Line, Scope::Unit];
}

/// The variables of one evaluation, by name.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    vars: Vec<(&'static str, Value)>,
}

impl Frame {
    pub(crate) fn new(vars: Vec<(&'static str, Value)>) -> Self {
        Self { vars }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// A CEL context holding this frame's variables. Built once per frame
    /// and reused for every expression evaluated on it.
    pub(crate) fn context(&self, env: &Arc<Env>) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(Arc::clone(env));
        for (name, value) in &self.vars {
            ctx.add_variable_from_value(*name, value.clone());
        }
        ctx
    }

    /// A child scope of `parent` holding only the variables `names` of this
    /// frame; the others are found in `parent`. Converting a value into
    /// CEL's representation is the expensive part of evaluation, so values
    /// shared by many evaluations (lists, the request) are converted once
    /// in a parent scope.
    pub(crate) fn scope<'b>(
        &self,
        parent: &'b Context<'_, 'static>,
        names: &[&str],
    ) -> Context<'b, 'static> {
        let mut ctx = parent.new_inner_scope();
        for (name, value) in &self.vars {
            if names.contains(name) {
                ctx.add_variable_from_value(*name, value.clone());
            }
        }
        ctx
    }
}

/// Looks a dotted path (`line.days_since_ship`) up in a frame.
pub(crate) fn lookup<'f>(frame: &'f Frame, path: &[String]) -> Option<&'f Value> {
    let (root, fields) = path.split_first()?;
    let mut value = frame.get(root)?;
    for field in fields {
        value = field_of(value, field)?;
    }
    Some(value)
}

/// The field `name` of a map value.
pub(crate) fn field_of<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Map(map) => map.map.get(&Key::from(name.to_owned())),
        _ => None,
    }
}

/// The field names of a map value, sorted, for error messages.
pub(crate) fn field_names(value: &Value) -> Vec<String> {
    match value {
        Value::Map(map) => {
            let names: BTreeSet<String> = map
                .map
                .keys()
                .filter_map(|k| match k {
                    Key::String(s) => Some(s.to_string()),
                    Key::Int(_) | Key::Uint(_) | Key::Bool(_) => None,
                })
                .collect();
            names.into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// The CEL type name of a value, as an analyst would say it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Int(_) | Value::UInt(_) => "a whole number",
        Value::Float(_) => "a number",
        Value::String(_) => "a string",
        Value::Bool(_) => "true or false",
        Value::Null => "null",
        Value::Bytes(_)
        | Value::Function(..)
        | Value::Duration(_)
        | Value::Timestamp(_)
        | Value::Opaque(_)
        | Value::Struct(_) => "a value of another kind",
    }
}

/// Which fields of a variable an evaluation needs.
///
/// Converting values into CEL's representation is most of the cost of an
/// evaluation, so each variable only carries the fields the policy's
/// expressions and messages use (collected at load, see [`Needs`]).
/// Checking uses every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    All,
    Fields(BTreeSet<String>),
    /// The variable is not used at all.
    Nothing,
}

impl Want {
    pub(crate) fn any(&self) -> bool {
        match self {
            Want::All | Want::Fields(_) => true,
            Want::Nothing => false,
        }
    }

    fn field(&self, name: &str) -> bool {
        match self {
            Want::All => true,
            Want::Fields(fields) => fields.contains(name),
            Want::Nothing => false,
        }
    }

    fn union(self, other: Want) -> Want {
        match (self, other) {
            (Want::All, _) | (_, Want::All) => Want::All,
            (Want::Nothing, w) | (w, Want::Nothing) => w,
            (Want::Fields(mut a), Want::Fields(b)) => {
                a.extend(b);
                Want::Fields(a)
            }
        }
    }
}

/// The variable paths used by a policy's expressions and messages, per
/// scope, recorded while they are checked.
#[derive(Debug, Default)]
pub(crate) struct Needs {
    used: Vec<(Scope, String, Want)>,
}

impl Needs {
    /// Records a use of `path` (`["line", "days_since_ship"]`); a bare
    /// variable (`lines`, `line[k]`) needs all of its fields.
    pub(crate) fn record(&mut self, scope: Scope, path: &[String]) {
        let Some((root, fields)) = path.split_first() else {
            return;
        };
        let want = match fields.first() {
            Some(field) => Want::Fields(BTreeSet::from([field.clone()])),
            None => Want::All,
        };
        match self
            .used
            .iter_mut()
            .find(|(s, r, _)| *s == scope && r == root)
        {
            Some((_, _, existing)) => {
                *existing = std::mem::replace(existing, Want::Nothing).union(want);
            }
            None => self.used.push((scope, root.clone(), want)),
        }
    }

    /// What `variable` needs over the given scopes.
    pub(crate) fn want(&self, scopes: &[Scope], variable: &str) -> Want {
        self.used
            .iter()
            .filter(|(s, r, _)| scopes.contains(s) && r == variable)
            .fold(Want::Nothing, |acc, (_, _, w)| acc.union(w.clone()))
    }
}

/// What each variable needs, for evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Wants {
    pub(crate) request: Want,
    pub(crate) customer: Want,
    pub(crate) lines: Want,
    pub(crate) line: Want,
    pub(crate) sku: Want,
    pub(crate) unit_line: Want,
    pub(crate) unit_sku: Want,
    pub(crate) unit: Want,
}

impl Wants {
    pub(crate) fn from_needs(needs: &Needs) -> Self {
        let eligibility = [Scope::Request, Scope::Line];
        Self {
            request: needs.want(&eligibility, "request"),
            customer: needs.want(&eligibility, "customer"),
            // Elements of `lines` are reached through comprehension
            // variables, which the walk cannot follow: all fields.
            lines: match needs.want(&[Scope::Request], "lines") {
                Want::Nothing => Want::Nothing,
                Want::All | Want::Fields(_) => Want::All,
            },
            line: needs.want(&[Scope::Line], "line"),
            sku: needs.want(&[Scope::Line], "sku"),
            unit_line: needs.want(&[Scope::Unit], "line"),
            unit_sku: needs.want(&[Scope::Unit], "sku"),
            unit: needs.want(&[Scope::Unit], "unit"),
        }
    }

    /// Every field of every variable, for checking.
    pub(crate) fn all() -> Self {
        Self {
            request: Want::All,
            customer: Want::All,
            lines: Want::All,
            line: Want::All,
            sku: Want::All,
            unit_line: Want::All,
            unit_sku: Want::All,
            unit: Want::All,
        }
    }
}

/// Builds a map value with only the wanted fields, evaluating each value
/// expression only when its field is wanted.
macro_rules! fields {
    ($want:expr; $($name:literal => $value:expr),* $(,)?) => {{
        let want: &Want = $want;
        let mut map: HashMap<Key, Value> = HashMap::new();
        $(
            if want.field($name) {
                map.insert(Key::String(Arc::new($name.to_owned())), $value);
            }
        )*
        Value::Map(Map { map: Arc::new(map) })
    }};
}

fn date(d: chrono::NaiveDate) -> Value {
    string(&d.format("%Y-%m-%d").to_string())
}

fn count(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn string(s: &str) -> Value {
    Value::String(Arc::new(s.to_owned()))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::List(Arc::new(items.into_iter().map(string).collect()))
}

/// Money as integer minor units (cents), rounded half away from zero for
/// the rare unit price quoted beyond the minor unit.
pub(crate) fn minor_units(money: &Money) -> i64 {
    let scaled = (money.amount() * Decimal::from(10_i64.pow(money.currency().minor_units())))
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    // Money is capped far below i64::MAX minor units.
    scaled.to_i64().unwrap_or(i64::MAX)
}

fn double(d: Decimal) -> Value {
    Value::Float(d.to_f64().unwrap_or(f64::NAN))
}

fn quantity(q: Quantity) -> Value {
    double(q.get())
}

pub(crate) fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Portal => "portal",
        Channel::Crm => "crm",
        Channel::Marketplace => "marketplace",
        Channel::Edi => "edi",
        Channel::CallCentre => "call_centre",
        Channel::Batch => "batch",
    }
}

pub(crate) fn outcome_name(outcome: RequestedOutcome) -> &'static str {
    match outcome {
        RequestedOutcome::Refund => "refund",
        RequestedOutcome::Replacement => "replacement",
        RequestedOutcome::Exchange => "exchange",
        RequestedOutcome::Repair => "repair",
        RequestedOutcome::StoreCredit => "store_credit",
    }
}

/// `request`: the request as a whole.
pub(crate) fn request_value(f: &RequestFacts, cal: &Calendar, want: &Want) -> Value {
    fields! { want;
        "channel" => string(channel_name(f.channel)),
        "currency" => string(f.currency.code()),
        "value" => Value::Int(minor_units(&f.value)),
        "order_ref" => string(f.order_ref.as_str()),
        "order_found" => Value::Bool(f.order_found),
        "sold" => Value::Bool(f.sold_at.is_some()),
        "days_since_sale" => Value::Int(f.sold_at.map_or(-1, |s| cal.days_between(s, f.requested_at))),
        "date" => date(cal.local_date(f.requested_at)),
        "line_count" => count(f.lines.len()),
    }
}

/// `customer`: the requesting account.
pub(crate) fn customer_value(c: &CustomerFacts, want: &Want) -> Value {
    fields! { want;
        "account" => string(c.account.as_str()),
        "parent" => string(c.parent.as_ref().map_or("", CustomerAccount::as_str)),
        "ancestors" => strings(c.ancestors.iter().map(CustomerAccount::as_str)),
        "segment" => string(&c.segment),
        "region" => string(&c.region),
        "known" => Value::Bool(c.known),
    }
}

/// `line`: one line with everything derived from it, as of `now`.
pub(crate) fn line_value(
    l: &LineFacts,
    sold_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    cal: &Calendar,
    want: &Want,
) -> Value {
    let warranty = || cal.warranty(&l.category, sold_at, l.shipped_at, now);
    let serials_shipped = || {
        let shipped: BTreeSet<&str> = l.shipped_serials.iter().map(|s| s.as_str()).collect();
        l.serials.iter().all(|s| shipped.contains(s.as_str()))
    };
    let serials_unique = || {
        let distinct: BTreeSet<&str> = l.serials.iter().map(|s| s.as_str()).collect();
        distinct.len() == l.serials.len()
    };
    fields! { want;
        "line_no" => Value::Int(i64::from(l.line_no.get())),
        "sku" => string(l.sku.as_str()),
        "sku_known" => Value::Bool(l.sku_known),
        "category" => string(&l.category),
        "returnable" => Value::Bool(l.returnable),
        "serial_controlled" => Value::Bool(l.serial_controlled),
        "lot_controlled" => Value::Bool(l.lot_controlled),
        "vendor" => string(l.vendor.as_deref().unwrap_or("")),
        "reason" => string(l.reason.as_str()),
        "requested_outcome" => string(outcome_name(l.requested_outcome)),
        "uom" => string(l.uom.as_str()),
        "requested_quantity" => quantity(l.quantity),
        "quantity" => quantity(l.base_quantity),
        "order_line_found" => Value::Bool(l.order_line_found),
        "shipped" => Value::Bool(l.shipped_at.is_some()),
        "days_since_ship" => Value::Int(l.shipped_at.map_or(-1, |s| cal.days_between(s, now))),
        "days_since_sale" => Value::Int(sold_at.map_or(-1, |s| cal.days_between(s, now))),
        "shipped_quantity" => quantity(l.shipped_base_quantity),
        "returned_quantity" => quantity(l.returned_base_quantity),
        // Exact: shipped − returned in Decimal, then converted.
        "available" => double(l.shipped_base_quantity.get() - l.returned_base_quantity.get()),
        "serials" => strings(l.serials.iter().map(|s| s.as_str())),
        "shipped_serials" => strings(l.shipped_serials.iter().map(|s| s.as_str())),
        "serial_count" => count(l.serials.len()),
        "serials_shipped" => Value::Bool(serials_shipped()),
        "serials_unique" => Value::Bool(serials_unique()),
        "unit_price" => Value::Int(minor_units(&l.unit_price)),
        "unit_tax" => Value::Int(minor_units(&l.unit_tax)),
        "value" => Value::Int(minor_units(&l.value)),
        "declared_condition" => string(l.declared_condition.as_ref().map_or("", ConditionCode::as_str)),
        "in_warranty" => Value::Bool(warranty().is_some_and(|w| w.active)),
        "warranty_until" => warranty().map_or_else(|| string(""), |w| date(w.until)),
        "warranty_months" => Value::Int(warranty().map_or(0, |w| i64::from(w.months))),
    }
}

/// `sku`: the SKU's master data, as on the line.
pub(crate) fn sku_value(l: &LineFacts, want: &Want) -> Value {
    fields! { want;
        "code" => string(l.sku.as_str()),
        "known" => Value::Bool(l.sku_known),
        "category" => string(&l.category),
        "returnable" => Value::Bool(l.returnable),
        "serial_controlled" => Value::Bool(l.serial_controlled),
        "lot_controlled" => Value::Bool(l.lot_controlled),
        "vendor" => string(l.vendor.as_deref().unwrap_or("")),
    }
}

/// `unit`: the inspected unit, its warranty and its vendor agreement.
pub(crate) fn unit_value(u: &UnitFacts, cal: &Calendar, want: &Want) -> Value {
    let warranty = || cal.warranty(&u.line.category, u.sold_at, u.line.shipped_at, u.now);
    let days = u.line.shipped_at.map_or(-1, |s| cal.days_between(s, u.now));
    let agreement = u.vendor_agreement.as_ref();
    fields! { want;
        "condition" => string(u.condition.as_str()),
        "customer_segment" => string(&u.customer_segment),
        "in_warranty" => Value::Bool(warranty().is_some_and(|w| w.active)),
        "warranty_until" => warranty().map_or_else(|| string(""), |w| date(w.until)),
        "days_since_ship" => Value::Int(days),
        "has_vendor_agreement" => Value::Bool(agreement.is_some()),
        "vendor_accepts_returns" => Value::Bool(agreement.is_some_and(|a| a.accepts_returns)),
        "vendor_window_days" => Value::Int(agreement.map_or(0, |a| a.window_days)),
        "vendor_restocking_percent" => double(agreement.map_or(Decimal::ZERO, |a| a.restocking_percent)),
        "within_vendor_window" => Value::Bool(
            agreement.is_some_and(|a| a.accepts_returns && days >= 0 && days <= a.window_days),
        ),
    }
}

/// `lists`: the policy's named lists.
pub(crate) fn lists_value(lists: &[(String, Vec<String>)]) -> Value {
    let map: HashMap<String, Value> = lists
        .iter()
        .map(|(name, items)| (name.clone(), strings(items.iter().map(String::as_str))))
        .collect();
    Value::from(map)
}

/// Fully populated facts for checking expressions: every variable and field
/// present, with a value of the right type. `high` flips booleans and moves
/// numbers so that both branches of most conditions get evaluated by one of
/// the two variants.
pub(crate) struct Synthetic {
    pub(crate) request: RequestFacts,
    pub(crate) unit: UnitFacts,
}

impl Synthetic {
    pub(crate) fn new(high: bool) -> Result<Self, ValueError> {
        let at = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        };
        let eur = Currency::parse("EUR")?;
        let amount = |units: i64| Money::new(Decimal::from(units), eur);
        let (qty, price) = if high { (12, 100_000) } else { (1, 0) };
        let serial = backhaul_domain::values::SerialNumber::parse("SN-1")?;
        let line = LineFacts {
            line_no: LineNo::parse(1)?,
            sku: Sku::parse("SKU-1")?,
            sku_known: high,
            category: "category".into(),
            returnable: high,
            serial_controlled: high,
            lot_controlled: high,
            vendor: Some("VENDOR".into()),
            reason: ReasonCode::parse("REASON")?,
            requested_outcome: RequestedOutcome::Refund,
            uom: Uom::parse("EA")?,
            quantity: Quantity::from_units(qty),
            base_quantity: Quantity::from_units(qty),
            order_line_found: high,
            shipped_at: Some(at(2025, 1, 1)),
            shipped_base_quantity: Quantity::from_units(qty),
            returned_base_quantity: Quantity::ZERO,
            serials: vec![serial.clone()],
            shipped_serials: vec![serial],
            unit_price: amount(price)?,
            unit_tax: amount(price / 5)?,
            value: amount(price)?,
            declared_condition: Some(ConditionCode::parse("NEW")?),
        };
        let now = if high { at(2030, 1, 1) } else { at(2025, 1, 2) };
        let request = RequestFacts {
            requested_at: now,
            channel: Channel::Portal,
            currency: eur,
            customer: CustomerFacts {
                account: CustomerAccount::parse("C-1")?,
                parent: Some(CustomerAccount::parse("C-0")?),
                ancestors: vec![CustomerAccount::parse("C-0")?],
                segment: "segment".into(),
                region: "REGION".into(),
                known: high,
            },
            order_ref: OrderRef::parse("SO-1")?,
            order_found: high,
            sold_at: Some(at(2024, 12, 31)),
            value: amount(price)?,
            lines: vec![line.clone()],
        };
        let unit = UnitFacts {
            line,
            sold_at: request.sold_at,
            condition: ConditionCode::parse("NEW")?,
            customer_segment: "segment".into(),
            vendor_agreement: Some(VendorAgreementFacts {
                accepts_returns: high,
                window_days: if high { 365 } else { 0 },
                restocking_percent: Decimal::from(if high { 15 } else { 0 }),
            }),
            now,
        };
        Ok(Self { request, unit })
    }

    /// The frame an expression of `scope` sees, with every field, and
    /// `lists` for the lists.
    pub(crate) fn frame(&self, scope: Scope, cal: &Calendar, lists: &Value) -> Frame {
        let r = &self.request;
        let all = Want::All;
        let line = |l: &LineFacts| line_value(l, r.sold_at, r.requested_at, cal, &all);
        match scope {
            Scope::Request => Frame::new(vec![
                ("request", request_value(r, cal, &all)),
                ("customer", customer_value(&r.customer, &all)),
                (
                    "lines",
                    Value::List(Arc::new(r.lines.iter().map(line).collect())),
                ),
                ("lists", lists.clone()),
            ]),
            Scope::Line => {
                let first = &self.unit.line;
                Frame::new(vec![
                    ("request", request_value(r, cal, &all)),
                    ("customer", customer_value(&r.customer, &all)),
                    ("line", line(first)),
                    ("sku", sku_value(first, &all)),
                    ("lists", lists.clone()),
                ])
            }
            Scope::Unit => unit_frame(&self.unit, cal, lists, &Wants::all()),
        }
    }
}

/// The frame of a fee or disposition rule.
pub(crate) fn unit_frame(unit: &UnitFacts, cal: &Calendar, lists: &Value, wants: &Wants) -> Frame {
    let mut vars = vec![("lists", lists.clone())];
    if wants.unit_line.any() {
        vars.push((
            "line",
            line_value(&unit.line, unit.sold_at, unit.now, cal, &wants.unit_line),
        ));
    }
    if wants.unit_sku.any() {
        vars.push(("sku", sku_value(&unit.line, &wants.unit_sku)));
    }
    if wants.unit.any() {
        vars.push(("unit", unit_value(unit, cal, &wants.unit)));
    }
    Frame::new(vars)
}
