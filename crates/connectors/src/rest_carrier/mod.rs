//! A generic REST carrier: the return label request and the void sent to
//! any JSON REST carrier API, shaped by config
//! (`[connectors.carrier.rest_carrier]`) with the machinery shared with the
//! REST WMS in `rest`; this file says which fields each action offers.
//!
//! | action | operation | canonical fields | answer |
//! |---|---|---|---|
//! | `carrier_label` | `label` | `rma`, `return_id`, `customer`, `order_ref`, `site`, `delivery_key` | `tracking_number`, `label_ref` (required), `expires_at` (RFC 3339), `carrier` |
//! | `carrier_void_label` | `void` (optional; without it a void is a business error `unsupported_action`) | the same and `tracking_number` | none |
//!
//! Ship-from and ship-to. The hub's label action names the customer
//! account (`customer`, the shipment's sender) and the receiving site
//! (`site`), not addresses: the carrier account is expected to know the
//! sites as its return addresses, and the customer's address is what the
//! carrier's return portal or the shop's account holds. Fixed parts (the
//! service, the parcel count, a return address id) go in `static`.
//!
//! The label. `label_ref` is what the hub keeps to show or fetch the label
//! again (the carrier's label id, or a URL if it fits an external
//! reference: letters, digits and `._/:#-`, up to 128 characters, so a URL
//! with a query string does not). `expires_at` is when the label stops
//! being usable, which is what moves an unused return to `expired`; a
//! carrier whose labels do not expire leaves it out, and a label whose
//! answer has no value there (or `null`) has no expiry; a value that is not
//! an RFC 3339 time is refused as an invalid answer. `carrier` in the
//! answer names the carrier per label (an aggregator choosing one);
//! otherwise the `carrier` setting does.
//!
//! Idempotency: the delivery key as `Idempotency-Key` (the carrier must
//! deduplicate on it), or a `label.lookup` that finds the label an earlier
//! attempt created (by the RMA number as the shipment reference).

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

/// Generic REST carrier settings (`[connectors.carrier.rest_carrier]`,
/// kind `rest-carrier`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestCarrierConfig {
    /// The carrier's name on labels (`DHL`), unless the answer names it.
    pub carrier: String,
    /// Environment variable holding the API token; none sends no
    /// credential.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Header the token goes in (default `authorization`).
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Scheme before the token (default `Bearer`); empty sends the token
    /// alone.
    #[serde(default = "default_auth_scheme")]
    pub auth_scheme: String,
    /// Headers sent with every request (an account number).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Where the carrier's error answers hold their code and message.
    #[serde(default)]
    pub errors: ErrorsConfig,
    /// Where the carrier answers health checks (`GET`, default `/health`).
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// The label request.
    pub label: OperationConfig,
    /// The void of a label.
    #[serde(default)]
    pub void: Option<OperationConfig>,
}

/// The sink of `settings`, checked.
pub(crate) fn sink(
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    settings: &RestCarrierConfig,
    env: Env<'_>,
) -> Result<RestSink, String> {
    let carrier =
        ExternalRef::parse(&settings.carrier).map_err(|e| format!("rest_carrier.carrier: {e}"))?;
    let mut answer = answer_paths(
        "rest_carrier.label",
        &settings.label.answer,
        &AnswerFields {
            required: &["tracking_number", "label_ref"],
            optional: &["expires_at", "carrier"],
        },
    )?;
    let mut take = |name: &str| answer.remove(name);
    let outcome = match (take("tracking_number"), take("label_ref")) {
        (Some(tracking_number), Some(label_ref)) => Outcome::Label {
            tracking_number,
            label_ref,
            expires_at: take("expires_at"),
            carrier_at: take("carrier"),
            carrier,
        },
        (None, _) | (_, None) => {
            return Err(
                "rest_carrier.label.answer must name tracking_number and label_ref".to_owned(),
            );
        }
    };
    let mut operations = BTreeMap::new();
    operations.insert(
        ActionKind::CarrierLabel,
        Operation::compile(
            "rest_carrier.label",
            &settings.label,
            &HEADER_FIELDS,
            outcome,
            None,
        )?,
    );
    if let Some(void) = &settings.void {
        let void_fields: Vec<Field> = HEADER_FIELDS
            .into_iter()
            .chain([Field::TrackingNumber])
            .collect();
        answer_paths(
            "rest_carrier.void",
            &void.answer,
            &AnswerFields {
                required: &[],
                optional: &[],
            },
        )?;
        operations.insert(
            ActionKind::CarrierVoidLabel,
            Operation::compile(
                "rest_carrier.void",
                void,
                &void_fields,
                Outcome::Accepted,
                None,
            )?,
        );
    }
    RestSink::new(
        Target::Carrier,
        system,
        transport,
        "REST carrier",
        operations,
        &Connection {
            table: "rest_carrier",
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
