//! The Kafka consumer: applies inbound commands from a topic in a consumer
//! group, at least once, with the [`Inbox`] dropping what arrives twice.
//!
//! Messages are the same CloudEvents command envelopes the NATS consumer
//! takes (structured mode, the record value), with the dedup key
//! `kafka:<id>`. What happens to a message:
//! - applied, or already applied → its offset is committed, after the
//!   commit of its effect;
//! - malformed, or refused by the return → sent to the dead-letter topic
//!   with the reason in [`DEAD_LETTER_REASON_HEADER`] if one is configured,
//!   else logged with the reason; then committed, since delivering it again
//!   cannot make it pass;
//! - a technical failure (the store, the engine shutting down, the
//!   dead-letter topic unreachable) → not committed: the partition is
//!   rewound to it and the pass ends, so it is handled again after
//!   [`RETRY_DELAY`]. A partition is a queue, so this holds back the
//!   messages behind it in that partition (never those of others).
//!
//! Architecture invariant: no offset is committed before the effect is.
//! Offsets are committed asynchronously after each message and
//! synchronously when a pass ends; a commit lost in a crash only makes the
//! message a duplicate for its dedup key.

use std::sync::Arc;
use std::time::Duration;

use backhaul_engine::{Engine, Inbox};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::failed;
use crate::consumer::{Counters, Verdict, apply};
use crate::{ConsumerHandle, Error, KafkaConfig, RETRY_DELAY, Tally};

/// The header of a dead letter saying why the message was not applied.
pub const DEAD_LETTER_REASON_HEADER: &str = "backhaul-dead-letter-reason";

/// The header of a dead letter naming where it came from
/// (`topic/partition/offset`).
const DEAD_LETTER_ORIGIN_HEADER: &str = "backhaul-dead-letter-origin";

/// How long `run` waits for a message before ending a pass; it bounds how
/// long a shutdown waits for an idle consumer.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Applies the commands of a Kafka topic through an [`Inbox`].
pub struct KafkaConsumer {
    config: KafkaConfig,
    inbox: Inbox,
    consumer: Option<Arc<StreamConsumer>>,
    dead_letters: Option<FutureProducer>,
    counters: Arc<Counters>,
}

impl KafkaConsumer {
    /// Checks the configuration (`[broker.kafka]` with its `consumer`
    /// section); joins the group on the first pass.
    pub fn build(config: &KafkaConfig, engine: Engine) -> Result<Self, Error> {
        if !config.consumer.enabled {
            return Err(Error::Config {
                field: "broker.kafka.consumer.enabled",
                reason: "the consumer is off".into(),
            });
        }
        config.validate()?;
        Ok(Self {
            inbox: Inbox::new(engine, &config.consumer.source),
            config: config.clone(),
            consumer: None,
            dead_letters: None,
            counters: Arc::default(),
        })
    }

    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle {
            counters: Arc::clone(&self.counters),
        }
    }

    /// Handles messages until none arrives for `wait` (or one must be
    /// retried), then commits what it handled and returns the tally. The
    /// first pass also joins the group, which can take longer than `wait`:
    /// callers waiting for a message poll again until a deadline.
    pub async fn poll(&mut self, wait: Duration) -> Result<Tally, Error> {
        self.pass(wait, &CancellationToken::new()).await
    }

    async fn pass(&mut self, wait: Duration, stop: &CancellationToken) -> Result<Tally, Error> {
        let consumer = self.consumer()?;
        let mut handled = TopicPartitionList::new();
        let mut tally = Tally::default();
        let outcome = self
            .handle_until_idle(&consumer, wait, stop, &mut handled, &mut tally)
            .await;
        if handled.count() > 0 {
            // Synchronous, so a pass that returned has its offsets stored by
            // the group coordinator; it blocks for one round trip.
            consumer
                .commit(&handled, CommitMode::Sync)
                .map_err(failed("commit"))?;
        }
        outcome.map(|()| tally)
    }

    async fn handle_until_idle(
        &mut self,
        consumer: &StreamConsumer,
        wait: Duration,
        stop: &CancellationToken,
        handled: &mut TopicPartitionList,
        tally: &mut Tally,
    ) -> Result<(), Error> {
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                received = tokio::time::timeout(wait, consumer.recv()) => received,
            };
            let Ok(received) = received else {
                return Ok(());
            };
            let message = received.map_err(failed("receive"))?;
            let mut verdict =
                apply(&self.inbox, message.payload().unwrap_or_default(), "kafka").await;
            let origin = format!(
                "{}/{}/{}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            match &verdict {
                Verdict::Applied | Verdict::Duplicate | Verdict::Retry(_) => {}
                Verdict::Rejected(reason) | Verdict::Malformed(reason) => {
                    if let Err(error) = self.dead_letter(&message, reason, &origin).await {
                        verdict = Verdict::Retry(format!("dead-letter topic: {error}"));
                    }
                }
            }
            self.counters.count(&verdict);
            let counter = match &verdict {
                Verdict::Applied => &mut tally.applied,
                Verdict::Duplicate => &mut tally.duplicate,
                Verdict::Rejected(_) => &mut tally.rejected,
                Verdict::Malformed(_) => &mut tally.malformed,
                Verdict::Retry(_) => &mut tally.retried,
            };
            *counter += 1;
            match &verdict {
                Verdict::Applied | Verdict::Duplicate => {}
                Verdict::Rejected(reason) => {
                    tracing::warn!(%origin, error = %reason, "inbound command rejected; skipped");
                }
                Verdict::Malformed(reason) => {
                    tracing::warn!(%origin, error = %reason, "malformed inbound message; skipped");
                }
                Verdict::Retry(reason) => {
                    tracing::warn!(%origin, error = %reason, delay = ?RETRY_DELAY, "inbound command failed; handled again later");
                    // Back to this message: the next pass reads it again.
                    consumer
                        .seek(
                            message.topic(),
                            message.partition(),
                            Offset::Offset(message.offset()),
                            Duration::from_secs(5),
                        )
                        .map_err(failed("seek"))?;
                    return Ok(());
                }
            }
            // The committed offset is the next message to read.
            handled
                .add_partition_offset(
                    message.topic(),
                    message.partition(),
                    Offset::Offset(message.offset() + 1),
                )
                .map_err(failed("offset"))?;
            consumer
                .commit_message(&message, CommitMode::Async)
                .map_err(failed("commit"))?;
        }
    }

    /// Sends a message that will never pass to the dead-letter topic, if
    /// one is configured, with its key, value and headers and the reason.
    async fn dead_letter(
        &mut self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        origin: &str,
    ) -> Result<(), Error> {
        if self.config.consumer.dead_letter_topic.is_empty() {
            return Ok(());
        }
        let producer = match &self.dead_letters {
            Some(producer) => producer.clone(),
            None => {
                let producer: FutureProducer = super::producer_config(&self.config)
                    .create()
                    .map_err(failed("dead-letter producer"))?;
                self.dead_letters = Some(producer.clone());
                producer
            }
        };
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let headers = headers
            .insert(Header {
                key: DEAD_LETTER_REASON_HEADER,
                value: Some(reason),
            })
            .insert(Header {
                key: DEAD_LETTER_ORIGIN_HEADER,
                value: Some(origin),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.config.consumer.dead_letter_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| failed("dead letter")(e))?;
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(failed("dead letter")(e)),
            Err(_) => Err(Error::Kafka {
                what: "dead letter".into(),
                source: "the producer was dropped".into(),
            }),
        }
    }

    /// The group member, created and subscribed once.
    fn consumer(&mut self) -> Result<Arc<StreamConsumer>, Error> {
        if let Some(consumer) = &self.consumer {
            return Ok(Arc::clone(consumer));
        }
        let config = &self.config;
        let consumer: StreamConsumer = super::client_config(
            config,
            // A new group starts at the beginning of the topic: commands
            // sent before the hub first joined are still commands.
            &[("auto.offset.reset", "earliest")],
            &[
                ("group.id", config.consumer.group_id.as_str()),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
            ],
        )
        .create()
        .map_err(failed("consumer"))?;
        consumer
            .subscribe(&[config.consumer.topic.as_str()])
            .map_err(failed("subscribe"))?;
        let consumer = Arc::new(consumer);
        self.consumer = Some(Arc::clone(&consumer));
        Ok(consumer)
    }

    /// Consumes until `shutdown` is cancelled. A message being handled when
    /// it is cancelled is finished and committed first; failures are logged
    /// and retried with a growing pause.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            let pause = match self.pass(IDLE_WAIT, &shutdown).await {
                Ok(tally) if tally.retried > 0 => RETRY_DELAY,
                Ok(_) => {
                    failures = 0;
                    continue;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    // The client may be the problem: make a new one.
                    self.consumer = None;
                    let pause = Duration::from_millis(200)
                        .saturating_mul(2u32.saturating_pow(failures.min(16)))
                        .min(MAX_BACKOFF);
                    tracing::warn!(%error, attempt = failures, ?pause, "consuming from Kafka failed; retrying");
                    pause
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(tally = ?self.handle().tally(), "Kafka inbound consumer stopped");
    }
}
