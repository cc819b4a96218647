//! `/v1/returns`: open a return (`POST`) and list returns (`GET`). One
//! return's routes live under [`return_id`].
//!
//! Also here: how a command's [`Outcome`] becomes a response, shared with
//! the per-return commands.

pub(crate) mod return_id;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backhaul_domain::model::ReturnRequest;
use backhaul_domain::values::{CustomerAccount, OrderRef, Sku};
use backhaul_domain::{ReturnListItem, Stage, Status};
use backhaul_engine::{CommandMeta, Outcome};
use backhaul_store::{JsonText, SummaryFilter};
use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{CorrelationId, QueryParams};
use crate::idempotency::{IdempotencyKey, REPLAYED_HEADER};
use crate::json::JsonBody;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// Query parameters of `GET /v1/returns`; they combine with AND.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only returns in this status.
    status: Option<Status>,
    /// Only returns waiting in this stage.
    stage: Option<Stage>,
    /// Only returns whose move it is for this party: `customer`, `carrier`,
    /// `warehouse`, `finance`, `support`, `hub`.
    owner: Option<String>,
    /// Only returns of this customer account.
    customer: Option<CustomerAccount>,
    /// Only returns of this sales order.
    order_ref: Option<OrderRef>,
    /// Only returns with a line for this SKU.
    sku: Option<Sku>,
    /// `true`: only returns not yet in a terminal status; `false`: only
    /// terminal ones.
    open: Option<bool>,
    /// Only returns requested at least this many hours ago.
    min_age_hours: Option<u32>,
    /// Only returns requested at most this many hours ago.
    max_age_hours: Option<u32>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<u32>,
    /// Number of returns to skip (default 0).
    offset: Option<u32>,
}

/// One page of list rows; the full summary of a return is at `GET /v1/returns/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ReturnList {
    #[schemars(with = "Vec<ReturnListItem>")]
    items: Vec<JsonText>,
    limit: u32,
    offset: u32,
}

impl ListQuery {
    /// The store filter, with ages turned into instants against the
    /// engine's clock (so tests can move time).
    fn into_filter(self, state: &AppState) -> Result<SummaryFilter, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::InvalidQuery(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        if let (Some(min), Some(max)) = (self.min_age_hours, self.max_age_hours)
            && min > max
        {
            return Err(ApiError::InvalidQuery(format!(
                "min_age_hours ({min}) is greater than max_age_hours ({max})"
            )));
        }
        let now = state.engine.now();
        let hours_ago = |h: u32| now - Duration::hours(i64::from(h));
        Ok(SummaryFilter {
            status: self.status.map(|s| s.as_str().to_owned()),
            stage: self.stage.map(|s| s.as_str().to_owned()),
            owner: self.owner,
            customer: self.customer.map(|c| c.to_string()),
            order_ref: self.order_ref.map(|o| o.to_string()),
            sku: self.sku.map(|s| s.to_string()),
            created_before: self.min_age_hours.map(hours_ago),
            created_after: self.max_age_hours.map(hours_ago),
            open: self.open,
            limit,
            offset: self.offset.unwrap_or(0),
        })
    }
}

/// `GET /v1/returns`.
pub(crate) async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<ReturnList>, ApiError> {
    let filter = query.into_filter(&state)?;
    let items = state.engine.list(&filter).await?;
    Ok(Json(ReturnList {
        items,
        limit: filter.limit,
        offset: filter.offset,
    }))
}

/// `POST /v1/returns`.
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    CorrelationId(correlation_id): CorrelationId,
    body: JsonBody<ReturnRequest>,
) -> Result<Response, ApiError> {
    let meta = command_meta(&principal, key, correlation_id, &body.raw);
    let outcome = state.engine.create(body.value, meta).await?;
    tracing::Span::current().record("return_id", tracing::field::display(outcome.return_id));
    Ok(outcome_response(outcome))
}

/// The engine's metadata of a command sent over HTTP.
pub(crate) fn command_meta(
    principal: &Principal,
    key: IdempotencyKey,
    correlation_id: Option<uuid::Uuid>,
    raw_body: &[u8],
) -> CommandMeta {
    CommandMeta {
        partner: principal.partner.clone(),
        idempotency: Some(key.bind(raw_body)),
        correlation_id,
        causation_id: None,
    }
}

/// A command's response: the engine's body and status, `Location` for a
/// new return, and the replay marker when the answer is a stored one.
pub(crate) fn outcome_response(outcome: Outcome) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(outcome.body)).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::CREATED {
        let location = format!("/v1/returns/{}", outcome.return_id);
        // A UUID path is always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, value);
        }
    }
    if outcome.replayed {
        headers.insert(
            HeaderName::from_static(REPLAYED_HEADER),
            HeaderValue::from_static("true"),
        );
    }
    response
}
