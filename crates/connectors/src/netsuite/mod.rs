//! Oracle NetSuite: the return as a return authorization, the received
//! units as an item receipt and the credit as a credit memo, both
//! transformed from the return authorization, over the REST record
//! service. The mapping (action → records, answers → results, NetSuite's
//! error shape) is in `mapping.rs`; this file holds the settings and the
//! sink that runs the exchanges. Fixtures written from the documentation
//! are in `fixtures/`.
//!
//! Written from these public references (read, not copied), NetSuite
//! Help Center on docs.oracle.com (`ns-online-help`):
//! - "Creating a Record Instance" (section_1545141395: `POST`, 204 No
//!   Content, the new record's URL in `Location`) and "Getting a Record
//!   Instance" (`fields` to read only some fields);
//! - "Using External IDs" (section_156334828635: `eid:` wherever an
//!   internal id goes in a URL, `externalId` in a body, letters, digits,
//!   `_` and `-` only) and "External IDs Overview" (use external IDs to
//!   prevent duplicate records);
//! - "Transforming Records" (section_157901123882: `POST
//!   …/{type}/{id}/!transform/{target}`, 204 with `Location`, fields of the
//!   new record in the body) and "Working with Sublists" (`replace=item`);
//! - "Return Authorization" (article_0718011926: record id
//!   `returnAuthorization`, customer as `entity`, item sublist);
//! - "Error Handling in REST Web Services" (section_156570709583: `status`,
//!   `o:errorDetails` with `detail`, `o:errorCode`, `o:errorPath`; the 401
//!   `INVALID_LOGIN` example);
//! - "REST Web Services Request Processing" (chapter_161251386312) and
//!   "Sending an Asynchronous Request Using an Idempotency Key"
//!   (subsect_164494900632), on `X-NetSuite-Idempotency-Key`;
//! - "Concurrency Governance and Session Management" (subsect_1559222360:
//!   every request counts against the account's concurrency limit; over
//!   it, the request is refused as Too Many Requests).
//!
//! What maps:
//!
//! | action | NetSuite |
//! |---|---|
//! | `erp_return_order` | return authorization (`returnAuthorization`): the customer as `entity`, the RMA as `otherRefNum` and external ID, lines at their unit price, the reason in the custom column `reason_field` if configured; answers its `tranId` |
//! | `erp_inventory_adjustment` | item receipt transformed from the return authorization, receiving every dispositioned unit (at `location_id` if set); answers its `tranId` |
//! | `erp_credit_memo` | credit memo transformed from the return authorization, each line at the hub's amount; answers its `tranId` and `total` |
//! | `erp_cancel_return_order` | the return authorization deleted; one already gone counts as done |
//! | supplier claim, repair order, replacement order, and the other targets' actions | business error `unsupported_action` |
//!
//! Idempotency. NetSuite's `X-NetSuite-Idempotency-Key` header belongs to
//! asynchronous requests (`Prefer: respond-async`, answered by a job to
//! poll); NetSuite documents it there and not for the synchronous requests
//! this connector makes, and asks for a UUID. What NetSuite documents for
//! preventing duplicate records is the external ID, unique per record
//! type. So every record this connector creates carries one derived from
//! the hub's delivery (the RMA number for the return authorization, of
//! which a return has one; the escaped delivery key for receipts and
//! credit memos, of which it may have several), and every create is
//! preceded by a read of that external ID: a retry after a lost answer
//! finds the record the first attempt created and answers its number. Even
//! a create that raced past the read would be refused by NetSuite for the
//! duplicate external ID rather than make a second record.
//!
//! Amounts and numbers go as JSON numbers, checked to survive the
//! conversion exactly (`vendor::number`). Customers, SKUs, the subsidiary
//! and the location are referred to by NetSuite internal id as they are.
//!
//! Authentication: an OAuth 2.0 access token read from the environment
//! variable `token_env` when the connector is built, sent as
//! `Authorization: Bearer` (NetSuite's token-based authentication, which
//! signs every request, is not implemented). A 401 is technical (see
//! `vendor`).

mod mapping;

use std::sync::Arc;

use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::http::Transport;
use crate::vendor::{self, Answer, Call, Env, Secret};

/// NetSuite settings (`[connectors.erp.netsuite]`, kind `netsuite`). The
/// connector's `url` is the account's REST domain,
/// `https://{account}.suitetalk.api.netsuite.com`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSuiteConfig {
    /// Environment variable holding the OAuth 2.0 access token.
    pub token_env: String,
    /// Internal id of the subsidiary return authorizations belong to
    /// (OneWorld accounts); unset, NetSuite takes the customer's.
    #[serde(default)]
    pub subsidiary_id: Option<String>,
    /// Internal id of the location returns are received at.
    #[serde(default)]
    pub location_id: Option<String>,
    /// Custom transaction column (`custcol_…`) that takes the return
    /// reason on return authorization lines; unset, reasons are not sent.
    #[serde(default)]
    pub reason_field: Option<String>,
}

impl NetSuiteConfig {
    fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("subsidiary_id", &self.subsidiary_id),
            ("location_id", &self.location_id),
        ] {
            if let Some(id) = value
                && (id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(format!(
                    "netsuite.{name} `{id}` must be a NetSuite internal id (digits)"
                ));
            }
        }
        if let Some(field) = &self.reason_field
            && !field.starts_with("custcol")
        {
            return Err(format!(
                "netsuite.reason_field `{field}` must be a custom transaction column (custcol…)"
            ));
        }
        Ok(())
    }
}

/// The records transformed from a return authorization.
#[derive(Debug, Clone, Copy)]
enum Derived {
    ItemReceipt,
    CreditMemo,
}

impl Derived {
    fn record(self) -> &'static str {
        match self {
            Derived::ItemReceipt => mapping::ITEM_RECEIPT,
            Derived::CreditMemo => mapping::CREDIT_MEMO,
        }
    }

    /// What is read back: the document number, and a credit memo's total.
    fn fields(self) -> &'static str {
        match self {
            Derived::ItemReceipt => "tranId",
            Derived::CreditMemo => "tranId,total",
        }
    }
}

fn invalid(message: String) -> SinkError {
    SinkError::business("invalid_response", message)
}

/// The sink of a NetSuite account.
pub(crate) struct NetSuiteSink {
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    settings: NetSuiteConfig,
    /// `Bearer …`.
    authorization: Secret,
}

impl NetSuiteSink {
    pub(crate) fn new(
        system: ExternalRef,
        transport: Arc<dyn Transport>,
        settings: NetSuiteConfig,
        env: Env<'_>,
    ) -> Result<NetSuiteSink, String> {
        settings.validate()?;
        let token = vendor::secret_from_env(env, "netsuite.token_env", &settings.token_env)?;
        Ok(NetSuiteSink {
            system,
            transport,
            settings,
            authorization: Secret::new(format!("Bearer {}", token.expose())),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: String,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, SinkError> {
        let mut call = Call::new(method, path).header("authorization", self.authorization.expose());
        if let Some(body) = body {
            call = call.json(body);
        }
        vendor::send(&self.transport, call).await
    }

    /// A record read by external ID: its answer, or `None` when NetSuite
    /// has no such record.
    async fn find(&self, path: String) -> Result<Option<serde_json::Value>, SinkError> {
        let answer = self.call(Method::GET, path, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        vendor::classify(&answer, mapping::error_fields)?;
        answer.json().map(Some)
    }

    /// Creates a record (a `POST` answered 204 with `Location`) and reads
    /// `fields` of it back.
    async fn create(
        &self,
        path: String,
        body: &serde_json::Value,
        record: &str,
        fields: &str,
    ) -> Result<serde_json::Value, SinkError> {
        let created = self.call(Method::POST, path, Some(body)).await?;
        vendor::classify(&created, mapping::error_fields)?;
        let location = created.header("location").ok_or_else(|| {
            invalid(format!(
                "NetSuite answered {} to a create without a `Location`",
                created.status
            ))
        })?;
        let id = mapping::id_from_location(location).map_err(invalid)?;
        let read = self
            .call(Method::GET, mapping::by_id(record, &id, fields), None)
            .await?;
        vendor::classify(&read, mapping::error_fields)?;
        read.json()
    }

    fn found(&self, request: &DeliveryRequest<'_>, record: &str) {
        tracing::info!(
            connector = "netsuite",
            return_id = %request.action.return_id,
            delivery_id = request.delivery_id,
            record,
            "the record already exists (an earlier attempt created it); not created again"
        );
    }

    async fn return_authorization(
        &self,
        request: &DeliveryRequest<'_>,
    ) -> Result<ActionResult, SinkError> {
        let action = request.action;
        // Encoded before anything is sent: an action NetSuite cannot be
        // given (an unmapped reason) must not reach it at all.
        let body =
            mapping::return_authorization_body(&self.settings, self.system.as_str(), request)?;
        let eid = mapping::return_authorization_id(action);
        if let Some(existing) = self
            .find(mapping::by_external_id(
                mapping::RETURN_AUTHORIZATION,
                &eid,
                "tranId",
            ))
            .await?
        {
            self.found(request, mapping::RETURN_AUTHORIZATION);
            return mapping::decode_document(&existing).map_err(invalid);
        }
        let read = self
            .create(
                mapping::return_authorizations(),
                &body,
                mapping::RETURN_AUTHORIZATION,
                "tranId",
            )
            .await?;
        mapping::decode_document(&read).map_err(invalid)
    }

    /// An item receipt or credit memo transformed from the return
    /// authorization.
    async fn transformed(
        &self,
        request: &DeliveryRequest<'_>,
        derived: Derived,
    ) -> Result<ActionResult, SinkError> {
        let action = request.action;
        let (record, fields) = (derived.record(), derived.fields());
        let decode = |body: &serde_json::Value| match derived {
            Derived::CreditMemo => mapping::decode_credit_memo(body, action),
            Derived::ItemReceipt => mapping::decode_document(body),
        };
        let eid = mapping::external_id(request.key);
        if let Some(existing) = self
            .find(mapping::by_external_id(record, &eid, fields))
            .await?
        {
            self.found(request, record);
            return decode(&existing).map_err(invalid);
        }
        let lines = self
            .call(
                Method::GET,
                mapping::return_authorization_lines(action),
                None,
            )
            .await?;
        vendor::classify(&lines, mapping::error_fields)?;
        let lines = mapping::decode_lines(&lines.json()?).map_err(invalid)?;
        let body = match derived {
            Derived::CreditMemo => mapping::credit_memo_body(request, &lines)?,
            Derived::ItemReceipt => mapping::item_receipt_body(&self.settings, request, &lines)?,
        };
        let read = self
            .create(mapping::transform(action, record), &body, record, fields)
            .await?;
        decode(&read).map_err(invalid)
    }

    async fn cancel(&self, request: &DeliveryRequest<'_>) -> Result<ActionResult, SinkError> {
        let answer = self
            .call(
                Method::DELETE,
                mapping::return_authorization(request.action),
                None,
            )
            .await?;
        // Gone already: an earlier attempt deleted it and its answer was
        // lost. Either way the return authorization is cancelled.
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(ActionResult::Accepted);
        }
        vendor::classify(&answer, mapping::error_fields)?;
        Ok(ActionResult::Accepted)
    }
}

impl Sink for NetSuiteSink {
    fn target(&self) -> Target {
        Target::Erp
    }

    fn system(&self) -> &ExternalRef {
        &self.system
    }

    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<ActionResult, SinkError>> {
        Box::pin(async move {
            let kind = request.action.kind;
            match kind {
                ActionKind::ErpReturnOrder => self.return_authorization(&request).await,
                ActionKind::ErpInventoryAdjustment => {
                    self.transformed(&request, Derived::ItemReceipt).await
                }
                ActionKind::ErpCreditMemo => self.transformed(&request, Derived::CreditMemo).await,
                ActionKind::ErpCancelReturnOrder => self.cancel(&request).await,
                ActionKind::ErpSupplierClaim
                | ActionKind::ErpRepairOrder
                | ActionKind::ErpReplacementOrder => Err(vendor::unsupported(
                    kind,
                    "NetSuite",
                    "this connector maps return authorizations, item receipts and credit memos only",
                )),
                ActionKind::WmsExpectedReceipt
                | ActionKind::WmsCancelExpectedReceipt
                | ActionKind::CarrierLabel
                | ActionKind::CarrierVoidLabel
                | ActionKind::PortalStatus
                | ActionKind::EdiRmaNotification => Err(vendor::unsupported(
                    kind,
                    "NetSuite",
                    "it is an action for another target",
                )),
            }
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let answer = self
                .call(
                    Method::GET,
                    format!("{}?limit=1", mapping::return_authorizations()),
                    None,
                )
                .await?;
            vendor::classify(&answer, mapping::error_fields)
        })
    }
}
