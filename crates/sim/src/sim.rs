//! [`Sim`], the handle to one running simulator: its configuration, its
//! database, its clock, its current faults and counters. Cheap to clone;
//! every clone is the same simulator. The router and the library methods
//! (for tests) are two views of the same state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{Method, Uri};
use chrono::{DateTime, Utc};

use crate::clock::{Clock, SystemClock};
use crate::config::{Faults, SimConfig, SimKind};
use crate::db::{Db, Posting, SimDb};
use crate::erp::Ledger;
use crate::error::{Code, Problem, SimError};
use crate::faults::FaultState;
use crate::stats::{Counters, Stats};
use crate::{admin, carrier, erp, portal, wms};

/// One simulator. Clones share everything.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    /// As given at open; `faults` and `erp.period_closed` here are only the
    /// starting values (see the fields below for the current ones).
    config: SimConfig,
    db: Db,
    clock: Arc<dyn Clock>,
    /// Current faults, the token bucket and the seeded generator. A std
    /// mutex: it is held for a few instructions, never across an `.await`.
    faults: Mutex<FaultState>,
    /// ERP: whether the posting period is closed now.
    period_closed: AtomicBool,
    counters: Counters,
    /// Stores run as tasks of their own: a client that hangs up (a hub
    /// killed mid-request) must not cancel a transaction half-way through,
    /// which would leave the one connection inside a transaction sqlx no
    /// longer knows about. `close` waits for them.
    stores: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("kind", &self.inner.config.kind)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Opens a simulator on the wall clock. See [`Sim::open_with_clock`].
    pub async fn open(config: SimConfig, db: SimDb) -> Result<Sim, SimError> {
        Sim::open_with_clock(config, db, Arc::new(SystemClock)).await
    }

    /// Validates `config`, opens (or creates) the database and checks that
    /// it belongs to a simulator of the same kind. `clock` drives the rate
    /// limit, label expiry and the stored timestamps; tests pass a
    /// [`crate::ManualClock`].
    pub async fn open_with_clock(
        config: SimConfig,
        db: SimDb,
        clock: Arc<dyn Clock>,
    ) -> Result<Sim, SimError> {
        config.validate()?;
        let db = Db::open(&db, config.kind).await?;
        Ok(Sim {
            inner: Arc::new(Inner {
                faults: Mutex::new(FaultState::new(config.faults.clone(), config.seed)),
                period_closed: AtomicBool::new(config.erp.period_closed),
                config,
                db,
                clock,
                counters: Counters::default(),
                stores: tokio_util::task::TaskTracker::new(),
            }),
        })
    }

    pub fn kind(&self) -> SimKind {
        self.inner.config.kind
    }

    /// The configuration the simulator was opened with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// The simulator's HTTP API: its kind's routes plus `/health` and
    /// `/admin/...`. Unknown paths and methods are problem+json too.
    pub fn router(&self) -> Router {
        let routes = match self.kind() {
            SimKind::Erp => erp::routes(),
            SimKind::Wms => wms::routes(),
            SimKind::Carrier => carrier::routes(),
            SimKind::Portal => portal::routes(),
        };
        admin::routes()
            .merge(routes)
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.clone())
    }

    /// Everything durably accepted, in arrival order.
    pub async fn postings(&self) -> Result<Vec<Posting>, SimError> {
        self.inner.db.postings(None).await
    }

    /// The request counters of this process and the stored postings.
    pub async fn stats(&self) -> Result<Stats, SimError> {
        let stored = self.inner.db.count().await?;
        Ok(self.inner.counters.snapshot(stored))
    }

    /// The ERP's books: credits per currency, inventory per SKU, documents
    /// per kind. Empty for the other kinds.
    pub async fn ledger(&self) -> Result<Ledger, SimError> {
        erp::ledger(&self.inner.db).await
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        self.with_faults(|state| state.faults().clone())
    }

    /// Replaces the faults, as `PUT /admin/faults` does.
    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        faults.validate().map_err(SimError::Config)?;
        self.with_faults(|state| state.replace(faults));
        Ok(())
    }

    /// Closes or opens the ERP's posting period, as `PUT /admin/erp/period`
    /// does.
    pub fn set_period_closed(&self, closed: bool) {
        self.inner.period_closed.store(closed, Ordering::SeqCst);
    }

    /// Closes the database. Requests after this fail with 500; meant for
    /// the end of a process or a test that reopens the same file.
    pub async fn close(&self) {
        self.inner.stores.close();
        self.inner.stores.wait().await;
        self.inner.db.close().await;
    }

    pub(crate) fn stores(&self) -> &tokio_util::task::TaskTracker {
        &self.inner.stores
    }

    pub(crate) fn period_closed(&self) -> bool {
        self.inner.period_closed.load(Ordering::SeqCst)
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn with_faults<T>(&self, f: impl FnOnce(&mut FaultState) -> T) -> T {
        // A panic while holding the lock cannot leave the state half
        // updated in a way that matters (a draw or a bucket step), so a
        // poisoned lock is simply taken over.
        let mut state = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }
}

async fn not_found(uri: Uri) -> Problem {
    Problem::new(Code::NotFound, format!("no route matches {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
