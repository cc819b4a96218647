//! The publisher: tails the event log into a JetStream stream.
//!
//! Each event is published with `Nats-Msg-Id` = its event id and its log
//! position in [`POSITION_HEADER`], one at a time, waiting for JetStream's
//! ack before the next: an event is never in the stream before one that
//! precedes it in the log, so the stream's last message is a safe resume
//! point and the stream needs no checkpoint table beside it. A crash between
//! a publish and its ack re-publishes that event after the restart, and the
//! stream's duplicate window drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use backhaul_store::{EventStore, RecordedEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Error, NatsConfig, cloudevents};

/// The header carrying an event's global log position.
pub const POSITION_HEADER: &str = "backhaul-position";

/// The longest wait between two attempts after failures, so a broker that
/// comes back is used again within this time.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How far the publisher got, as seen through its [`Handle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The log position of the last event JetStream acknowledged (0: none).
    pub position: i64,
}

/// A cheap-clone view of a running publisher.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) progress: watch::Receiver<Progress>,
    pub(crate) counters: Arc<Counters>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) duplicates: AtomicU64,
}

impl Handle {
    /// The position of the last event acknowledged by the broker.
    pub fn position(&self) -> i64 {
        self.progress.borrow().position
    }

    /// Events JetStream stored since the publisher was built.
    pub fn published(&self) -> u64 {
        self.counters.published.load(Ordering::Relaxed)
    }

    /// Events JetStream acknowledged as duplicates (re-published after a
    /// crash, or from an earlier position on purpose) and did not store.
    pub fn duplicates(&self) -> u64 {
        self.counters.duplicates.load(Ordering::Relaxed)
    }

    /// Waits until every event up to `position` is acknowledged. Returns
    /// false if the publisher stopped first.
    pub async fn published_through(&self, position: i64) -> bool {
        let mut progress = self.progress.clone();
        progress.wait_for(|p| p.position >= position).await.is_ok()
    }
}

/// Where the publisher is connected to, once it is.
struct Connected {
    jetstream: jetstream::Context,
}

/// Publishes the event log of `S` to the configured stream.
pub struct Publisher<S> {
    config: NatsConfig,
    store: S,
    connected: Option<Connected>,
    /// The last position published. `None` until it is read back from the
    /// stream on the first connection.
    after: Option<i64>,
    progress: watch::Sender<Progress>,
    counters: Arc<Counters>,
}

impl<S: EventStore> Publisher<S> {
    /// Checks the configuration; connects on the first [`catch_up`], so a
    /// broker that is down at start-up delays publishing, not the hub.
    ///
    /// [`catch_up`]: Self::catch_up
    pub fn build(config: &NatsConfig, store: S) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config: config.clone(),
            store,
            connected: None,
            after: None,
            progress: watch::Sender::new(Progress::default()),
            counters: Arc::default(),
        })
    }

    pub fn handle(&self) -> Handle {
        Handle {
            progress: self.progress.subscribe(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// Publishes from after `position` on the next [`catch_up`] instead of
    /// where the stream says. Events still inside the duplicate window are
    /// acknowledged as duplicates and not stored again; older ones are
    /// stored again, so this is for replays, not for everyday use.
    ///
    /// [`catch_up`]: Self::catch_up
    pub fn resume_after(&mut self, position: i64) {
        self.after = Some(position);
    }

    /// Publishes every event in the log after the resume point, in order,
    /// and returns how many were acknowledged (duplicates included).
    pub async fn catch_up(&mut self) -> Result<usize, Error> {
        self.publish_pending(&CancellationToken::new()).await
    }

    /// Publishes until the log is drained or `stop` is cancelled. An event
    /// being published when `stop` is cancelled is published and
    /// acknowledged first, so no publish is abandoned half-way.
    async fn publish_pending(&mut self, stop: &CancellationToken) -> Result<usize, Error> {
        let jetstream = self.connect().await?;
        let mut after = match self.after {
            Some(after) => after,
            None => {
                let after = self.resume_point(&jetstream).await?;
                tracing::info!(
                    stream = %self.config.stream,
                    position = after,
                    "publishing the event log after this position"
                );
                self.after = Some(after);
                after
            }
        };
        let mut count = 0;
        loop {
            let events = self.store.read_all(after, self.config.batch).await?;
            let drained = events.len() < self.config.batch;
            for recorded in &events {
                if stop.is_cancelled() {
                    return Ok(count);
                }
                self.publish(&jetstream, recorded).await?;
                after = recorded.position;
                self.after = Some(after);
                count += 1;
            }
            if drained {
                return Ok(count);
            }
        }
    }

    /// Publishes one event and waits for its ack.
    async fn publish(
        &self,
        jetstream: &jetstream::Context,
        recorded: &RecordedEvent,
    ) -> Result<(), Error> {
        let event = &recorded.event;
        let encode = |reason: String| Error::Encode {
            event_id: event.event_id,
            position: recorded.position,
            reason,
        };
        let subject = cloudevents::subject(&self.config.subject_prefix, &event.event_type)
            .ok_or_else(|| encode(format!("{:?} is not a subject token", event.event_type)))?;
        let body = cloudevents::envelope(recorded, &self.config.source)
            .map_err(|e| encode(e.to_string()))?;
        // Headers one by one: `headers(map)` would replace the map that
        // `message_id` writes `Nats-Msg-Id` into, and with it the dedup.
        let message = PublishMessage::build()
            .message_id(event.event_id.to_string())
            .header(POSITION_HEADER, recorded.position.to_string().as_str())
            // Structured mode: the body is the whole CloudEvent.
            .header("content-type", "application/cloudevents+json")
            .payload(bytes::Bytes::from(body));
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::Publish {
            event_id: event.event_id,
            position: recorded.position,
            source,
        };
        let ack = jetstream
            .send_publish(subject, message)
            .await
            .map_err(|e| failed(e.into()))?
            .await
            .map_err(|e| failed(e.into()))?;
        if ack.duplicate {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(position = recorded.position, event_id = %event.event_id, "duplicate dropped by JetStream");
        } else {
            self.counters.published.fetch_add(1, Ordering::Relaxed);
        }
        self.progress.send_replace(Progress {
            position: recorded.position,
        });
        Ok(())
    }

    /// Connects and makes sure the stream exists, once.
    async fn connect(&mut self) -> Result<jetstream::Context, Error> {
        if let Some(connected) = &self.connected {
            return Ok(connected.jetstream.clone());
        }
        let config = &self.config;
        let jetstream = jetstream::new(config.connect().await?);
        // An existing stream is used as it is: its limits are the
        // operator's to change.
        jetstream
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{}.>", config.subject_prefix)],
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(config.duplicate_window_secs),
                ..stream::Config::default()
            })
            .await
            .map_err(|e| Error::Stream {
                stream: config.stream.clone(),
                source: e.into(),
            })?;
        self.connected = Some(Connected {
            jetstream: jetstream.clone(),
        });
        Ok(jetstream)
    }

    /// The log position of the stream's last message: everything up to it
    /// is in the stream (events are published in log order, one at a time).
    /// An empty stream, new or purged, gets the whole log.
    async fn resume_point(&self, jetstream: &jetstream::Context) -> Result<i64, Error> {
        let name = &self.config.stream;
        let stream_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Stream {
            stream: name.clone(),
            source,
        };
        let mut stream = jetstream
            .get_stream(name)
            .await
            .map_err(|e| stream_error(e.into()))?;
        let state = stream
            .info()
            .await
            .map_err(|e| stream_error(e.into()))?
            .state
            .clone();
        if state.messages == 0 {
            return Ok(0);
        }
        let last = stream
            .get_raw_message(state.last_sequence)
            .await
            .map_err(|e| stream_error(e.into()))?;
        last.headers
            .get(POSITION_HEADER)
            .and_then(|v| v.as_str().parse::<i64>().ok())
            .ok_or(Error::Resume {
                stream: name.clone(),
                sequence: state.last_sequence,
            })
    }

    /// Publishes new events every `poll_ms` until `shutdown` is cancelled.
    /// Failures are logged and retried with a growing pause; the event that
    /// failed is published again (the duplicate window drops it if it had
    /// in fact been stored).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let idle = Duration::from_millis(self.config.poll_ms);
        let mut failures: u32 = 0;
        loop {
            let pause = match self.publish_pending(&shutdown).await {
                Ok(count) => {
                    failures = 0;
                    if count > 0 {
                        tracing::debug!(count, position = self.after, "events published");
                    }
                    idle
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = idle
                        .saturating_mul(2u32.saturating_pow(failures.min(16)))
                        .min(MAX_BACKOFF);
                    tracing::warn!(%error, attempt = failures, ?pause, "publishing to NATS failed; retrying");
                    pause
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(position = self.after, "event publisher stopped");
    }
}
