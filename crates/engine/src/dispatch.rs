//! The dispatcher: delivers the outbox at least once, in order per return
//! and target, throttled per connector, and turns each result into the next
//! command.
//!
//! One attempt, start to end:
//! 1. claim: the store leases due deliveries whose lane is free and whose
//!    prerequisites are done, at most as many per target as the target's
//!    token bucket, concurrency cap and circuit breaker allow now;
//! 2. deliver: the target's [`Sink`] sends the action with the delivery's
//!    key, under a timeout;
//! 3. feed back: a result the return must know (the ERP's return order
//!    number, the carrier's label, the credit memo) is applied as a command
//!    whose idempotency key is the delivery key, so a repeated delivery
//!    feeds back once;
//! 4. finish: done; or a technical failure retried after exponential backoff
//!    with full jitter (at least the target's `Retry-After`) until the
//!    attempts run out (dead letter); or a business rejection, parked in the
//!    exception queue with the return, stage, system, error and suggested
//!    owner for an operator.
//!
//! A crash anywhere leaves the delivery pending under a lease: the same hub
//! releases its leases when it starts again (another hub takes it when the
//! lease runs out) and delivers it again with the same key, which the target
//! and the feedback both deduplicate. So: at least once to the target,
//! exactly once in effect.
//!
//! Time comes from the engine's clock, so tests drive retries, throttling
//! and breakers with a manual clock and [`Dispatcher::run_once`]; only the
//! idle wait of [`Dispatcher::run`] uses real time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backhaul_domain::action::{self, Action, ActionKind, ActionResult, Target};
use backhaul_store::{ClaimRequest, Claimed, DeliveryStore, EventStore, Finish, JsonText};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::engine::{CommandMeta, Engine, Error, Idempotency};
use crate::outbound::{DeliveryRequest, Sink, SinkError};

/// The configured sinks, each with its delivery rules.
pub type Sinks = Vec<(Arc<dyn Sink>, DeliveryPolicy)>;

/// Delivery rules of one connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryPolicy {
    /// Sustained requests per second to the target (token bucket refill).
    pub rate_per_sec: f64,
    /// Requests that may go at once after a quiet period (bucket size).
    pub burst: u32,
    /// Deliveries in flight to the target at most.
    pub concurrency: usize,
    /// Attempts before a technical failure becomes a dead letter.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff_initial_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// One attempt may take this long before it counts as a timeout.
    pub timeout_ms: u64,
    /// Consecutive technical failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker stops deliveries before one trial.
    pub breaker_cooldown_ms: u64,
    /// Action kinds of this target the connector is not given: the hub
    /// writes no delivery for them, rather than one the system refuses into
    /// the exception queue for every return. For what the organisation does
    /// elsewhere or not at all: an ERP whose returns delivery posts the stock
    /// (no `erp_inventory_adjustment`), supplier claims booked by hand. A
    /// kind another kind of the target waits for is skipped only with it.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub skip_kinds: BTreeSet<ActionKind>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            rate_per_sec: 50.0,
            burst: 50,
            concurrency: 8,
            max_attempts: 8,
            backoff_initial_ms: 500,
            backoff_max_ms: 60_000,
            timeout_ms: 10_000,
            breaker_threshold: 10,
            breaker_cooldown_ms: 30_000,
            skip_kinds: BTreeSet::new(),
        }
    }
}

impl DeliveryPolicy {
    /// Refuses settings that would stall or flood a target.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return Err(format!(
                "rate_per_sec must be above 0, got {}",
                self.rate_per_sec
            ));
        }
        if self.burst == 0 {
            return Err("burst must be at least 1".to_owned());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".to_owned());
        }
        if self.max_attempts < 1 {
            return Err("max_attempts must be at least 1".to_owned());
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return Err("backoff_initial_ms must be above 0 and at most backoff_max_ms".to_owned());
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be above 0".to_owned());
        }
        if self.breaker_threshold == 0 {
            return Err("breaker_threshold must be at least 1".to_owned());
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and `skip_kinds` for a connector of
    /// `target`: each kind is one of the target's, and none that a kind
    /// still delivered waits for (its result is what that kind refers to).
    pub fn validate_for(&self, target: Target) -> Result<(), String> {
        self.validate()?;
        for kind in &self.skip_kinds {
            if kind.target() != target {
                return Err(format!(
                    "skip_kinds: `{}` is an action for {}, not {}",
                    kind.as_str(),
                    kind.target().as_str(),
                    target.as_str()
                ));
            }
        }
        for kind in ActionKind::ALL {
            if kind.target() != target || self.skip_kinds.contains(&kind) {
                continue;
            }
            if let Some(needed) = kind.requires().iter().find(|r| self.skip_kinds.contains(r)) {
                return Err(format!(
                    "skip_kinds: `{}` waits for `{}`; skip it too, or deliver `{}`",
                    kind.as_str(),
                    needed.as_str(),
                    needed.as_str()
                ));
            }
        }
        Ok(())
    }

    /// The delay before attempt `attempts + 1`: full jitter over an
    /// exponential ceiling, but never less than what the target asked for.
    fn backoff(&self, attempts: i32, retry_after: Option<Duration>) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let ceiling = self
            .backoff_initial_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_ms);
        let jittered = rand::thread_rng().gen_range(self.backoff_initial_ms.min(ceiling)..=ceiling);
        let delay = Duration::from_millis(jittered);
        retry_after.map_or(delay, |asked| delay.max(asked))
    }
}

/// Dispatcher settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherConfig {
    /// The name this hub leases under. Each hub sharing a database needs its
    /// own; a hub restarted under the same name takes its leases back at
    /// once.
    pub instance: String,
    /// How long a claimed delivery stays leased to this hub.
    pub lease_secs: u64,
    /// How often an idle dispatcher looks for due retries.
    pub poll_interval_ms: u64,
    /// Due rows looked at per claim.
    pub scan_limit: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            instance: "hub".to_owned(),
            lease_secs: 60,
            poll_interval_ms: 200,
            scan_limit: 500,
        }
    }
}

/// Token bucket on the engine's clock.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Option<DateTime<Utc>>,
}

/// The circuit breaker of one connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
    },
    /// One trial delivery is in flight; its outcome closes or reopens.
    HalfOpen,
}

/// Counters per connector, for telemetry and tests.
#[derive(Debug, Default)]
struct Counters {
    attempts: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    exceptions: AtomicU64,
    max_in_flight: AtomicUsize,
}

/// A snapshot of one connector's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnectorStats {
    pub attempts: u64,
    pub delivered: u64,
    pub retried: u64,
    pub dead: u64,
    pub exceptions: u64,
    /// The most deliveries ever in flight at once.
    pub max_in_flight: usize,
    pub breaker: &'static str,
}

struct Connector {
    sink: Arc<dyn Sink>,
    policy: DeliveryPolicy,
    bucket: Mutex<Bucket>,
    breaker: Mutex<Breaker>,
    in_flight: AtomicUsize,
    counters: Counters,
}

impl Connector {
    /// How many deliveries may start now: the bucket's whole tokens, the
    /// free concurrency, and what the breaker allows.
    fn headroom(&self, now: DateTime<Utc>) -> usize {
        let free = self
            .policy
            .concurrency
            .saturating_sub(self.in_flight.load(Ordering::SeqCst));
        let breaker = {
            let mut b = lock(&self.breaker);
            match *b {
                Breaker::Closed { .. } => usize::MAX,
                Breaker::Open { until } if now >= until => {
                    *b = Breaker::HalfOpen;
                    1
                }
                Breaker::Open { .. } => 0,
                // The trial is out: wait for it.
                Breaker::HalfOpen => {
                    if self.in_flight.load(Ordering::SeqCst) == 0 {
                        1
                    } else {
                        0
                    }
                }
            }
        };
        let tokens = {
            let mut bucket = lock(&self.bucket);
            self.refill(&mut bucket, now);
            // Whole tokens only; the bucket is at most `burst`.
            bucket.tokens.floor() as usize
        };
        free.min(breaker).min(tokens)
    }

    fn refill(&self, bucket: &mut Bucket, now: DateTime<Utc>) {
        let burst = f64::from(self.policy.burst);
        match bucket.at {
            None => bucket.tokens = burst,
            Some(at) if now > at => {
                let secs = (now - at).to_std().unwrap_or_default().as_secs_f64();
                bucket.tokens = (bucket.tokens + secs * self.policy.rate_per_sec).min(burst);
            }
            Some(_) => {}
        }
        bucket.at = Some(bucket.at.map_or(now, |at| at.max(now)));
    }

    fn take_tokens(&self, n: usize) {
        let mut bucket = lock(&self.bucket);
        bucket.tokens -= n as f64;
    }

    fn record(&self, outcome: &Result<ActionResult, SinkError>, now: DateTime<Utc>) {
        let mut b = lock(&self.breaker);
        match outcome {
            // A business rejection proves the target is up.
            Ok(_) | Err(SinkError::Business { .. }) => *b = Breaker::Closed { failures: 0 },
            // Throttled: the target is up and said when to come back.
            Err(SinkError::Technical {
                status: Some(429), ..
            }) => {
                if *b == Breaker::HalfOpen {
                    *b = Breaker::Closed { failures: 0 };
                }
            }
            Err(SinkError::Technical { .. }) => {
                *b = match *b {
                    Breaker::Closed { failures }
                        if failures + 1 < self.policy.breaker_threshold =>
                    {
                        Breaker::Closed {
                            failures: failures + 1,
                        }
                    }
                    Breaker::Closed { .. } | Breaker::HalfOpen | Breaker::Open { .. } => {
                        Breaker::Open {
                            until: now + millis(self.policy.breaker_cooldown_ms),
                        }
                    }
                };
            }
        }
    }

    fn stats(&self) -> ConnectorStats {
        ConnectorStats {
            attempts: self.counters.attempts.load(Ordering::SeqCst),
            delivered: self.counters.delivered.load(Ordering::SeqCst),
            retried: self.counters.retried.load(Ordering::SeqCst),
            dead: self.counters.dead.load(Ordering::SeqCst),
            exceptions: self.counters.exceptions.load(Ordering::SeqCst),
            max_in_flight: self.counters.max_in_flight.load(Ordering::SeqCst),
            breaker: match *lock(&self.breaker) {
                Breaker::Closed { .. } => "closed",
                Breaker::Open { .. } => "open",
                Breaker::HalfOpen => "half_open",
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain numbers behind, which
    // are still meaningful: recover instead of poisoning the dispatcher.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(ms: u64) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// What one [`Dispatcher::run_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
    pub exceptions: usize,
}

/// How one attempt ended.
enum Ended {
    Delivered,
    Retried,
    Dead,
    Exception,
    /// The lease was taken over meanwhile; nothing recorded.
    LeaseLost,
}

/// Delivers the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<DispatcherInner>,
}

struct DispatcherInner {
    engine: Engine,
    config: DispatcherConfig,
    connectors: BTreeMap<Target, Connector>,
}

impl Dispatcher {
    /// A dispatcher for `sinks`, one per target at most.
    pub fn new(
        engine: Engine,
        config: DispatcherConfig,
        sinks: Sinks,
    ) -> Result<Dispatcher, String> {
        let mut connectors = BTreeMap::new();
        for (sink, policy) in sinks {
            let target = sink.target();
            policy
                .validate_for(target)
                .map_err(|e| format!("connector for {}: {e}", target.as_str()))?;
            let connector = Connector {
                sink,
                policy,
                bucket: Mutex::new(Bucket {
                    tokens: 0.0,
                    at: None,
                }),
                breaker: Mutex::new(Breaker::Closed { failures: 0 }),
                in_flight: AtomicUsize::new(0),
                counters: Counters::default(),
            };
            if connectors.insert(target, connector).is_some() {
                return Err(format!("two connectors for {}", target.as_str()));
            }
        }
        Ok(Dispatcher {
            inner: Arc::new(DispatcherInner {
                engine,
                config,
                connectors,
            }),
        })
    }

    /// The targets this dispatcher delivers to.
    pub fn targets(&self) -> Vec<Target> {
        self.inner.connectors.keys().copied().collect()
    }

    /// The system name each target's documents carry.
    pub fn systems(&self) -> BTreeMap<Target, String> {
        self.inner
            .connectors
            .iter()
            .map(|(t, c)| (*t, c.sink.system().to_string()))
            .collect()
    }

    /// Counters per connector.
    pub fn stats(&self) -> BTreeMap<Target, ConnectorStats> {
        self.inner
            .connectors
            .iter()
            .map(|(t, c)| (*t, c.stats()))
            .collect()
    }

    /// Health of every connector's target.
    pub async fn health(&self) -> BTreeMap<Target, Result<(), SinkError>> {
        let mut out = BTreeMap::new();
        for (target, c) in &self.inner.connectors {
            out.insert(*target, c.sink.health().await);
        }
        out
    }

    /// Takes back this hub's leases (after a restart).
    pub async fn recover(&self) -> Result<u64, Error> {
        Ok(self
            .inner
            .engine
            .store()
            .release_leases(&self.inner.config.instance)
            .await?)
    }

    /// Claims what may go now and delivers it, waiting for every attempt to
    /// end. For tests and tools; the service runs [`Dispatcher::run`].
    pub async fn run_once(&self) -> Result<RunReport, Error> {
        let claimed = self.claim().await?;
        let mut report = RunReport {
            claimed: claimed.len(),
            ..RunReport::default()
        };
        let mut attempts: FuturesUnordered<_> =
            claimed.into_iter().map(|c| self.attempt(c)).collect();
        while let Some(ended) = attempts.next().await {
            match ended {
                Ended::Delivered => report.delivered += 1,
                Ended::Retried => report.retried += 1,
                Ended::Dead => report.dead += 1,
                Ended::Exception => report.exceptions += 1,
                Ended::LeaseLost => {}
            }
        }
        Ok(report)
    }

    /// Delivers until `shutdown`, then lets the attempts in flight end (each
    /// is bounded by its timeout).
    pub async fn run(self, shutdown: CancellationToken) {
        match self.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "took back deliveries leased before a restart"),
            Err(error) => tracing::warn!(%error, "could not release earlier leases"),
        }
        let written = self.inner.engine.outbox_written();
        let poll = Duration::from_millis(self.inner.config.poll_interval_ms.max(1));
        // Attempts run as tasks of their own: an attempt holding a database
        // connection must make progress while this loop waits to claim the
        // next ones (polled inline, it would not, and the two would wait on
        // each other). The set is owned here and drained before returning.
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            match self.claim().await {
                Ok(claimed) => {
                    for c in claimed {
                        let me = self.clone();
                        in_flight.spawn(async move { me.attempt(c).await });
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming deliveries failed"),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = written.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
        let left = in_flight.len();
        while in_flight.join_next().await.is_some() {}
        tracing::info!(finished = left, "dispatcher stopped");
    }

    async fn claim(&self) -> Result<Vec<Claimed>, Error> {
        let now = self.inner.engine.now();
        let quota: HashMap<String, usize> = self
            .inner
            .connectors
            .iter()
            .map(|(t, c)| (t.as_str().to_owned(), c.headroom(now)))
            .collect();
        if quota.values().all(|q| *q == 0) {
            return Ok(Vec::new());
        }
        let claimed = self
            .inner
            .engine
            .store()
            .claim_deliveries(&ClaimRequest {
                now,
                owner: self.inner.config.instance.clone(),
                lease_until: now
                    + chrono::Duration::seconds(
                        i64::try_from(self.inner.config.lease_secs).unwrap_or(60),
                    ),
                quota,
                scan_limit: self.inner.config.scan_limit,
            })
            .await?;
        let mut per_target: BTreeMap<Target, usize> = BTreeMap::new();
        for c in &claimed {
            if let Some(t) = Target::parse(&c.delivery.target) {
                *per_target.entry(t).or_default() += 1;
            }
        }
        for (t, n) in per_target {
            if let Some(c) = self.inner.connectors.get(&t) {
                c.take_tokens(n);
                let now_in_flight = c.in_flight.fetch_add(n, Ordering::SeqCst) + n;
                c.counters
                    .max_in_flight
                    .fetch_max(now_in_flight, Ordering::SeqCst);
            }
        }
        Ok(claimed)
    }

    async fn attempt(&self, claimed: Claimed) -> Ended {
        let d = &claimed.delivery;
        let target = Target::parse(&d.target);
        let connector = target.and_then(|t| self.inner.connectors.get(&t));
        let span = tracing::info_span!(
            "delivery",
            delivery_id = d.id,
            connector = %d.target,
            kind = %d.kind,
            return_id = %d.stream_id,
            correlation_id = %d.correlation_id,
            attempt = d.attempts,
        );
        let ended = match connector {
            Some(c) => self.attempt_with(c, &claimed).instrument(span).await,
            // Claimed only for configured targets; a row naming an unknown
            // target is parked rather than retried forever.
            None => {
                let error = json_error("unknown_target", &format!("no connector for {}", d.target));
                self.finish(&claimed, Finish::Exception { error }).await
            }
        };
        if let Some(c) = connector {
            c.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        ended
    }

    async fn attempt_with(&self, c: &Connector, claimed: &Claimed) -> Ended {
        let d = &claimed.delivery;
        c.counters.attempts.fetch_add(1, Ordering::SeqCst);

        let action: Action = match d.payload.parse() {
            Ok(a) => a,
            Err(e) => {
                let error = json_error(
                    "invalid_payload",
                    &format!("the stored action does not parse: {e}"),
                );
                return self.finish(claimed, Finish::Exception { error }).await;
            }
        };
        let prerequisites = parse_prerequisites(&claimed.prerequisites);
        let rules = self.inner.engine.rules().current();
        let request = DeliveryRequest {
            delivery_id: d.id,
            key: &d.delivery_key,
            attempt: d.attempts,
            action: &action,
            prerequisites: &prerequisites,
            correlation_id: d.correlation_id,
            master: &rules.master,
        };
        let timeout = Duration::from_millis(c.policy.timeout_ms);
        let outcome = match tokio::time::timeout(timeout, c.sink.deliver(request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SinkError::technical(
                "timeout",
                format!("no answer within {} ms", c.policy.timeout_ms),
            )),
        };
        let now = self.inner.engine.now();
        c.record(&outcome, now);

        let finish = match outcome {
            Ok(result) => match self.feed_back(c, claimed, &action, &result).await {
                Ok(()) => Finish::Done {
                    result: to_json(&result),
                },
                Err(finish) => finish,
            },
            Err(error @ SinkError::Business { .. }) => {
                tracing::warn!(%error, "target refused the delivery");
                Finish::Exception {
                    error: business_error(&error, action.kind),
                }
            }
            Err(error @ SinkError::Technical { .. }) => {
                let retry_after = match &error {
                    SinkError::Technical { retry_after, .. } => *retry_after,
                    SinkError::Business { .. } => None,
                };
                // A 429 is the target pacing us, not failing: it never
                // turns a delivery into a dead letter.
                let throttled = matches!(
                    &error,
                    SinkError::Technical {
                        status: Some(429),
                        ..
                    }
                );
                if d.attempts >= c.policy.max_attempts && !throttled {
                    tracing::warn!(%error, "attempts exhausted: dead letter");
                    Finish::Dead {
                        error: to_json(&error),
                    }
                } else {
                    let delay = c.policy.backoff(d.attempts, retry_after);
                    tracing::info!(%error, delay_ms = delay.as_millis(), "will retry");
                    Finish::Retry {
                        next_attempt_at: now
                            + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                        error: to_json(&error),
                    }
                }
            }
        };
        let counter = match &finish {
            Finish::Done { .. } => &c.counters.delivered,
            Finish::Retry { .. } => &c.counters.retried,
            Finish::Dead { .. } => &c.counters.dead,
            Finish::Exception { .. } => &c.counters.exceptions,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.finish(claimed, finish).await
    }

    /// Applies the result to the return, once per delivery key. `Err` is how
    /// the delivery must end instead of done.
    async fn feed_back(
        &self,
        c: &Connector,
        claimed: &Claimed,
        action: &Action,
        result: &ActionResult,
    ) -> Result<(), Finish> {
        let Some(command) = action::feedback(action, result, c.sink.system()) else {
            return Ok(());
        };
        let d = &claimed.delivery;
        let meta = CommandMeta {
            partner: format!("connector:{}", d.target),
            idempotency: Some(Idempotency {
                key: d.delivery_key.clone(),
                request_hash: format!("delivery:{}", d.id),
            }),
            correlation_id: Some(d.correlation_id),
            causation_id: None,
        };
        match self
            .inner
            .engine
            .execute(action.return_id, command, meta)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Rejected(rejection)) => {
                tracing::warn!(%rejection, "the return refused the delivery's result");
                let mut error = serde_json::json!({
                    "class": "business",
                    "code": "result_refused",
                    "message": format!("the return refused the {} result: {rejection}", action.kind.as_str()),
                    "rejection": rejection.code(),
                    "suggested_owner": "support",
                    "result": result,
                });
                if let Ok(stage) = self.stage_of(action).await {
                    error["stage"] = serde_json::Value::String(stage);
                }
                Err(Finish::Exception {
                    error: error.into(),
                })
            }
            Err(other) => {
                // The store or the engine failed: the target has the
                // posting, the return does not know yet. Deliver again later
                // (the target answers the same) and feed back then.
                Err(Finish::Retry {
                    next_attempt_at: self.inner.engine.now() + millis(c.policy.backoff_initial_ms),
                    error: json_error("feedback_failed", &other.to_string()),
                })
            }
        }
    }

    async fn stage_of(&self, action: &Action) -> Result<String, Error> {
        let row = self
            .inner
            .engine
            .store()
            .get_summary(action.return_id.as_uuid())
            .await?;
        Ok(row.map(|r| r.stage).unwrap_or_default())
    }

    async fn finish(&self, claimed: &Claimed, finish: Finish) -> Ended {
        let ended = match &finish {
            Finish::Done { .. } => Ended::Delivered,
            Finish::Retry { .. } => Ended::Retried,
            Finish::Dead { .. } => Ended::Dead,
            Finish::Exception { .. } => Ended::Exception,
        };
        let now = self.inner.engine.now();
        match self
            .inner
            .engine
            .store()
            .finish_delivery(
                claimed.delivery.id,
                &self.inner.config.instance,
                finish,
                now,
            )
            .await
        {
            Ok(true) => ended,
            Ok(false) => {
                tracing::warn!(
                    delivery_id = claimed.delivery.id,
                    "lease lost before the attempt ended; another attempt owns it"
                );
                Ended::LeaseLost
            }
            Err(error) => {
                // The lease runs out and the delivery is attempted again.
                tracing::error!(delivery_id = claimed.delivery.id, %error, "could not record the attempt");
                Ended::LeaseLost
            }
        }
    }
}

fn parse_prerequisites(
    raw: &BTreeMap<String, Option<JsonText>>,
) -> BTreeMap<ActionKind, Option<ActionResult>> {
    raw.iter()
        .filter_map(|(kind, result)| {
            let kind = ActionKind::parse(kind)?;
            Some((kind, result.as_ref().and_then(|r| r.parse().ok())))
        })
        .collect()
}

fn to_json<T: Serialize>(value: &T) -> JsonText {
    JsonText::from_value(value).unwrap_or_else(|_| JsonText::from(serde_json::Value::Null))
}

fn json_error(code: &str, message: &str) -> JsonText {
    JsonText::from(serde_json::json!({ "class": "technical", "code": code, "message": message }))
}

/// A business rejection as the exception queue shows it: the target's error
/// plus who should look at it first.
/// A 400 means the hub sent something the target cannot read: a contract
/// problem for the integration team, not a business decision.
fn business_error(error: &SinkError, kind: ActionKind) -> JsonText {
    let mut value = serde_json::to_value(error).unwrap_or(serde_json::Value::Null);
    let owner = match error {
        SinkError::Business {
            status: Some(400), ..
        } => "integration",
        SinkError::Business { .. } | SinkError::Technical { .. } => kind.suggested_owner(),
    };
    value["suggested_owner"] = serde_json::Value::String(owner.to_owned());
    JsonText::from(value)
}
