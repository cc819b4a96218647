//! Opening simulators on a manual clock, sending them requests in process,
//! and the request bodies the tests share.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use backhaul_sim::{ManualClock, Sim, SimConfig, SimDb, SimKind};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) const RETURN_ID: &str = "0190d8f2-7c1e-7a3b-9c4d-5e6f7a8b9c0d";

pub(crate) fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

/// A simulator with its router and the clock that drives it.
pub(crate) struct TestSim {
    pub(crate) sim: Sim,
    pub(crate) router: Router,
    pub(crate) clock: ManualClock,
}

/// A well-behaved in-memory simulator of `kind`.
pub(crate) async fn open(kind: SimKind) -> TestSim {
    open_with(SimConfig::new(kind)).await
}

pub(crate) async fn open_with(config: SimConfig) -> TestSim {
    open_at(config, SimDb::Memory, ManualClock::new(start_time())).await
}

/// A simulator on the database file `path`.
pub(crate) async fn open_file(config: SimConfig, path: &Path, clock: ManualClock) -> TestSim {
    open_at(config, SimDb::File(path.to_owned()), clock).await
}

async fn open_at(config: SimConfig, db: SimDb, clock: ManualClock) -> TestSim {
    let sim = Sim::open_with_clock(config, db, Arc::new(clock.clone()))
        .await
        .unwrap();
    TestSim {
        router: sim.router(),
        sim,
        clock,
    }
}

pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The body as JSON (`Null` when empty).
    pub(crate) body: Value,
    /// The body as sent, to compare replays byte for byte.
    pub(crate) raw: Bytes,
}

impl TestResponse {
    /// Asserts a problem response with `status` and `code`; returns its detail.
    #[track_caller]
    pub(crate) fn assert_problem(&self, status: u16, code: &str) -> String {
        assert_eq!(
            (self.status.as_u16(), self.body["code"].as_str()),
            (status, Some(code)),
            "unexpected response: {}",
            self.body
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string());
        assert!(self.body["type"].as_str().unwrap().ends_with(code));
        self.body["detail"].as_str().unwrap().to_owned()
    }

    /// Asserts a success status; returns the body.
    #[track_caller]
    pub(crate) fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected response: {}",
            self.body
        );
        &self.body
    }

    pub(crate) fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
}

impl TestSim {
    pub(crate) async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let raw = response.into_body().collect().await.unwrap().to_bytes();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw)
                .unwrap_or_else(|e| panic!("response is not JSON ({e}): {raw:?}"))
        };
        TestResponse {
            status,
            headers,
            body,
            raw,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// POSTs `body` as JSON under `key`.
    pub(crate) async fn post(&self, path: &str, key: &str, body: &Value) -> TestResponse {
        self.post_raw(path, Some(key), body.to_string()).await
    }

    /// POSTs raw bytes, with or without a key.
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        key: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        self.send(request.body(body.into()).unwrap()).await
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> TestResponse {
        let request = Request::put(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// Creates a return order for `rma` and returns its number.
    pub(crate) async fn return_order(&self, rma: &str, currency: &str) -> String {
        let response = self
            .post(
                "/erp/return-orders",
                &format!("ro-{rma}"),
                &return_order(rma, currency, "SKU-1"),
            )
            .await;
        response.assert_ok(201)["number"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub(crate) fn return_order(rma: &str, currency: &str, sku: &str) -> Value {
    json!({
        "rma": rma,
        "return_id": RETURN_ID,
        "customer": "C-1",
        "order_ref": "SO-1",
        "currency": currency,
        "lines": [
            {"line_no": 1, "sku": sku, "quantity": "2", "unit_price": "10.00"}
        ]
    })
}

pub(crate) fn inventory_adjustment(rma: &str, return_order: &str, lines: Value) -> Value {
    json!({"rma": rma, "return_order": return_order, "site": "DC-1", "lines": lines})
}

pub(crate) fn credit_memo(
    rma: &str,
    return_order: &str,
    currency: &str,
    amounts: &[&str],
) -> Value {
    let lines: Vec<Value> = amounts
        .iter()
        .enumerate()
        .map(|(i, amount)| {
            json!({"line_no": i + 1, "sku": "SKU-1", "quantity": "1", "amount": amount})
        })
        .collect();
    json!({"rma": rma, "return_order": return_order, "currency": currency, "lines": lines})
}

pub(crate) fn expected_receipt(rma: &str, site: &str) -> Value {
    json!({
        "rma": rma,
        "return_id": RETURN_ID,
        "site": site,
        "lines": [{"line_no": 1, "sku": "SKU-1", "quantity": "2"}]
    })
}

pub(crate) fn label(rma: &str) -> Value {
    json!({"rma": rma, "return_id": RETURN_ID, "customer": "C-1", "to_site": "DC-1", "parcels": 1})
}

pub(crate) fn portal_status(rma: &str, version: u64) -> Value {
    json!({
        "rma": rma,
        "return_id": RETURN_ID,
        "status": "approved",
        "stage": "awaiting_shipment",
        "owner": "customer",
        "version": version,
        "at": "2025-03-03T09:00:00Z"
    })
}

/// The lines of a supplier claim, repair order or replacement order: one
/// unit of `SKU-1`, then two of `SKU-2`.
fn unit_lines() -> Value {
    json!([
        {"line_no": 1, "sku": "SKU-1", "quantity": "1"},
        {"line_no": 2, "sku": "SKU-2", "quantity": "2"}
    ])
}

pub(crate) fn supplier_claim(rma: &str, return_order: &str, vendor: &str) -> Value {
    json!({"rma": rma, "return_order": return_order, "site": "DC-1", "vendor": vendor,
           "lines": unit_lines()})
}

pub(crate) fn repair_order(rma: &str, return_order: &str) -> Value {
    json!({"rma": rma, "return_order": return_order, "site": "DC-1", "lines": unit_lines()})
}

pub(crate) fn replacement_order(rma: &str, return_order: &str) -> Value {
    json!({"rma": rma, "return_order": return_order, "customer": "C-1", "order_ref": "SO-1",
           "lines": unit_lines()})
}
