//! Tryton ERP (trytond 8, JSON-RPC): the ERP sink for a real open-source
//! ERP. A return order becomes a *return sale* (negative quantities, its
//! origin the original sale), which makes Tryton create the customer return
//! shipment; the inventory adjustment receives that shipment and sends
//! scrapped units to a scrap location; the credit memo posts the credit
//! note Tryton created from the received goods.
//!
//! Every step is idempotent by looking the hub's reference up before
//! creating anything, and resumable by the document's state: an attempt cut
//! short after any call (timeout, crash, lost answer) is finished by the
//! next attempt with the same delivery key, never done twice.
//! - Return sale: its `reference` is the RMA number.
//! - Return shipment: claimed for one adjustment by writing the delivery key
//!   into its `reference` (a partial receipt shrinks the shipment to what
//!   arrived; Tryton puts the rest on a new shipment).
//! - Credit note: claimed by writing the delivery key into its `reference`
//!   before `post`.
//!
//! Why `invoice_method = fulfillment` on the return sale: Tryton then
//! creates the credit note for the goods actually received, when the
//! return shipment is done, so a partial receipt gets a partial credit note,
//! as the hub's credit memo does. Tryton drafts it at full price; when the
//! hub credits less (restocking fees, replaced units) the flow sets the
//! draft's unit prices to the hub's net prices and lets Tryton recompute
//! the taxes (see `flows::Erp::reconcile` for why), then reads the total
//! again: a credit note that still differs from the hub's memo, or that
//! credits less than it, is never posted; it goes to the exception queue.
//!
//! Master data is resolved by business key, never by id: the customer by
//! party `code`, SKUs by product `code`, the original order by sale
//! `reference` or `number`, locations by `code`.
//!
//! Layout: `rpc` (the protocol), this file (settings and the sink), `flows`
//! (one function per action kind).

mod flows;
pub mod rpc;

use std::collections::BTreeMap;
use std::sync::Arc;

use backhaul_domain::action::Target;
use backhaul_domain::model::Disposition;
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};
use serde::{Deserialize, Serialize};

use crate::http::Transport;
use crate::tryton::rpc::{Client, RpcError};

/// The Tryton settings of an ERP connector (`[connectors.erp.tryton]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrytonSettings {
    /// The database on the server (the `<db>` of `/<db>/rpc/`).
    pub database: String,
    /// The Tryton user the hub works as; it needs the sale, stock and
    /// account rights of a back-office clerk.
    #[serde(default = "default_user")]
    pub user: String,
    /// The environment variable holding that user's password, so config
    /// files can be shared and checked in.
    pub password_env: String,
    /// Location `code` per disposition for units that do not go back into
    /// the warehouse's storage (`scrap = "SCRAP"`). A scrap target must be
    /// a `lost_found` location listed in the warehouse's waste locations:
    /// Tryton refuses anything else. Dispositions not listed are restocked.
    #[serde(default = "default_locations")]
    pub locations: BTreeMap<Disposition, String>,
}

fn default_user() -> String {
    "admin".to_owned()
}

fn default_locations() -> BTreeMap<Disposition, String> {
    BTreeMap::from([(Disposition::Scrap, "SCRAP".to_owned())])
}

/// The ERP sink speaking Tryton's JSON-RPC.
pub struct TrytonSink {
    system: ExternalRef,
    client: Client,
    settings: TrytonSettings,
}

impl TrytonSink {
    /// A sink over `transport` (rooted at the server's URL) with the
    /// password already read.
    pub fn new(
        system: ExternalRef,
        transport: Arc<dyn Transport>,
        settings: TrytonSettings,
        password: &str,
    ) -> TrytonSink {
        let client = Client::new(transport, &settings.database, &settings.user, password);
        TrytonSink {
            system,
            client,
            settings,
        }
    }

    /// The JSON-RPC client this sink uses, for tools and tests that look at
    /// what the ERP holds.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Sink for TrytonSink {
    fn target(&self) -> Target {
        Target::Erp
    }

    fn system(&self) -> &ExternalRef {
        &self.system
    }

    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<backhaul_domain::action::ActionResult, SinkError>> {
        Box::pin(flows::deliver(&self.client, &self.settings, request))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move { self.client.version().await.map(|_| ()).map_err(sink_error) })
    }
}

/// How a protocol failure counts for the dispatcher: one mapping, here.
pub(crate) fn sink_error(error: RpcError) -> SinkError {
    let message = error.to_string();
    match error {
        RpcError::Unreachable(cause) => SinkError::technical(cause.code(), message),
        RpcError::Http {
            status,
            retry_after,
            ..
        } if status == 408 || status == 429 || status >= 500 => SinkError::Technical {
            code: format!("tryton_http_{status}"),
            message,
            status: Some(status),
            retry_after,
        },
        RpcError::Http { status, .. } => SinkError::Business {
            code: format!("tryton_http_{status}"),
            message,
            status: Some(status),
        },
        RpcError::LoginRefused(_) => SinkError::business("tryton_login_refused", message),
        RpcError::User { .. } => SinkError::business("tryton_user_error", message),
        RpcError::Warning { .. } => SinkError::business("tryton_warning", message),
        // Lock timeouts and concurrent updates come back as plain server
        // exceptions; a later attempt usually goes through, and one that
        // never does ends as a dead letter after the retry budget.
        RpcError::Server(_) => SinkError::technical("tryton_server_error", message),
        RpcError::Protocol(_) => SinkError::business("invalid_response", message),
    }
}
