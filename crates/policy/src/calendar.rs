//! Calendar arithmetic in the policy's time zone: day counts for return
//! windows and warranty terms. Everything is computed on local calendar
//! dates, because a customer's "30 days" ends at local midnight, not at a
//! UTC instant.

use chrono::{DateTime, Months, NaiveDate, Utc};
use chrono_tz::Tz;

/// A warranty term: for units of `category` sold on or after `sold_from`,
/// the warranty runs `months` from the ship date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WarrantyTerm {
    /// A SKU category, or `*` for any category without its own terms.
    pub(crate) category: String,
    pub(crate) sold_from: NaiveDate,
    pub(crate) months: u32,
}

/// The warranty that applies to a unit, as of some date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warranty {
    /// The length of the term in force when the unit was sold.
    pub months: u32,
    /// The `sold_from` date of that term, which identifies it in the policy.
    pub terms_from: NaiveDate,
    /// The last day (local) the unit is under warranty, inclusive.
    pub until: NaiveDate,
    /// Whether the date asked about is on or before `until`.
    pub active: bool,
}

/// The policy's clock-free calendar: time zone and warranty terms.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    pub(crate) tz: Tz,
    /// Sorted by `sold_from` so the last match is the one in force.
    pub(crate) terms: Vec<WarrantyTerm>,
}

impl Calendar {
    pub(crate) fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// Calendar days from `from` to `to` in the policy's time zone: 0 on the
    /// same local day, 1 on the next, whatever the hours.
    pub(crate) fn days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        (self.local_date(to) - self.local_date(from)).num_days()
    }

    /// The warranty for a unit of `category`: the terms are those in force
    /// at the sale (the latest `sold_from` on or before the local sale
    /// date), and the term runs from the ship date. Without a sale date the
    /// ship date stands in for it, and vice versa; without either there is
    /// no warranty to speak of.
    pub(crate) fn warranty(
        &self,
        category: &str,
        sold_at: Option<DateTime<Utc>>,
        shipped_at: Option<DateTime<Utc>>,
        on: DateTime<Utc>,
    ) -> Option<Warranty> {
        let sold = self.local_date(sold_at.or(shipped_at)?);
        let start = self.local_date(shipped_at.or(sold_at)?);
        let in_force = |wanted: &str| {
            self.terms
                .iter()
                .rfind(|t| t.category == wanted && t.sold_from <= sold)
        };
        let term = in_force(category).or_else(|| in_force("*"))?;
        // `checked_add_months` clamps to the end of a shorter month
        // (31 January + 1 month = 28 or 29 February), as contracts read.
        let until = start.checked_add_months(Months::new(term.months))?;
        Some(Warranty {
            months: term.months,
            terms_from: term.sold_from,
            until,
            active: self.local_date(on) <= until,
        })
    }
}
