//! Refund arithmetic for one unit: exact decimals, rounded once per amount
//! to the currency's minor unit, half away from zero (commercial rounding).

use backhaul_domain::values::{Money, ValueError};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::RefundError;

/// What is refunded for one unit, and the fee kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    /// Unit price minus the fee.
    pub price: Money,
    /// Tax refunded: the original tax in proportion to the price refunded.
    pub tax: Money,
    /// The fee kept (never more than the unit price).
    pub fee: Money,
}

impl Refund {
    /// Price plus tax: what the customer gets back for the unit.
    pub fn total(&self) -> Decimal {
        self.price.amount() + self.tax.amount()
    }
}

/// The refund for one unit: `price - fee`, and tax proportional to the
/// original (`tax × refunded price / unit price`), each rounded to the
/// currency's minor unit half away from zero. The fee is capped at the unit
/// price, so nothing is ever negative; a zero-price unit refunds zero tax.
pub fn refund(unit_price: &Money, unit_tax: &Money, fee: &Money) -> Result<Refund, RefundError> {
    let currency = unit_price.currency();
    for (what, m) in [("tax", unit_tax), ("fee", fee)] {
        if m.currency() != currency {
            return Err(RefundError::CurrencyMismatch {
                price: currency.to_string(),
                what,
                other: m.currency().to_string(),
            });
        }
    }
    let price = unit_price.amount();
    let fee = fee.amount().min(price);
    let refunded = price - fee;
    let tax = if price.is_zero() {
        Decimal::ZERO
    } else {
        // Multiply first: both factors are capped far below Decimal's range,
        // and dividing last keeps the most precision.
        unit_tax
            .amount()
            .checked_mul(refunded)
            .and_then(|t| t.checked_div(price))
            .ok_or_else(|| ValueError {
                kind: "money",
                reason: "tax proportion out of range".into(),
            })?
    };
    let round = |d: Decimal| {
        Money::new(
            d.round_dp_with_strategy(
                currency.minor_units(),
                RoundingStrategy::MidpointAwayFromZero,
            ),
            currency,
        )
    };
    Ok(Refund {
        price: round(refunded)?,
        tax: round(tax)?,
        fee: round(fee)?,
    })
}
