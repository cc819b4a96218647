//! Group commit: one task owns the write path and commits the appends of many
//! concurrent callers in one transaction, so they share one fsync.
//!
//! Callers hold a cheap [`CommitterHandle`] and send their request over a
//! bounded channel (a full queue makes callers wait: back-pressure instead of
//! unbounded memory). The task takes the first waiting request, drains
//! whatever else is already queued up to `max_batch_events`, commits the lot
//! with one [`EventStore::append_batch`], and only then answers each caller.
//! There are no timers: under light load a batch is a single request and
//! commits at once; under heavy load requests pile up while the previous
//! batch commits and the next batch is naturally larger.
//!
//! What does not live here: the append semantics (see `append`) and any
//! retry of conflicts, which are answers for the caller to act on.

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{AppendConflict, AppendRequest, Appended, Error, EventStore, Result};

/// Settings of the group-commit task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitterConfig {
    /// Upper bound of events per commit (a request counts at least one, and
    /// a single larger request is still committed alone). Bounds the latency
    /// and memory of one transaction. 0 is treated as 1.
    pub max_batch_events: usize,
    /// Requests that may wait for the committer before callers block.
    /// 0 is treated as 1.
    pub queue_capacity: usize,
}

impl Default for CommitterConfig {
    fn default() -> Self {
        CommitterConfig {
            max_batch_events: 1000,
            queue_capacity: 8192,
        }
    }
}

type Outcome = Result<Result<Appended, AppendConflict>>;

/// One queued append and where to send its outcome.
struct Job {
    request: AppendRequest,
    reply: oneshot::Sender<Outcome>,
}

impl Job {
    /// The request's weight against `max_batch_events`. A request without
    /// events still costs a statement or two, so it counts as one.
    fn weight(&self) -> usize {
        self.request.events.len().max(1)
    }
}

/// Starts the group-commit task.
pub struct Committer;

impl Committer {
    /// Spawns the committer on `tracker` and returns the handle to append
    /// through. The task runs until `shutdown` is cancelled (then it commits
    /// what is already queued, answers those callers and exits) or until
    /// every handle is dropped.
    pub fn start<S: EventStore>(
        store: S,
        config: CommitterConfig,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> CommitterHandle {
        let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let task = CommitTask {
            store,
            receiver,
            max_batch_events: config.max_batch_events.max(1),
            carry: None,
            unflushed: false,
        };
        tracker.spawn(task.run(shutdown));
        CommitterHandle { sender }
    }
}

/// The way to append through the committer. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct CommitterHandle {
    sender: mpsc::Sender<Job>,
}

impl CommitterHandle {
    /// Queues `req` for the next group commit and waits until it is
    /// committed (or rejected). The outer error is a storage failure or
    /// [`Error::ShuttingDown`] once the committer stopped accepting; the
    /// inner one is the request's conflict. A request that was queued before
    /// shutdown is still committed and answered.
    pub async fn append(&self, req: AppendRequest) -> Result<Result<Appended, AppendConflict>> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Job {
                request: req,
                reply,
            })
            .await
            .map_err(|_| Error::ShuttingDown)?;
        // The task answers every job it received; a dropped reply means the
        // task itself is gone (it panicked), which for the caller is the same
        // as a store that stopped.
        answer.await.map_err(|_| Error::ShuttingDown)?
    }
}

struct CommitTask<S> {
    store: S,
    receiver: mpsc::Receiver<Job>,
    max_batch_events: usize,
    /// A job drained from the queue that did not fit the previous batch; it
    /// opens the next one.
    carry: Option<Job>,
    /// Appends committed since the store last wrote its held-back read
    /// model (see `IDLE_FLUSH`).
    unflushed: bool,
}

/// How long the queue stays empty before the committer has the store write
/// the read-model rows it still holds back (SQLite writes them lazily; see
/// `sqlite::lazy`). Under load, later appends carry them; this bounds how
/// old the rows another process reads can be when the hub falls idle.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(200);

impl<S: EventStore> CommitTask<S> {
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let first = match self.carry.take() {
                Some(job) => job,
                None => tokio::select! {
                    // Shutdown first, so a cancelled committer stops taking
                    // new work even while requests keep arriving.
                    biased;
                    () = shutdown.cancelled() => break,
                    job = self.receiver.recv() => match job {
                        Some(job) => job,
                        // Every handle is gone: nobody can ask for more.
                        None => break,
                    },
                    () = tokio::time::sleep(IDLE_FLUSH), if self.unflushed => {
                        self.unflushed = false;
                        if let Err(error) = self.store.flush_read_model().await {
                            tracing::warn!(%error, "could not write held-back read-model rows; the next read or append tries again");
                        }
                        continue;
                    }
                },
            };
            let batch = self.fill(first);
            self.commit(batch).await;
            self.unflushed = true;
        }

        // Shutdown: refuse new requests (senders now get an error), then
        // commit what callers already queued and answer them.
        self.receiver.close();
        let mut drained = 0usize;
        loop {
            let first = match self.carry.take() {
                Some(job) => job,
                None => match self.receiver.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            let batch = self.fill(first);
            drained += batch.len();
            self.commit(batch).await;
        }
        // A clean stop leaves no read-model row held back for the next
        // start to catch up on.
        if let Err(error) = self.store.flush_read_model().await {
            tracing::warn!(%error, "could not write the last read-model rows; the next start catches up");
        }
        tracing::info!(drained, "committer stopped");
    }

    /// Builds a batch from `first` plus whatever is already queued, up to
    /// `max_batch_events`. Never waits: an empty queue ends the batch.
    fn fill(&mut self, first: Job) -> Vec<Job> {
        let mut weight = first.weight();
        let mut batch = vec![first];
        while weight < self.max_batch_events {
            let Ok(job) = self.receiver.try_recv() else {
                break;
            };
            if weight + job.weight() > self.max_batch_events {
                self.carry = Some(job);
                break;
            }
            weight += job.weight();
            batch.push(job);
        }
        batch
    }

    /// Commits `batch` and answers every caller.
    async fn commit(&self, batch: Vec<Job>) {
        let (requests, replies): (Vec<AppendRequest>, Vec<oneshot::Sender<Outcome>>) =
            batch.into_iter().map(|j| (j.request, j.reply)).unzip();
        let count = requests.len();
        if count == 1 {
            // Nothing to isolate: the only request gets the batch's error.
            self.commit_one_by_one(requests, replies).await;
            return;
        }
        match self.store.append_batch(&requests).await {
            Ok(outcomes) if outcomes.len() == count => {
                tracing::debug!(requests = count, "committed batch");
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    answer(reply, Ok(outcome));
                }
            }
            Ok(outcomes) => {
                // A backend bug; nothing sensible can be told to the callers
                // except that the outcome is unknown.
                tracing::error!(
                    requests = count,
                    outcomes = outcomes.len(),
                    "store returned the wrong number of outcomes"
                );
                for reply in replies {
                    answer(
                        reply,
                        Err(Error::Corrupt(format!(
                            "store returned {} outcomes for {count} requests",
                            outcomes.len()
                        ))),
                    );
                }
            }
            Err(error) => {
                // Nothing of the batch was written. One bad request (say, a
                // unique-violation race with another hub on PostgreSQL) must
                // not fail the others, so each gets its own transaction.
                tracing::warn!(%error, requests = count, "batch failed; committing its requests one by one");
                self.commit_one_by_one(requests, replies).await;
            }
        }
    }

    /// Commits each request in a transaction of its own, in queue order, and
    /// answers its caller right after its commit.
    async fn commit_one_by_one(
        &self,
        requests: Vec<AppendRequest>,
        replies: Vec<oneshot::Sender<Outcome>>,
    ) {
        for (request, reply) in requests.into_iter().zip(replies) {
            let outcome = match self
                .store
                .append_batch(std::slice::from_ref(&request))
                .await
            {
                Ok(mut outcomes) if outcomes.len() == 1 => outcomes.pop().ok_or_else(|| {
                    Error::Corrupt("store returned no outcome for one request".to_owned())
                }),
                Ok(outcomes) => Err(Error::Corrupt(format!(
                    "store returned {} outcomes for one request",
                    outcomes.len()
                ))),
                Err(error) => Err(error),
            };
            answer(reply, outcome);
        }
    }
}

/// Sends an outcome to its caller. A caller that stopped waiting (its task
/// was cancelled) is no error: the append itself stands.
fn answer(reply: oneshot::Sender<Outcome>, outcome: Outcome) {
    if reply.send(outcome).is_err() {
        tracing::debug!("append caller went away before its answer");
    }
}
