//! One flow per action kind, each a sequence of JSON-RPC calls that starts
//! by finding what an earlier attempt of the same delivery left behind and
//! goes on from the document's state. See the module above for the
//! mapping; `shared/reference/tryton-jsonrpc.md` for the method sequence.

use std::collections::BTreeMap;

use backhaul_domain::action::{Action, ActionKind, ActionResult};
use backhaul_domain::model::Disposition;
use backhaul_domain::values::{Currency, ExternalRef, Money};
use backhaul_engine::{DeliveryRequest, SinkError};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value, json};

use crate::http::wire;
use crate::tryton::TrytonSettings;
use crate::tryton::rpc::{Client, decimal, decimal_of};
use crate::tryton::sink_error;

type Record = Map<String, Value>;

/// Delivers one action.
pub(super) async fn deliver(
    client: &Client,
    settings: &TrytonSettings,
    request: DeliveryRequest<'_>,
) -> Result<ActionResult, SinkError> {
    let erp = Erp { client };
    let action = request.action;
    match action.kind {
        ActionKind::ErpReturnOrder => erp.return_order(action).await,
        ActionKind::ErpInventoryAdjustment => {
            let sale = erp.return_sale(&request).await?;
            erp.receive(settings, &sale, action, request.key).await
        }
        ActionKind::ErpCreditMemo => {
            let sale = erp.return_sale(&request).await?;
            erp.credit_note(&sale, action, request.key).await
        }
        ActionKind::ErpCancelReturnOrder => {
            let sale = erp.return_sale(&request).await?;
            erp.cancel(&sale).await
        }
        ActionKind::ErpSupplierClaim
        | ActionKind::ErpRepairOrder
        | ActionKind::ErpReplacementOrder
        | ActionKind::WmsExpectedReceipt
        | ActionKind::WmsCancelExpectedReceipt
        | ActionKind::CarrierLabel
        | ActionKind::CarrierVoidLabel
        | ActionKind::PortalStatus
        | ActionKind::EdiRmaNotification => Err(SinkError::business(
            "unsupported_action",
            format!(
                "the Tryton connector does not handle {} (Tryton's standard modules have no such document)",
                action.kind.as_str()
            ),
        )),
    }
}

/// The calls the flows share, with errors already sorted for the
/// dispatcher.
struct Erp<'a> {
    client: &'a Client,
}

fn id_of(record: &Record) -> Result<i64, SinkError> {
    record
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid(format!("a record without an id: {record:?}")))
}

fn int(record: &Record, field: &str) -> Option<i64> {
    record.get(field).and_then(Value::as_i64)
}

fn text<'r>(record: &'r Record, field: &str) -> &'r str {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn ids(record: &Record, field: &str) -> Vec<i64> {
    record
        .get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

fn quantity(record: &Record) -> Decimal {
    record
        .get("quantity")
        .and_then(decimal_of)
        .unwrap_or_default()
        .normalize()
}

fn invalid(message: String) -> SinkError {
    SinkError::business("invalid_response", message)
}

fn float(q: Decimal) -> Value {
    // Tryton keeps quantities as floats; the hub's are exact decimals of at
    // most six places, which a float carries exactly enough for Tryton's
    // rounding to the unit's digits.
    json!(q.to_f64().unwrap_or_default())
}

impl Erp<'_> {
    async fn call(&self, model: &str, method: &str, args: Vec<Value>) -> Result<Value, SinkError> {
        self.client
            .call(model, method, args, None)
            .await
            .map_err(sink_error)
    }

    async fn search_read(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
    ) -> Result<Vec<Record>, SinkError> {
        let answer = self
            .call(
                model,
                "search_read",
                vec![
                    domain,
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                    json!(fields),
                ],
            )
            .await?;
        let Value::Array(rows) = answer else {
            return Err(invalid(format!("{model}.search_read answered {answer}")));
        };
        rows.into_iter()
            .map(|r| match r {
                Value::Object(m) => Ok(m),
                other => Err(invalid(format!("{model}.search_read row {other}"))),
            })
            .collect()
    }

    async fn read_one(&self, model: &str, id: i64, fields: &[&str]) -> Result<Record, SinkError> {
        self.search_read(model, json!([["id", "=", id]]), fields)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| invalid(format!("{model} {id} is gone")))
    }

    async fn create(&self, model: &str, values: Value) -> Result<i64, SinkError> {
        let answer = self.call(model, "create", vec![json!([values])]).await?;
        answer
            .get(0)
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid(format!("{model}.create answered {answer}")))
    }

    async fn write(&self, model: &str, ids: &[i64], values: Value) -> Result<(), SinkError> {
        self.call(model, "write", vec![json!(ids), values]).await?;
        Ok(())
    }

    /// A workflow button (`quote`, `confirm`, `receive`, `post`…).
    async fn button(&self, model: &str, method: &str, ids: &[i64]) -> Result<(), SinkError> {
        self.call(model, method, vec![json!(ids)]).await?;
        Ok(())
    }

    /// The one record of `model` matching `domain`, if any; two are a
    /// business error (someone made a copy by hand) because picking one
    /// could post twice.
    async fn unique(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        what: &str,
    ) -> Result<Option<Record>, SinkError> {
        let mut found = self.search_read(model, domain, fields).await?;
        if found.len() > 1 {
            return Err(SinkError::business(
                "ambiguous_document",
                format!("Tryton holds {} {what}; expected one", found.len()),
            ));
        }
        Ok(found.pop())
    }

    async fn product_ids(&self, action: &Action) -> Result<BTreeMap<String, i64>, SinkError> {
        let skus: Vec<&str> = action.lines.iter().map(|l| l.sku.as_str()).collect();
        let found = self
            .search_read(
                "product.product",
                json!([["code", "in", skus]]),
                &["id", "code"],
            )
            .await?;
        let mut out = BTreeMap::new();
        for p in &found {
            out.insert(text(p, "code").to_owned(), id_of(p)?);
        }
        if let Some(missing) = skus.iter().find(|s| !out.contains_key(**s)) {
            return Err(SinkError::business(
                "unknown_sku",
                format!("Tryton has no product with code `{missing}`"),
            ));
        }
        Ok(out)
    }

    async fn location(&self, code: &str) -> Result<i64, SinkError> {
        let found = self
            .unique(
                "stock.location",
                json!([["code", "=", code]]),
                &["id"],
                &format!("locations with code `{code}`"),
            )
            .await?
            .ok_or_else(|| {
                SinkError::business(
                    "unknown_location",
                    format!("Tryton has no location with code `{code}` (see the connector's `locations`)"),
                )
            })?;
        id_of(&found)
    }

    // -- return order ------------------------------------------------------

    /// The return sale of `rma`, created if no earlier attempt did, then
    /// quoted and confirmed.
    async fn return_order(&self, action: &Action) -> Result<ActionResult, SinkError> {
        let existing = self
            .unique(
                "sale.sale",
                json!([["reference", "=", action.rma_number]]),
                &["id"],
                &format!("sales with reference {}", action.rma_number),
            )
            .await?;
        let id = match existing {
            Some(sale) => id_of(&sale)?,
            None => self.create_return_sale(action).await?,
        };
        self.confirm(id).await
    }

    async fn create_return_sale(&self, action: &Action) -> Result<i64, SinkError> {
        let order = action.order_ref.as_str();
        let original = self
            .unique(
                "sale.sale",
                json!(["OR", ["reference", "=", order], ["number", "=", order]]),
                &[
                    "id",
                    "state",
                    "party",
                    "invoice_address",
                    "shipment_address",
                    "payment_term",
                    "warehouse",
                    "currency",
                ],
                &format!("sales with reference or number {order}"),
            )
            .await?
            .ok_or_else(|| {
                SinkError::business(
                    "order_not_found",
                    format!("Tryton has no sale with reference or number `{order}`"),
                )
            })?;
        if !matches!(text(&original, "state"), "processing" | "done") {
            return Err(SinkError::business(
                "order_not_shipped",
                format!(
                    "sale `{order}` is {} in Tryton: nothing was shipped to return",
                    text(&original, "state")
                ),
            ));
        }
        let party = self
            .read_one(
                "party.party",
                int(&original, "party").unwrap_or_default(),
                &["code"],
            )
            .await?;
        if text(&party, "code") != action.customer.as_str() {
            return Err(SinkError::business(
                "customer_mismatch",
                format!(
                    "sale `{order}` belongs to party `{}` in Tryton, the return to `{}`",
                    text(&party, "code"),
                    action.customer
                ),
            ));
        }
        let currency = self
            .read_one(
                "currency.currency",
                int(&original, "currency").unwrap_or_default(),
                &["code"],
            )
            .await?;
        if let Some(price) = action.lines.iter().find_map(|l| l.unit_price)
            && text(&currency, "code") != price.currency().to_string()
        {
            return Err(SinkError::business(
                "currency_mismatch",
                format!(
                    "sale `{order}` is in {} in Tryton, the return in {}",
                    text(&currency, "code"),
                    price.currency()
                ),
            ));
        }
        let products = self.product_ids(action).await?;
        let sold = self
            .search_read(
                "sale.line",
                json!([["sale", "=", id_of(&original)?], ["type", "=", "line"]]),
                &["id", "product", "quantity", "unit", "taxes"],
            )
            .await?;
        let mut lines = Vec::new();
        for line in &action.lines {
            let product = products[line.sku.as_str()];
            let matching: Vec<&Record> = sold
                .iter()
                .filter(|s| int(s, "product") == Some(product))
                .collect();
            let Some(first) = matching.first() else {
                return Err(SinkError::business(
                    "sku_not_on_order",
                    format!("sale `{order}` has no line for {} in Tryton", line.sku),
                ));
            };
            let sold_quantity: Decimal = matching.iter().map(|s| quantity(s)).sum();
            if line.quantity.get() > sold_quantity {
                return Err(SinkError::business(
                    "quantity_exceeds_order",
                    format!(
                        "{} × {} returned, {sold_quantity} sold on `{order}` in Tryton",
                        line.quantity.get(),
                        line.sku
                    ),
                ));
            }
            let price = line.unit_price.ok_or_else(|| {
                SinkError::business(
                    "price_missing",
                    format!(
                        "line {} of the return order has no unit price",
                        line.line_no
                    ),
                )
            })?;
            lines.push(json!({
                "type": "line",
                "product": product,
                "quantity": float(-line.quantity.get()),
                "unit": first.get("unit"),
                // The hub's price, not the original's: the credit follows
                // the hub's decision, and a difference shows on the return.
                "unit_price": decimal(price.amount()),
                "taxes": [["add", first.get("taxes").cloned().unwrap_or_else(|| json!([]))]],
            }));
        }
        let mut values = json!({
            "party": original.get("party"),
            "invoice_address": original.get("invoice_address"),
            "shipment_address": original.get("shipment_address"),
            "warehouse": original.get("warehouse"),
            "currency": original.get("currency"),
            "invoice_method": "fulfillment",
            "shipment_method": "order",
            "origin": format!("sale.sale,{}", id_of(&original)?),
            "reference": action.rma_number,
            "description": format!("Return {} of {order}", action.rma_number),
            "lines": [["create", lines]],
        });
        if let Some(term) = original.get("payment_term").filter(|t| !t.is_null()) {
            values["payment_term"] = term.clone();
        }
        self.create("sale.sale", values).await
    }

    /// Moves the return sale on to `processing` from wherever an earlier
    /// attempt left it.
    async fn confirm(&self, id: i64) -> Result<ActionResult, SinkError> {
        // Each turn makes one transition; three reach `processing`.
        for _ in 0..4 {
            let sale = self.read_one("sale.sale", id, &["number", "state"]).await?;
            match text(&sale, "state") {
                "draft" => self.button("sale.sale", "quote", &[id]).await?,
                "quotation" => self.button("sale.sale", "confirm", &[id]).await?,
                "processing" | "done" => return document(&sale, None),
                // `confirm` queues `process`, which runs inline when no
                // worker is configured; a failure there is swallowed by
                // Tryton, so a sale left `confirmed` is reported, and the
                // next attempt looks again (a worker may still run it).
                "confirmed" => {
                    return Err(SinkError::technical(
                        "not_processed",
                        format!(
                            "return sale {} is confirmed but Tryton has not processed it (see the server log and ir.error)",
                            text(&sale, "number")
                        ),
                    ));
                }
                state => {
                    return Err(SinkError::business(
                        "return_order_state",
                        format!("return sale {} is {state} in Tryton", text(&sale, "number")),
                    ));
                }
            }
        }
        Err(invalid(format!(
            "return sale {id} did not reach processing"
        )))
    }

    /// The return sale the return order delivery created.
    async fn return_sale(&self, request: &DeliveryRequest<'_>) -> Result<Record, SinkError> {
        let number = wire::prerequisite(request, ActionKind::ErpReturnOrder)?;
        self.unique(
            "sale.sale",
            json!([["number", "=", number.as_str()]]),
            &["id", "number", "state", "shipment_returns", "invoices"],
            &format!("sales numbered {number}"),
        )
        .await?
        .ok_or_else(|| {
            SinkError::business(
                "return_order_missing",
                format!("Tryton has no sale numbered {number}"),
            )
        })
    }

    // -- inventory adjustment -----------------------------------------------

    /// Receives the units of `action` on one return shipment and sends each
    /// to the location its disposition calls for.
    async fn receive(
        &self,
        settings: &TrytonSettings,
        sale: &Record,
        action: &Action,
        key: &str,
    ) -> Result<ActionResult, SinkError> {
        let products = self.product_ids(action).await?;
        let mut wanted: BTreeMap<i64, Decimal> = BTreeMap::new();
        for line in &action.lines {
            *wanted.entry(products[line.sku.as_str()]).or_default() += line.quantity.get();
        }
        let fields = [
            "id",
            "number",
            "state",
            "reference",
            "warehouse",
            "incoming_moves",
            "inventory_moves",
        ];
        let shipments = self
            .search_read(
                "stock.shipment.out.return",
                json!([["id", "in", ids(sale, "shipment_returns")]]),
                &fields,
            )
            .await?;
        let shipment_id = match shipments.iter().find(|s| text(s, "reference") == key) {
            Some(mine) => id_of(mine)?,
            None => {
                let open = shipments
                    .iter()
                    .find(|s| text(s, "state") == "draft" && text(s, "reference").is_empty())
                    .ok_or_else(|| {
                        SinkError::business(
                            "no_open_return_shipment",
                            format!(
                                "return sale {} has no return shipment waiting for goods",
                                text(sale, "number")
                            ),
                        )
                    })?;
                self.fit_shipment(open, &wanted).await?;
                let id = id_of(open)?;
                self.write(
                    "stock.shipment.out.return",
                    &[id],
                    json!({"reference": key}),
                )
                .await?;
                id
            }
        };
        for _ in 0..3 {
            let shipment = self
                .read_one("stock.shipment.out.return", shipment_id, &fields)
                .await?;
            match text(&shipment, "state") {
                "draft" => {
                    self.button("stock.shipment.out.return", "receive", &[shipment_id])
                        .await?;
                }
                "received" => {
                    self.route(settings, &shipment, action, &products).await?;
                    self.button("stock.shipment.out.return", "do", &[shipment_id])
                        .await?;
                }
                "done" => return document(&shipment, None),
                state => {
                    return Err(SinkError::business(
                        "return_shipment_state",
                        format!(
                            "return shipment {} is {state} in Tryton",
                            text(&shipment, "number")
                        ),
                    ));
                }
            }
        }
        Err(invalid(format!(
            "return shipment {shipment_id} did not reach done"
        )))
    }

    /// Makes a draft return shipment expect exactly the units that
    /// arrived: fewer than authorised shrinks its moves (Tryton puts the
    /// rest on a new shipment when this one is done); units of a product
    /// that did not arrive leave it. Writing the same quantities again is
    /// harmless, so a retry after a cut-short attempt converges.
    async fn fit_shipment(
        &self,
        shipment: &Record,
        wanted: &BTreeMap<i64, Decimal>,
    ) -> Result<(), SinkError> {
        let moves = self
            .search_read(
                "stock.move",
                json!([["id", "in", ids(shipment, "incoming_moves")]]),
                &["id", "product", "quantity"],
            )
            .await?;
        let mut by_product: BTreeMap<i64, Vec<&Record>> = BTreeMap::new();
        for m in &moves {
            by_product
                .entry(int(m, "product").unwrap_or_default())
                .or_default()
                .push(m);
        }
        for (product, want) in wanted {
            let have: Decimal = by_product
                .get(product)
                .map(|ms| ms.iter().map(|m| quantity(m)).sum())
                .unwrap_or_default();
            if *want > have {
                return Err(SinkError::business(
                    "over_receipt",
                    format!(
                        "{want} units of product {product} arrived, return shipment {} expects {have}",
                        text(shipment, "number")
                    ),
                ));
            }
        }
        let mut delete = Vec::new();
        for (product, ms) in &by_product {
            let mut left = wanted.get(product).copied().unwrap_or_default();
            for m in ms {
                let take = quantity(m).min(left);
                left -= take;
                if take.is_zero() {
                    delete.push(id_of(m)?);
                } else if take != quantity(m) {
                    self.write("stock.move", &[id_of(m)?], json!({"quantity": float(take)}))
                        .await?;
                }
            }
        }
        if !delete.is_empty() {
            self.call("stock.move", "delete", vec![json!(delete)])
                .await?;
        }
        Ok(())
    }

    /// Sets the received shipment's inventory moves so that each product's
    /// units go where their dispositions say: the storage location for
    /// restocked units, the configured location for the others. The target
    /// is computed from the shipment's incoming moves and the action alone,
    /// so running this again after a cut-short attempt converges on the
    /// same moves.
    async fn route(
        &self,
        settings: &TrytonSettings,
        shipment: &Record,
        action: &Action,
        products: &BTreeMap<String, i64>,
    ) -> Result<(), SinkError> {
        let warehouse = self
            .read_one(
                "stock.location",
                int(shipment, "warehouse").unwrap_or_default(),
                &["storage_location", "waste_locations"],
            )
            .await?;
        let storage = int(&warehouse, "storage_location")
            .ok_or_else(|| invalid("the warehouse has no storage location".to_owned()))?;
        let waste = ids(&warehouse, "waste_locations");
        // Units per product and target location, from the dispositions.
        let mut routed: BTreeMap<i64, BTreeMap<i64, Decimal>> = BTreeMap::new();
        for line in &action.lines {
            let code = line
                .disposition
                .and_then(|d| settings.locations.get(&d))
                .filter(|_| line.disposition != Some(Disposition::Restock));
            if let Some(code) = code {
                let location = self.location(code).await?;
                self.check_target(location, code, storage, &waste).await?;
                *routed
                    .entry(products[line.sku.as_str()])
                    .or_default()
                    .entry(location)
                    .or_default() += line.quantity.get();
            }
        }
        let incoming = self
            .search_read(
                "stock.move",
                json!([["id", "in", ids(shipment, "incoming_moves")]]),
                &["id", "product", "quantity"],
            )
            .await?;
        let inventory = self
            .search_read(
                "stock.move",
                json!([
                    ["id", "in", ids(shipment, "inventory_moves")],
                    ["state", "=", "draft"]
                ]),
                &["id", "product", "quantity", "to_location"],
            )
            .await?;
        let mut received: BTreeMap<i64, Decimal> = BTreeMap::new();
        for m in &incoming {
            *received
                .entry(int(m, "product").unwrap_or_default())
                .or_default() += quantity(m);
        }
        let shipment_ref = format!("stock.shipment.out.return,{}", id_of(shipment)?);
        for (product, total) in received {
            let elsewhere = routed.remove(&product).unwrap_or_default();
            let to_storage = total - elsewhere.values().copied().sum::<Decimal>();
            let mut buckets: Vec<(i64, Decimal)> = Vec::new();
            if !to_storage.is_zero() {
                buckets.push((storage, to_storage));
            }
            buckets.extend(elsewhere);
            let moves: Vec<&Record> = inventory
                .iter()
                .filter(|m| int(m, "product") == Some(product))
                .collect();
            let Some(template) = moves.first() else {
                return Err(invalid(format!(
                    "received shipment {} has no inventory move for product {product}",
                    text(shipment, "number")
                )));
            };
            let template = id_of(template)?;
            for (i, (location, qty)) in buckets.iter().enumerate() {
                let values = json!({"quantity": float(*qty), "to_location": location});
                match moves.get(i) {
                    Some(m) if int(m, "to_location") == Some(*location) && quantity(m) == *qty => {}
                    Some(m) => self.write("stock.move", &[id_of(m)?], values).await?,
                    None => {
                        let mut defaults = values;
                        defaults["shipment"] = json!(shipment_ref);
                        self.call("stock.move", "copy", vec![json!([template]), defaults])
                            .await?;
                    }
                }
            }
            let extra: Vec<i64> = moves
                .iter()
                .skip(buckets.len())
                .map(|m| id_of(m))
                .collect::<Result<_, _>>()?;
            if !extra.is_empty() {
                self.call("stock.move", "delete", vec![json!(extra)])
                    .await?;
            }
        }
        Ok(())
    }

    /// Tryton's client allows a return's units only into the warehouse's
    /// storage (or below it) or one of its waste locations; the server does
    /// not check, so the connector does, before anything is moved.
    async fn check_target(
        &self,
        location: i64,
        code: &str,
        storage: i64,
        waste: &[i64],
    ) -> Result<(), SinkError> {
        if waste.contains(&location) {
            return Ok(());
        }
        let below_storage = self
            .search_read(
                "stock.location",
                json!([["id", "=", location], ["parent", "child_of", [storage]]]),
                &["id"],
            )
            .await?;
        if below_storage.is_empty() {
            return Err(SinkError::business(
                "location_not_allowed",
                format!(
                    "location `{code}` is neither in the warehouse's storage nor one of its waste locations in Tryton"
                ),
            ));
        }
        Ok(())
    }

    // -- credit memo --------------------------------------------------------

    /// Posts the credit note Tryton made for the received goods, after
    /// making it credit exactly what the hub decided (see `reconcile`).
    async fn credit_note(
        &self,
        sale: &Record,
        action: &Action,
        key: &str,
    ) -> Result<ActionResult, SinkError> {
        let hub = HubCredit::of(action)?;
        let fields = ["id", "number", "state", "reference", "total_amount", "type"];
        let invoices = self
            .search_read(
                "account.invoice",
                json!([["id", "in", ids(sale, "invoices")]]),
                &fields,
            )
            .await?;
        let id = match invoices.iter().find(|i| text(i, "reference") == key) {
            Some(mine) => id_of(mine)?,
            None => {
                let open = invoices
                    .iter()
                    .find(|i| text(i, "state") == "draft" && text(i, "reference").is_empty())
                    .ok_or_else(|| {
                        // Tryton makes it when the return shipment is done;
                        // a queue worker may not have run yet.
                        SinkError::technical(
                            "credit_note_not_ready",
                            format!(
                                "return sale {} has no draft credit note yet",
                                text(sale, "number")
                            ),
                        )
                    })?;
                // A credit note crediting less than the hub is never
                // raised, and is refused before it is claimed, so it stays
                // as Tryton made it.
                let credited = credited(open);
                if credited < hub.total {
                    return Err(hub.mismatch(sale, credited, "not posted"));
                }
                let id = id_of(open)?;
                self.write("account.invoice", &[id], json!({"reference": key}))
                    .await?;
                id
            }
        };
        let mut invoice = self.read_one("account.invoice", id, &fields).await?;
        if text(&invoice, "state") == "draft" {
            self.reconcile(sale, &invoice, &hub).await?;
            invoice = self.read_one("account.invoice", id, &fields).await?;
        }
        if matches!(text(&invoice, "state"), "draft" | "validated") {
            // `reconcile` checked a draft already; a note someone validated
            // by hand can no longer be adjusted and is only compared.
            let credited = credited(&invoice);
            if credited != hub.total {
                return Err(hub.mismatch(sale, credited, "not posted"));
            }
            self.button("account.invoice", "post", &[id]).await?;
            invoice = self.read_one("account.invoice", id, &fields).await?;
        }
        match text(&invoice, "state") {
            "posted" | "paid" => {
                let amount = Money::new(credited(&invoice), hub.currency)
                    .map_err(|e| invalid(format!("credit note total: {e}")))?;
                document(&invoice, Some(amount))
            }
            state => Err(SinkError::business(
                "credit_note_state",
                format!("credit note {id} is {state} in Tryton"),
            )),
        }
    }

    /// Makes a claimed draft credit note credit what the hub decided when
    /// Tryton's credits more (restocking fees kept, replaced units credited
    /// at nothing): each line's unit price becomes the hub's net unit price
    /// for its SKU, and Tryton recomputes the taxes, then the total is read
    /// again and must equal the hub's to the cent.
    ///
    /// Why unit prices rather than a fee line: the hub's credit is "price
    /// less fees, tax in proportion", which is exactly a lower net price
    /// taxed by Tryton's own taxes, so the tax credited comes out as the
    /// hub's without the connector splitting a fee into net and tax; a
    /// replaced unit is simply credited at a price of nothing; and it needs
    /// no fee product or account in every customer's Tryton. Writing the
    /// same prices twice is harmless, so a retry after a lost answer
    /// converges without looking anything up. The lines are written through
    /// `account.invoice.write`, as the Tryton client does, because only the
    /// invoice's own write recomputes the taxes of a draft (`update_taxes`
    /// in `on_modification`); `post` would refuse stale taxes.
    async fn reconcile(
        &self,
        sale: &Record,
        invoice: &Record,
        hub: &HubCredit,
    ) -> Result<(), SinkError> {
        let id = id_of(invoice)?;
        let before = credited(invoice);
        if before == hub.total {
            return Ok(());
        }
        let refuse = |what: String| hub.mismatch(sale, before, &what);
        let lines = self
            .search_read(
                "account.invoice.line",
                json!([["invoice", "=", id], ["type", "=", "line"]]),
                &["id", "product", "quantity", "unit_price", "taxes", "origin"],
            )
            .await?;
        let products: Vec<i64> = lines.iter().filter_map(|l| int(l, "product")).collect();
        let codes: BTreeMap<i64, String> = self
            .search_read(
                "product.product",
                json!([["id", "in", products]]),
                &["id", "code"],
            )
            .await?
            .iter()
            .map(|p| Ok((id_of(p)?, text(p, "code").to_owned())))
            .collect::<Result<_, SinkError>>()?;
        let mut by_sku: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for line in &lines {
            let code = int(line, "product")
                .and_then(|p| codes.get(&p))
                .ok_or_else(|| refuse("a line has no product the hub knows; not posted".into()))?;
            by_sku.entry(code.as_str()).or_default().push(line);
        }
        let units: BTreeMap<&str, Decimal> = by_sku
            .iter()
            .map(|(sku, ls)| (*sku, ls.iter().map(|l| quantity(l).abs()).sum()))
            .collect();
        let hub_units: BTreeMap<&str, Decimal> = hub
            .by_sku
            .iter()
            .map(|(sku, (q, _))| (sku.as_str(), *q))
            .collect();
        if units != hub_units {
            return Err(refuse(format!(
                "its units per SKU are {units:?}, the hub's {hub_units:?}, so it cannot be adjusted; not posted"
            )));
        }
        let rates = self.tax_rates(&lines).await?.map_err(&refuse)?;
        // Never above the return sale's price: the adjustment only lowers
        // what Tryton credits.
        let sale_lines: Vec<i64> = lines
            .iter()
            .filter_map(|l| text(l, "origin").strip_prefix("sale.line,")?.parse().ok())
            .collect();
        let sold_at: BTreeMap<i64, Decimal> = self
            .search_read(
                "sale.line",
                json!([["id", "in", sale_lines]]),
                &["id", "unit_price"],
            )
            .await?
            .iter()
            .map(|l| Ok((id_of(l)?, unit_price(l))))
            .collect::<Result<_, SinkError>>()?;
        let digits = self.price_digits().await?;
        let minor = hub.currency.minor_units();
        let mut writes = Vec::new();
        let mut tried = Vec::new();
        for (sku, ls) in &by_sku {
            let (units, amount) = hub.by_sku[*sku];
            let taxes = ids(ls[0], "taxes");
            if ls.iter().any(|l| ids(l, "taxes") != taxes) {
                return Err(refuse(format!(
                    "its lines for {sku} carry different taxes, which one net price cannot express; not posted"
                )));
            }
            // A tax Tryton did not return (made inactive since the sale)
            // cannot be reckoned.
            let taxes: Vec<TaxRate> = taxes
                .iter()
                .map(|t| {
                    rates.get(t).copied().ok_or_else(|| {
                        refuse(format!(
                            "tax {t} on its lines for {sku} cannot be read; not posted"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            let price = net_unit_price(amount, units, &taxes, minor, digits).ok_or_else(|| {
                refuse(format!(
                    "{sku}: the hub's {amount} for {units} units is less than the line's fixed taxes; not posted"
                ))
            })?;
            let ceiling = ls
                .iter()
                .map(|l| {
                    text(l, "origin")
                        .strip_prefix("sale.line,")
                        .and_then(|s| s.parse().ok())
                        .and_then(|s: i64| sold_at.get(&s).copied())
                        .unwrap_or_else(|| unit_price(l))
                })
                .min()
                .unwrap_or_default();
            if price > ceiling {
                return Err(refuse(format!(
                    "the hub credits {sku} at a net {price} a unit, Tryton's return sale at {ceiling}; never raised, not posted"
                )));
            }
            tried.push(format!("{sku} at {price}"));
            let stale: Vec<i64> = ls
                .iter()
                .filter(|l| unit_price(l) != price)
                .map(|l| id_of(l))
                .collect::<Result<_, _>>()?;
            if !stale.is_empty() {
                writes.push(json!(["write", stale, {"unit_price": decimal(price)}]));
            }
        }
        if !writes.is_empty() {
            // One write, so one transaction: all lines or none.
            self.write("account.invoice", &[id], json!({"lines": writes}))
                .await?;
        }
        let after = self
            .read_one("account.invoice", id, &["total_amount"])
            .await?;
        let now = credited(&after);
        if now != hub.total {
            return Err(hub.mismatch(
                sale,
                now,
                &format!(
                    "after setting the net unit prices {} (Tryton's taxes recomputed) it still differs; not posted",
                    tried.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The rate of each tax on `lines`, or why the connector cannot express
    /// it as a net price: only flat percentage and fixed taxes are
    /// reckoned (a parent tax with children, or one that updates the unit
    /// price for the next, is left to a person).
    async fn tax_rates(
        &self,
        lines: &[Record],
    ) -> Result<Result<BTreeMap<i64, TaxRate>, String>, SinkError> {
        let all: Vec<i64> = lines.iter().flat_map(|l| ids(l, "taxes")).collect();
        let taxes = self
            .search_read(
                "account.tax",
                json!([["id", "in", all]]),
                &[
                    "id",
                    "name",
                    "type",
                    "rate",
                    "amount",
                    "childs",
                    "update_unit_price",
                ],
            )
            .await?;
        let mut out = BTreeMap::new();
        for t in &taxes {
            let name = text(t, "name");
            let flat = ids(t, "childs").is_empty()
                && !t
                    .get("update_unit_price")
                    .and_then(Value::as_bool)
                    .unwrap_or_default();
            let number = |f: &str| t.get(f).and_then(decimal_of).unwrap_or_default();
            let rate = match text(t, "type") {
                "percentage" if flat => TaxRate::Percentage(number("rate")),
                "fixed" if flat => TaxRate::Fixed(number("amount")),
                kind => {
                    return Ok(Err(format!(
                        "tax `{name}` ({kind}, with children or updating the unit price) cannot be expressed as a net price; not adjusted, not posted"
                    )));
                }
            };
            out.insert(id_of(t)?, rate);
        }
        Ok(Ok(out))
    }

    /// The decimal places of an invoice line's unit price (trytond's
    /// `[product] price_decimal`, 4 unless configured otherwise).
    async fn price_digits(&self) -> Result<u32, SinkError> {
        let answer = self
            .call(
                "account.invoice.line",
                "fields_get",
                vec![json!(["unit_price"])],
            )
            .await?;
        Ok(answer
            .pointer("/unit_price/digits/1")
            .and_then(Value::as_u64)
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(4))
    }

    // -- cancellation -------------------------------------------------------

    /// Cancels the return sale, or its return shipments when it is already
    /// confirmed; refused once goods were received.
    async fn cancel(&self, sale: &Record) -> Result<ActionResult, SinkError> {
        let id = id_of(sale)?;
        match text(sale, "state") {
            "cancelled" => return Ok(ActionResult::Accepted),
            "draft" | "quotation" => {
                self.button("sale.sale", "cancel", &[id]).await?;
                return Ok(ActionResult::Accepted);
            }
            _ => {}
        }
        let shipments = self
            .search_read(
                "stock.shipment.out.return",
                json!([["id", "in", ids(sale, "shipment_returns")]]),
                &["id", "number", "state"],
            )
            .await?;
        if let Some(received) = shipments
            .iter()
            .find(|s| !matches!(text(s, "state"), "draft" | "cancelled"))
        {
            return Err(SinkError::business(
                "goods_received",
                format!(
                    "return shipment {} is {} in Tryton: received goods cannot be cancelled",
                    text(received, "number"),
                    text(received, "state")
                ),
            ));
        }
        let drafts: Vec<i64> = shipments
            .iter()
            .filter(|s| text(s, "state") == "draft")
            .map(id_of)
            .collect::<Result<_, _>>()?;
        if !drafts.is_empty() {
            self.button("stock.shipment.out.return", "cancel", &drafts)
                .await?;
        }
        Ok(ActionResult::Accepted)
    }
}

/// A document result from a record's `number`.
fn document(record: &Record, amount: Option<Money>) -> Result<ActionResult, SinkError> {
    let number = text(record, "number");
    Ok(ActionResult::Document {
        number: ExternalRef::parse(number)
            .map_err(|e| invalid(format!("Tryton number `{number}`: {e}")))?,
        amount,
    })
}

/// What an invoice credits: Tryton keeps a credit note's total negative.
fn credited(invoice: &Record) -> Decimal {
    -invoice
        .get("total_amount")
        .and_then(decimal_of)
        .unwrap_or_default()
}

fn unit_price(record: &Record) -> Decimal {
    record
        .get("unit_price")
        .and_then(decimal_of)
        .unwrap_or_default()
        .normalize()
}

/// What the hub credits on a credit memo, in total and per SKU (units and
/// amount, tax included). Lines of one SKU are summed: Tryton's credit
/// note has a line per return sale line, matched to the hub's by product,
/// and lines of one product get one net price.
struct HubCredit {
    currency: Currency,
    total: Decimal,
    by_sku: BTreeMap<String, (Decimal, Decimal)>,
}

impl HubCredit {
    fn of(action: &Action) -> Result<HubCredit, SinkError> {
        let missing = || SinkError::business("amount_missing", "a credit memo without amounts");
        let currency = action
            .lines
            .iter()
            .find_map(|l| l.amount)
            .map(|m| m.currency())
            .ok_or_else(missing)?;
        let mut by_sku: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
        for line in &action.lines {
            let amount = line.amount.ok_or_else(missing)?;
            let entry = by_sku.entry(line.sku.as_str().to_owned()).or_default();
            entry.0 += line.quantity.get();
            entry.1 += amount.amount();
        }
        Ok(HubCredit {
            currency,
            total: by_sku.values().map(|(_, a)| *a).sum(),
            by_sku,
        })
    }

    fn mismatch(&self, sale: &Record, credited: Decimal, what: &str) -> SinkError {
        let currency = self.currency;
        SinkError::business(
            "amount_mismatch",
            format!(
                "Tryton's credit note for return sale {} credits {credited} {currency}, the hub {} {currency}; {what}",
                text(sale, "number"),
                self.total
            ),
        )
    }
}

/// A tax as Tryton computes it on one unit (`account.tax._process_tax`).
#[derive(Debug, Clone, Copy)]
enum TaxRate {
    /// `rate` × the unit price.
    Percentage(Decimal),
    /// `amount` per unit, whatever the price.
    Fixed(Decimal),
}

/// The net unit price at which `units` units with `taxes` come to `gross`
/// (tax included) once Tryton rounds each tax to the currency (half to
/// even, as `currency.round`), or `None` when fixed taxes alone exceed it.
/// The net is the gross less the fixed taxes over one plus the rates; when
/// that rounds a cent off, the neighbouring cents are tried; a gross no net
/// reaches is left for the caller's re-read to catch.
fn net_unit_price(
    gross: Decimal,
    units: Decimal,
    taxes: &[TaxRate],
    minor: u32,
    digits: u32,
) -> Option<Decimal> {
    if units.is_zero() {
        return None;
    }
    let round = |d: Decimal| d.round_dp_with_strategy(minor, RoundingStrategy::MidpointNearestEven);
    let tax = |net: Decimal, t: &TaxRate| match t {
        TaxRate::Percentage(rate) => net * rate,
        TaxRate::Fixed(amount) => units * amount,
    };
    let with_taxes = |net: Decimal| net + taxes.iter().map(|t| round(tax(net, t))).sum::<Decimal>();
    let rate: Decimal = taxes
        .iter()
        .map(|t| match t {
            TaxRate::Percentage(rate) => *rate,
            TaxRate::Fixed(_) => Decimal::ZERO,
        })
        .sum();
    let fixed: Decimal = taxes.iter().map(|t| round(tax(Decimal::ZERO, t))).sum();
    let first = round((gross - fixed) / (Decimal::ONE + rate));
    if first.is_sign_negative() {
        return None;
    }
    let cent = Decimal::new(1, minor);
    let net = [first, first - cent, first + cent]
        .into_iter()
        .filter(|n| !n.is_sign_negative())
        .find(|n| with_taxes(*n) == gross)
        .unwrap_or(first);
    Some(
        (net / units)
            .round_dp_with_strategy(digits, RoundingStrategy::MidpointNearestEven)
            .normalize(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn the_net_unit_price_comes_to_the_hub_s_gross_under_tryton_s_rounding() {
        let vat = [TaxRate::Percentage(dec("0.10"))];
        // 2 × 25.00 less 2 × 3.75 of fees, with 15% of the tax kept.
        assert_eq!(
            net_unit_price(dec("46.75"), dec("2"), &vat, 2, 4),
            Some(dec("21.25"))
        );
        // A replaced unit: nothing.
        assert_eq!(
            net_unit_price(dec("0"), dec("1"), &vat, 2, 4),
            Some(dec("0"))
        );
        // Tryton rounds the tax 1.005 half to even, to 1.00.
        assert_eq!(
            net_unit_price(dec("11.05"), dec("1"), &vat, 2, 4),
            Some(dec("10.05"))
        );
        // No net reaches 11.16 (10.14 → 11.15, 10.15 → 11.17): the nearest
        // is returned and the caller's re-read refuses it.
        assert_eq!(
            net_unit_price(dec("11.16"), dec("1"), &vat, 2, 4),
            Some(dec("10.15"))
        );
        // A net that does not divide into cents per unit keeps 4 places.
        assert_eq!(
            net_unit_price(dec("11.00"), dec("3"), &vat, 2, 4),
            Some(dec("3.3333"))
        );
        // A fixed tax larger than the credit: no price reaches it.
        let eco = [TaxRate::Fixed(dec("2.00"))];
        assert_eq!(net_unit_price(dec("1.00"), dec("1"), &eco, 2, 4), None);
        assert_eq!(
            net_unit_price(dec("12.00"), dec("2"), &eco, 2, 4),
            Some(dec("4"))
        );
    }
}
