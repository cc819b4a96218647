//! Constrained values of the canonical model: identifiers, codes, quantities
//! and money. Each is a newtype with a private field and a `parse`
//! constructor, so a value that exists is a valid one ("parse, don't
//! validate"). Serde goes through the same `parse`, so bad input never gets
//! past deserialisation.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a value could not be parsed. The message names the rule that failed so
/// that an API or CLI error can be acted on without reading code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct ValueError {
    /// The kind of value, e.g. `SKU` or `currency`.
    pub kind: &'static str,
    pub reason: String,
}

impl ValueError {
    fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }
}

/// Defines a string newtype whose content is checked by `$check`, with serde
/// and JSON Schema going through `parse`.
macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $pattern:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the value.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(raw).map_err(|reason| ValueError::new($kind, reason))?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = Cow::<'de, str>::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": $pattern })
            }
        }
    };
}

fn code_like(raw: &str, max: usize, extra: &[char]) -> Result<(), String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.len() > max {
        return Err(format!(
            "must be at most {max} characters, got {}",
            raw.len()
        ));
    }
    let first = raw.chars().next().unwrap_or(' ');
    if !first.is_ascii_alphanumeric() {
        return Err(format!("must start with a letter or digit, got {first:?}"));
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        return Err(format!(
            "{bad:?} is not allowed (letters, digits and {} only)",
            extra
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    Ok(())
}

fn upper_code(raw: &str, max: usize) -> Result<(), String> {
    code_like(raw, max, &['_'])?;
    if raw.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("must be upper case".into());
    }
    Ok(())
}

string_value!(
    /// Stock keeping unit: 1–40 characters, letters, digits, `-`, `_`, `.`, `/`.
    Sku, "SKU", "^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$",
    |s| code_like(s, 40, &['-', '_', '.', '/'])
);
string_value!(
    /// Customer account number in the ERP/CRM.
    CustomerAccount, "customer account", "^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
    |s| code_like(s, 64, &['-', '_', '.', '/'])
);
string_value!(
    /// Reference of the original sales order.
    OrderRef, "order reference", "^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
    |s| code_like(s, 64, &['-', '_', '.', '/'])
);
string_value!(
    /// Warehouse site code.
    SiteCode, "site code", "^[A-Z0-9][A-Z0-9_]{0,15}$",
    |s| upper_code(s, 16)
);
string_value!(
    /// Sales region code.
    RegionCode, "region code", "^[A-Z0-9][A-Z0-9_]{0,15}$",
    |s| upper_code(s, 16)
);
string_value!(
    /// Unit of measure code, e.g. `EA`, `CS`, `KG`.
    Uom, "unit of measure", "^[A-Z0-9][A-Z0-9_]{0,7}$",
    |s| upper_code(s, 8)
);
string_value!(
    /// Canonical return reason code, e.g. `DAMAGED`, `SIZE_FIT`.
    ReasonCode, "reason code", "^[A-Z0-9][A-Z0-9_]{0,31}$",
    |s| upper_code(s, 32)
);
string_value!(
    /// Canonical condition code from inspection, e.g. `NEW`, `OPENED`, `DAMAGED`.
    ConditionCode, "condition code", "^[A-Z0-9][A-Z0-9_]{0,31}$",
    |s| upper_code(s, 32)
);
string_value!(
    /// Manufacturer or distributor serial number.
    SerialNumber, "serial number", "^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
    |s| code_like(s, 64, &['-', '_', '.', '/'])
);
string_value!(
    /// Lot or batch number.
    LotNumber, "lot number", "^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
    |s| code_like(s, 64, &['-', '_', '.', '/'])
);
string_value!(
    /// A reference chosen by an external system (receipt id, tracking number,
    /// document number, carrier code).
    ExternalRef, "external reference", "^[A-Za-z0-9][A-Za-z0-9._/:#-]{0,127}$",
    |s| code_like(s, 128, &['-', '_', '.', '/', ':', '#'])
);

/// Identity of one return (the event stream id). UUID v7 assigned by the hub.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct ReturnId(Uuid);

impl ReturnId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        Uuid::parse_str(raw)
            .map(Self)
            .map_err(|e| ValueError::new("return id", e.to_string()))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The customer-facing RMA number, derived from the id so that it needs no
    /// counter and is the same on every hub process.
    pub fn rma_number(&self) -> String {
        let simple = self.0.simple().to_string().to_ascii_uppercase();
        // The last twelve hex digits of a v7 UUID are random; the first twelve
        // are the millisecond timestamp. Both halves keep numbers sortable and
        // unique.
        format!("RMA-{}-{}", &simple[..12], &simple[20..])
    }
}

impl fmt::Display for ReturnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Line number within a return, starting at 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct LineNo(u32);

impl LineNo {
    pub fn parse(raw: u32) -> Result<Self, ValueError> {
        if raw == 0 || raw > 9999 {
            return Err(ValueError::new("line number", "must be between 1 and 9999"));
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for LineNo {
    type Error = ValueError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Self::parse(v)
    }
}

impl From<LineNo> for u32 {
    fn from(v: LineNo) -> u32 {
        v.0
    }
}

impl fmt::Display for LineNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Deserialises an exact decimal from a JSON string (`"12.50"`) or integer.
/// JSON floats are refused: they cannot carry money or quantities exactly.
fn deserialize_decimal<'de, D: Deserializer<'de>>(
    d: D,
    kind: &'static str,
) -> Result<Decimal, D::Error> {
    struct V(&'static str);
    impl serde::de::Visitor<'_> for V {
        type Value = Decimal;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "{} as a decimal string such as \"12.50\" or an integer",
                self.0
            )
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
            Decimal::from_str_exact(v.trim()).map_err(|_| {
                E::custom(format!("invalid {}: {v:?} is not a decimal number", self.0))
            })
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
            Ok(Decimal::from(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
            Ok(Decimal::from(v))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
            Err(E::custom(format!(
                "invalid {}: {v} is a JSON float; send exact decimals as strings, e.g. \"{v}\"",
                self.0
            )))
        }
    }
    d.deserialize_any(V(kind))
}

/// Maximum decimal places for quantities (grams of a kilogram, say).
const QUANTITY_SCALE: u32 = 6;

/// Largest quantity accepted (ten billion units; every `u32` fits). Far above
/// any real return, and small enough that sums and `quantity × price`
/// products over a return stay inside `Decimal`'s range: its arithmetic
/// panics on overflow, and one absurd line would otherwise make every later
/// `decide` on the return panic.
const MAX_QUANTITY: u64 = 10_000_000_000;

/// Largest money amount accepted, in major units of any currency (ten
/// trillion), for the same reason as [`MAX_QUANTITY`].
const MAX_AMOUNT: u64 = 10_000_000_000_000;

/// A non-negative exact quantity in some unit of measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(Decimal);

impl Quantity {
    pub const ZERO: Quantity = Quantity(Decimal::ZERO);

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let d = Decimal::from_str_exact(raw.trim())
            .map_err(|_| ValueError::new("quantity", format!("{raw:?} is not a decimal number")))?;
        Self::from_decimal(d)
    }

    pub fn from_decimal(d: Decimal) -> Result<Self, ValueError> {
        if d.is_sign_negative() && !d.is_zero() {
            return Err(ValueError::new(
                "quantity",
                format!("must not be negative, got {d}"),
            ));
        }
        if d.scale() > QUANTITY_SCALE {
            return Err(ValueError::new(
                "quantity",
                format!("at most {QUANTITY_SCALE} decimal places, got {d}"),
            ));
        }
        if d > Decimal::from(MAX_QUANTITY) {
            return Err(ValueError::new(
                "quantity",
                format!("must be at most {MAX_QUANTITY}, got {d}"),
            ));
        }
        Ok(Self(d.normalize()))
    }

    pub fn from_units(n: u32) -> Self {
        Self(Decimal::from(n))
    }

    pub fn get(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Sum of two quantities; both non-negative, so the sum is too.
    #[must_use]
    pub fn plus(self, other: Quantity) -> Quantity {
        Quantity((self.0 + other.0).normalize())
    }

    /// `self - other`, or `None` if that would be negative.
    pub fn minus(self, other: Quantity) -> Option<Quantity> {
        let d = self.0 - other.0;
        (!d.is_sign_negative() || d.is_zero()).then(|| Quantity(d.normalize()))
    }

    /// `self - other`, floored at zero.
    #[must_use]
    pub fn saturating_minus(self, other: Quantity) -> Quantity {
        self.minus(other).unwrap_or(Quantity::ZERO)
    }

    /// Whether the quantity is a whole number of units (needed to match serials).
    pub fn whole_units(self) -> Option<u64> {
        use rust_decimal::prelude::ToPrimitive;
        if self.0.fract().is_zero() {
            self.0.to_u64()
        } else {
            None
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Self {
        iter.fold(Quantity::ZERO, Quantity::plus)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dec = deserialize_decimal(d, "quantity")?;
        Quantity::from_decimal(dec).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Quantity")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Non-negative exact decimal, as a string (\"2.5\") or an integer.",
            "type": ["string", "integer"],
            "pattern": "^[0-9]+(\\.[0-9]{1,6})?$",
            "minimum": 0,
            "maximum": MAX_QUANTITY
        })
    }
}

/// ISO 4217 currencies in use, with their minor-unit exponent.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("MAD", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// An ISO 4217 currency code the hub knows the minor unit of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency {
    code: [u8; 3],
    minor_units: u32,
}

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == raw)
            .map(|(code, minor)| {
                let b = code.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    minor_units: *minor,
                }
            })
            .ok_or_else(|| {
                ValueError::new(
                    "currency",
                    format!("{raw:?} is not a supported ISO 4217 code (upper case, e.g. \"USD\")"),
                )
            })
    }

    pub fn code(&self) -> &str {
        // Codes come from the CURRENCIES table, which is ASCII.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of decimal places of the currency's minor unit (2 for USD, 0 for JPY).
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Cow::<'de, str>::deserialize(d)?;
        Currency::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Currency")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let codes: Vec<&str> = CURRENCIES.iter().map(|(c, _)| *c).collect();
        json_schema!({ "type": "string", "enum": codes })
    }
}

/// An exact, non-negative amount of money in one currency. The amount may not
/// have more decimals than the currency's minor unit plus two (unit prices are
/// often quoted to 4 places).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
pub struct Money {
    #[serde(serialize_with = "ser_decimal")]
    #[schemars(with = "String")]
    amount: Decimal,
    currency: Currency,
}

fn ser_decimal<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, ValueError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(ValueError::new(
                "money",
                format!("amount must not be negative, got {amount}"),
            ));
        }
        if amount > Decimal::from(MAX_AMOUNT) {
            return Err(ValueError::new(
                "money",
                format!("amount must be at most {MAX_AMOUNT}, got {amount}"),
            ));
        }
        let max_scale = currency.minor_units() + 2;
        if amount.normalize().scale() > max_scale {
            return Err(ValueError::new(
                "money",
                format!("{amount} has more than {max_scale} decimal places for {currency}"),
            ));
        }
        // Shown with at least the currency's minor unit ("77.00 USD", not
        // "77 USD"), as finance people and ERPs expect; equality is by value.
        let mut amount = amount.normalize();
        if amount.scale() < currency.minor_units() {
            amount.rescale(currency.minor_units());
        }
        Ok(Self { amount, currency })
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            amount: Decimal::new(0, currency.minor_units()),
            currency,
        }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(deserialize_with = "de_amount")]
            amount: Decimal,
            currency: Currency,
        }
        fn de_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
            deserialize_decimal(d, "amount")
        }
        let raw = Raw::deserialize(d)?;
        Money::new(raw.amount, raw.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_accepts_codes_and_refuses_junk() {
        assert!(Sku::parse("AB-100/2.x_1").is_ok());
        for bad in ["", " SKU", "-LEAD", "SK U", "SKU<script>", &"X".repeat(41)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn quantity_is_exact_and_non_negative() {
        assert_eq!(Quantity::parse("2.50").unwrap().to_string(), "2.5");
        assert!(Quantity::parse("-1").is_err());
        assert!(Quantity::parse("1.0000001").is_err());
        assert!(
            serde_json::from_str::<Quantity>("1.5").is_err(),
            "floats are refused"
        );
        assert_eq!(
            serde_json::from_str::<Quantity>("3").unwrap(),
            Quantity::from_units(3)
        );
        assert_eq!(Quantity::from_units(2).minus(Quantity::from_units(3)), None);
        assert_eq!(Quantity::from_units(4).whole_units(), Some(4));
        assert_eq!(Quantity::parse("1.5").unwrap().whole_units(), None);
    }

    #[test]
    fn money_refuses_bad_currency_and_precision() {
        let ok: Money = serde_json::from_str(r#"{"amount":"19.99","currency":"USD"}"#).unwrap();
        assert_eq!(ok.to_string(), "19.99 USD");
        assert!(serde_json::from_str::<Money>(r#"{"amount":"19.99","currency":"usd"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"19.99","currency":"XYZ"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"-1","currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.5","currency":"JPY"}"#).is_ok());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.555","currency":"JPY"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":19.99,"currency":"USD"}"#).is_err());
    }

    #[test]
    fn rma_number_is_stable() {
        let id = ReturnId::parse("0190d8f2-7c1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
        assert_eq!(id.rma_number(), "RMA-0190D8F27C1E-5E6F7A8B9C0D");
    }
}
