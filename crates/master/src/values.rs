//! Constrained values that only master data needs: vendor ids, system names,
//! category and segment codes, the external codes of crosswalks, conversion
//! factors and percentages. Values shared with returns (`Sku`, `Uom`,
//! `Money`…) come from `backhaul_domain::values` and are not repeated here.
//!
//! Each is a newtype with a private field and a `parse`; serde goes through
//! the same `parse`, so a value that exists is a valid one. Errors are the
//! domain's [`ValueError`], so every bad value reads the same way.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::str::FromStr;

use backhaul_domain::values::ValueError;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn value_error(kind: &'static str, reason: impl Into<String>) -> ValueError {
    ValueError {
        kind,
        reason: reason.into(),
    }
}

/// Defines a string newtype checked by `$check`, with serde through `parse`.
/// `Borrow<str>` lets indexes keyed by the newtype be searched with a plain
/// `&str` (hash and equality are those of the inner string).
macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the value.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(raw).map_err(|reason| value_error($kind, reason))?;
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

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
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
    };
}

/// Letters, digits and `extra`, starting with a letter or digit, 1–`max`
/// characters.
fn code_like(raw: &str, max: usize, extra: &[char]) -> Result<(), String> {
    let Some(first) = raw.chars().next() else {
        return Err("must not be empty".into());
    };
    if raw.chars().count() > max {
        return Err(format!(
            "must be at most {max} characters, got {}",
            raw.chars().count()
        ));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(format!("must start with a letter or digit, got {first:?}"));
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        let allowed: Vec<String> = extra.iter().map(|c| format!("'{c}'")).collect();
        return Err(format!(
            "{bad:?} is not allowed (letters, digits and {} only)",
            allowed.join(" ")
        ));
    }
    Ok(())
}

string_value!(
    /// A vendor (supplier) in the ERP: 1–40 characters, letters, digits,
    /// `-`, `_`, `.`, `/`.
    VendorId, "vendor id",
    |s| code_like(s, 40, &['-', '_', '.', '/'])
);

string_value!(
    /// A category or segment code, e.g. `electronics`, `key_account`:
    /// 1–32 letters, digits, `_` or `-`, case kept as written.
    Code, "code",
    |s| code_like(s, 32, &['_', '-'])
);

string_value!(
    /// The name of a system whose codes a crosswalk translates (`portal`,
    /// `erp`, `wms`): a lower-case letter, then up to 31 lower-case letters,
    /// digits or `_`. The same names as the hub's targets.
    SystemName, "system name",
    |s| {
        let mut chars = s.chars();
        match chars.next() {
            None => Err("must not be empty".into()),
            Some(c) if !c.is_ascii_lowercase() => {
                Err(format!("must start with a lower-case letter, got {c:?}"))
            }
            Some(_) if s.len() > 32 => Err(format!("must be at most 32 characters, got {}", s.len())),
            Some(_) => match chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
                Some(bad) => Err(format!("{bad:?} is not allowed (lower-case letters, digits and '_' only)")),
                None => Ok(()),
            },
        }
    }
);

string_value!(
    /// A code as another system writes it (`TOO_SMALL`, `R07`, `Trop petit`):
    /// 1–64 printable characters, no leading or trailing space. Kept exactly,
    /// case included, because that is how the system sends it.
    ExternalCode, "external code",
    |s| {
        let count = s.chars().count();
        if count == 0 {
            return Err("must not be empty".into());
        }
        if count > 64 {
            return Err(format!("must be at most 64 characters, got {count}"));
        }
        if let Some(bad) = s.chars().find(|c| c.is_control()) {
            return Err(format!("{bad:?} is not printable"));
        }
        if s.trim() != s {
            return Err("must not start or end with a space".into());
        }
        Ok(())
    }
);

/// Deserialises an exact decimal from a JSON string (`"12.5"`) or integer;
/// JSON floats are refused, as everywhere in the hub, because they cannot
/// carry decimals exactly.
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
                "{} as a decimal string such as \"12.5\" or an integer",
                self.0
            )
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
            parse_decimal(v).map_err(|reason| E::custom(value_error(self.0, reason)))
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

/// An exact decimal as text: digits with an optional `.` and fraction, no
/// thousands separators, no exponent.
pub(crate) fn parse_decimal(raw: &str) -> Result<Decimal, String> {
    Decimal::from_str_exact(raw.trim())
        .map_err(|_| format!("{raw:?} is not a decimal number (write e.g. 12 or 12.5)"))
}

/// Largest conversion factor: a pallet of a million units is already absurd,
/// and the bound keeps `quantity × factor` far inside `Decimal`'s range.
const MAX_FACTOR: u32 = 1_000_000;
/// Decimal places a factor may have (a case of 0.5 kg packs, say).
const FACTOR_SCALE: u32 = 6;

/// How many base units one unit of another unit of measure holds (a case
/// holds 12 each): a positive exact decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Factor(Decimal);

impl Factor {
    pub fn parse(raw: &str) -> Result<Factor, ValueError> {
        let d = parse_decimal(raw).map_err(|reason| value_error("conversion factor", reason))?;
        Factor::from_decimal(d)
    }

    pub fn from_decimal(d: Decimal) -> Result<Factor, ValueError> {
        let fail = |reason: String| Err(value_error("conversion factor", reason));
        if d <= Decimal::ZERO {
            return fail(format!("must be greater than zero, got {d}"));
        }
        if d > Decimal::from(MAX_FACTOR) {
            return fail(format!("must be at most {MAX_FACTOR}, got {d}"));
        }
        if d.normalize().scale() > FACTOR_SCALE {
            return fail(format!("at most {FACTOR_SCALE} decimal places, got {d}"));
        }
        Ok(Factor(d.normalize()))
    }

    pub fn get(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Factor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dec = deserialize_decimal(d, "conversion factor")?;
        Factor::from_decimal(dec).map_err(serde::de::Error::custom)
    }
}

/// Decimal places a percentage may have.
const PERCENT_SCALE: u32 = 4;

/// A percentage from 0 to 100 inclusive, exact (a 15% restocking fee).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percent(Decimal);

impl Percent {
    pub fn parse(raw: &str) -> Result<Percent, ValueError> {
        let d = parse_decimal(raw).map_err(|reason| value_error("percentage", reason))?;
        Percent::from_decimal(d)
    }

    pub fn from_decimal(d: Decimal) -> Result<Percent, ValueError> {
        if (d.is_sign_negative() && !d.is_zero()) || d > Decimal::ONE_HUNDRED {
            return Err(value_error(
                "percentage",
                format!("must be between 0 and 100, got {d}"),
            ));
        }
        if d.normalize().scale() > PERCENT_SCALE {
            return Err(value_error(
                "percentage",
                format!("at most {PERCENT_SCALE} decimal places, got {d}"),
            ));
        }
        Ok(Percent(d.normalize()))
    }

    pub fn get(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dec = deserialize_decimal(d, "percentage")?;
        Percent::from_decimal(dec).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn codes_accept_what_systems_use_and_refuse_junk() {
        assert!(VendorId::parse("V-100").is_ok());
        assert!(Code::parse("key_account").is_ok());
        assert!(Code::parse("ELECTRONICS").is_ok());
        for bad in ["", " x", "a b", "_lead", &"x".repeat(33)] {
            assert!(Code::parse(bad).is_err(), "{bad:?}");
        }
        assert!(SystemName::parse("erp").is_ok());
        for bad in ["", "ERP", "1erp", "e-rp", &"e".repeat(33)] {
            assert!(SystemName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ExternalCode::parse("Trop petit (taille)").is_ok());
        assert!(
            ExternalCode::parse(&"é".repeat(64)).is_ok(),
            "64 characters, not bytes"
        );
        for bad in ["", " R07", "R07 ", "R\t07", &"x".repeat(65)] {
            assert!(ExternalCode::parse(bad).is_err(), "{bad:?}");
        }
        let err = SystemName::parse("ERP").expect_err("upper case");
        assert_eq!(
            err.to_string(),
            "invalid system name: must start with a lower-case letter, got 'E'"
        );
    }

    #[test]
    fn factors_are_positive_exact_decimals() {
        assert_eq!(Factor::parse("12").map(Factor::get), Ok(dec!(12)));
        assert_eq!(Factor::parse("0.5").map(Factor::get), Ok(dec!(0.5)));
        for bad in ["0", "-12", "1e3", "1,000", "twelve", "0.0000001", "1000001"] {
            assert!(Factor::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::from_str::<Factor>("\"12\"")
                .map(Factor::get)
                .ok(),
            Some(dec!(12))
        );
        assert_eq!(
            serde_json::from_str::<Factor>("480").map(Factor::get).ok(),
            Some(dec!(480))
        );
        assert!(
            serde_json::from_str::<Factor>("12.5").is_err(),
            "floats are refused"
        );
    }

    #[test]
    fn percentages_stay_between_0_and_100() {
        assert_eq!(Percent::parse("15").map(Percent::get), Ok(dec!(15)));
        assert_eq!(Percent::parse("0").map(Percent::get), Ok(dec!(0)));
        assert_eq!(Percent::parse("100").map(Percent::get), Ok(dec!(100)));
        for bad in ["-1", "100.01", "12.00001", "15%"] {
            assert!(Percent::parse(bad).is_err(), "{bad:?}");
        }
    }
}
