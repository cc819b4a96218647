//! The misbehaviour of a simulator: the token bucket behind 429s and the
//! seeded draws behind latency jitter, 503s and lost responses.
//!
//! Everything here is pure given the time and the seed: the bucket is read
//! at the injected clock's `now`, and the draws come from one `StdRng`
//! seeded from [`crate::SimConfig::seed`], so the same requests in the same
//! order meet the same faults. The caller holds this state behind a mutex
//! and never across an `.await`.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Faults;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// What happens to a POST once its latency has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The bucket is empty: 429 with `Retry-After`.
    RateLimited { retry_after_secs: u64 },
    /// The transient-error fault struck: 503.
    Unavailable,
    /// Handle the request; if it stores something and `lose_response` is
    /// set, answer 500 instead of the real answer.
    Admitted { lose_response: bool },
}

/// The current faults with the state they need.
#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    bucket: Option<TokenBucket>,
    rng: StdRng,
}

impl FaultState {
    /// `faults` must have passed [`Faults::validate`].
    pub(crate) fn new(faults: Faults, seed: u64) -> Self {
        FaultState {
            bucket: TokenBucket::for_faults(&faults),
            faults,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Replaces the faults. The bucket starts full again, as if the limit
    /// had just been configured; the random sequence carries on.
    pub(crate) fn replace(&mut self, faults: Faults) {
        self.bucket = TokenBucket::for_faults(&faults);
        self.faults = faults;
    }

    /// How long the next POST waits before it is looked at.
    pub(crate) fn latency(&mut self) -> StdDuration {
        let jitter = match self.faults.latency_jitter_ms {
            0 => 0,
            max => self.rng.gen_range(0..=max),
        };
        StdDuration::from_millis(self.faults.latency_ms.saturating_add(jitter))
    }

    /// Rate limit first, then the transient error, then the lost-response
    /// draw (made now so the random sequence does not depend on how long
    /// the database takes).
    pub(crate) fn admit(&mut self, now: DateTime<Utc>) -> Admission {
        if let Some(bucket) = &mut self.bucket
            && let Err(wait) = bucket.take(now)
        {
            return Admission::RateLimited {
                retry_after_secs: whole_seconds_at_least_one(wait),
            };
        }
        if self.rng.gen_bool(self.faults.transient_error_rate) {
            return Admission::Unavailable;
        }
        Admission::Admitted {
            lose_response: self.rng.gen_bool(self.faults.lost_response_rate),
        }
    }
}

/// `Retry-After` is whole seconds; rounding down to 0 would invite the
/// client to retry at once into the same empty bucket.
fn whole_seconds_at_least_one(wait: Duration) -> u64 {
    let nanos = u64::try_from(wait.num_nanoseconds().unwrap_or(i64::MAX)).unwrap_or(0);
    nanos.div_ceil(NANOS_PER_SEC.unsigned_abs()).max(1)
}

/// A token bucket in its GCRA form: instead of a token count refilled by a
/// timer, it keeps the theoretical arrival time (`tat`) of the next request
/// at the steady rate. A request is allowed when it is no earlier than
/// `tat - tolerance`; each allowed request pushes `tat` one interval on.
/// Integer time arithmetic only, and nothing to refill in the background.
#[derive(Debug, Clone)]
struct TokenBucket {
    /// Time one token takes to refill: 1 s / rate.
    interval: Duration,
    /// How far ahead of the steady rate a burst may run:
    /// (capacity − 1) × interval.
    tolerance: Duration,
    /// `None` until the first request: the bucket starts full.
    tat: Option<DateTime<Utc>>,
}

impl TokenBucket {
    fn for_faults(faults: &Faults) -> Option<TokenBucket> {
        let rate = faults.rate_limit_per_sec?;
        let capacity = if faults.burst == 0 {
            rate
        } else {
            faults.burst
        };
        Some(TokenBucket::new(rate, capacity))
    }

    fn new(rate: u32, capacity: u32) -> TokenBucket {
        let interval = NANOS_PER_SEC / i64::from(rate.max(1));
        TokenBucket {
            interval: Duration::nanoseconds(interval),
            tolerance: Duration::nanoseconds(interval * i64::from(capacity.max(1) - 1)),
            tat: None,
        }
    }

    /// Takes a token at `now`, or says how long until one is available.
    fn take(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        let tat = self.tat.map_or(now, |tat| tat.max(now));
        let earliest = tat - self.tolerance;
        if now < earliest {
            return Err(earliest - now);
        }
        self.tat = Some(tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
    }

    fn limited(rate: u32, burst: u32) -> FaultState {
        FaultState::new(
            Faults {
                rate_limit_per_sec: Some(rate),
                burst,
                ..Faults::default()
            },
            7,
        )
    }

    fn admitted(state: &mut FaultState, now: DateTime<Utc>) -> bool {
        matches!(state.admit(now), Admission::Admitted { .. })
    }

    #[test]
    fn a_burst_at_one_instant_gets_exactly_the_bucket() {
        let mut state = limited(10, 5);
        let allowed = (0..20).filter(|_| admitted(&mut state, t0())).count();
        assert_eq!(allowed, 5);
        assert_eq!(
            state.admit(t0()),
            Admission::RateLimited {
                retry_after_secs: 1
            }
        );
    }

    #[test]
    fn burst_zero_means_one_seconds_worth() {
        let mut state = limited(4, 0);
        assert_eq!((0..10).filter(|_| admitted(&mut state, t0())).count(), 4);
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let mut state = limited(2, 1);
        assert!(admitted(&mut state, t0()));
        assert!(!admitted(&mut state, t0()));
        assert!(!admitted(&mut state, t0() + Duration::milliseconds(499)));
        assert!(admitted(&mut state, t0() + Duration::milliseconds(500)));
        // A long quiet period fills the bucket only up to its size.
        let later = t0() + Duration::hours(1);
        assert!(admitted(&mut state, later));
        assert!(!admitted(&mut state, later));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let mut state = limited(1, 3);
        for _ in 0..3 {
            assert!(admitted(&mut state, t0()));
        }
        // Three tokens ahead at 1/s: the next one is due in one second.
        assert_eq!(
            state.admit(t0()),
            Admission::RateLimited {
                retry_after_secs: 1
            }
        );
        assert_eq!(whole_seconds_at_least_one(Duration::milliseconds(1001)), 2);
        assert_eq!(whole_seconds_at_least_one(Duration::zero()), 1);
    }

    #[test]
    fn draws_are_reproducible_from_the_seed() {
        let faults = Faults {
            transient_error_rate: 0.5,
            lost_response_rate: 0.5,
            latency_jitter_ms: 100,
            ..Faults::default()
        };
        let run = |seed| {
            let mut state = FaultState::new(faults.clone(), seed);
            (0..50)
                .map(|_| (state.latency(), state.admit(t0())))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn certain_faults_always_strike() {
        let mut state = FaultState::new(
            Faults {
                transient_error_rate: 1.0,
                ..Faults::default()
            },
            0,
        );
        assert!((0..10).all(|_| state.admit(t0()) == Admission::Unavailable));
        state.replace(Faults {
            lost_response_rate: 1.0,
            ..Faults::default()
        });
        assert!((0..10).all(|_| state.admit(t0())
            == Admission::Admitted {
                lose_response: true
            }));
    }
}
