//! One Tryton server for the whole test binary, started by
//! `tools/tryton/serve` (which prepares the cached, seeded database first),
//! and the look-ups the tests assert with.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use backhaul_connectors::http::{Remote, Transport, TransportError};
use backhaul_connectors::tryton::rpc::{Client, decimal_of};
use backhaul_connectors::tryton::{TrytonSettings, TrytonSink};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, Sink};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// What `serve` printed once the server answered.
#[derive(Debug, Clone, serde::Deserialize)]
struct Ready {
    url: String,
    database: String,
    user: String,
    password: String,
}

struct Server {
    ready: Ready,
    /// Kept so the server lives as long as the test binary: its stdin is
    /// the lifeline, closed (and the server stopped) when the binary exits.
    _child: Child,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static TURN: Mutex<()> = Mutex::const_new(());

fn start() -> Result<Server, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let serve = root.join("tools/tryton/serve");
    let dir = std::env::temp_dir().join(format!("backhaul-tryton-{}", std::process::id()));
    let mut child = Command::new(&serve)
        .arg("--dir")
        .arg(&dir)
        .arg("--port")
        .arg("0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", serve.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(json) = line.strip_prefix("READY ") {
            let ready: Ready = serde_json::from_str(json).map_err(|e| format!("{line}: {e}"))?;
            return Ok(Server {
                ready,
                _child: child,
            });
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Err(format!(
        "{} ended ({status}) before it was ready",
        serve.display()
    ))
}

/// The shared server and this test's turn on it; `None` (after saying why)
/// when it cannot be started outside CI.
pub(crate) async fn tryton() -> Option<Tryton> {
    let turn = TURN.lock().await;
    let server = tokio::task::spawn_blocking(|| SERVER.get_or_init(start).as_ref())
        .await
        .unwrap();
    match server {
        Ok(server) => Some(Tryton::new(server.ready.clone(), turn)),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("Tryton is required under CI=true and could not be started: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no Tryton server ({e}); run tools/tryton/prepare");
            None
        }
    }
}

/// A test's handle on the server.
pub(crate) struct Tryton {
    ready: Ready,
    client: Client,
    _turn: MutexGuard<'static, ()>,
}

impl Tryton {
    fn new(ready: Ready, turn: MutexGuard<'static, ()>) -> Tryton {
        let transport: Arc<dyn Transport> = Arc::new(Remote::new(&ready.url).unwrap());
        let client = Client::new(transport, &ready.database, &ready.user, &ready.password);
        Tryton {
            ready,
            client,
            _turn: turn,
        }
    }

    fn settings(&self) -> TrytonSettings {
        toml::from_str(&format!(
            "database = {:?}\nuser = {:?}\npassword_env = \"UNUSED\"\n",
            self.ready.database, self.ready.user
        ))
        .unwrap()
    }

    fn sink_over(&self, transport: Arc<dyn Transport>) -> Arc<dyn Sink> {
        Arc::new(TrytonSink::new(
            ExternalRef::parse("tryton").unwrap(),
            transport,
            self.settings(),
            &self.ready.password,
        ))
    }

    /// The connector as the hub builds it.
    pub(crate) fn sink(&self) -> Arc<dyn Sink> {
        self.sink_over(Arc::new(Remote::new(&self.ready.url).unwrap()))
    }

    /// A connector whose first call of `method` reaches Tryton but whose
    /// answer is lost, as when a connection drops after the server acted.
    pub(crate) fn sink_losing(&self, method: &str) -> Arc<dyn Sink> {
        self.sink_watching(method, "", true).0
    }

    /// A connector counting the calls of `method` whose request holds
    /// `needle`; with `lose`, the answer to the first of them is lost.
    pub(crate) fn sink_watching(
        &self,
        method: &str,
        needle: &str,
        lose: bool,
    ) -> (Arc<dyn Sink>, Arc<AtomicUsize>) {
        let seen = Arc::new(AtomicUsize::new(0));
        let sink = self.sink_over(Arc::new(Lossy {
            inner: Remote::new(&self.ready.url).unwrap(),
            method: format!("\"method\":\"{method}\""),
            needle: needle.replace(' ', ""),
            lost: AtomicBool::new(!lose),
            seen: seen.clone(),
        }));
        (sink, seen)
    }

    pub(crate) async fn call(&self, model: &str, method: &str, args: Value) -> Value {
        let Value::Array(args) = args else {
            panic!("args are a list")
        };
        self.client
            .call(model, method, args, None)
            .await
            .unwrap_or_else(|e| panic!("{model}.{method}: {e}"))
    }

    pub(crate) async fn records(&self, model: &str, domain: Value, fields: &[&str]) -> Vec<Value> {
        let rows = self
            .call(
                model,
                "search_read",
                json!([domain, 0, null, [["id", "ASC"]], fields]),
            )
            .await;
        rows.as_array().unwrap().clone()
    }

    /// Units of `sku` in the location coded `location` and its children.
    pub(crate) async fn stock(&self, sku: &str, location: &str) -> Decimal {
        let product = &self
            .records("product.product", json!([["code", "=", sku]]), &["id"])
            .await[0]["id"];
        let location = &self
            .records("stock.location", json!([["code", "=", location]]), &["id"])
            .await[0]["id"];
        let read = self
            .client
            .call(
                "product.product",
                "read",
                vec![json!([product]), json!(["quantity"])],
                Some(&json!({"locations": [location]})),
            )
            .await
            .unwrap();
        decimal(&read[0]["quantity"])
    }
}

pub(crate) fn decimal(value: &Value) -> Decimal {
    decimal_of(value)
        .unwrap_or_else(|| panic!("not a number: {value}"))
        .normalize()
}

/// Forwards everything, counts the requests whose body names `method` and
/// holds `needle`, and loses the answer to the first of them unless `lost`
/// starts true.
struct Lossy {
    inner: Remote,
    method: String,
    needle: String,
    lost: AtomicBool,
    seen: Arc<AtomicUsize>,
}

impl Transport for Lossy {
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'_, Result<(StatusCode, HeaderMap, Bytes), TransportError>> {
        Box::pin(async move {
            let body = String::from_utf8_lossy(request.body()).replace(' ', "");
            let matches = body.contains(&self.method) && body.contains(&self.needle);
            if matches {
                self.seen.fetch_add(1, Ordering::SeqCst);
            }
            let lose = matches && !self.lost.swap(true, Ordering::SeqCst);
            let answer = self.inner.send(request).await;
            if lose {
                return Err(TransportError::Connection(
                    "connection reset after the request was sent".to_owned(),
                ));
            }
            answer
        })
    }
}

/// What Tryton holds for one RMA: its return sales, and the return
/// shipments and credit notes of the first.
pub(crate) struct ReturnDocuments {
    pub(crate) sales: usize,
    /// `state` of each return shipment.
    pub(crate) shipments: Vec<Value>,
    /// `number`, `state`, `total_amount`, `sequence_type_cache` of each
    /// credit note.
    pub(crate) notes: Vec<Value>,
}

impl Tryton {
    pub(crate) async fn documents(&self, rma: &str) -> ReturnDocuments {
        let sales = self
            .records(
                "sale.sale",
                json!([["reference", "=", rma]]),
                &["shipment_returns", "invoices"],
            )
            .await;
        let Some(sale) = sales.first() else {
            return ReturnDocuments {
                sales: 0,
                shipments: Vec::new(),
                notes: Vec::new(),
            };
        };
        let shipments = self
            .records(
                "stock.shipment.out.return",
                json!([["id", "in", sale["shipment_returns"]]]),
                &["state"],
            )
            .await;
        let notes = self
            .records(
                "account.invoice",
                json!([["id", "in", sale["invoices"]]]),
                &["number", "state", "total_amount", "sequence_type_cache"],
            )
            .await;
        ReturnDocuments {
            sales: sales.len(),
            shipments,
            notes,
        }
    }
}
