//! The route table and the router built from it. Submodules mirror the URL
//! tree: `health` (`/health`), `openapi_json` (`/openapi.json`) and `v1`
//! (`/v1/...`), one file per resource.
//!
//! Architecture invariant: [`ROUTES`] is the one list of what the API
//! serves. The router is built from it (path, method, handler and the scope
//! the guard checks) and the OpenAPI document is generated from it, so the
//! two cannot drift apart; a test checks both against each other.

pub(crate) mod health;
mod openapi_json;
pub(crate) mod v1;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::auth::{self, Guard, Scope};
use crate::error::ApiError;

use v1::deliveries::delivery_id;
use v1::returns::return_id::commands;

/// HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    /// Upper case, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key (`/health` only).
    Open,
    /// Any valid API key, whatever its scopes.
    AnyKey,
    /// A valid API key with this scope (or `admin`).
    Scope(Scope),
    /// No API key: the Standard Webhooks signature of the source named in
    /// the path is the authentication (checked by the handler, which knows
    /// the source's secrets).
    Signature,
}

/// One operation of the API.
#[derive(Debug)]
pub struct Route {
    pub verb: Verb,
    /// axum path syntax, which is also OpenAPI's: `/v1/returns/{id}`.
    pub path: &'static str,
    /// OpenAPI `operationId`.
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Name of the request body's schema in `components.schemas`; `None`
    /// when the operation takes no body.
    pub request: Option<&'static str>,
    /// Name of the schema whose properties are the query parameters.
    pub query: Option<&'static str>,
    /// Name of the success response's schema; `None` for an untyped JSON
    /// document.
    pub response: Option<&'static str>,
    /// HTTP status of success.
    pub success: u16,
    /// Whether the route requires an `Idempotency-Key` and replays its first
    /// answer: every lifecycle command, whose key the engine stores with its
    /// events. Operator actions on deliveries do not take one (see
    /// `v1::deliveries::delivery_id` for why repeating them is safe).
    pub idempotency_key: bool,
    /// The handler, as axum wants it.
    handler: fn() -> MethodRouter<AppState>,
}

/// Shorthand for a POST on `/v1/returns/{id}/<verb>`.
macro_rules! command {
    ($path:literal, $op:literal, $summary:literal, $scope:ident, $request:expr, $handler:path) => {
        Route {
            verb: Verb::Post,
            path: $path,
            operation_id: $op,
            summary: $summary,
            access: Access::Scope(Scope::$scope),
            request: $request,
            query: None,
            response: Some("CommandResult"),
            success: 200,
            idempotency_key: true,
            handler: || post($handler),
        }
    };
}

/// Shorthand for an operator action, a POST on `/v1/deliveries/{id}/<verb>`.
macro_rules! operator {
    ($path:literal, $op:literal, $summary:literal, $request:literal, $handler:path) => {
        Route {
            verb: Verb::Post,
            path: $path,
            operation_id: $op,
            summary: $summary,
            access: Access::Scope(Scope::DeliveriesManage),
            request: Some($request),
            query: None,
            response: Some("DeliveryView"),
            success: 200,
            idempotency_key: false,
            handler: || post($handler),
        }
    };
}

/// Every operation the API serves.
pub static ROUTES: &[Route] = &[
    Route {
        verb: Verb::Get,
        path: "/health",
        operation_id: "health",
        summary: "Liveness check; needs no key",
        access: Access::Open,
        request: None,
        query: None,
        response: Some("Health"),
        success: 200,
        idempotency_key: false,
        handler: || get(health::health),
    },
    Route {
        verb: Verb::Get,
        path: "/openapi.json",
        operation_id: "openapi",
        summary: "This OpenAPI 3.1 document",
        access: Access::AnyKey,
        request: None,
        query: None,
        response: None,
        success: 200,
        idempotency_key: false,
        handler: || get(openapi_json::openapi),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/schema",
        operation_id: "canonicalSchema",
        summary: "JSON Schema (2020-12) of the canonical returns model",
        access: Access::AnyKey,
        request: None,
        query: None,
        response: None,
        success: 200,
        idempotency_key: false,
        handler: || get(v1::schema::schema),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/returns",
        operation_id: "createReturn",
        summary: "Open a new return",
        access: Access::Scope(Scope::ReturnsCreate),
        request: Some("ReturnRequest"),
        query: None,
        response: Some("CommandResult"),
        success: 201,
        idempotency_key: true,
        handler: || post(v1::returns::create),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/returns",
        operation_id: "listReturns",
        summary: "List return summaries, newest first",
        access: Access::Scope(Scope::ReturnsRead),
        request: None,
        query: Some("ListQuery"),
        response: Some("ReturnList"),
        success: 200,
        idempotency_key: false,
        handler: || get(v1::returns::list),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/returns/{id}",
        operation_id: "getReturn",
        summary: "The summary of one return",
        access: Access::Scope(Scope::ReturnsRead),
        request: None,
        query: None,
        response: Some("ReturnSummary"),
        success: 200,
        idempotency_key: false,
        handler: || get(v1::returns::return_id::get),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/returns/{id}/events",
        operation_id: "getReturnTimeline",
        summary: "The events of one return, oldest first",
        access: Access::Scope(Scope::ReturnsRead),
        request: None,
        query: None,
        response: Some("Timeline"),
        success: 200,
        idempotency_key: false,
        handler: || get(v1::returns::return_id::events::timeline),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/connectors",
        operation_id: "listConnectors",
        summary: "Connected systems: health, breaker, deliveries per state",
        access: Access::Scope(Scope::DeliveriesManage),
        request: None,
        query: None,
        response: Some("Connectors"),
        success: 200,
        idempotency_key: false,
        handler: || get(v1::connectors::connectors),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/backlog",
        operation_id: "getBacklog",
        summary: "Open returns per status, stage and owner",
        access: Access::Scope(Scope::ReturnsRead),
        request: None,
        query: None,
        response: Some("Backlog"),
        success: 200,
        idempotency_key: false,
        handler: || get(v1::backlog::backlog),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/eligibility",
        operation_id: "checkEligibility",
        summary: "Would this return be accepted, rule by rule? Stores nothing",
        access: Access::Scope(Scope::EligibilityCheck),
        request: Some("ReturnRequest"),
        query: None,
        response: Some("Assessment"),
        success: 200,
        idempotency_key: false,
        handler: || post(v1::eligibility::check),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/master",
        operation_id: "getMasterData",
        summary: "The master data revision in force and records per kind",
        access: Access::Scope(Scope::MasterWrite),
        request: None,
        query: None,
        response: Some("MasterStatus"),
        success: 200,
        idempotency_key: false,
        handler: || get(v1::master::status),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/master/{kind}",
        operation_id: "loadMasterData",
        summary: "Load master data of one kind (JSON array or CSV), all or nothing",
        access: Access::Scope(Scope::MasterWrite),
        request: None,
        query: Some("MasterQuery"),
        response: Some("MasterLoad"),
        success: 200,
        idempotency_key: false,
        handler: || post(v1::master::load),
    },
    command!(
        "/v1/returns/{id}/approve",
        "approveReturn",
        "Authorise the return, possibly for fewer units than requested",
        ReturnsDecide,
        Some("Approve"),
        commands::approve
    ),
    command!(
        "/v1/returns/{id}/hold",
        "holdReturn",
        "Park the request for a person to decide",
        ReturnsDecide,
        Some("Reason"),
        commands::hold
    ),
    command!(
        "/v1/returns/{id}/reject",
        "rejectReturn",
        "Refuse the return",
        ReturnsDecide,
        Some("Reason"),
        commands::reject
    ),
    command!(
        "/v1/returns/{id}/label",
        "issueLabel",
        "Record the return label issued by the carrier",
        CarrierWrite,
        Some("Label"),
        commands::label
    ),
    command!(
        "/v1/returns/{id}/milestones",
        "recordCarrierMilestone",
        "Record a carrier tracking milestone",
        CarrierWrite,
        Some("CarrierEvent"),
        commands::milestone
    ),
    command!(
        "/v1/returns/{id}/receipts",
        "recordReceipt",
        "Record units received at the warehouse",
        WarehouseWrite,
        Some("Receipt"),
        commands::receipt
    ),
    command!(
        "/v1/returns/{id}/inspections",
        "recordInspections",
        "Record the condition of received units",
        WarehouseWrite,
        Some("Inspections"),
        commands::inspections
    ),
    command!(
        "/v1/returns/{id}/dispositions",
        "recordDispositions",
        "Record what happens to inspected units",
        WarehouseWrite,
        Some("Dispositions"),
        commands::dispositions
    ),
    command!(
        "/v1/returns/{id}/corrections",
        "correctLine",
        "Correct a line's price, tax or customer intent (owner systems only)",
        ReturnsCorrect,
        Some("LineCorrection"),
        commands::correction
    ),
    command!(
        "/v1/returns/{id}/documents",
        "linkDocument",
        "Link a document of another system (credit memo, refund...)",
        FinanceWrite,
        Some("FinancialDocument"),
        commands::document
    ),
    command!(
        "/v1/returns/{id}/settlements",
        "recordSettlement",
        "Record the credit or refund of dispositioned units",
        FinanceWrite,
        Some("Settlement"),
        commands::settlement
    ),
    command!(
        "/v1/returns/{id}/close",
        "closeReturn",
        "Close a return whose received units are all settled",
        FinanceWrite,
        None,
        commands::close
    ),
    command!(
        "/v1/returns/{id}/cancel",
        "cancelReturn",
        "Cancel a return before any unit was received",
        ReturnsCancel,
        Some("Reason"),
        commands::cancel
    ),
    command!(
        "/v1/returns/{id}/expire",
        "expireReturn",
        "Expire an authorisation or label whose deadline has passed",
        ReturnsCancel,
        None,
        commands::expire
    ),
    Route {
        verb: Verb::Get,
        path: "/v1/deliveries",
        operation_id: "listDeliveries",
        summary: "List outbound deliveries in id order; `state=exception` and `state=dead` are the queue waiting for a person",
        access: Access::Scope(Scope::DeliveriesManage),
        request: None,
        query: Some("DeliveryQuery"),
        response: Some("DeliveryList"),
        success: 200,
        idempotency_key: false,
        handler: || get(v1::deliveries::list),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/deliveries/{id}",
        operation_id: "getDelivery",
        summary: "One delivery with its payload and audit trail",
        access: Access::Scope(Scope::DeliveriesManage),
        request: None,
        query: None,
        response: Some("DeliveryDetail"),
        success: 200,
        idempotency_key: false,
        handler: || get(delivery_id::get),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/webhooks/{source}",
        operation_id: "receiveWebhook",
        summary: "Receive a signed webhook (Standard Webhooks) from a configured source: WMS events, carrier tracking or canonical commands",
        access: Access::Signature,
        request: Some("InboundWebhook"),
        query: None,
        response: Some("CommandResult"),
        success: 200,
        // The webhook-id is the dedup key; see `v1::webhooks`.
        idempotency_key: false,
        handler: || post(v1::webhooks::receive),
    },
    operator!(
        "/v1/deliveries/{id}/retry",
        "retryDelivery",
        "Deliver a dead letter or exception again, optionally with a corrected payload",
        "RetryDelivery",
        delivery_id::retry
    ),
    operator!(
        "/v1/deliveries/{id}/skip",
        "skipDelivery",
        "Mark a dead letter or exception as handled by hand; deliveries waiting for it go ahead",
        "OperatorReason",
        delivery_id::skip
    ),
    operator!(
        "/v1/deliveries/{id}/cancel",
        "cancelDelivery",
        "Cancel a delivery that is pending, dead or in the exception queue",
        "OperatorReason",
        delivery_id::cancel
    ),
];

/// Builds the router from [`ROUTES`].
pub(crate) fn build(state: AppState) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        let mut endpoint = (route.handler)();
        let scope = match route.access {
            Access::Open | Access::Signature => None,
            Access::AnyKey => Some(None),
            Access::Scope(scope) => Some(Some(scope)),
        };
        if let Some(scope) = scope {
            let guard = Guard {
                state: state.clone(),
                scope,
            };
            endpoint = endpoint.route_layer(from_fn_with_state(guard, auth::guard));
        }
        // A second route on the same path merges into the first's methods.
        router = router.route(route.path, endpoint);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .with_state(state)
}

/// The request span. `partner`, `return_id`, `delivery_id` and
/// `webhook_id` are filled in once known (by the guard, the path extractors
/// and the webhook route, whose source is its partner).
fn make_span(request: &Request) -> tracing::Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(request.uri().path(), MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %request.method(),
        path,
        partner = tracing::field::Empty,
        return_id = tracing::field::Empty,
        delivery_id = tracing::field::Empty,
        webhook_id = tracing::field::Empty,
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
