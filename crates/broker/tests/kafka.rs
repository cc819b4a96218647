//! The Kafka publisher and consumer against librdkafka's in-process mock
//! cluster (no broker to install), and a real SQLite store filled by the
//! engine. Each test has its own cluster. No sleeps: every wait polls a
//! condition until a deadline.

#![cfg(feature = "kafka")]
// Test helpers panic on setup failure: that is a failed test, not a bug to handle.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backhaul_broker::{
    COMMAND_TYPE_PREFIX, DEAD_LETTER_REASON_HEADER, EVENT_TYPE_HEADER, KafkaConfig, KafkaConsumer,
    KafkaConsumerConfig, KafkaPublisher, POSITION_HEADER, Tally, envelope,
};
use backhaul_domain::Command;
use backhaul_domain::model::ReturnRequest;
use backhaul_domain::values::ReturnId;
use backhaul_engine::{CommandMeta, Engine, EngineConfig, Inbox, ManualClock, Received};
use backhaul_store::{
    AnyStore, CheckpointStore, EventStore, RecordedEvent, SqliteStore, SqliteSync,
};
use chrono::{TimeZone, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const EVENTS: &str = "backhaul.events";
const INBOUND: &str = "backhaul.inbound";
const DEAD: &str = "backhaul.dead";
const PARTITIONS: i32 = 3;

/// The longest any condition is waited for: joining a group on the mock
/// cluster takes a few seconds.
const DEADLINE: Duration = Duration::from_secs(60);

/// A record read back from a topic.
#[derive(Debug, Clone)]
struct Record {
    partition: i32,
    key: String,
    value: Vec<u8>,
    headers: BTreeMap<String, String>,
}

/// A hub's engine on a scratch SQLite store, and a mock cluster of its own.
struct Hub {
    engine: Engine,
    store: AnyStore,
    config: KafkaConfig,
    cluster: MockCluster<'static, DefaultProducerContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(
            SqliteStore::open(&dir.path().join("t.db"), SqliteSync::Normal)
                .await
                .unwrap(),
        );
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
        let engine = Engine::start(
            store.clone(),
            EngineConfig::default(),
            Arc::new(clock),
            &tracker,
            shutdown.child_token(),
        );
        let cluster = MockCluster::new(3).unwrap();
        for topic in [EVENTS, INBOUND, DEAD] {
            cluster.create_topic(topic, PARTITIONS, 3).unwrap();
        }
        let config = KafkaConfig {
            bootstrap_servers: cluster.bootstrap_servers(),
            topic: EVENTS.into(),
            source: "urn:backhaul:test".into(),
            // Small batches so catching up takes several of them.
            batch: 4,
            consumer: KafkaConsumerConfig {
                enabled: true,
                topic: INBOUND.into(),
                group_id: "hub".into(),
                ..KafkaConsumerConfig::default()
            },
            ..KafkaConfig::default()
        };
        Hub {
            engine,
            store,
            config,
            cluster,
            shutdown,
            tracker,
            _dir: dir,
        }
    }

    /// Opens `returns` returns; every other one is approved, then its
    /// approval and a cancellation are asked for again, so returns have
    /// one, or several, events.
    async fn returns(&self, returns: usize) {
        for n in 0..returns {
            let created = self.engine.create(request(), meta()).await.unwrap();
            if n % 2 == 0 {
                for command in [
                    json!({"command": "approve"}),
                    json!({"command": "cancel", "reason": "customer"}),
                ] {
                    let command: Command = serde_json::from_value(command).unwrap();
                    self.engine
                        .execute(created.return_id, command, meta())
                        .await
                        .unwrap();
                }
            }
        }
    }

    async fn approved_return(&self) -> ReturnId {
        let created = self.engine.create(request(), meta()).await.unwrap();
        let approve: Command = serde_json::from_value(json!({"command": "approve"})).unwrap();
        self.engine
            .execute(created.return_id, approve, meta())
            .await
            .unwrap();
        created.return_id
    }

    async fn log(&self) -> Vec<RecordedEvent> {
        self.store.read_all(0, 10_000).await.unwrap()
    }

    fn publisher(&self) -> KafkaPublisher<AnyStore> {
        KafkaPublisher::build(&self.config, self.store.clone()).unwrap()
    }

    fn consumer(&self) -> KafkaConsumer {
        KafkaConsumer::build(&self.config, self.engine.clone()).unwrap()
    }

    /// Every record of `topic` once `count` are there, each partition in
    /// offset order (partitions one after the other).
    fn read(&self, topic: &str, count: usize) -> Vec<Record> {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .set("group.id", "reader")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        reader.assign(&assignment).unwrap();
        let mut records = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while records.len() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} records in {topic}",
                records.len()
            );
            let Some(message) = reader.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = message.unwrap();
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = String::from_utf8(h.value.unwrap().to_vec()).unwrap();
                            (h.key.to_owned(), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push(Record {
                partition: message.partition(),
                key: String::from_utf8(message.key().unwrap_or_default().to_vec()).unwrap(),
                value: message.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
        // Nothing beyond what was waited for.
        assert!(reader.poll(Duration::from_millis(500)).is_none());
        records
    }

    /// Produces `value` to the inbound topic, keyed by `key`, and waits for
    /// its acknowledgement.
    async fn send(&self, key: &str, value: Vec<u8>) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .create()
            .unwrap();
        producer
            .send(
                FutureRecord::to(INBOUND).key(key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    async fn timeline(&self, return_id: ReturnId) -> Vec<String> {
        self.engine
            .timeline(return_id)
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Polls `consumer` until it has handled `expected` messages in all.
async fn poll_until(consumer: &mut KafkaConsumer, expected: u64) -> Tally {
    let deadline = Instant::now() + DEADLINE;
    let mut tally = Tally::default();
    while tally.total() < expected {
        assert!(Instant::now() < deadline, "handled only {tally:?}");
        let pass = consumer.poll(Duration::from_millis(500)).await.unwrap();
        tally = add(tally, pass);
    }
    tally
}

fn add(a: Tally, b: Tally) -> Tally {
    Tally {
        applied: a.applied + b.applied,
        duplicate: a.duplicate + b.duplicate,
        rejected: a.rejected + b.rejected,
        malformed: a.malformed + b.malformed,
        retried: a.retried + b.retried,
    }
}

fn tally(applied: u64, duplicate: u64, rejected: u64, malformed: u64) -> Tally {
    Tally {
        applied,
        duplicate,
        rejected,
        malformed,
        retried: 0,
    }
}

fn command_event(id: &str, command: &str, return_id: &str, data: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "urn:carrier:test",
        "type": format!("{COMMAND_TYPE_PREFIX}{command}"),
        "subject": return_id, "datacontenttype": "application/json", "data": data,
    }))
    .unwrap()
}

fn milestone(at: &str) -> Value {
    json!({"milestone": "in_transit", "occurred_at": at, "location": "Memphis"})
}

fn milestones(timeline: &[String]) -> usize {
    timeline
        .iter()
        .filter(|t| *t == "CarrierMilestoneRecorded")
        .count()
}

fn request() -> ReturnRequest {
    let money = |a: &str| json!({"amount": a, "currency": "USD"});
    serde_json::from_value(json!({
        "channel": "portal", "customer": "C1", "order_ref": "SO-1", "currency": "USD", "site": "DC1",
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "2", "uom": "EA", "reason_code": "DAMAGED",
                   "requested_outcome": "refund", "unit_price": money("10.00"), "unit_tax": money("1.00")}]
    }))
    .unwrap()
}

fn meta() -> CommandMeta {
    CommandMeta {
        partner: "portal".into(),
        idempotency: None,
        correlation_id: None,
        causation_id: None,
    }
}

/// The CloudEvents ids of `records`, per key, in the order read.
fn ids_per_return(records: &[Record]) -> BTreeMap<String, Vec<String>> {
    let mut per_return: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        let body: Value = serde_json::from_slice(&record.value).unwrap();
        per_return
            .entry(record.key.clone())
            .or_default()
            .push(body["id"].as_str().unwrap().to_owned());
    }
    per_return
}

/// The event ids of the log, per return, in log order.
fn log_per_return(log: &[RecordedEvent]) -> BTreeMap<String, Vec<String>> {
    let mut per_return: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for recorded in log {
        per_return
            .entry(recorded.stream_id.to_string())
            .or_default()
            .push(recorded.event.event_id.to_string());
    }
    per_return
}

#[tokio::test]
async fn every_event_arrives_in_per_return_order_as_a_structured_cloudevent() {
    let hub = Hub::start().await;
    hub.returns(5).await;
    let log = hub.log().await;
    assert!(
        log.len() >= 5 + 3 * 2,
        "5 requested, 3 approved and cancelled"
    );

    let mut publisher = hub.publisher();
    let handle = publisher.handle();
    assert_eq!(publisher.catch_up().await.unwrap(), log.len());
    assert_eq!(publisher.catch_up().await.unwrap(), 0, "nothing new");
    assert_eq!(handle.published(), log.len() as u64);
    assert_eq!(handle.position(), log.last().unwrap().position);
    assert_eq!(
        hub.store
            .load_checkpoint(&hub.config.checkpoint_name())
            .await
            .unwrap(),
        Some(log.last().unwrap().position)
    );

    let records = hub.read(EVENTS, log.len());
    let by_id: BTreeMap<String, &RecordedEvent> = log
        .iter()
        .map(|r| (r.event.event_id.to_string(), r))
        .collect();
    let mut partitions: BTreeMap<String, i32> = BTreeMap::new();
    for record in &records {
        let body: Value = serde_json::from_slice(&record.value).unwrap();
        let recorded = by_id[body["id"].as_str().unwrap()];
        // The value is exactly the envelope the NATS publisher sends.
        assert_eq!(
            record.value,
            envelope(recorded, "urn:backhaul:test").unwrap()
        );
        assert_eq!(record.key, recorded.stream_id.to_string());
        assert_eq!(
            record.headers["content-type"],
            "application/cloudevents+json"
        );
        assert_eq!(record.headers[EVENT_TYPE_HEADER], recorded.event.event_type);
        assert_eq!(
            record.headers[POSITION_HEADER],
            recorded.position.to_string()
        );
        assert_eq!(
            body["type"],
            format!("dev.backhaul.return.{}", recorded.event.event_type)
        );
        // One partition per return.
        let partition = *partitions
            .entry(record.key.clone())
            .or_insert(record.partition);
        assert_eq!(partition, record.partition, "{}", record.key);
    }
    assert_eq!(ids_per_return(&records), log_per_return(&log));
    hub.stop().await;
}

#[tokio::test]
async fn a_restarted_publisher_resumes_without_gaps() {
    let hub = Hub::start().await;
    hub.returns(3).await;
    let first_part = hub.log().await.last().unwrap().position;

    // The first hub publishes in the background, then stops.
    let publisher = hub.publisher();
    let handle = publisher.handle();
    let stop = CancellationToken::new();
    let running = hub.tracker.spawn(publisher.run(stop.clone()));
    assert!(handle.published_through(first_part).await);
    stop.cancel();
    running.await.unwrap();

    // More events while no publisher runs; the restarted one publishes
    // those only.
    hub.returns(4).await;
    let log = hub.log().await;
    let new = log.iter().filter(|r| r.position > first_part).count();
    assert!(new > 0);
    assert_eq!(hub.publisher().catch_up().await.unwrap(), new);

    // A crash after the acknowledgements, before the checkpoint: the
    // checkpoint is behind what the topic holds. The tail is published
    // again, with the same ids, and nothing else.
    let behind = log[log.len() - 3].position;
    hub.store
        .save_checkpoint(&hub.config.checkpoint_name(), behind)
        .await
        .unwrap();
    assert_eq!(hub.publisher().catch_up().await.unwrap(), 2);

    let records = hub.read(EVENTS, log.len() + 2);
    let read = ids_per_return(&records);
    let expected = log_per_return(&log);
    let tail: Vec<String> = log[log.len() - 2..]
        .iter()
        .map(|r| r.event.event_id.to_string())
        .collect();
    for (key, ids) in &expected {
        // Without the repeated tail, each return's events are the log's,
        // in order: no gap, no reordering.
        let mut deduplicated: Vec<String> = Vec::new();
        for id in &read[key] {
            if deduplicated.last() == Some(id) || deduplicated.contains(id) {
                assert!(tail.contains(id), "only the tail repeats: {id}");
                continue;
            }
            deduplicated.push(id.clone());
        }
        assert_eq!(&deduplicated, ids, "{key}");
    }
    let repeated: usize = read.values().map(Vec::len).sum::<usize>() - log.len();
    assert_eq!(repeated, 2);
    // A repeat is the same CloudEvent, id included.
    for id in &tail {
        let copies: Vec<&Record> = records
            .iter()
            .filter(|r| {
                serde_json::from_slice::<Value>(&r.value).unwrap()["id"].as_str() == Some(id)
            })
            .collect();
        assert_eq!(copies.len(), 2, "{id}");
        assert_eq!(copies[0].value, copies[1].value);
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_command_is_applied_once_however_often_it_arrives() {
    let hub = Hub::start().await;
    let return_id = hub.approved_return().await;
    let rid = return_id.to_string();

    // The same message twice (a partner re-sending), and one the hub had
    // applied before a crash kept it from committing the offset.
    let first = command_event(
        "m-1",
        "record_carrier_milestone",
        &rid,
        &milestone("2026-11-02T10:00:00Z"),
    );
    hub.send(&rid, first.clone()).await;
    hub.send(&rid, first).await;
    let data = milestone("2026-11-02T11:00:00Z");
    let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        data.to_string().as_bytes(),
    ));
    let command: Command = serde_json::from_value(json!({
        "command": "record_carrier_milestone", "milestone": "in_transit",
        "occurred_at": "2026-11-02T11:00:00Z", "location": "Memphis"
    }))
    .unwrap();
    let received = Inbox::new(hub.engine.clone(), "kafka")
        .receive(return_id, command, "kafka:m-2", &fingerprint, None)
        .await
        .unwrap();
    assert!(matches!(received, Received::Applied(_)));
    hub.send(
        &rid,
        command_event("m-2", "record_carrier_milestone", &rid, &data),
    )
    .await;

    let mut consumer = hub.consumer();
    assert_eq!(poll_until(&mut consumer, 3).await, tally(1, 2, 0, 0));
    assert_eq!(milestones(&hub.timeline(return_id).await), 2, "m-1 and m-2");
    assert_eq!(consumer.handle().tally(), tally(1, 2, 0, 0));
    drop(consumer);

    // The offsets were committed: a new member of the group starts after
    // them and sees only what is new.
    hub.send(
        &rid,
        command_event(
            "m-3",
            "record_carrier_milestone",
            &rid,
            &milestone("2026-11-02T12:00:00Z"),
        ),
    )
    .await;
    let mut restarted = hub.consumer();
    assert_eq!(poll_until(&mut restarted, 1).await, tally(1, 0, 0, 0));
    assert_eq!(milestones(&hub.timeline(return_id).await), 3);
    hub.stop().await;
}

#[tokio::test]
async fn malformed_and_refused_messages_go_to_the_dead_letter_topic_with_the_reason() {
    let mut hub = Hub::start().await;
    hub.config.consumer.dead_letter_topic = DEAD.into();
    let return_id = hub.approved_return().await;
    let rid = return_id.to_string();
    let before = hub.timeline(return_id).await;

    hub.send(&rid, b"{not json".to_vec()).await;
    hub.send(&rid, command_event("m-1", "teleport", &rid, &json!({})))
        .await;
    hub.send(&rid, command_event("m-2", "close", &rid, &Value::Null))
        .await;
    hub.send(
        &rid,
        command_event(
            "m-3",
            "record_carrier_milestone",
            &rid,
            &milestone("2026-11-02T10:00:00Z"),
        ),
    )
    .await;

    let mut consumer = hub.consumer();
    assert_eq!(poll_until(&mut consumer, 4).await, tally(1, 0, 1, 2));
    let after = hub.timeline(return_id).await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(after.last().unwrap(), "CarrierMilestoneRecorded");

    let dead = hub.read(DEAD, 3);
    let reasons: Vec<&str> = dead
        .iter()
        .map(|r| r.headers[DEAD_LETTER_REASON_HEADER].as_str())
        .collect();
    assert!(reasons[0].starts_with("not a JSON object"), "{reasons:?}");
    assert!(reasons[1].contains("unknown variant"), "{reasons:?}");
    assert!(reasons[2].contains("m-2"), "{reasons:?}");
    assert_eq!(dead[0].value, b"{not json");
    assert_eq!(dead[0].key, rid, "the original key is kept");
    hub.stop().await;
}

#[tokio::test]
async fn without_a_dead_letter_topic_a_malformed_message_is_skipped_and_committed() {
    let hub = Hub::start().await;
    let return_id = hub.approved_return().await;
    let rid = return_id.to_string();
    hub.send(&rid, b"[]".to_vec()).await;
    let mut consumer = hub.consumer();
    assert_eq!(poll_until(&mut consumer, 1).await, tally(0, 0, 0, 1));
    drop(consumer);
    // Committed: a restarted member sees only the next message.
    hub.send(
        &rid,
        command_event(
            "m-1",
            "record_carrier_milestone",
            &rid,
            &milestone("2026-11-02T10:00:00Z"),
        ),
    )
    .await;
    let mut restarted = hub.consumer();
    assert_eq!(poll_until(&mut restarted, 1).await, tally(1, 0, 0, 0));
    hub.stop().await;
}

#[tokio::test]
async fn a_technical_failure_is_not_committed_and_is_handled_again() {
    let hub = Hub::start().await;
    let return_id = hub.approved_return().await;
    let rid = return_id.to_string();
    // The engine stops committing: the store answers "shutting down".
    hub.shutdown.cancel();
    hub.tracker.close();
    hub.tracker.wait().await;
    hub.send(
        &rid,
        command_event(
            "m-1",
            "record_carrier_milestone",
            &rid,
            &milestone("2026-11-02T10:00:00Z"),
        ),
    )
    .await;
    let mut consumer = hub.consumer();
    let first = poll_until(&mut consumer, 1).await;
    assert_eq!(first.retried, 1, "{first:?}");
    // Rewound, not skipped: the next pass has it again.
    let again = poll_until(&mut consumer, 1).await;
    assert_eq!(again.retried, 1, "{again:?}");
}
