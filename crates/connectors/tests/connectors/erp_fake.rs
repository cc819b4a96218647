//! What the fakes of the vendor ERPs (SAP S/4HANA, Business Central,
//! NetSuite) and of the generic REST connectors share: the fixtures next to
//! each connector's mapping, a record of every request a fake received,
//! faults a test queues for the fake's next create, connectors built the way the hub builds them (with the
//! environment given as a map), and the crosswalk the fixtures' reason
//! codes come from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use backhaul_connectors::{BuildError, ConnectorConfig, build_with_env};
use backhaul_domain::action::Target;
use backhaul_engine::Sink;
use backhaul_master::{Kind, MasterData};
use serde_json::Value;

/// A fixture of `vendor` (`sap_s4`, `dynamics_bc`, `netsuite`), as text.
pub(crate) fn fixture_text(vendor: &str, name: &str) -> String {
    let path = format!(
        "{}/src/{vendor}/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON fixture of `vendor`.
pub(crate) fn fixture(vendor: &str, name: &str) -> Value {
    let text = fixture_text(vendor, name);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{vendor}/{name}: {e}"))
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    /// The query string, percent-decoded.
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    /// The body as JSON; `Null` when empty.
    pub(crate) body: Value,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `METHOD path?query`, for asserting on the sequence of exchanges.
    pub(crate) fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// Reads a request whole.
pub(crate) async fn receive(request: Request) -> Received {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Received {
        method: parts.method.to_string(),
        path: percent_decode(parts.uri.path()),
        query: percent_decode(parts.uri.query().unwrap_or("")),
        headers: parts.headers,
        body,
    }
}

/// `%XX` escapes decoded (and nothing else: `+` stays a plus).
pub(crate) fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = raw.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The text between `start` and the next `end` in `haystack`.
pub(crate) fn between<'a>(haystack: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = haystack.find(start)? + start.len();
    let to = haystack[from..].find(end)? + from;
    Some(&haystack[from..to])
}

/// What a fake does instead of its normal answer to the next create.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Answer `status` with the fixture `body` (and `Retry-After` in
    /// seconds, if given); nothing is created.
    Answer {
        status: StatusCode,
        body: String,
        retry_after: Option<u64>,
    },
    /// Create the document, then lose the answer (a gateway timeout): the
    /// connector cannot know it was created.
    LoseAnswer,
}

/// The faults queued for a fake's next creates.
#[derive(Clone, Default)]
pub(crate) struct Faults(Arc<Mutex<VecDeque<Fault>>>);

impl Faults {
    pub(crate) fn push(&self, fault: Fault) {
        self.0.lock().unwrap().push_back(fault);
    }

    pub(crate) fn next(&self) -> Option<Fault> {
        self.0.lock().unwrap().pop_front()
    }
}

/// The answer of an `Answer` fault.
pub(crate) fn fault_response(status: StatusCode, body: &str, retry_after: Option<u64>) -> Response {
    let mut response = Response::builder().status(status);
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    response.body(Body::from(body.to_owned())).unwrap()
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// The requests a fake received, in order.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<Received>>>);

impl Log {
    pub(crate) fn push(&self, received: Received) {
        self.0.lock().unwrap().push(received);
    }

    pub(crate) fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }

    /// `METHOD path?query` of every request.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.all().iter().map(Received::line).collect()
    }

    pub(crate) fn count(&self, method: &str) -> usize {
        self.all().iter().filter(|r| r.method == method).count()
    }

    pub(crate) fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// The ERP connector of `config`, served in process by `router`, with the
/// environment variables `env` (and no others).
pub(crate) fn erp_sink(
    config: ConnectorConfig,
    router: Router,
    env: &[(&str, &str)],
) -> Result<Arc<dyn Sink>, BuildError> {
    sink_for(Target::Erp, config, router, env)
}

/// The connector of `target` (its section named after it) of `config`,
/// served in process by `router`, with the environment variables `env`
/// (and no others).
pub(crate) fn sink_for(
    target: Target,
    config: ConnectorConfig,
    router: Router,
    env: &[(&str, &str)],
) -> Result<Arc<dyn Sink>, BuildError> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let lookup = move |name: &str| env.get(name).cloned();
    let connectors = BTreeMap::from([(target.as_str().to_owned(), config)]);
    let mut sinks = build_with_env(&connectors, &BTreeMap::from([(target, router)]), &lookup)?;
    assert_eq!(sinks.len(), 1, "one section, one sink");
    Ok(sinks.remove(0).0)
}

/// Master data whose `erp` crosswalk maps the reasons of the return order
/// the tests deliver (DAMAGED → R02, SIZE_FIT → R07), as the vendors'
/// fixtures have them.
pub(crate) fn erp_reasons() -> MasterData {
    let csv = "system,kind,external,canonical,preferred\nerp,reason,R02,DAMAGED,\nerp,reason,R07,SIZE_FIT,\n";
    let records =
        backhaul_master::parse_csv(Kind::Crosswalk, "crosswalks.csv", csv.as_bytes()).unwrap();
    MasterData::from_records(1, records).unwrap()
}
