//! The signed-webhook connector against subscribers served by an axum
//! router on a socket in the test's own task: what arrives verifies with
//! `backhaul_webhooks::verify` and each subscriber's secret, filters pick
//! the subscribers, a 5xx is technical and the retry goes only to the
//! subscriber that failed, a 410 is a business refusal naming it, and bad
//! configurations are refused naming their key.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use backhaul_connectors::webhook::WebhookSink;
use backhaul_connectors::{BuildError, ConnectorConfig, build_with_env};
use backhaul_domain::action::{Action, ActionKind, ActionResult};
use backhaul_engine::{ManualClock, SinkError};
use backhaul_webhooks::{Secret, Tolerance, verify};
use chrono::{Duration, Utc};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    RMA, action, assert_business, assert_technical, deliver, no_prerequisites, start_time,
};

const CRM_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BI_SECRET: &str = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const OPS_SECRET: &str = "whsec_AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const OPS_OLD_SECRET: &str = "whsec_AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";

fn env(name: &str) -> Option<String> {
    match name {
        "CRM_SECRET" => Some(CRM_SECRET.to_owned()),
        "BI_SECRET" => Some(BI_SECRET.to_owned()),
        "OPS_SECRET" => Some(OPS_SECRET.to_owned()),
        "OPS_OLD_SECRET" => Some(OPS_OLD_SECRET.to_owned()),
        _ => None,
    }
}

/// One request a subscriber received.
#[derive(Debug, Clone)]
struct Received {
    /// Path and query, as requested.
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

/// The subscribers' side: every request, and the statuses to answer with
/// per path (200 once the script runs out).
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
}

impl Receiver {
    fn answer(&self, path: &str, statuses: &[u16]) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_owned(), statuses.iter().copied().collect());
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.uri.split('?').next() == Some(path))
            .cloned()
            .collect()
    }

    fn router(&self) -> Router {
        async fn hook(
            State(receiver): State<Receiver>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let path = uri.path().to_owned();
            receiver.received.lock().unwrap().push(Received {
                uri: uri.to_string(),
                headers,
                body,
            });
            let status = receiver
                .script
                .lock()
                .unwrap()
                .get_mut(&path)
                .and_then(VecDeque::pop_front)
                .unwrap_or(200);
            StatusCode::from_u16(status).unwrap()
        }
        Router::new()
            .route("/crm", post(hook))
            .route("/bi", post(hook))
            .route("/ops", post(hook))
            .with_state(self.clone())
    }
}

/// The connector's section with three subscribers at `base`: `crm` takes
/// every return event, `bi` only `received` (with a query in its URL),
/// `ops` `approved` and `closed`, signed with a new and an old secret.
fn config(base: &str) -> ConnectorConfig {
    toml::from_str(&format!(
        r#"
        kind = "webhook"
        [[subscribers]]
        name = "crm"
        url = "{base}/crm"
        secret_env = "CRM_SECRET"
        event_types = ["return.*"]
        [[subscribers]]
        name = "bi"
        url = "{base}/bi?tenant=7"
        secret_env = "BI_SECRET"
        event_types = ["return.status_changed"]
        statuses = ["received"]
        [[subscribers]]
        name = "ops"
        url = "{base}/ops"
        secret_env = "OPS_SECRET"
        previous_secret_envs = ["OPS_OLD_SECRET"]
        event_types = ["*"]
        statuses = ["approved", "closed"]
        "#
    ))
    .unwrap()
}

fn status_change(status: &str, version: i64) -> Action {
    let mut action = action(ActionKind::PortalStatus);
    let mut update = action.status.take().unwrap();
    update.status = serde_json::from_value(Value::String(status.to_owned())).unwrap();
    update.version = version;
    action.status = Some(update);
    action
}

/// Runs `client` against a receiver on a socket; the server stops when the
/// client is done.
async fn with_receiver<F, Fut, T>(receiver: &Receiver, client: F) -> T
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = T>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = axum::serve(listener, receiver.router())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let client = async {
        let out = client(base).await;
        shutdown.cancel();
        out
    };
    let (served, out) = tokio::join!(server, client);
    served.unwrap();
    out
}

fn sink(base: &str, clock: &ManualClock) -> WebhookSink {
    WebhookSink::from_config("portal", &config(base), &env, Arc::new(clock.clone())).unwrap()
}

/// Verifies `received` as its subscriber would, with `secret` at `now`.
#[track_caller]
fn verify_with(received: &Received, secret: &str, now: chrono::DateTime<Utc>) {
    let headers: Vec<(String, String)> = received
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let secret = Secret::parse(secret).unwrap();
    verify(&[secret], &headers, &received.body, now, Tolerance::DEFAULT)
        .unwrap_or_else(|e| panic!("{}: {e}", received.uri));
}

#[tokio::test]
async fn status_changes_arrive_signed_at_the_subscribers_whose_filters_match() {
    let receiver = Receiver::default();
    let clock = ManualClock::new(start_time());
    let key = format!("{RMA}:portal_status:3");

    let (approved, received) = with_receiver(&receiver, |base| {
        let (clock, key) = (clock.clone(), key.clone());
        async move {
            let sink = sink(&base, &clock);
            let approved = deliver(
                &sink,
                &status_change("approved", 3),
                &key,
                &no_prerequisites(),
            )
            .await;
            clock.advance(Duration::minutes(1));
            let received = deliver(
                &sink,
                &status_change("received", 5),
                &format!("{RMA}:portal_status:5"),
                &no_prerequisites(),
            )
            .await;
            (approved, received)
        }
    })
    .await;

    assert_eq!(approved, Ok(ActionResult::Accepted));
    assert_eq!(received, Ok(ActionResult::Accepted));
    // `approved`: crm (every return event) and ops (its statuses), not bi.
    let crm = receiver.received("/crm");
    let ops = receiver.received("/ops");
    let bi = receiver.received("/bi");
    assert_eq!((crm.len(), ops.len(), bi.len()), (2, 1, 1));

    let first = &crm[0];
    assert_eq!(
        first.headers["webhook-id"],
        key.as_str(),
        "the delivery key"
    );
    assert_eq!(
        first.headers["webhook-timestamp"],
        start_time().timestamp().to_string().as_str()
    );
    assert_eq!(first.headers["content-type"], "application/json");
    verify_with(first, CRM_SECRET, start_time());
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["type"], "return.status_changed");
    assert_eq!(body["data"]["rma_number"], RMA);
    assert_eq!(body["data"]["status"], "approved");
    assert_eq!(body["data"]["version"], 3);
    assert_eq!(body["timestamp"], body["data"]["at"]);

    // ops is signed with both its secrets while it rotates: either verifies.
    verify_with(&ops[0], OPS_SECRET, start_time());
    verify_with(&ops[0], OPS_OLD_SECRET, start_time());
    assert_eq!(
        ops[0].headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    // A subscriber's secret is its own.
    let crm_headers: Vec<(String, String)> = crm[0]
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    assert!(
        verify(
            &[Secret::parse(BI_SECRET).unwrap()],
            &crm_headers,
            &crm[0].body,
            start_time(),
            Tolerance::DEFAULT
        )
        .is_err()
    );

    // `received` goes to bi at its exact URL, query included.
    assert_eq!(bi[0].uri, "/bi?tenant=7");
    verify_with(&bi[0], BI_SECRET, start_time() + Duration::minutes(1));
}

#[tokio::test]
async fn a_5xx_is_technical_and_the_retry_goes_only_to_who_failed() {
    let receiver = Receiver::default();
    receiver.answer("/crm", &[500]);
    let clock = ManualClock::new(start_time());
    let key = format!("{RMA}:portal_status:3");

    let (first, retry) = with_receiver(&receiver, |base| {
        let (clock, key) = (clock.clone(), key.clone());
        async move {
            let sink = sink(&base, &clock);
            let change = status_change("approved", 3);
            let first = deliver(&sink, &change, &key, &no_prerequisites()).await;
            // The dispatcher retries after its backoff, same key.
            clock.advance(Duration::seconds(30));
            let retry = deliver(&sink, &change, &key, &no_prerequisites()).await;
            (first, retry)
        }
    })
    .await;

    assert_technical(first.clone(), "http_500", Some(500));
    let Err(SinkError::Technical { message, .. }) = &first else {
        unreachable!()
    };
    assert!(message.contains("subscriber crm"), "{message}");
    assert_eq!(retry, Ok(ActionResult::Accepted));
    let crm = receiver.received("/crm");
    assert_eq!(crm.len(), 2, "crm got the retry");
    assert_eq!(
        receiver.received("/ops").len(),
        1,
        "ops answered 2xx: no repeat"
    );
    // The retry is the same message, signed at the time of its attempt.
    assert_eq!(crm[0].headers["webhook-id"], crm[1].headers["webhook-id"]);
    assert_eq!(crm[0].body, crm[1].body);
    verify_with(&crm[1], CRM_SECRET, start_time() + Duration::seconds(30));
    assert_ne!(
        crm[0].headers["webhook-timestamp"],
        crm[1].headers["webhook-timestamp"]
    );
}

#[tokio::test]
async fn a_410_is_a_business_refusal_naming_the_subscriber() {
    let receiver = Receiver::default();
    receiver.answer("/ops", &[410]);
    let clock = ManualClock::new(start_time());

    let result = with_receiver(&receiver, |base| {
        let clock = clock.clone();
        async move {
            let sink = sink(&base, &clock);
            deliver(
                &sink,
                &status_change("approved", 3),
                "gone-1",
                &no_prerequisites(),
            )
            .await
        }
    })
    .await;

    let message = assert_business(result, "http_410", Some(410));
    assert!(message.contains("subscriber ops"), "{message}");
    assert!(
        !message.contains("subscriber crm"),
        "crm accepted: {message}"
    );
}

#[tokio::test]
async fn nothing_is_sent_when_no_filter_matches_and_other_actions_are_refused() {
    let receiver = Receiver::default();
    let clock = ManualClock::new(start_time());
    let base = "http://127.0.0.1:9";
    let mut config = config(base);
    config.subscribers.retain(|s| s.name == "bi");
    let sink = WebhookSink::from_config("portal", &config, &env, Arc::new(clock)).unwrap();

    // bi only wants `received`; the port is closed, so a send would fail.
    let result = deliver(
        &sink,
        &status_change("approved", 3),
        "nobody",
        &no_prerequisites(),
    )
    .await;
    assert_eq!(result, Ok(ActionResult::Accepted));
    let other = deliver(
        &sink,
        &action(ActionKind::ErpReturnOrder),
        "erp-1",
        &no_prerequisites(),
    )
    .await;
    assert_business(other, "unsupported_action", None);
    assert!(receiver.received("/bi").is_empty());
}

/// The message of the error building `config` (as `[connectors.portal]`).
fn refused(config: &ConnectorConfig) -> String {
    let connectors = BTreeMap::from([("portal".to_owned(), config.clone())]);
    match build_with_env(&connectors, &BTreeMap::new(), &env) {
        Err(error @ BuildError::Invalid { .. }) => error.to_string(),
        Ok(_) => panic!("built: {config:?}"),
    }
}

#[test]
fn bad_subscriber_configurations_are_refused_naming_the_key() {
    let base = "http://127.0.0.1:9";
    let good = config(base);
    let connectors = BTreeMap::from([("portal".to_owned(), good.clone())]);
    assert_eq!(
        build_with_env(&connectors, &BTreeMap::new(), &env)
            .unwrap()
            .len(),
        1
    );

    let mut missing = good.clone();
    missing.subscribers[1].secret_env = "NOT_SET_ANYWHERE".into();
    let message = refused(&missing);
    assert!(
        message.starts_with("connectors.portal.subscribers[1].secret_env:")
            && message.contains("NOT_SET_ANYWHERE is not set"),
        "{message}"
    );

    let mut rotated = good.clone();
    rotated.subscribers[2].previous_secret_envs = vec!["GONE".into()];
    assert!(
        refused(&rotated).starts_with("connectors.portal.subscribers[2].previous_secret_envs[0]:")
    );

    let mut pattern = good.clone();
    pattern.subscribers[0].event_types = vec!["return.*".into(), "return..x".into()];
    assert!(refused(&pattern).starts_with("connectors.portal.subscribers[0].event_types[1]:"));

    let mut none = good.clone();
    none.subscribers[0].event_types.clear();
    assert!(refused(&none).starts_with("connectors.portal.subscribers[0].event_types:"));

    let mut scheme = good.clone();
    scheme.subscribers[0].url = "ftp://crm.example.com/hooks".into();
    let message = refused(&scheme);
    assert!(
        message.starts_with("connectors.portal.subscribers[0].url:") && message.contains("http://"),
        "{message}"
    );

    // TLS settings on a plain http subscriber would do nothing.
    let mut tls = good.clone();
    tls.subscribers[0].tls = Some(backhaul_connectors::TlsConfig::default());
    let message = refused(&tls);
    assert!(
        message.starts_with("connectors.portal.subscribers[0].tls:")
            && message.contains("plain http"),
        "{message}"
    );

    let mut twice = good.clone();
    twice.subscribers[1].name = "crm".into();
    assert!(refused(&twice).starts_with("connectors.portal.subscribers[1].name:"));

    let mut own_url = good.clone();
    own_url.url = base.into();
    assert!(refused(&own_url).starts_with("connectors.portal.url:"));

    let mut empty = good.clone();
    empty.subscribers.clear();
    assert!(refused(&empty).starts_with("connectors.portal.subscribers:"));

    let mut portal_sim = good;
    portal_sim.kind = backhaul_connectors::ConnectorKind::SimPortal;
    portal_sim.url = base.into();
    assert!(refused(&portal_sim).contains("only a webhook connector has subscribers"));

    assert!(
        toml::from_str::<ConnectorConfig>(
            "kind = \"webhook\"\n[[subscribers]]\nname = \"x\"\nurl = \"http://x\"\nsecret_env = \"X\"\nevent_types = [\"*\"]\nstatuses = [\"arrived\"]\n"
        )
        .is_err(),
        "statuses are the hub's"
    );
}

/// Through the dispatcher: a new return's status change goes out, crm's 500
/// is retried after the backoff (and only crm gets the retry), and a
/// subscriber's 410 parks the next return's delivery in the exception queue.
#[tokio::test]
async fn the_dispatcher_retries_a_5xx_and_parks_a_410() {
    use backhaul_engine::{
        CommandMeta, Dispatcher, DispatcherConfig, Engine, EngineConfig, Idempotency,
    };
    use backhaul_store::{AnyStore, SqliteStore, SqliteSync};
    use tokio_util::task::TaskTracker;

    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Sqlite(
        SqliteStore::open(&dir.path().join("hub.db"), SqliteSync::Normal)
            .await
            .unwrap(),
    );
    let clock = ManualClock::new(start_time());
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let engine = Engine::start(
        store,
        EngineConfig {
            outbound: [backhaul_domain::action::Target::Portal].into(),
            ..EngineConfig::default()
        },
        Arc::new(clock.clone()),
        &tracker,
        shutdown.child_token(),
    );
    let request: backhaul_domain::model::ReturnRequest = serde_json::from_value(serde_json::json!({
        "channel": "portal", "customer": "C1", "order_ref": "SO-1", "currency": "USD", "site": "DC1",
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "1", "uom": "EA", "reason_code": "DAMAGED",
                   "requested_outcome": "refund", "unit_price": {"amount": "10.00", "currency": "USD"},
                   "unit_tax": {"amount": "0.00", "currency": "USD"}}]
    }))
    .unwrap();
    let meta = |key: &str| CommandMeta {
        partner: "portal".into(),
        idempotency: Some(Idempotency {
            key: key.into(),
            request_hash: key.into(),
        }),
        correlation_id: None,
        causation_id: None,
    };
    let receiver = Receiver::default();
    // Only crm and ops subscribe to `requested` (bi wants `received`).
    receiver.answer("/crm", &[500]);

    let (first, retry, gone) = with_receiver(&receiver, |base| {
        let (clock, engine, receiver) = (clock.clone(), engine.clone(), receiver.clone());
        async move {
            let mut config = config(&base);
            // ops only wants approved and closed; take every status.
            config.subscribers[2].statuses = None;
            let sink =
                WebhookSink::from_config("portal", &config, &env, Arc::new(clock.clone())).unwrap();
            let dispatcher = Dispatcher::new(
                engine.clone(),
                DispatcherConfig::default(),
                vec![(Arc::new(sink), backhaul_engine::DeliveryPolicy::default())],
            )
            .unwrap();
            engine.create(request.clone(), meta("r1")).await.unwrap();
            let first = dispatcher.run_once().await.unwrap();
            clock.advance(Duration::minutes(1));
            let retry = dispatcher.run_once().await.unwrap();

            receiver.answer("/ops", &[410]);
            engine.create(request, meta("r2")).await.unwrap();
            let gone = dispatcher.run_once().await.unwrap();
            (first, retry, gone)
        }
    })
    .await;

    assert_eq!((first.claimed, first.retried), (1, 1), "{first:?}");
    assert_eq!((retry.claimed, retry.delivered), (1, 1), "{retry:?}");
    assert_eq!((gone.claimed, gone.exceptions), (1, 1), "{gone:?}");
    let crm = receiver.received("/crm");
    let ops = receiver.received("/ops");
    assert_eq!(crm.len(), 3, "first return twice, second once");
    assert_eq!(ops.len(), 2, "first return once, second once");
    assert_eq!(crm[0].headers["webhook-id"], crm[1].headers["webhook-id"]);
    let body: Value = serde_json::from_slice(&crm[0].body).unwrap();
    assert_eq!(body["data"]["status"], "requested");

    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}
