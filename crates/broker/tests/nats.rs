//! The publisher and the consumer against the real NATS server (`BACKHAUL_TEST_NATS_URL`,
//! default nats://127.0.0.1:4222; `.ci/run` starts it) and a real SQLite
//! store filled by the engine. Each test uses its own streams, subjects and
//! durable consumer, and deletes the streams at the end.

// Test helpers panic on setup failure: that is a failed test, not a bug to handle.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, stream::Stream};
use backhaul_broker::{
    COMMAND_TYPE_PREFIX, Consumer, ConsumerConfig, Error, NatsConfig, POSITION_HEADER, Publisher,
    Tally,
};
use backhaul_domain::Command;
use backhaul_domain::model::ReturnRequest;
use backhaul_domain::values::ReturnId;
use backhaul_engine::{CommandMeta, Engine, EngineConfig, Inbox, ManualClock, Received};
use backhaul_store::{AnyStore, EventStore, RecordedEvent, SqliteStore, SqliteSync};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

fn nats_url() -> String {
    std::env::var("BACKHAUL_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A hub's engine on a scratch SQLite store, and a stream of its own.
struct Hub {
    engine: Engine,
    store: AnyStore,
    config: NatsConfig,
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
        let id = Uuid::new_v4().simple().to_string();
        let config = NatsConfig {
            url: nats_url(),
            stream: format!("BACKHAUL_TEST_{id}"),
            subject_prefix: format!("test.{id}.events"),
            source: "urn:backhaul:test".into(),
            // Small batches so catching up takes several reads of the log.
            batch: 3,
            consumer: ConsumerConfig {
                enabled: true,
                stream: format!("BACKHAUL_TEST_IN_{id}"),
                durable: format!("test_{id}"),
                filter_subject: format!("test.{id}.inbound.>"),
                // Small batches so draining takes several fetches.
                batch: 2,
                ..ConsumerConfig::default()
            },
            ..NatsConfig::default()
        };
        Hub {
            engine,
            store,
            config,
            shutdown,
            tracker,
            _dir: dir,
        }
    }

    /// Opens `returns` returns and approves every other one.
    async fn returns(&self, returns: usize) {
        for n in 0..returns {
            let created = self.engine.create(request(), meta()).await.unwrap();
            if n % 2 == 0 {
                let approve: Command =
                    serde_json::from_value(json!({"command": "approve"})).unwrap();
                self.engine
                    .execute(created.return_id, approve, meta())
                    .await
                    .unwrap();
            }
        }
    }

    async fn log(&self) -> Vec<RecordedEvent> {
        self.store.read_all(0, 10_000).await.unwrap()
    }

    fn publisher(&self) -> Publisher<AnyStore> {
        Publisher::build(&self.config, self.store.clone()).unwrap()
    }

    async fn stream(&self) -> Stream {
        let client = async_nats::connect(nats_url())
            .await
            .unwrap_or_else(|e| panic!("NATS at {} is required for these tests: {e}", nats_url()));
        jetstream::new(client)
            .get_stream(&self.config.stream)
            .await
            .unwrap()
    }

    /// Every message of the stream, in stream order, with its stream sequence.
    async fn messages(&self) -> Vec<(u64, async_nats::jetstream::message::StreamMessage)> {
        let mut stream = self.stream().await;
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            messages.push((sequence, stream.get_raw_message(sequence).await.unwrap()));
        }
        messages
    }

    async fn stop(self) {
        let client = async_nats::connect(nats_url()).await.unwrap();
        let js = jetstream::new(client);
        // The publisher tests never create the inbound stream, nor the
        // consumer tests the outbound one.
        for name in [&self.config.stream, &self.config.consumer.stream] {
            if js.get_stream(name).await.is_ok() {
                js.delete_stream(name).await.unwrap();
            }
        }
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Hub {
    /// A consumer that has made its stream and durable (on its first
    /// fetch), so messages sent from now on reach it.
    async fn consumer(&self) -> Consumer {
        let mut consumer = Consumer::build(&self.config, self.engine.clone()).unwrap();
        assert_eq!(
            consumer.drain().await.unwrap(),
            Tally::default(),
            "an empty stream"
        );
        consumer
    }

    /// A new return, approved.
    async fn approved_return(&self) -> ReturnId {
        let created = self.engine.create(request(), meta()).await.unwrap();
        let approve: Command = serde_json::from_value(json!({"command": "approve"})).unwrap();
        self.engine
            .execute(created.return_id, approve, meta())
            .await
            .unwrap();
        created.return_id
    }

    /// Publishes `body` as it is to the inbound stream and waits until
    /// JetStream stored it. No `Nats-Msg-Id`: copies of a message reach the
    /// consumer, as they would from a partner re-sending.
    async fn send(&self, body: Vec<u8>) {
        let client = async_nats::connect(nats_url()).await.unwrap();
        let subject = self.config.consumer.filter_subject.replace('>', "carrier");
        jetstream::new(client)
            .publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The durable consumer, as another client sees it.
    async fn durable(&self) -> PullConsumer {
        let client = async_nats::connect(nats_url()).await.unwrap();
        jetstream::new(client)
            .get_stream(&self.config.consumer.stream)
            .await
            .unwrap()
            .get_consumer(&self.config.consumer.durable)
            .await
            .unwrap()
    }

    /// The event types of a return's timeline.
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
}

/// A command CloudEvent for `return_id`.
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

fn tally(applied: u64, duplicate: u64, rejected: u64, malformed: u64) -> Tally {
    Tally {
        applied,
        duplicate,
        rejected,
        malformed,
        retried: 0,
    }
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

/// The positions carried by the stream's messages, in stream order.
fn positions(messages: &[(u64, async_nats::jetstream::message::StreamMessage)]) -> Vec<i64> {
    messages
        .iter()
        .map(|(_, m)| {
            m.headers
                .get(POSITION_HEADER)
                .unwrap()
                .as_str()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn every_event_arrives_once_in_log_order_as_a_cloudevent() {
    let hub = Hub::start().await;
    hub.returns(3).await;
    let log = hub.log().await;
    assert_eq!(log.len(), 5, "3 requested, 2 approved");

    let mut publisher = hub.publisher();
    let handle = publisher.handle();
    assert_eq!(publisher.catch_up().await.unwrap(), log.len());
    assert_eq!(publisher.catch_up().await.unwrap(), 0, "nothing new");
    assert_eq!(handle.published(), 5);
    assert_eq!(handle.duplicates(), 0);
    assert_eq!(handle.position(), log.last().unwrap().position);

    let messages = hub.messages().await;
    assert_eq!(messages.len(), log.len());
    for ((sequence, message), recorded) in messages.iter().zip(&log) {
        let event = &recorded.event;
        assert_eq!(
            message.subject.as_str(),
            format!("{}.{}", hub.config.subject_prefix, event.event_type),
            "message {sequence}"
        );
        assert_eq!(
            message.headers.get("Nats-Msg-Id").unwrap().as_str(),
            event.event_id.to_string()
        );
        assert_eq!(
            message.headers.get(POSITION_HEADER).unwrap().as_str(),
            recorded.position.to_string()
        );
        let body: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], event.event_id.to_string());
        assert_eq!(body["source"], "urn:backhaul:test");
        assert_eq!(
            body["type"],
            format!("dev.backhaul.return.{}", event.event_type)
        );
        assert_eq!(body["subject"], recorded.stream_id.to_string());
        assert_eq!(body["datacontenttype"], "application/json");
        let time: DateTime<Utc> = body["time"].as_str().unwrap().parse().unwrap();
        assert_eq!(time, event.recorded_at);
        assert_eq!(body["data"], event.payload.to_value());
        assert_eq!(body["correlationid"], event.correlation_id.to_string());
        assert_eq!(body["causationid"], event.causation_id.to_string());
        assert_eq!(body["sequence"], format!("{:020}", recorded.version));
        assert_eq!(body["position"], format!("{:020}", recorded.position));
    }
    let types: Vec<&str> = log.iter().map(|r| r.event.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ReturnRequested",
            "ReturnApproved",
            "ReturnRequested",
            "ReturnRequested",
            "ReturnApproved"
        ]
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_restart_loses_nothing_and_stores_nothing_twice() {
    let hub = Hub::start().await;
    hub.returns(2).await;
    let first_part = hub.log().await.last().unwrap().position;

    // The first hub publishes in the background, then stops.
    let publisher = hub.publisher();
    let handle = publisher.handle();
    let stop = CancellationToken::new();
    let running = hub.tracker.spawn(publisher.run(stop.clone()));
    assert!(handle.published_through(first_part).await);
    stop.cancel();
    running.await.unwrap();

    // More events while no publisher runs.
    hub.returns(3).await;
    let log = hub.log().await;
    assert!(log.len() > 3);

    // The restarted publisher resumes after the stream's last message.
    let mut restarted = hub.publisher();
    let new = restarted.catch_up().await.unwrap();
    assert_eq!(new, log.iter().filter(|r| r.position > first_part).count());
    assert_eq!(restarted.handle().duplicates(), 0);

    // A publisher stopped between publishing and learning it did (here: one
    // made to start from the first event again) sends events the stream has:
    // the duplicate window drops every one.
    let mut replay = hub.publisher();
    let replay_handle = replay.handle();
    replay.resume_after(log[0].position);
    assert_eq!(replay.catch_up().await.unwrap(), log.len() - 1);
    assert_eq!(replay_handle.duplicates(), (log.len() - 1) as u64);
    assert_eq!(replay_handle.published(), 0);

    let mut stream = hub.stream().await;
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(state.messages, log.len() as u64);
    assert_eq!(state.last_sequence, log.len() as u64);
    let expected: Vec<i64> = log.iter().map(|r| r.position).collect();
    assert_eq!(
        positions(&hub.messages().await),
        expected,
        "log order, once each"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_running_publisher_picks_up_new_commits_and_finishes_on_cancel() {
    let hub = Hub::start().await;
    let publisher = hub.publisher();
    let handle = publisher.handle();
    let stop = CancellationToken::new();
    let running = hub.tracker.spawn(publisher.run(stop.clone()));
    // Commits made while it polls are published without a restart.
    hub.returns(2).await;
    let last = hub.log().await.last().unwrap().position;
    assert!(handle.published_through(last).await);
    stop.cancel();
    running.await.unwrap();
    assert!(
        !handle.published_through(last + 1).await,
        "a stopped publisher says so"
    );
    assert_eq!(positions(&hub.messages().await).last(), Some(&last));
    hub.stop().await;
}

#[tokio::test]
async fn a_foreign_message_at_the_end_of_the_stream_stops_the_resume() {
    let hub = Hub::start().await;
    hub.returns(1).await;
    hub.publisher().catch_up().await.unwrap();
    let client = async_nats::connect(nats_url()).await.unwrap();
    jetstream::new(client)
        .publish(format!("{}.Foreign", hub.config.subject_prefix), "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let err = hub.publisher().catch_up().await.unwrap_err();
    assert!(matches!(err, Error::Resume { sequence: 3, .. }), "{err}");
    hub.stop().await;
}

#[tokio::test]
async fn bad_configuration_is_refused_naming_the_field() {
    let valid = NatsConfig {
        url: nats_url(),
        ..NatsConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("t.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    for (field, config) in [
        (
            "broker.nats.url",
            NatsConfig {
                url: "http://127.0.0.1:4222".into(),
                ..valid.clone()
            },
        ),
        (
            "broker.nats.stream",
            NatsConfig {
                stream: String::new(),
                ..valid.clone()
            },
        ),
    ] {
        let err = Publisher::build(&config, store.clone()).err().unwrap();
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("t.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let config = NatsConfig {
        url: "nats://127.0.0.1:1".into(),
        ..NatsConfig::default()
    };
    let mut publisher = Publisher::build(&config, store).unwrap();
    let err = publisher.catch_up().await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
}

#[tokio::test]
async fn a_command_message_is_applied_once_however_often_it_arrives() {
    let hub = Hub::start().await;
    let return_id = hub.approved_return().await;
    let rid = return_id.to_string();
    let mut consumer = hub.consumer().await;

    // The same message id twice: applied, then acknowledged as a duplicate.
    let first = command_event(
        "m-1",
        "record_carrier_milestone",
        &rid,
        &milestone("2026-11-02T10:00:00Z"),
    );
    hub.send(first.clone()).await;
    hub.send(first).await;
    assert_eq!(consumer.drain().await.unwrap(), tally(1, 1, 0, 0));
    assert_eq!(milestones(&hub.timeline(return_id).await), 1);

    // A redelivery: a consumer committed the message, then died before its
    // ack. Here another client takes the message from the durable, applies
    // it under the dedup key the consumer uses, and gives it back.
    let data = milestone("2026-11-02T11:00:00Z");
    hub.send(command_event(
        "m-2",
        "record_carrier_milestone",
        &rid,
        &data,
    ))
    .await;
    let durable = hub.durable().await;
    let mut fetched = durable.fetch().max_messages(1).messages().await.unwrap();
    let taken = fetched.next().await.unwrap().unwrap();
    let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        data.to_string().as_bytes(),
    ));
    let command: Command = serde_json::from_value(json!({
        "command": "record_carrier_milestone", "milestone": "in_transit",
        "occurred_at": "2026-11-02T11:00:00Z", "location": "Memphis"
    }))
    .unwrap();
    let received = Inbox::new(hub.engine.clone(), "nats")
        .receive(return_id, command, "nats:m-2", &fingerprint, None)
        .await
        .unwrap();
    assert!(matches!(received, Received::Applied(_)));
    taken.double_ack_with(AckKind::Nak(None)).await.unwrap();

    assert_eq!(consumer.drain().await.unwrap(), tally(0, 1, 0, 0));
    assert_eq!(milestones(&hub.timeline(return_id).await), 2, "m-1 and m-2");
    assert_eq!(consumer.handle().tally(), tally(1, 2, 0, 0));
    let mut durable = hub.durable().await;
    let info = durable.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
    assert_eq!(info.num_redelivered, 0, "every delivery was acknowledged");
    hub.stop().await;
}

/// A marketplace opening returns over the broker: a `request` message (no
/// subject, the return request as data) opens one return, however often
/// the message arrives.
#[tokio::test]
async fn a_request_message_opens_one_return_however_often_it_arrives() {
    let hub = Hub::start().await;
    let mut consumer = hub.consumer().await;
    let body = serde_json::to_vec(&json!({
        "specversion": "1.0", "id": "r-1", "source": "urn:marketplace:test",
        "type": format!("{COMMAND_TYPE_PREFIX}request"),
        "datacontenttype": "application/json",
        "data": serde_json::to_value(request()).unwrap(),
    }))
    .unwrap();
    hub.send(body.clone()).await;
    hub.send(body).await;
    assert_eq!(consumer.drain().await.unwrap(), tally(1, 1, 0, 0));
    let returns = hub
        .engine
        .store()
        .list_summaries(&backhaul_store::SummaryFilter::default())
        .await
        .unwrap();
    assert_eq!(returns.len(), 1, "one return for two copies");
    assert_eq!(returns[0].order_ref, "SO-1");
    hub.stop().await;
}

#[tokio::test]
async fn malformed_messages_are_terminated_and_the_next_good_one_applied() {
    let hub = Hub::start().await;
    let return_id = hub.approved_return().await;
    let rid = return_id.to_string();
    let before = hub.timeline(return_id).await;
    let mut consumer = hub.consumer().await;
    let good = milestone("2026-11-02T10:00:00Z");

    hub.send(b"{not json".to_vec()).await;
    let mut no_subject: Value = serde_json::from_slice(&command_event(
        "m-1",
        "record_carrier_milestone",
        &rid,
        &good,
    ))
    .unwrap();
    no_subject.as_object_mut().unwrap().remove("subject");
    hub.send(serde_json::to_vec(&no_subject).unwrap()).await;
    hub.send(command_event("m-2", "teleport", &rid, &json!({})))
        .await;
    hub.send(command_event(
        "m-3",
        "record_carrier_milestone",
        &rid,
        &json!({"milestone": "in_transit"}),
    ))
    .await;
    hub.send(command_event("m-4", "request", &rid, &json!({})))
        .await;
    hub.send(command_event(
        "m-5",
        "record_carrier_milestone",
        &rid,
        &good,
    ))
    .await;

    assert_eq!(consumer.drain().await.unwrap(), tally(1, 0, 0, 5));
    let after = hub.timeline(return_id).await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(after.last().unwrap(), "CarrierMilestoneRecorded");
    // Terminated, not left for redelivery.
    assert_eq!(consumer.drain().await.unwrap(), Tally::default());
    let info = hub.durable().await.info().await.unwrap().clone();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
    hub.stop().await;
}

#[tokio::test]
async fn a_command_the_return_refuses_is_terminated_as_rejected() {
    let hub = Hub::start().await;
    let return_id = hub.approved_return().await;
    let before = hub.timeline(return_id).await;
    let mut consumer = hub.consumer().await;
    hub.send(command_event(
        "m-1",
        "close",
        &return_id.to_string(),
        &Value::Null,
    ))
    .await;
    assert_eq!(consumer.drain().await.unwrap(), tally(0, 0, 1, 0));
    assert_eq!(hub.timeline(return_id).await, before, "nothing stored");
    assert_eq!(consumer.drain().await.unwrap(), Tally::default());
    hub.stop().await;
}

#[tokio::test]
async fn a_command_for_an_unknown_return_is_terminated_as_rejected() {
    let hub = Hub::start().await;
    let mut consumer = hub.consumer().await;
    let unknown = ReturnId::from_uuid(Uuid::now_v7());
    hub.send(command_event(
        "m-1",
        "record_carrier_milestone",
        &unknown.to_string(),
        &milestone("2026-11-02T10:00:00Z"),
    ))
    .await;
    assert_eq!(consumer.drain().await.unwrap(), tally(0, 0, 1, 0));
    assert_eq!(hub.engine.get(unknown).await.unwrap(), None);
    assert!(hub.log().await.is_empty(), "nothing stored");
    hub.stop().await;
}

#[tokio::test]
async fn a_technical_failure_is_nakd_for_redelivery() {
    let hub = Hub::start().await;
    let return_id = hub.approved_return().await;
    let mut consumer = hub.consumer().await;
    // The engine stops committing: the store answers "shutting down".
    hub.shutdown.cancel();
    hub.tracker.close();
    hub.tracker.wait().await;
    hub.send(command_event(
        "m-1",
        "record_carrier_milestone",
        &return_id.to_string(),
        &milestone("2026-11-02T10:00:00Z"),
    ))
    .await;
    let pass = consumer.drain().await.unwrap();
    assert_eq!(
        pass,
        Tally {
            retried: 1,
            ..Tally::default()
        }
    );
    // Held back for RETRY_DELAY, then delivered again: still awaiting an ack.
    let info = hub.durable().await.info().await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(milestones(&hub.timeline(return_id).await), 0);
    hub.stop().await;
}
