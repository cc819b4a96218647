//! A generic REST WMS: the expected receipt (advance notice of a return:
//! RMA, site, lines) and its cancellation sent to any JSON REST WMS, with
//! the request's shape given in config (`[connectors.wms.rest_wms]`): the
//! method and path of each operation, a mapping from canonical fields to the
//! WMS's fields, constants, headers, where the answer holds the WMS's
//! document number, and how its errors read. The machinery is shared with
//! the REST carrier in `rest`; this file says which fields each action
//! offers.
//!
//! | action | operation | canonical fields | answer |
//! |---|---|---|---|
//! | `wms_expected_receipt` | `receipt` | `rma`, `return_id`, `customer`, `order_ref`, `site`, `delivery_key`, `lines[].line_no`, `lines[].sku`, `lines[].quantity` | `number` (required) |
//! | `wms_cancel_expected_receipt` | `cancel` (optional; without it a cancellation is a business error `unsupported_action`) | the same header fields and `number` (the receipt's document number); no lines | none |
//!
//! Serial and lot numbers: the expected receipt carries none, because the
//! hub's action has none (serials and lots are what the WMS reports on
//! receipt, not what the hub announces), so no mapping can ask for them.
//! Quantities and line numbers go as JSON numbers, the rest as strings.
//!
//! Idempotency: the delivery key as `Idempotency-Key` (the WMS must
//! deduplicate on it), or a `receipt.lookup` that finds the receipt an
//! earlier attempt created, typically by the RMA number the receipt carries.

use std::collections::BTreeMap;
use std::sync::Arc;

use backhaul_domain::action::{ActionKind, Target};
use backhaul_domain::values::ExternalRef;
use serde::{Deserialize, Serialize};

use crate::http::Transport;
use crate::rest::fields::{Field, HEADER_FIELDS};
use crate::rest::{
    AnswerFields, Connection, ErrorsConfig, Operation, OperationConfig, Outcome, RestSink,
    answer_paths, default_auth_header, default_auth_scheme, default_health_path,
};
use crate::vendor::Env;

/// Generic REST WMS settings (`[connectors.wms.rest_wms]`, kind
/// `rest-wms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestWmsConfig {
    /// Environment variable holding the API token; none sends no
    /// credential (a WMS behind a gateway that adds it).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Header the token goes in (default `authorization`).
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Scheme before the token (default `Bearer`); empty sends the token
    /// alone (an `x-api-key` header).
    #[serde(default = "default_auth_scheme")]
    pub auth_scheme: String,
    /// Headers sent with every request (a tenant or warehouse id).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Where the WMS's error answers hold their code and message.
    #[serde(default)]
    pub errors: ErrorsConfig,
    /// Where the WMS answers health checks (`GET`, default `/health`).
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// The expected receipt.
    pub receipt: OperationConfig,
    /// Its cancellation.
    #[serde(default)]
    pub cancel: Option<OperationConfig>,
}

/// The sink of `settings`, checked.
pub(crate) fn sink(
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    settings: &RestWmsConfig,
    env: Env<'_>,
) -> Result<RestSink, String> {
    let mut operations = BTreeMap::new();
    let receipt_fields: Vec<Field> = HEADER_FIELDS
        .into_iter()
        .chain([Field::LineNo, Field::Sku, Field::Quantity])
        .collect();
    let answer = answer_paths(
        "rest_wms.receipt",
        &settings.receipt.answer,
        &AnswerFields {
            required: &["number"],
            optional: &[],
        },
    )?;
    let number = answer
        .get("number")
        .cloned()
        .ok_or("rest_wms.receipt.answer.number must say where the answer holds it")?;
    operations.insert(
        ActionKind::WmsExpectedReceipt,
        Operation::compile(
            "rest_wms.receipt",
            &settings.receipt,
            &receipt_fields,
            Outcome::Document(number),
            None,
        )?,
    );
    if let Some(cancel) = &settings.cancel {
        let cancel_fields: Vec<Field> = HEADER_FIELDS.into_iter().chain([Field::Number]).collect();
        answer_paths(
            "rest_wms.cancel",
            &cancel.answer,
            &AnswerFields {
                required: &[],
                optional: &[],
            },
        )?;
        operations.insert(
            ActionKind::WmsCancelExpectedReceipt,
            Operation::compile(
                "rest_wms.cancel",
                cancel,
                &cancel_fields,
                Outcome::Accepted,
                Some(ActionKind::WmsExpectedReceipt),
            )?,
        );
    }
    RestSink::new(
        Target::Wms,
        system,
        transport,
        "REST WMS",
        operations,
        &Connection {
            table: "rest_wms",
            token_env: settings.token_env.as_deref(),
            auth_header: &settings.auth_header,
            auth_scheme: &settings.auth_scheme,
            headers: &settings.headers,
            errors: &settings.errors,
            health_path: &settings.health_path,
        },
        env,
    )
}
