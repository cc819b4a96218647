//! The pure part of the SAP S/4HANA connector: canonical actions to the
//! OData V2 requests of `API_CUSTOMER_RETURN_SRV` and
//! `API_CREDIT_MEMO_REQUEST_SRV`, SAP's answers back to results, and SAP's
//! error shape read for classification. No I/O; the exchanges are in
//! `mod.rs`.
//!
//! OData V2 in JSON: entities come wrapped in `{"d": …}`, collections in
//! `{"d": {"results": […]}}`; decimals (quantities, amounts) are strings;
//! navigation properties of a deep insert (`to_Item`, `to_PricingElement`)
//! are arrays of the child entities.

use backhaul_domain::action::{Action, ActionLine, ActionResult};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{DeliveryRequest, SinkError};
use backhaul_master::CrosswalkKind;
use serde_json::{Value, json};

use super::SapConfig;
use crate::vendor::{self, VendorError, odata_string, query_component};

/// Service root of the customer returns API (communication scenario
/// SAP_COM_0157).
pub(crate) const RETURNS_SERVICE: &str = "/sap/opu/odata/sap/API_CUSTOMER_RETURN_SRV";
/// Service root of the credit memo request API.
pub(crate) const CREDIT_MEMO_SERVICE: &str = "/sap/opu/odata/sap/API_CREDIT_MEMO_REQUEST_SRV";

/// SAP's customer reference field (`PurchaseOrderByCustomer`, CHAR 35)
/// carries the hub's reference: the look-up key that keeps a retry from
/// creating a second document.
pub(crate) const REFERENCE_FIELD: &str = "PurchaseOrderByCustomer";
const REFERENCE_MAX: usize = 35;

/// SD document category of a customer return, for a credit memo request
/// that refers to one (`ReferenceSDDocumentCategory`).
const CATEGORY_RETURNS: &str = "H";

/// Query string of a request: the given options, then `sap-client` where
/// the system has several clients.
pub(crate) fn query(settings: &SapConfig, options: &[(&str, String)]) -> String {
    let mut parts: Vec<String> = options
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if let Some(client) = &settings.sap_client {
        parts.push(format!("sap-client={}", query_component(client)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// SAP's item number for a hub line: 10, 20, 30…, SAP's own spacing, so
/// the hub's line 2 is item 20 in SAP.
fn item_number(line: &ActionLine) -> String {
    (u64::from(line.line_no.get()) * 10).to_string()
}

/// The customer reference of a customer return: the RMA number. One return
/// has one return order, and the RMA is what people at the ERP search for.
pub(crate) fn return_reference(action: &Action) -> Result<String, SinkError> {
    if action.rma_number.chars().count() > REFERENCE_MAX {
        return Err(SinkError::business(
            "reference_too_long",
            format!(
                "the RMA number {} does not fit {REFERENCE_FIELD} ({REFERENCE_MAX} characters)",
                action.rma_number
            ),
        ));
    }
    Ok(action.rma_number.clone())
}

/// The customer reference of a credit memo request: a return may have
/// several (one per parcel), so the reference names the delivery.
pub(crate) fn credit_reference(request: &DeliveryRequest<'_>) -> Result<String, SinkError> {
    vendor::delivery_reference(request, REFERENCE_FIELD, REFERENCE_MAX)
}

/// The look-up of a customer return by the hub's reference. It also
/// carries the CSRF token fetch (see `mod.rs`).
pub(crate) fn return_lookup_path(settings: &SapConfig, action: &Action, reference: &str) -> String {
    let filter = format!(
        "{REFERENCE_FIELD} eq {} and SoldToParty eq {}",
        odata_string(reference),
        odata_string(action.customer.as_str())
    );
    format!(
        "{RETURNS_SERVICE}/A_CustomerReturn{}",
        query(
            settings,
            &[
                ("$filter", query_component(&filter)),
                ("$select", "CustomerReturn".to_owned()),
                ("$top", "1".to_owned()),
                ("$format", "json".to_owned()),
            ]
        )
    )
}

/// The entity of one customer return, by its number.
pub(crate) fn return_path(settings: &SapConfig, number: &str) -> String {
    format!(
        "{RETURNS_SERVICE}/A_CustomerReturn({}){}",
        crate::http::wire::path_segment(&odata_string(number)),
        query(settings, &[("$format", "json".to_owned())])
    )
}

/// Where customer returns are created.
pub(crate) fn returns_collection(settings: &SapConfig) -> String {
    format!("{RETURNS_SERVICE}/A_CustomerReturn{}", query(settings, &[]))
}

/// The deep insert of a customer return: the header with its items (the
/// API creates returns only this way). Reasons go out as SAP's return
/// reasons through the crosswalk of `system`; SKUs, the customer and the
/// site go as they are (material, sold-to party, plant).
///
/// Left out on purpose: prices (SAP prices the return from its own
/// conditions; the money the hub credits goes on the credit memo request),
/// and the original order (SAP copies items by reference only with its own
/// item numbers, which the hub does not hold).
pub(crate) fn return_body(
    settings: &SapConfig,
    system: &str,
    request: &DeliveryRequest<'_>,
    reference: &str,
) -> Result<Value, SinkError> {
    let a = request.action;
    let items = a
        .lines
        .iter()
        .map(|l| {
            let mut item = json!({
                "CustomerReturnItem": item_number(l),
                "Material": l.sku,
                "RequestedQuantity": l.quantity,
                "Plant": a.site,
            });
            if let Some(reason) = &l.reason_code {
                item["ReturnReason"] = Value::String(request.outbound_code(
                    system,
                    CrosswalkKind::Reason,
                    reason.as_str(),
                )?);
            }
            Ok(item)
        })
        .collect::<Result<Vec<_>, SinkError>>()?;
    let mut body = json!({
        "CustomerReturnType": settings.return_order_type,
        "SalesOrganization": settings.sales_organization,
        "DistributionChannel": settings.distribution_channel,
        "OrganizationDivision": settings.division,
        "SoldToParty": a.customer,
        REFERENCE_FIELD: reference,
        "to_Item": items,
    });
    if let Some(currency) = vendor::currency(a) {
        body["TransactionCurrency"] = Value::String(currency);
    }
    Ok(body)
}

/// The look-up of a credit memo request by the hub's reference.
pub(crate) fn credit_lookup_path(settings: &SapConfig, action: &Action, reference: &str) -> String {
    let filter = format!(
        "{REFERENCE_FIELD} eq {} and SoldToParty eq {}",
        odata_string(reference),
        odata_string(action.customer.as_str())
    );
    format!(
        "{CREDIT_MEMO_SERVICE}/A_CreditMemoRequest{}",
        query(
            settings,
            &[
                ("$filter", query_component(&filter)),
                (
                    "$select",
                    "CreditMemoRequest,TotalNetAmount,TransactionCurrency".to_owned()
                ),
                ("$top", "1".to_owned()),
                ("$format", "json".to_owned()),
            ]
        )
    )
}

/// Where credit memo requests are created.
pub(crate) fn credits_collection(settings: &SapConfig) -> String {
    format!(
        "{CREDIT_MEMO_SERVICE}/A_CreditMemoRequest{}",
        query(settings, &[])
    )
}

/// The deep insert of a credit memo request for the customer return
/// `return_number`: one item per credited line, each carrying the hub's
/// amount in the configured manual condition (a fixed amount for the item,
/// so SAP credits what the hub computed, fees and all, and never a price
/// times a quantity rounded its own way).
pub(crate) fn credit_body(
    settings: &SapConfig,
    request: &DeliveryRequest<'_>,
    return_number: &ExternalRef,
    reference: &str,
) -> Result<Value, SinkError> {
    let a = request.action;
    let currency = vendor::currency(a).ok_or_else(|| {
        SinkError::business(
            "amount_missing",
            format!("the credit memo of {} has no amounts", a.rma_number),
        )
    })?;
    let items = a
        .lines
        .iter()
        .map(|l| {
            let amount = l.amount.ok_or_else(|| {
                SinkError::business(
                    "amount_missing",
                    format!(
                        "credit line {} of {} has no amount",
                        l.line_no, a.rma_number
                    ),
                )
            })?;
            Ok(json!({
                "CreditMemoRequestItem": item_number(l),
                "Material": l.sku,
                "RequestedQuantity": l.quantity,
                "to_PricingElement": [{
                    "ConditionType": settings.amount_condition_type,
                    "ConditionRateValue": amount.amount().to_string(),
                    "ConditionCurrency": currency,
                }],
            }))
        })
        .collect::<Result<Vec<_>, SinkError>>()?;
    let mut body = json!({
        "CreditMemoRequestType": settings.credit_memo_request_type,
        "SalesOrganization": settings.sales_organization,
        "DistributionChannel": settings.distribution_channel,
        "OrganizationDivision": settings.division,
        "SoldToParty": a.customer,
        REFERENCE_FIELD: reference,
        "TransactionCurrency": currency,
        "ReferenceSDDocument": return_number,
        "ReferenceSDDocumentCategory": CATEGORY_RETURNS,
        "to_Item": items,
    });
    if let Some(reason) = &settings.credit_memo_reason {
        body["SDDocumentReason"] = Value::String(reason.clone());
    }
    Ok(body)
}

/// The entity of an OData V2 answer (`{"d": {…}}`).
fn entity(body: &Value) -> Result<&Value, String> {
    body.get("d")
        .filter(|d| d.is_object())
        .ok_or_else(|| format!("an OData answer without `d`: {body}"))
}

/// The first entity of an OData V2 collection answer, if any.
fn first_result(body: &Value) -> Result<Option<&Value>, String> {
    let results = entity(body)?
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("an OData collection without `d.results`: {body}"))?;
    Ok(results.first())
}

fn document_number(entity: &Value, field: &str) -> Result<ExternalRef, String> {
    let number = entity
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the answer has no `{field}`: {entity}"))?;
    ExternalRef::parse(number).map_err(|e| format!("`{field}`: {e}"))
}

/// The customer return SAP created.
pub(crate) fn decode_return(body: &Value) -> Result<ActionResult, String> {
    Ok(ActionResult::Document {
        number: document_number(entity(body)?, "CustomerReturn")?,
        amount: None,
    })
}

/// The customer return found by the look-up, if any.
pub(crate) fn decode_return_lookup(body: &Value) -> Result<Option<ActionResult>, String> {
    first_result(body)?
        .map(|found| {
            Ok(ActionResult::Document {
                number: document_number(found, "CustomerReturn")?,
                amount: None,
            })
        })
        .transpose()
}

/// A credit memo request (created or found): its number and SAP's net
/// value in its currency. SAP answers the net value; tax is SAP's to
/// determine when it bills the request.
fn credit_result(entity: &Value, action: &Action) -> Result<ActionResult, String> {
    let number = document_number(entity, "CreditMemoRequest")?;
    let amount = entity
        .get("TotalNetAmount")
        .and_then(vendor::decimal)
        .ok_or_else(|| format!("a credit memo request without `TotalNetAmount`: {entity}"))?;
    let currency = entity
        .get("TransactionCurrency")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .or_else(|| vendor::currency(action))
        .ok_or_else(|| "a credit memo request without a currency".to_owned())?;
    Ok(ActionResult::Document {
        number,
        amount: Some(vendor::money(amount, &currency)?),
    })
}

pub(crate) fn decode_credit(body: &Value, action: &Action) -> Result<ActionResult, String> {
    credit_result(entity(body)?, action)
}

pub(crate) fn decode_credit_lookup(
    body: &Value,
    action: &Action,
) -> Result<Option<ActionResult>, String> {
    first_result(body)?
        .map(|found| credit_result(found, action))
        .transpose()
}

/// The entity tag of an entity read, for `If-Match`: the `ETag` header
/// where SAP sends one, else the entity's `__metadata.etag`.
pub(crate) fn etag(header: Option<&str>, body: &Value) -> Option<String> {
    header.map(str::to_owned).or_else(|| {
        entity(body)
            .ok()?
            .get("__metadata")?
            .get("etag")?
            .as_str()
            .map(str::to_owned)
    })
}

/// Code and message of SAP Gateway's OData V2 error shape:
/// `{"error": {"code", "message": {"lang", "value"}, "innererror": …}}`.
/// The top-level code is the application's message class and number (for
/// example `V1/320`), which is what SAP people look up; the details in
/// `innererror.errordetails` repeat it with the field it concerns.
pub(crate) fn error_fields(body: &Value) -> VendorError {
    let Some(error) = body.get("error") else {
        return VendorError::default();
    };
    let code = error.get("code").and_then(Value::as_str).map(str::to_owned);
    let message = error
        .get("message")
        .and_then(|m| m.get("value").or(Some(m)))
        .and_then(Value::as_str)
        .map(str::to_owned);
    VendorError { code, message }
}
