//! Command handling. One [`Engine`] per hub process; cheap to clone.
//!
//! Concurrency: commands for one return are serialised in-process by a
//! per-return async lock, so they rarely conflict; across processes (several
//! hubs on PostgreSQL) the store's optimistic concurrency check catches a
//! stale state, and the engine reloads and decides again.
//!
//! Idempotency: a command may carry a partner-scoped key and a hash of the
//! request. The record is written in the same transaction as the events, so
//! "applied" and "remembered" can never disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use backhaul_domain::action::{Action, ActionKind, Target};
use backhaul_domain::eligibility::Assessment;
use backhaul_domain::model::ReturnRequest;
use backhaul_domain::{
    Command, EVENT_SCHEMA_VERSION, Event, Rejection, ReturnState, ReturnSummary, decide, evolve,
    values::ReturnId,
};
use backhaul_master::{Changes, ImportErrors, Kind, MasterData, Mode, Record, persist};
use backhaul_store::{
    AnyStore, AppendConflict, AppendRequest, BacklogRow, Committer, CommitterConfig,
    CommitterHandle, EventStore, IdempotencyRecord, JsonText, NewDelivery, NewEvent, RecordedEvent,
    StreamLookup, SummaryFilter, SummaryRow,
};
use chrono::{DateTime, Utc};
use lru::LruCache;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::clock::Clock;
use crate::ownership::{NotOwner, Ownership};
use crate::rules::{Rules, RulesError, RulesHandle, claimed_by};

/// How often a command is decided again after losing an optimistic
/// concurrency race before giving up.
const MAX_ATTEMPTS: usize = 5;

/// Errors of the engine boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The domain refused the command; nothing was stored.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The idempotency key was used before with a different request.
    #[error("idempotency key {key:?} was already used with a different request")]
    IdempotencyKeyReused { key: String },
    /// Other writers kept winning the race for this return.
    #[error("return {0} is being changed concurrently; retry")]
    Contention(ReturnId),
    /// A decision would have broken a lifecycle invariant. This is a bug in
    /// the domain; the command is refused rather than stored.
    #[error("invariant violated, command refused: {0}")]
    Invariant(String),
    #[error("stored event could not be decoded: {0}")]
    Corrupt(String),
    /// The sender's system does not own an attribute the command sets; the
    /// refusal was recorded on the return.
    #[error(transparent)]
    NotOwner(#[from] NotOwner),
    /// The request cannot be read in the hub's terms (an unmapped code, a
    /// unit of measure the SKU does not have); nothing was stored.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// Master data sent or imported has problems; nothing was stored.
    #[error(transparent)]
    MasterData(ImportErrors),
    /// Master data could not be read or written.
    #[error("master data: {0}")]
    Master(String),
    /// Eligibility was asked of a hub that has no policy in force.
    #[error("no eligibility policy is in force on this hub")]
    NoPolicy,
    #[error(transparent)]
    Store(#[from] backhaul_store::Error),
}

/// Engine settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Group commit: batch size and queue length.
    pub committer: CommitterConfig,
    /// How many returns' states are kept in memory. A miss costs one read of
    /// the return's stream.
    pub cache_capacity: usize,
    /// The systems connected to this hub: the actions a command calls for
    /// are written to the outbox only for these (the others have nobody to
    /// deliver them). Set from the configured connectors, not from the file.
    #[serde(skip)]
    pub outbound: BTreeSet<Target>,
    /// Action kinds of those systems that their connectors are not given
    /// (`delivery.skip_kinds`): written to the outbox for nobody. Set from
    /// the configured connectors with [`connect`](Self::connect).
    #[serde(skip)]
    pub skipped: BTreeSet<ActionKind>,
    /// Which system owns which governed attribute (`[engine.ownership]`,
    /// checked when the configuration is read).
    pub ownership: Ownership,
    /// The policy and master data in force. Set by the binary (from the
    /// `[policy]` section and the store), not from this section.
    #[serde(skip)]
    pub rules: RulesHandle,
    /// Whether an inspection is dispositioned by the policy in the same
    /// step (`[policy] dispose_on_inspection`). Off, a partner sends the
    /// dispositions.
    #[serde(skip)]
    pub dispose_on_inspection: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            committer: CommitterConfig::default(),
            cache_capacity: 100_000,
            outbound: BTreeSet::new(),
            skipped: BTreeSet::new(),
            ownership: Ownership::default(),
            rules: RulesHandle::default(),
            dispose_on_inspection: false,
        }
    }
}

impl EngineConfig {
    /// The systems `sinks` serve, and the kinds their policies skip.
    pub fn connect(&mut self, sinks: &crate::dispatch::Sinks) {
        self.outbound = sinks.iter().map(|(sink, _)| sink.target()).collect();
        self.skipped = sinks
            .iter()
            .flat_map(|(_, policy)| policy.skip_kinds.iter().copied())
            .collect();
    }
}

/// Who sends a command, and how it relates to others.
#[derive(Debug, Clone, Default)]
pub struct CommandMeta {
    /// The integration partner (API key owner) or `cli`/`demo`.
    pub partner: String,
    pub idempotency: Option<Idempotency>,
    /// Defaults to the return's correlation id (new returns get a new one).
    pub correlation_id: Option<Uuid>,
    /// The inbound message or event that caused this command; defaults to a
    /// new command id.
    pub causation_id: Option<Uuid>,
}

/// An idempotency key and the hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// The result of a command, as the API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub return_id: ReturnId,
    /// 201 for a new return, 200 otherwise.
    pub status: u16,
    /// `{"return": summary, "version": n, "events": [types]}`, as JSON text.
    pub body: JsonText,
    /// How many events the command appended.
    pub event_count: usize,
    /// True when this is the stored answer to an earlier identical request.
    pub replayed: bool,
}

/// One event of a return's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub position: i64,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub payload: JsonText,
}

impl From<RecordedEvent> for TimelineEntry {
    fn from(r: RecordedEvent) -> Self {
        Self {
            position: r.position,
            version: r.version,
            event_id: r.event.event_id,
            event_type: r.event.event_type,
            schema_version: r.event.schema_version,
            correlation_id: r.event.correlation_id,
            causation_id: r.event.causation_id,
            recorded_at: r.event.recorded_at,
            payload: r.event.payload,
        }
    }
}

/// A return's state as of a version.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) state: ReturnState,
    pub(crate) version: i64,
    correlation_id: Uuid,
}

/// Folds a stream's recorded events (in version order) into its state.
pub(crate) fn fold(recorded: &[RecordedEvent]) -> Result<Loaded, Error> {
    let mut state = ReturnState::default();
    let mut version = 0;
    let mut correlation_id = Uuid::nil();
    for r in recorded {
        evolve(&mut state, &decode(r)?);
        version = r.version;
        if r.version == 1 {
            correlation_id = r.event.correlation_id;
        }
    }
    Ok(Loaded {
        state,
        version,
        correlation_id,
    })
}

/// Cache slot of one return; its lock serialises that return's commands.
#[derive(Debug, Default)]
struct Slot {
    loaded: Option<Loaded>,
}

type Slots = LruCache<Uuid, Arc<tokio::sync::Mutex<Slot>>>;

struct Inner {
    store: AnyStore,
    committer: CommitterHandle,
    clock: Arc<dyn Clock>,
    slots: Mutex<Slots>,
    outbound: BTreeSet<Target>,
    skipped: BTreeSet<ActionKind>,
    ownership: Ownership,
    rules: RulesHandle,
    dispose_on_inspection: bool,
    /// Woken after a commit that wrote deliveries, so the dispatcher need
    /// not poll for new work.
    outbox_written: Arc<Notify>,
}

/// Applies commands and answers queries. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Brings the store's read model up to its log ([`crate::catch_up`]:
    /// rows a crash kept from being written), then starts the engine. The way
    /// to start on a store that was used before.
    pub async fn open(
        store: AnyStore,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        crate::replay::catch_up(&store).await?;
        Ok(Self::start(store, config, clock, tracker, shutdown))
    }

    /// Starts the engine's group committer on `tracker`; it stops when
    /// `shutdown` is cancelled, after committing what was queued. On a store
    /// that was used before, [`Engine::open`] first catches the read model
    /// up with the log.
    pub fn start(
        store: AnyStore,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let committer = Committer::start(store.clone(), config.committer, tracker, shutdown);
        let capacity = NonZeroUsize::new(config.cache_capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Arc::new(Inner {
                store,
                committer,
                clock,
                slots: Mutex::new(LruCache::new(capacity)),
                outbound: config.outbound,
                skipped: config.skipped,
                ownership: config.ownership,
                rules: config.rules,
                dispose_on_inspection: config.dispose_on_inspection,
                outbox_written: Arc::new(Notify::new()),
            }),
        }
    }

    /// The system `sender` speaks for, under the configured ownership.
    pub fn system_of(&self, sender: &str) -> String {
        self.inner.ownership.system_of(sender)
    }

    pub fn store(&self) -> &AnyStore {
        &self.inner.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    /// Notified after every commit that wrote deliveries to the outbox.
    pub fn outbox_written(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.outbox_written)
    }

    /// The policy and master data in force; swap them through the handle.
    pub fn rules(&self) -> &RulesHandle {
        &self.inner.rules
    }

    /// Opens a new return with a fresh id. The request is first put in
    /// canonical codes (the sender's crosswalks); with a policy in force it
    /// is assessed, and the return is approved, held or rejected in the
    /// same step, with the explanation recorded.
    pub async fn create(
        &self,
        request: ReturnRequest,
        meta: CommandMeta,
    ) -> Result<Outcome, Error> {
        let return_id = ReturnId::from_uuid(Uuid::now_v7());
        let (request, assessment) = self.prepare(request, &meta.partner, false).await?;
        self.apply(
            return_id,
            Command::Request {
                return_id,
                request,
                assessment,
            },
            meta,
            true,
        )
        .await
    }

    /// Writes master `records` (sent as JSON) all or nothing, or for a dry
    /// run only says what would change, and puts the new data in force.
    pub async fn put_master(
        &self,
        records: &[Record],
        dry_run: bool,
    ) -> Result<(Changes, i64), Error> {
        let base = self.reload_master().await?;
        if dry_run {
            let changes = backhaul_master::validate(&base, records).map_err(Error::MasterData)?;
            return Ok((changes, base.revision()));
        }
        let outcome = persist::write(&self.inner.store, &base, records, self.now())
            .await
            .map_err(master_error)?;
        Ok(self.publish_master(outcome))
    }

    /// Imports one CSV file of master data (see `backhaul_master::import`
    /// for the layouts), like [`Engine::put_master`].
    pub async fn import_master(
        &self,
        kind: Kind,
        file_name: &str,
        bytes: &[u8],
        dry_run: bool,
    ) -> Result<(Changes, i64), Error> {
        let base = self.reload_master().await?;
        let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
        let outcome = persist::import_csv(
            &self.inner.store,
            &base,
            kind,
            file_name,
            bytes,
            mode,
            self.now(),
        )
        .await
        .map_err(master_error)?;
        if dry_run {
            return Ok((outcome.changes, base.revision()));
        }
        Ok(self.publish_master(outcome))
    }

    /// The master data in force, reloaded first if another hub process
    /// changed it (one revision read when nothing changed).
    pub async fn reload_master(&self) -> Result<Arc<MasterData>, Error> {
        let current = self.inner.rules.current();
        match persist::reload_if_changed(&self.inner.store, &current.master)
            .await
            .map_err(master_error)?
        {
            Some(fresh) => {
                self.inner.rules.set_master(fresh);
                Ok(Arc::clone(&self.inner.rules.current().master))
            }
            None => Ok(Arc::clone(&current.master)),
        }
    }

    /// Puts what a write produced in force. A write that changed nothing
    /// produced no new data: the data in force stays.
    fn publish_master(&self, outcome: backhaul_master::Outcome) -> (Changes, i64) {
        match outcome.data {
            Some(data) => {
                let revision = data.revision();
                self.inner.rules.set_master(data);
                (outcome.changes, revision)
            }
            None => (
                outcome.changes,
                self.inner.rules.current().master.revision(),
            ),
        }
    }

    /// What the policy would decide on `request` from `sender`, now,
    /// without opening a return: the eligibility API. Reads master data
    /// from memory and the hub's earlier returns of the same order from
    /// the read model; never calls another system.
    pub async fn check_eligibility(
        &self,
        request: ReturnRequest,
        sender: &str,
    ) -> Result<Assessment, Error> {
        match self.prepare(request, sender, true).await? {
            (_, Some(assessment)) => Ok(assessment),
            (_, None) => Err(Error::NoPolicy),
        }
    }

    /// Translates and (with a policy) assesses a request.
    async fn prepare(
        &self,
        request: ReturnRequest,
        sender: &str,
        require_policy: bool,
    ) -> Result<(ReturnRequest, Option<Assessment>), Error> {
        let rules = self.inner.rules.current();
        let system = self.inner.ownership.system_of(sender);
        let request = rules.translate(&system, request)?;
        if rules.policy.is_none() {
            if require_policy {
                return Err(Error::NoPolicy);
            }
            return Ok((request, None));
        }
        let prior = self.prior_claims(&rules, &request).await?;
        let assessment = rules.assess(&request, &prior, self.inner.clock.now())?;
        Ok((request, assessment))
    }

    /// What the hub's own returns of the request's order already took, per
    /// order line (see [`claimed_by`]). One read-model query by order, and
    /// one stream read per earlier return of that order (usually none).
    async fn prior_claims(
        &self,
        rules: &Rules,
        request: &ReturnRequest,
    ) -> Result<BTreeMap<String, Decimal>, Error> {
        let Some(order) = rules.master.order(&request.order_ref) else {
            return Ok(BTreeMap::new());
        };
        // A lookup, not a list: it sees every committed return of the order
        // without having SQLite write its held-back list rows first.
        let streams = self
            .inner
            .store
            .find_streams(StreamLookup::OrderRef(request.order_ref.as_str()), 1000)
            .await?;
        let mut states = Vec::with_capacity(streams.len());
        for stream_id in streams {
            states.push(self.load(ReturnId::from_uuid(stream_id)).await?.state);
        }
        Ok(claimed_by(rules, order, &states))
    }

    /// Applies `command` to the return `return_id`.
    ///
    /// A command that sets an attribute its sender's system does not own is
    /// refused with [`Error::NotOwner`], and the refusal is recorded on the
    /// return (as `UpdateRefused`) so the history shows who tried what.
    pub async fn execute(
        &self,
        return_id: ReturnId,
        mut command: Command,
        meta: CommandMeta,
    ) -> Result<Outcome, Error> {
        if let Err(refused) = self.inner.ownership.check(&meta.partner, &command) {
            let record = Command::RecordRefusedUpdate {
                system: refused.system.clone(),
                refused: command.name().to_owned(),
                attributes: command.attributes(),
            };
            let meta = CommandMeta {
                idempotency: None,
                ..meta
            };
            return match self.apply(return_id, record, meta, false).await {
                Ok(_) => Err(Error::NotOwner(refused)),
                Err(e) => Err(e),
            };
        }
        // Who corrected a line is the sender's system, never what the body says.
        let sender = self.inner.ownership.system_of(&meta.partner);
        if let Command::CorrectLine { system, .. } = &mut command {
            system.clone_from(&sender);
        }
        let command = self
            .inner
            .rules
            .current()
            .translate_command(&sender, command)?;
        self.apply(return_id, command, meta, false).await
    }

    /// Decides and appends. Idempotency costs nothing on the happy path: the
    /// key is written with the events, and a duplicate shows up either as a
    /// rejection (the state already moved on) or as a key conflict at
    /// append; only then is the stored answer looked up. A retried create
    /// therefore finds the first return instead of minting a second one.
    async fn apply(
        &self,
        return_id: ReturnId,
        command: Command,
        meta: CommandMeta,
        new_stream: bool,
    ) -> Result<Outcome, Error> {
        let slot = self.slot(return_id);
        let mut slot = slot.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            let (loaded, cached) = match slot.loaded.take() {
                Some(l) => (l, true),
                // A fresh UUID v7 has no stream yet: no need to read it.
                None if new_stream && attempt == 0 => (
                    Loaded {
                        state: ReturnState::default(),
                        version: 0,
                        correlation_id: Uuid::nil(),
                    },
                    false,
                ),
                None => (self.load(return_id).await?, false),
            };
            let now = self.inner.clock.now();
            let events = match decide(&loaded.state, &command, now) {
                Ok(events) => self.follow_up(&loaded.state, &command, events, now),
                // Another hub process may have moved the return on since this
                // one cached it; only the append would notice. Refuse on the
                // log's truth, not on the cache's: reload and decide again.
                Err(_) if cached => continue,
                Err(rejection) => {
                    slot.loaded = Some(loaded);
                    // A duplicate of an applied command is usually refused by
                    // the state it produced: answer it like the first time.
                    return match self.replay_idempotent(&meta).await? {
                        Some(found) => Ok(found),
                        None => Err(Error::Rejected(rejection)),
                    };
                }
            };
            // Evolve the cached state in place; every path below that does
            // not commit leaves the slot empty, so the next command reloads
            // the truth from the log (these paths are rare).
            let Loaded {
                mut state,
                version: base_version,
                correlation_id: base_correlation,
            } = loaded;
            // Only a hub with connected systems needs the state before the
            // events (to tell what changed); others skip the clone.
            let before = (!self.inner.outbound.is_empty()).then(|| state.clone());
            for e in &events {
                evolve(&mut state, e);
            }
            if let Err(broken) = state.check_invariants() {
                return Err(Error::Invariant(broken));
            }
            let correlation_id = if base_version == 0 {
                meta.correlation_id.unwrap_or_else(Uuid::now_v7)
            } else {
                base_correlation
            };
            let causation_id = meta.causation_id.unwrap_or_else(Uuid::now_v7);
            let version = base_version + i64::try_from(events.len()).unwrap_or(i64::MAX);
            let summary = ReturnSummary::from_state(&state)
                .ok_or_else(|| Error::Invariant("a decided return has no header".into()))?;
            let row = summary_row(&summary, version, now)?;
            let full = JsonText::from_value(&summary).map_err(|e| Error::Corrupt(e.to_string()))?;
            let body = answer(&full, version, &events)?;
            let status = if base_version == 0 { 201 } else { 200 };
            let new_events = events
                .iter()
                .map(|e| to_new_event(e, correlation_id, causation_id, now))
                .collect::<Result<Vec<_>, _>>()?;
            let deliveries = match &before {
                None => Vec::new(),
                Some(before) => {
                    backhaul_domain::action::actions(before, &state, &events, version, now)
                        .into_iter()
                        .filter(|a| {
                            self.inner.outbound.contains(&a.target())
                                && !self.inner.skipped.contains(&a.kind)
                        })
                        .map(|a| to_delivery(&a, version, correlation_id))
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            let wrote_deliveries = !deliveries.is_empty();
            let request = AppendRequest {
                stream_id: return_id.as_uuid(),
                expected_version: base_version,
                deliveries,
                events: new_events,
                summary: row,
                idempotency: meta.idempotency.as_ref().map(|i| IdempotencyRecord {
                    partner: meta.partner.clone(),
                    key: i.key.clone(),
                    request_hash: i.request_hash.clone(),
                    stream_id: return_id.as_uuid(),
                    status,
                    // Only where the answer is; the full answer is folded
                    // again from the log on a replay (rare), which keeps this
                    // row small on the hot path.
                    response: serde_json::json!({ "version": version, "event_count": events.len() }),
                    created_at: now,
                }),
            };
            match self.inner.committer.append(request).await? {
                Ok(_) => {
                    if wrote_deliveries {
                        self.inner.outbox_written.notify_one();
                    }
                    slot.loaded = Some(Loaded {
                        state,
                        version,
                        correlation_id,
                    });
                    return Ok(Outcome {
                        return_id,
                        status,
                        body,
                        event_count: events.len(),
                        replayed: false,
                    });
                }
                Err(AppendConflict::Version { .. }) => {
                    // Another process moved the stream on: reload and decide again.
                    tracing::debug!(return_id = %return_id, "version conflict, deciding again");
                    continue;
                }
                Err(AppendConflict::IdempotencyKey { .. }) => {
                    // The same key raced us; answer like the winner did.
                    // (The slot stays empty: the state was evolved in place.)
                    return match self.replay_idempotent(&meta).await? {
                        Some(found) => Ok(found),
                        None => Err(Error::Contention(return_id)),
                    };
                }
            }
        }
        Err(Error::Contention(return_id))
    }

    /// Events the hub adds to a command's own in the same append: with
    /// `dispose_on_inspection`, the policy's dispositions (and restocking
    /// fees) of the units just inspected. If the policy's dispositions are
    /// refused (they never should be), the inspection stands alone and a
    /// person disposes.
    fn follow_up(
        &self,
        state: &ReturnState,
        command: &Command,
        mut events: Vec<Event>,
        now: DateTime<Utc>,
    ) -> Vec<Event> {
        let Command::RecordInspection { inspections } = command else {
            return events;
        };
        if !self.inner.dispose_on_inspection {
            return events;
        }
        let rules = self.inner.rules.current();
        let mut after = state.clone();
        for e in &events {
            evolve(&mut after, e);
        }
        let Some(dispose) = rules.dispositions(&after, inspections, now) else {
            return events;
        };
        match decide(&after, &dispose, now) {
            Ok(more) => events.extend(more),
            Err(rejection) => {
                tracing::warn!(%rejection, "the policy's dispositions were refused; left for a person");
            }
        }
        events
    }

    async fn replay_idempotent(&self, meta: &CommandMeta) -> Result<Option<Outcome>, Error> {
        let Some(idem) = &meta.idempotency else {
            return Ok(None);
        };
        let Some(record) = self
            .inner
            .store
            .find_idempotency(&meta.partner, &idem.key)
            .await?
        else {
            return Ok(None);
        };
        if record.request_hash != idem.request_hash {
            return Err(Error::IdempotencyKeyReused {
                key: idem.key.clone(),
            });
        }
        let return_id = ReturnId::from_uuid(record.stream_id);
        let (body, event_count) = self.answer_at(return_id, &record.response).await?;
        Ok(Some(Outcome {
            return_id,
            status: record.status,
            body,
            event_count,
            replayed: true,
        }))
    }

    /// Rebuilds the answer a command gave: the summary as of the version it
    /// produced and the types of the events it appended.
    async fn answer_at(
        &self,
        return_id: ReturnId,
        pointer: &serde_json::Value,
    ) -> Result<(JsonText, usize), Error> {
        let corrupt = || Error::Corrupt(format!("idempotency record of {return_id}: {pointer}"));
        let version = pointer["version"].as_i64().ok_or_else(corrupt)?;
        let count = pointer["event_count"].as_u64().ok_or_else(corrupt)?;
        let recorded = self.inner.store.read_stream(return_id.as_uuid()).await?;
        let mut state = ReturnState::default();
        let mut events = Vec::new();
        for r in recorded.iter().take_while(|r| r.version <= version) {
            let event = decode(r)?;
            evolve(&mut state, &event);
            events.push(event);
        }
        let summary = ReturnSummary::from_state(&state).ok_or_else(corrupt)?;
        let first = events
            .len()
            .saturating_sub(usize::try_from(count).unwrap_or(usize::MAX));
        let summary = JsonText::from_value(&summary).map_err(|e| Error::Corrupt(e.to_string()))?;
        let appended = &events[first..];
        Ok((answer(&summary, version, appended)?, appended.len()))
    }

    fn slot(&self, return_id: ReturnId) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .get_or_insert(return_id.as_uuid(), || {
                Arc::new(tokio::sync::Mutex::new(Slot::default()))
            })
            .clone()
    }

    async fn load(&self, return_id: ReturnId) -> Result<Loaded, Error> {
        let recorded = self.inner.store.read_stream(return_id.as_uuid()).await?;
        fold(&recorded)
    }

    /// The full summary of one return, folded from its log (always as
    /// current as the last commit); `None` if it does not exist.
    pub async fn get(&self, return_id: ReturnId) -> Result<Option<JsonText>, Error> {
        let loaded = self.load(return_id).await?;
        let Some(summary) = ReturnSummary::from_state(&loaded.state) else {
            return Ok(None);
        };
        JsonText::from_value(&summary)
            .map(Some)
            .map_err(|e| Error::Corrupt(e.to_string()))
    }

    /// Every open return in one of `stages`, for the hub's own background
    /// work (expiry, tracking polls). Pages through the read model; a return
    /// that changes stage during the scan may be missed and is found by the
    /// next pass.
    pub async fn open_returns_in(&self, stages: &[&str]) -> Result<Vec<ReturnId>, Error> {
        const PAGE: u32 = 1000;
        let mut out = Vec::new();
        for stage in stages {
            let mut offset = 0;
            loop {
                let page = self
                    .inner
                    .store
                    .list_summaries(&SummaryFilter {
                        stage: Some((*stage).to_owned()),
                        open: Some(true),
                        limit: PAGE,
                        offset,
                        ..SummaryFilter::default()
                    })
                    .await?;
                let full = page.len() >= PAGE as usize;
                out.extend(page.iter().map(|row| ReturnId::from_uuid(row.stream_id)));
                if !full {
                    break;
                }
                offset += PAGE;
            }
        }
        Ok(out)
    }

    /// The returns another system's reference names (an RMA number, a
    /// label's tracking number), at most two, newest first: one is the
    /// answer, two mean the reference is ambiguous and the caller must not
    /// guess. For inbound webhooks, which know a return only by such
    /// references.
    pub async fn find_returns(&self, by: StreamLookup<'_>) -> Result<Vec<ReturnId>, Error> {
        Ok(self
            .inner
            .store
            .find_streams(by, 2)
            .await?
            .into_iter()
            .map(ReturnId::from_uuid)
            .collect())
    }

    /// List rows ([`ReturnListItem`]) matching the filter, newest first.
    pub async fn list(&self, filter: &SummaryFilter) -> Result<Vec<JsonText>, Error> {
        Ok(self
            .inner
            .store
            .list_summaries(filter)
            .await?
            .into_iter()
            .map(|row| row.body)
            .collect())
    }

    /// The events of one return, oldest first; `None` if it does not exist.
    pub async fn timeline(&self, return_id: ReturnId) -> Result<Option<Vec<TimelineEntry>>, Error> {
        let recorded = self.inner.store.read_stream(return_id.as_uuid()).await?;
        if recorded.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            recorded.into_iter().map(TimelineEntry::from).collect(),
        ))
    }

    /// Open returns per status, stage and owner.
    pub async fn backlog(&self) -> Result<Vec<BacklogRow>, Error> {
        Ok(self.inner.store.backlog().await?)
    }
}

/// Decodes a stored event. Only schema version 1 exists; an upcaster goes
/// here when the payload changes.
pub(crate) fn decode(r: &RecordedEvent) -> Result<Event, Error> {
    r.event.payload.parse().map_err(|e| {
        Error::Corrupt(format!(
            "event {} (stream {} version {}): {e}",
            r.event.event_id, r.stream_id, r.version
        ))
    })
}

fn to_new_event(
    event: &Event,
    correlation_id: Uuid,
    causation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<NewEvent, Error> {
    Ok(NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event.event_type().to_owned(),
        schema_version: EVENT_SCHEMA_VERSION,
        payload: JsonText::from_value(event).map_err(|e| Error::Corrupt(e.to_string()))?,
        correlation_id,
        causation_id,
        recorded_at: now,
    })
}

/// An action as an outbox row. The key is stable for the action: the same
/// command version never produces two actions of one kind.
fn to_delivery(action: &Action, version: i64, correlation_id: Uuid) -> Result<NewDelivery, Error> {
    Ok(NewDelivery {
        target: action.target().as_str().to_owned(),
        kind: action.kind.as_str().to_owned(),
        delivery_key: action.delivery_key(version),
        requires: action
            .kind
            .requires()
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
        payload: JsonText::from_value(action).map_err(|e| Error::Corrupt(e.to_string()))?,
        correlation_id,
    })
}

/// The answer to a command: the return's summary, its version and the types
/// of the events the command appended. Written as text around the summary's
/// text, so the summary is serialised once per command.
fn master_error(e: persist::Error) -> Error {
    match e {
        persist::Error::Invalid(problems) => Error::MasterData(problems),
        other @ (persist::Error::Store(_)
        | persist::Error::Corrupt(_)
        | persist::Error::Batch(_)
        | persist::Error::Contended) => Error::Master(other.to_string()),
    }
}

fn answer(summary: &JsonText, version: i64, events: &[Event]) -> Result<JsonText, Error> {
    /// Serialised around the summary's text, which is copied as it is: no
    /// second serialisation of the summary, and no parse to check the result.
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        #[serde(rename = "return")]
        summary: &'a serde_json::value::RawValue,
        version: i64,
        events: Vec<&'static str>,
    }
    JsonText::from_value(&Answer {
        summary: summary.as_raw(),
        version,
        events: events.iter().map(Event::event_type).collect(),
    })
    .map_err(|e| Error::Corrupt(e.to_string()))
}

/// The store row of a summary.
pub(crate) fn summary_row(
    summary: &ReturnSummary,
    version: i64,
    updated_at: DateTime<Utc>,
) -> Result<SummaryRow, Error> {
    Ok(SummaryRow {
        stream_id: summary.item.return_id.as_uuid(),
        version,
        reference: summary.item.rma_number.clone(),
        status: summary.item.status.as_str().to_owned(),
        stage: summary.item.stage.as_str().to_owned(),
        owner: summary.item.owner.clone(),
        open: !summary.item.status.is_terminal(),
        customer: summary.item.customer.clone(),
        order_ref: summary.item.order_ref.clone(),
        skus: summary.skus().iter().map(|s| s.to_string()).collect(),
        created_at: summary.item.requested_at,
        updated_at,
        body: JsonText::from_value(&summary.item).map_err(|e| Error::Corrupt(e.to_string()))?,
    })
}
