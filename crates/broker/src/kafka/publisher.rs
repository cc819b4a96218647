//! The Kafka publisher: tails the event log into one topic.
//!
//! Every event becomes one record: key = the return id (so a return's
//! events share a partition and keep their log order there), value = the
//! CloudEvents envelope (structured mode), headers `content-type`,
//! [`EVENT_TYPE_HEADER`] and [`POSITION_HEADER`], timestamp = the recorded
//! time. The producer is idempotent with `acks=all`, so librdkafka's own
//! retries neither duplicate nor reorder records within a partition.
//!
//! Resume point: a checkpoint in the hub's store (`kafka:<topic>`), saved
//! after every record of a batch is acknowledged. Reading the topic's tail
//! instead (as the NATS publisher does) is unsound here: records of one
//! batch are in flight to several partitions at once, so after a crash one
//! partition can hold a later position than another is missing, and the
//! highest position found would skip the gap; retention deleting old
//! records would also make an idle topic look empty and re-publish the log.
//! A crash between the acknowledgements and the checkpoint re-publishes at
//! most one batch, with the same CloudEvents ids (the event ids), which
//! consumers drop as duplicates: at least once, never a gap.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backhaul_store::{CheckpointStore, EventStore, RecordedEvent};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::failed;
use crate::publisher::Counters;
use crate::{Error, Handle, KafkaConfig, POSITION_HEADER, Progress, cloudevents};

/// The header naming the event type (as in the log), for consumers that
/// route without parsing the value.
pub const EVENT_TYPE_HEADER: &str = "backhaul-event-type";

/// The longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Publishes the event log of `S` to the configured topic.
pub struct KafkaPublisher<S> {
    config: KafkaConfig,
    store: S,
    producer: Option<FutureProducer>,
    /// The last position acknowledged and checkpointed; `None` until read
    /// from the store.
    after: Option<i64>,
    progress: watch::Sender<Progress>,
    counters: Arc<Counters>,
}

impl<S: EventStore + CheckpointStore> KafkaPublisher<S> {
    /// Checks the configuration. The producer connects lazily, so a
    /// cluster that is down at start-up delays publishing, not the hub.
    pub fn build(config: &KafkaConfig, store: S) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config: config.clone(),
            store,
            producer: None,
            after: None,
            progress: watch::Sender::new(Progress::default()),
            counters: Arc::default(),
        })
    }

    /// A view of the publisher; `duplicates` is always 0 (Kafka does not
    /// say whether a record was a re-publish).
    pub fn handle(&self) -> Handle {
        Handle {
            progress: self.progress.subscribe(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// Publishes every event after the checkpoint, in order, and returns
    /// how many were acknowledged.
    pub async fn catch_up(&mut self) -> Result<usize, Error> {
        self.publish_pending(&CancellationToken::new()).await
    }

    /// Publishes batch after batch until the log is drained or `stop` is
    /// cancelled; a batch in flight is finished and checkpointed first.
    async fn publish_pending(&mut self, stop: &CancellationToken) -> Result<usize, Error> {
        let producer = self.producer()?;
        let checkpoint = self.config.checkpoint_name();
        let mut after = match self.after {
            Some(after) => after,
            None => {
                let after = self.store.load_checkpoint(&checkpoint).await?.unwrap_or(0);
                tracing::info!(topic = %self.config.topic, position = after, "publishing the event log to Kafka after this position");
                self.after = Some(after);
                after
            }
        };
        let mut count = 0;
        while !stop.is_cancelled() {
            let events = self.store.read_all(after, self.config.batch).await?;
            let Some(last) = events.last() else { break };
            let last = last.position;
            let drained = events.len() < self.config.batch;
            // Every record of the batch is handed to librdkafka before any
            // acknowledgement is awaited, so a batch costs one round trip,
            // not one per event; order within a partition is kept by the
            // idempotent producer.
            let mut pending = Vec::with_capacity(events.len());
            let mut refused = None;
            for recorded in &events {
                match self.send(&producer, recorded) {
                    Ok(delivery) => pending.push((recorded, delivery)),
                    Err(error) => {
                        refused = Some(error);
                        break;
                    }
                }
            }
            // The checkpoint moves to the end of the acknowledged prefix
            // only: a later record acknowledged after an earlier one failed
            // is published again, never skipped.
            let mut acknowledged = after;
            let mut failure = match refused {
                Some(error) => Err(error),
                None => Ok(()),
            };
            for (recorded, delivery) in pending {
                let outcome = match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e.to_string()),
                    Err(_) => Err("the producer was dropped".to_owned()),
                };
                match (outcome, failure.is_ok()) {
                    (Ok(()), true) => acknowledged = recorded.position,
                    (Ok(()), false) => {}
                    (Err(reason), true) => {
                        failure = Err(Error::Publish {
                            event_id: recorded.event.event_id,
                            position: recorded.position,
                            source: reason.into(),
                        });
                    }
                    (Err(_), false) => {}
                }
            }
            if acknowledged > after {
                self.store
                    .save_checkpoint(&checkpoint, acknowledged)
                    .await?;
                let published = events.iter().filter(|r| r.position <= acknowledged).count();
                count += published;
                self.counters
                    .published
                    .fetch_add(published as u64, Ordering::Relaxed);
                after = acknowledged;
                self.after = Some(after);
                self.progress.send_replace(Progress { position: after });
            }
            failure?;
            debug_assert_eq!(after, last);
            if drained {
                break;
            }
        }
        Ok(count)
    }

    /// Hands one record to librdkafka; the future resolves on its ack.
    fn send(
        &self,
        producer: &FutureProducer,
        recorded: &RecordedEvent,
    ) -> Result<DeliveryFuture, Error> {
        let event = &recorded.event;
        let body =
            cloudevents::envelope(recorded, &self.config.source).map_err(|e| Error::Encode {
                event_id: event.event_id,
                position: recorded.position,
                reason: e.to_string(),
            })?;
        let key = recorded.stream_id.to_string();
        let position = recorded.position.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "content-type",
                value: Some("application/cloudevents+json"),
            })
            .insert(Header {
                key: EVENT_TYPE_HEADER,
                value: Some(event.event_type.as_str()),
            })
            .insert(Header {
                key: POSITION_HEADER,
                value: Some(position.as_str()),
            });
        let record = FutureRecord::to(&self.config.topic)
            .key(&key)
            .payload(&body)
            .headers(headers)
            .timestamp(event.recorded_at.timestamp_millis());
        producer
            .send_result(record)
            .map_err(|(e, _)| Error::Publish {
                event_id: event.event_id,
                position: recorded.position,
                source: Box::new(e),
            })
    }

    /// The producer, created once (creating it does not connect).
    fn producer(&mut self) -> Result<FutureProducer, Error> {
        if let Some(producer) = &self.producer {
            return Ok(producer.clone());
        }
        let producer: FutureProducer = super::producer_config(&self.config)
            .create()
            .map_err(failed("producer"))?;
        self.producer = Some(producer.clone());
        Ok(producer)
    }

    /// Publishes new events every `poll_ms` until `shutdown` is cancelled.
    /// Failures are logged and retried from the checkpoint with a growing
    /// pause.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let idle = Duration::from_millis(self.config.poll_ms);
        let mut failures: u32 = 0;
        loop {
            let pause = match self.publish_pending(&shutdown).await {
                Ok(count) => {
                    failures = 0;
                    if count > 0 {
                        tracing::debug!(count, position = self.after, "events published to Kafka");
                    }
                    idle
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = idle
                        .saturating_mul(2u32.saturating_pow(failures.min(16)))
                        .min(MAX_BACKOFF);
                    tracing::warn!(%error, attempt = failures, ?pause, "publishing to Kafka failed; retrying");
                    pause
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(position = self.after, "Kafka event publisher stopped");
    }
}
