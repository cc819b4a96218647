//! SAP S/4HANA (Cloud and on-premise): the ERP return order as a customer
//! return and the credit as a credit memo request, over SAP's OData V2
//! APIs. The mapping (action → OData payloads, answers → results, SAP's
//! error shape) is in `mapping.rs`; this file holds the settings and the
//! sink that runs the exchanges. Fixtures written from the documentation
//! are in `fixtures/`.
//!
//! Written from these public references (read, not copied):
//! - SAP Business Accelerator Hub, "Customer Return (A2X)",
//!   `API_CUSTOMER_RETURN_SRV`, communication scenario SAP_COM_0157, as
//!   summarised by the SAP Cloud SDK's `CustomerReturnService` page
//!   (help.sap.com/doc/…/CustomerReturnService.html: create only by deep
//!   insert; header, items, partners, pricing elements; Basic or x509
//!   authentication) and its entity type pages (`CustomerReturnType`,
//!   `CustomerReturnItemType`: `CustomerReturnType`, `SalesOrganization`,
//!   `DistributionChannel`, `OrganizationDivision`, `SoldToParty`,
//!   `PurchaseOrderByCustomer`, `Material`, `RequestedQuantity`, `Plant`,
//!   `ReturnReason`);
//! - SAP Business Accelerator Hub, "Credit Memo Request (A2X)",
//!   `API_CREDIT_MEMO_REQUEST_SRV` (`A_CreditMemoRequest`,
//!   `A_CreditMemoRequestItem`, `A_CreditMemoReqItemPrcgElmnt`; create by
//!   deep insert only) and its published sample payload (`CR`, `to_Item`,
//!   `ReferenceSDDocument`/`ReferenceSDDocumentCategory`);
//! - SAP Gateway's OData V2 conventions: CSRF protection (`X-CSRF-Token:
//!   Fetch` on a GET, the token and session cookies sent back on the
//!   modifying request, `403` with `X-CSRF-Token: Required` when the token
//!   is missing or expired), the JSON error body `{"error": {"code",
//!   "message": {"lang", "value"}, "innererror"}}`, `If-Match` with the
//!   entity's ETag on updates and deletes.
//!
//! What maps:
//!
//! | action | SAP |
//! |---|---|
//! | `erp_return_order` | customer return (`A_CustomerReturn` with `to_Item`), order type `return_order_type` (`CBAR`); the RMA number in `PurchaseOrderByCustomer`; reasons through the crosswalk as the items' `ReturnReason` |
//! | `erp_credit_memo` | credit memo request (`A_CreditMemoRequest`, type `CR`) referring to the customer return (category `H`), each line's amount in the manual condition `amount_condition_type`; answers SAP's net value |
//! | `erp_cancel_return_order` | the customer return deleted (`DELETE` with `If-Match`); one already gone counts as done |
//! | `erp_inventory_adjustment` | not delivered: business error `unsupported_action`. In S/4HANA returned stock is posted by the goods receipt of the returns delivery (movement type 651, then 653 or a scrapping), which the warehouse posts against the customer return; an ERP-side adjustment from the hub would count the units twice |
//! | supplier claim, repair order, replacement order, and the other targets' actions | business error `unsupported_action` |
//!
//! Idempotency. SAP's OData APIs take no idempotency key, so every create
//! is preceded by a look-up of the hub's reference in the customer
//! reference field (`PurchaseOrderByCustomer`): the RMA number for the
//! customer return (one per return), `{rma}/{version}` for a credit memo
//! request (one per delivery). A retry after a lost answer finds the
//! document the first attempt created and answers its number without
//! creating a second one. The look-up is also the CSRF token fetch, so a
//! create costs two exchanges, not three.
//!
//! Authentication: HTTP Basic with a communication user whose name and
//! password are read from the environment variables `user_env` and
//! `password_env` when the connector is built. A 401 is technical (see
//! `vendor`): the breaker holds the deliveries until the user works again.

mod mapping;

use std::sync::Arc;

use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};
use base64::Engine as _;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::http::{Transport, wire};
use crate::vendor::{self, Answer, Call, Env, Secret};

/// SAP S/4HANA settings (`[connectors.erp.sap]`, kind `sap-s4`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SapConfig {
    /// Environment variable holding the communication user's name.
    pub user_env: String,
    /// Environment variable holding the communication user's password.
    pub password_env: String,
    /// `sap-client` of every request, for on-premise systems with several
    /// clients; none for S/4HANA Cloud.
    #[serde(default)]
    pub sap_client: Option<String>,
    /// Sales organization of returns and credit memo requests (4 characters).
    pub sales_organization: String,
    /// Distribution channel (2 characters).
    pub distribution_channel: String,
    /// Division (`OrganizationDivision`, 2 characters).
    pub division: String,
    /// Order type of customer returns: `CBAR` is advanced returns
    /// management's in S/4HANA Cloud, `RE` the classic one.
    #[serde(default = "default_return_order_type")]
    pub return_order_type: String,
    /// Order type of credit memo requests.
    #[serde(default = "default_credit_memo_request_type")]
    pub credit_memo_request_type: String,
    /// Order reason (`SDDocumentReason`) of credit memo requests, which
    /// most configurations require for `CR`.
    #[serde(default)]
    pub credit_memo_reason: Option<String>,
    /// The manual item condition that carries a credit line's amount. It
    /// must be a fixed-amount condition (calculation type B) in the credit
    /// memo request's pricing procedure, so SAP credits exactly the hub's
    /// amount for the line.
    pub amount_condition_type: String,
}

fn default_return_order_type() -> String {
    "CBAR".to_owned()
}

fn default_credit_memo_request_type() -> String {
    "CR".to_owned()
}

impl SapConfig {
    /// Checks lengths and required values against SAP's field sizes, so a
    /// typo fails at start-up, not on the first return.
    fn validate(&self) -> Result<(), String> {
        let fields: [(&str, &str, usize); 6] = [
            ("sales_organization", &self.sales_organization, 4),
            ("distribution_channel", &self.distribution_channel, 2),
            ("division", &self.division, 2),
            ("return_order_type", &self.return_order_type, 4),
            (
                "credit_memo_request_type",
                &self.credit_memo_request_type,
                4,
            ),
            ("amount_condition_type", &self.amount_condition_type, 4),
        ];
        for (name, value, max) in fields {
            if value.trim().is_empty() {
                return Err(format!("sap.{name} must not be empty"));
            }
            if value.chars().count() > max {
                return Err(format!(
                    "sap.{name} `{value}` is longer than SAP's {max} characters"
                ));
            }
        }
        if let Some(reason) = &self.credit_memo_reason
            && (reason.is_empty() || reason.chars().count() > 3)
        {
            return Err(format!(
                "sap.credit_memo_reason `{reason}` must have 1 to 3 characters"
            ));
        }
        Ok(())
    }
}

/// A CSRF token and the session cookies it belongs to: SAP checks the
/// token against the session, so both go back together.
#[derive(Debug, Default)]
struct Session {
    token: Option<String>,
    cookies: String,
}

impl Session {
    /// The session of an answer to a request that asked for a token.
    fn from_answer(answer: &Answer) -> Session {
        let token = answer
            .header("x-csrf-token")
            .filter(|t| !t.eq_ignore_ascii_case("required") && !t.is_empty())
            .map(str::to_owned);
        let cookies = answer
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Session { token, cookies }
    }
}

/// Whether SAP refused a modifying request for its CSRF token (missing or
/// expired), which a fresh token fixes.
fn csrf_refused(answer: &Answer) -> bool {
    answer.status == StatusCode::FORBIDDEN
        && answer
            .header("x-csrf-token")
            .is_some_and(|t| t.eq_ignore_ascii_case("required"))
}

fn invalid(message: String) -> SinkError {
    SinkError::business("invalid_response", message)
}

/// The sink of an SAP S/4HANA system.
pub(crate) struct SapSink {
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    settings: SapConfig,
    /// `Basic …` of the communication user.
    authorization: Secret,
}

impl SapSink {
    pub(crate) fn new(
        system: ExternalRef,
        transport: Arc<dyn Transport>,
        settings: SapConfig,
        env: Env<'_>,
    ) -> Result<SapSink, String> {
        settings.validate()?;
        let user = vendor::secret_from_env(env, "sap.user_env", &settings.user_env)?;
        let password = vendor::secret_from_env(env, "sap.password_env", &settings.password_env)?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            user.expose(),
            password.expose()
        ));
        Ok(SapSink {
            system,
            transport,
            settings,
            authorization: Secret::new(format!("Basic {encoded}")),
        })
    }

    /// A read that also asks for a CSRF token (and the session cookies)
    /// for the modifying request that follows.
    async fn read(&self, path: String) -> Result<Answer, SinkError> {
        vendor::send(
            &self.transport,
            Call::new(Method::GET, path)
                .header("authorization", self.authorization.expose())
                .header("x-csrf-token", "Fetch"),
        )
        .await
    }

    /// A modifying request with the session's token and cookies. A refusal
    /// for the token (expired between the fetch and now) is retried once
    /// with a fresh one: nothing was changed, so sending again is safe. The
    /// answer is returned unclassified, for callers that treat some
    /// statuses specially.
    async fn modify(
        &self,
        service: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
        session: Session,
    ) -> Result<Answer, SinkError> {
        let mut session = session;
        for attempt in 0..2 {
            let mut call = Call::new(method.clone(), path.to_owned())
                .header("authorization", self.authorization.expose());
            if let Some(token) = &session.token {
                call = call.header("x-csrf-token", token);
            }
            if !session.cookies.is_empty() {
                call = call.header("cookie", &session.cookies);
            }
            if let Some(etag) = if_match {
                call = call.header("if-match", etag);
            }
            if let Some(body) = body {
                call = call.json(body);
            }
            let answer = vendor::send(&self.transport, call).await?;
            if !csrf_refused(&answer) {
                return Ok(answer);
            }
            if attempt == 0 {
                // The service's root is the cheapest read that hands out
                // a token for the service the request goes to.
                let fresh = self
                    .read(format!("{service}/{}", mapping::query(&self.settings, &[])))
                    .await?;
                vendor::classify(&fresh, mapping::error_fields)?;
                session = Session::from_answer(&fresh);
            }
        }
        Err(SinkError::technical(
            "csrf_token_rejected",
            "SAP refused a freshly fetched CSRF token twice",
        ))
    }

    async fn return_order(&self, request: &DeliveryRequest<'_>) -> Result<ActionResult, SinkError> {
        let action = request.action;
        let reference = mapping::return_reference(action)?;
        // Encoded before anything is sent: an action SAP cannot be given
        // (an unmapped reason) must not reach it at all.
        let body = mapping::return_body(&self.settings, self.system.as_str(), request, &reference)?;
        let lookup = self
            .read(mapping::return_lookup_path(
                &self.settings,
                action,
                &reference,
            ))
            .await?;
        vendor::classify(&lookup, mapping::error_fields)?;
        if let Some(found) = mapping::decode_return_lookup(&lookup.json()?).map_err(invalid)? {
            tracing::info!(
                connector = "sap-s4",
                return_id = %action.return_id,
                delivery_id = request.delivery_id,
                "the customer return already exists (an earlier attempt created it); not created again"
            );
            return Ok(found);
        }
        let created = self
            .modify(
                mapping::RETURNS_SERVICE,
                Method::POST,
                &mapping::returns_collection(&self.settings),
                Some(&body),
                None,
                Session::from_answer(&lookup),
            )
            .await?;
        vendor::classify(&created, mapping::error_fields)?;
        mapping::decode_return(&created.json()?).map_err(invalid)
    }

    async fn credit_memo(&self, request: &DeliveryRequest<'_>) -> Result<ActionResult, SinkError> {
        let action = request.action;
        let return_number = wire::prerequisite(request, ActionKind::ErpReturnOrder)?;
        let reference = mapping::credit_reference(request)?;
        let body = mapping::credit_body(&self.settings, request, return_number, &reference)?;
        let lookup = self
            .read(mapping::credit_lookup_path(
                &self.settings,
                action,
                &reference,
            ))
            .await?;
        vendor::classify(&lookup, mapping::error_fields)?;
        if let Some(found) =
            mapping::decode_credit_lookup(&lookup.json()?, action).map_err(invalid)?
        {
            tracing::info!(
                connector = "sap-s4",
                return_id = %action.return_id,
                delivery_id = request.delivery_id,
                reference = %reference,
                "the credit memo request already exists; not created again"
            );
            return Ok(found);
        }
        let created = self
            .modify(
                mapping::CREDIT_MEMO_SERVICE,
                Method::POST,
                &mapping::credits_collection(&self.settings),
                Some(&body),
                None,
                Session::from_answer(&lookup),
            )
            .await?;
        vendor::classify(&created, mapping::error_fields)?;
        mapping::decode_credit(&created.json()?, action).map_err(invalid)
    }

    async fn cancel(&self, request: &DeliveryRequest<'_>) -> Result<ActionResult, SinkError> {
        let number = wire::prerequisite(request, ActionKind::ErpReturnOrder)?;
        let path = mapping::return_path(&self.settings, number.as_str());
        let read = self.read(path.clone()).await?;
        // Gone already: an earlier attempt deleted it and its answer was
        // lost (or someone at the ERP did). Either way it is cancelled.
        if read.status == StatusCode::NOT_FOUND {
            return Ok(ActionResult::Accepted);
        }
        vendor::classify(&read, mapping::error_fields)?;
        let etag =
            mapping::etag(read.header("etag"), &read.json()?).unwrap_or_else(|| "*".to_owned());
        let deleted = self
            .modify(
                mapping::RETURNS_SERVICE,
                Method::DELETE,
                &path,
                None,
                Some(&etag),
                Session::from_answer(&read),
            )
            .await?;
        if deleted.status == StatusCode::NOT_FOUND {
            return Ok(ActionResult::Accepted);
        }
        vendor::classify(&deleted, mapping::error_fields)?;
        Ok(ActionResult::Accepted)
    }
}

impl Sink for SapSink {
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
                ActionKind::ErpReturnOrder => self.return_order(&request).await,
                ActionKind::ErpCreditMemo => self.credit_memo(&request).await,
                ActionKind::ErpCancelReturnOrder => self.cancel(&request).await,
                ActionKind::ErpInventoryAdjustment => Err(vendor::unsupported(
                    kind,
                    "SAP S/4HANA",
                    "returned stock is posted by the goods receipt of the returns delivery \
                     against the customer return, not by the hub",
                )),
                ActionKind::ErpSupplierClaim
                | ActionKind::ErpRepairOrder
                | ActionKind::ErpReplacementOrder => Err(vendor::unsupported(
                    kind,
                    "SAP S/4HANA",
                    "this connector maps customer returns and credit memo requests only",
                )),
                ActionKind::WmsExpectedReceipt
                | ActionKind::WmsCancelExpectedReceipt
                | ActionKind::CarrierLabel
                | ActionKind::CarrierVoidLabel
                | ActionKind::PortalStatus
                | ActionKind::EdiRmaNotification => Err(vendor::unsupported(
                    kind,
                    "SAP S/4HANA",
                    "it is an action for another target",
                )),
            }
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let answer = vendor::send(
                &self.transport,
                Call::new(
                    Method::GET,
                    format!(
                        "{}/{}",
                        mapping::RETURNS_SERVICE,
                        mapping::query(&self.settings, &[])
                    ),
                )
                .header("authorization", self.authorization.expose()),
            )
            .await?;
            vendor::classify(&answer, mapping::error_fields)
        })
    }
}
