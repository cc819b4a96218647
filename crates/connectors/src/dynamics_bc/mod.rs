//! Microsoft Dynamics 365 Business Central: the credit as a sales credit
//! memo over the standard API v2.0. The mapping (action → payload, answers
//! → results, Business Central's error shape) is in `mapping.rs`; this
//! file holds the settings and the sink that runs the exchanges. Fixtures
//! written from the documentation are in `fixtures/`.
//!
//! Written from these public references (read, not copied), on
//! learn.microsoft.com under
//! `dynamics365/business-central/dev-itpro/api-reference/v2.0/`:
//! - `resources/dynamics_salescreditmemo` and `api/dynamics_salescreditmemo_create`
//!   (`POST companies({id})/salesCreditMemos`, 201 with the entity;
//!   `customerNumber`, `externalDocumentNumber` of 35 characters,
//!   `currencyCode`, `totalAmountIncludingTax`, `status`), `…_get`;
//! - `resources/dynamics_salescreditmemoline` and
//!   `api/dynamics_salescreditmemoline_create` (`lineType`,
//!   `lineObjectNumber`, `quantity`, `unitPrice`);
//! - `dynamics-rate-limits` ("Working with API limits": 429 Too Many
//!   Requests when the limits are exceeded, the client backs off and
//!   retries);
//! - the error codes reference (`{"error": {"code", "message"}}`, codes
//!   grouped as `BadRequest_*`, `Authentication_*`, `Authorization_*`,
//!   `Internal_*`, `Application_*`);
//! - the API v2.0 entity list, which has sales orders, invoices, credit
//!   memos, quotes and shipments and customer return reasons, but no sales
//!   return order.
//!
//! Why Business Central and not Finance and Operations. Both are "Dynamics
//! 365", but they are different products: Business Central is the ERP of
//! the small and mid-sized distributors this hub is for, SaaS with one
//! documented, versioned REST API (v2.0) that every tenant has. Finance and
//! Operations (Supply Chain Management) is the enterprise product, reached
//! through data entities over OData whose set, fields and number
//! sequences depend on each installation's configuration and extensions,
//! usually behind a middleware the customer runs, so a connector written
//! from public documentation alone could not be checked the same way. It
//! has real return orders (RMAs), so it would be a connector of its own,
//! not a setting of this one.
//!
//! What maps:
//!
//! | action | Business Central |
//! |---|---|
//! | `erp_return_order` | nothing to send: API v2.0 has no sales return order (the return order page is not published as an API). Answered `Accepted` without a call, so the credit memo that waits for it can go; the RMA travels on the credit memo |
//! | `erp_credit_memo` | sales credit memo with its lines in one deep insert (`salesCreditMemos` with `salesCreditMemoLines`), left as a draft for finance to post; answers its number and total including tax |
//! | `erp_cancel_return_order` | nothing to cancel (no return order was created): `Accepted` without a call |
//! | `erp_inventory_adjustment` | not delivered: business error `unsupported_action`. Posting the credit memo's item lines puts the units back in stock (a return receipt); API v2.0 has no item journal to adjust with |
//! | supplier claim, repair order, replacement order, and the other targets' actions | business error `unsupported_action` |
//!
//! Idempotency. API v2.0 takes no idempotency key, so a create is preceded
//! by a look-up of the hub's reference (`{rma}/{version}`) in
//! `externalDocumentNumber` for the customer; a retry after a lost answer
//! finds the credit memo the first attempt created. `If-Match` with the
//! entity's `@odata.etag` is what Business Central requires on `PATCH` and
//! `DELETE`; this connector only creates and reads, so it sends none.
//!
//! Amounts. The hub's credit amount for a line is what the customer gets
//! back for it (price less fees, tax in proportion); it goes out as the
//! line's unit price times its quantity. Business Central adds tax by the
//! customer's and item's posting groups unless the customer's prices
//! include VAT, so the customers this connector credits should be set up
//! with prices including VAT, or the hub's amounts will be taxed again.
//!
//! Authentication: an OAuth 2.0 access token (Microsoft Entra ID, client
//! credentials, scope `https://api.businesscentral.dynamics.com/.default`)
//! read from the environment variable `token_env` when the connector is
//! built and sent as `Authorization: Bearer`. Getting and renewing it is
//! not done here; a 401 is technical (see `vendor`), so the breaker holds
//! the deliveries until a fresh token is in place.

mod mapping;

use std::sync::Arc;

use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};
use http::Method;
use serde::{Deserialize, Serialize};

use crate::http::Transport;
use crate::vendor::{self, Call, Env, Secret};

/// Business Central settings (`[connectors.erp.dynamics_bc]`, kind
/// `dynamics-bc`). The connector's `url` is the environment's API root,
/// `https://api.businesscentral.dynamics.com/v2.0/{tenant}/{environment}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsBcConfig {
    /// Environment variable holding the OAuth 2.0 access token.
    pub token_env: String,
    /// The company's id (a GUID, `GET …/api/v2.0/companies` lists them).
    pub company_id: String,
    /// The company's local currency (e.g. `EUR`): credit memos in it are
    /// sent without a currency code, as Business Central wants. Unset, the
    /// hub's currency is always sent.
    #[serde(default)]
    pub local_currency: Option<String>,
}

impl DynamicsBcConfig {
    fn validate(&self) -> Result<(), String> {
        let id = &self.company_id;
        let hex_groups: Vec<&str> = id.split('-').collect();
        let shaped = hex_groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && hex_groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
        if !shaped {
            return Err(format!(
                "dynamics_bc.company_id `{id}` is not a GUID (GET …/api/v2.0/companies lists them)"
            ));
        }
        if let Some(currency) = &self.local_currency {
            backhaul_domain::values::Currency::parse(currency)
                .map_err(|e| format!("dynamics_bc.local_currency: {e}"))?;
        }
        Ok(())
    }
}

fn invalid(message: String) -> SinkError {
    SinkError::business("invalid_response", message)
}

/// The sink of a Business Central environment.
pub(crate) struct DynamicsBcSink {
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    settings: DynamicsBcConfig,
    /// `Bearer …`.
    authorization: Secret,
}

impl DynamicsBcSink {
    pub(crate) fn new(
        system: ExternalRef,
        transport: Arc<dyn Transport>,
        settings: DynamicsBcConfig,
        env: Env<'_>,
    ) -> Result<DynamicsBcSink, String> {
        settings.validate()?;
        let token = vendor::secret_from_env(env, "dynamics_bc.token_env", &settings.token_env)?;
        Ok(DynamicsBcSink {
            system,
            transport,
            settings,
            authorization: Secret::new(format!("Bearer {}", token.expose())),
        })
    }

    async fn credit_memo(&self, request: &DeliveryRequest<'_>) -> Result<ActionResult, SinkError> {
        let action = request.action;
        let reference = mapping::credit_reference(request)?;
        let body = mapping::credit_body(&self.settings, request, &reference)?;
        let lookup = vendor::send(
            &self.transport,
            Call::new(
                Method::GET,
                mapping::credit_lookup_path(&self.settings, action, &reference),
            )
            .header("authorization", self.authorization.expose()),
        )
        .await?;
        vendor::classify(&lookup, mapping::error_fields)?;
        if let Some(found) = mapping::decode_credit_lookup(&self.settings, &lookup.json()?, action)
            .map_err(invalid)?
        {
            tracing::info!(
                connector = "dynamics-bc",
                return_id = %action.return_id,
                delivery_id = request.delivery_id,
                reference = %reference,
                "the sales credit memo already exists (an earlier attempt created it); not created again"
            );
            return Ok(found);
        }
        let created = vendor::send(
            &self.transport,
            Call::new(Method::POST, mapping::credit_memos_path(&self.settings))
                .header("authorization", self.authorization.expose())
                .json(&body),
        )
        .await?;
        vendor::classify(&created, mapping::error_fields)?;
        mapping::decode_credit(&self.settings, &created.json()?, action).map_err(invalid)
    }
}

impl Sink for DynamicsBcSink {
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
                ActionKind::ErpCreditMemo => self.credit_memo(&request).await,
                // API v2.0 has no sales return order: there is nothing to
                // create or cancel, and the credit memo carries the RMA.
                // Answering `Accepted` (nothing to remember) lets the
                // credit memo, which waits for the return order, go.
                ActionKind::ErpReturnOrder | ActionKind::ErpCancelReturnOrder => {
                    tracing::debug!(
                        connector = "dynamics-bc",
                        return_id = %request.action.return_id,
                        delivery_id = request.delivery_id,
                        kind = kind.as_str(),
                        "nothing to send: Business Central's API has no sales return order"
                    );
                    Ok(ActionResult::Accepted)
                }
                ActionKind::ErpInventoryAdjustment => Err(vendor::unsupported(
                    kind,
                    "Business Central",
                    "posting the credit memo's item lines puts the units back in stock, \
                     and API v2.0 has no item journal",
                )),
                ActionKind::ErpSupplierClaim
                | ActionKind::ErpRepairOrder
                | ActionKind::ErpReplacementOrder => Err(vendor::unsupported(
                    kind,
                    "Business Central",
                    "this connector maps sales credit memos only",
                )),
                ActionKind::WmsExpectedReceipt
                | ActionKind::WmsCancelExpectedReceipt
                | ActionKind::CarrierLabel
                | ActionKind::CarrierVoidLabel
                | ActionKind::PortalStatus
                | ActionKind::EdiRmaNotification => Err(vendor::unsupported(
                    kind,
                    "Business Central",
                    "it is an action for another target",
                )),
            }
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let answer = vendor::send(
                &self.transport,
                Call::new(Method::GET, mapping::company_path(&self.settings))
                    .header("authorization", self.authorization.expose()),
            )
            .await?;
            vendor::classify(&answer, mapping::error_fields)
        })
    }
}
