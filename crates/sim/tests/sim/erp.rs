//! The ERP: its documents and their number series, its business
//! rejections, and the ledger folded from what it accepted.

use backhaul_sim::{ErpConfig, PostingKind, SimConfig, SimKind};
use rust_decimal::Decimal;
use serde_json::json;

use crate::helpers::{
    TestSim, credit_memo, inventory_adjustment, open, open_with, repair_order, replacement_order,
    return_order, supplier_claim,
};

async fn erp_with(erp: ErpConfig) -> TestSim {
    open_with(SimConfig {
        erp,
        ..SimConfig::new(SimKind::Erp)
    })
    .await
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn each_document_kind_has_its_own_series() {
    let erp = open(SimKind::Erp).await;
    assert_eq!(erp.return_order("RMA-1", "EUR").await, "RO-000001");
    assert_eq!(erp.return_order("RMA-2", "EUR").await, "RO-000002");

    let adjustment = inventory_adjustment(
        "RMA-1",
        "RO-000001",
        json!([{"line_no": 1, "sku": "SKU-1", "quantity": "1", "disposition": "restock"}]),
    );
    let response = erp
        .post("/erp/inventory-adjustments", "ia-1", &adjustment)
        .await;
    assert_eq!(response.assert_ok(201), &json!({"number": "IA-000001"}));

    let memo = credit_memo("RMA-1", "RO-000001", "EUR", &["10.00", "5.5"]);
    let response = erp.post("/erp/credit-memos", "cm-1", &memo).await;
    assert_eq!(
        response.assert_ok(201),
        &json!({"number": "CM-000001", "amount": "15.50"}),
        "the amount is the sum of the lines at the scale given"
    );
    // A replay of the memo repeats its amount too.
    let replay = erp.post("/erp/credit-memos", "cm-1", &memo).await;
    assert_eq!(replay.body["amount"], "15.50");
    assert!(replay.replayed());
}

#[tokio::test]
async fn postings_list_what_was_accepted_with_keys_and_bodies() {
    let erp = open(SimKind::Erp).await;
    erp.return_order("RMA-1", "EUR").await;
    let memo = credit_memo("RMA-1", "RO-000001", "EUR", &["4.00"]);
    erp.post("/erp/credit-memos", "cm-1", &memo)
        .await
        .assert_ok(201);

    let response = erp.get("/erp/postings").await;
    let postings = response.assert_ok(200).as_array().unwrap();
    assert_eq!(postings.len(), 2);
    assert_eq!(postings[0]["kind"], "return_order");
    assert_eq!(postings[0]["number"], "RO-000001");
    assert_eq!(postings[0]["idempotency_key"], "ro-RMA-1");
    assert_eq!(postings[0]["rma"], "RMA-1");
    assert_eq!(postings[0]["body"], return_order("RMA-1", "EUR", "SKU-1"));
    assert_eq!(postings[0]["created_at"], "2025-03-03T09:00:00Z");
    assert_eq!(postings[1]["kind"], "credit_memo");
    assert_eq!(postings[1]["body"], memo);

    let library = erp.sim.postings().await.unwrap();
    assert_eq!(library[1].kind, PostingKind::CreditMemo);
    assert_eq!(
        library[1].response,
        json!({"number": "CM-000001", "amount": "4.00"})
    );
}

#[tokio::test]
async fn an_unknown_sku_is_rejected_and_stores_nothing() {
    let erp = erp_with(ErpConfig {
        unknown_skus: vec!["SKU-GONE".to_owned()],
        ..ErpConfig::default()
    })
    .await;
    let body = return_order("RMA-1", "EUR", "SKU-GONE");
    let detail = erp
        .post("/erp/return-orders", "k-1", &body)
        .await
        .assert_problem(422, "unknown_sku");
    assert!(detail.contains("SKU-GONE"), "{detail}");
    assert!(erp.sim.postings().await.unwrap().is_empty());
    assert_eq!(erp.sim.stats().await.unwrap().rejected, 1);
}

#[tokio::test]
async fn a_closed_period_rejects_every_post_until_it_is_reopened() {
    let erp = open(SimKind::Erp).await;
    erp.return_order("RMA-1", "EUR").await;
    erp.put("/admin/erp/period", &json!({"closed": true}))
        .await
        .assert_ok(200);
    assert_eq!(
        erp.get("/admin/erp/period").await.body,
        json!({"closed": true})
    );

    let order = return_order("RMA-2", "EUR", "SKU-1");
    let adjustment = inventory_adjustment(
        "RMA-1",
        "RO-000001",
        json!([{"line_no": 1, "sku": "SKU-1", "quantity": "1", "disposition": "restock"}]),
    );
    let memo = credit_memo("RMA-1", "RO-000001", "EUR", &["1.00"]);
    erp.post("/erp/return-orders", "k-2", &order)
        .await
        .assert_problem(422, "period_closed");
    erp.post("/erp/inventory-adjustments", "k-3", &adjustment)
        .await
        .assert_problem(422, "period_closed");
    erp.post("/erp/credit-memos", "k-4", &memo)
        .await
        .assert_problem(422, "period_closed");
    assert_eq!(erp.sim.postings().await.unwrap().len(), 1);

    // A rejection does not consume the key: the same request succeeds once
    // the period is open.
    erp.put("/admin/erp/period", &json!({"closed": false}))
        .await
        .assert_ok(200);
    let response = erp.post("/erp/return-orders", "k-2", &order).await;
    assert_eq!(response.assert_ok(201)["number"], "RO-000002");
    assert!(!response.replayed());
    erp.put("/admin/erp/period", &json!({"open": true}))
        .await
        .assert_problem(400, "invalid_body");
}

#[tokio::test]
async fn the_period_can_start_closed() {
    let erp = erp_with(ErpConfig {
        period_closed: true,
        ..ErpConfig::default()
    })
    .await;
    erp.post(
        "/erp/return-orders",
        "k-1",
        &return_order("RMA-1", "EUR", "SKU-1"),
    )
    .await
    .assert_problem(422, "period_closed");
    erp.sim.set_period_closed(false);
    erp.post(
        "/erp/return-orders",
        "k-1",
        &return_order("RMA-1", "EUR", "SKU-1"),
    )
    .await
    .assert_ok(201);
}

#[tokio::test]
async fn documents_must_refer_to_a_stored_return_order() {
    let erp = open(SimKind::Erp).await;
    let adjustment = inventory_adjustment(
        "RMA-1",
        "RO-000099",
        json!([{"line_no": 1, "sku": "SKU-1", "quantity": "1", "disposition": "restock"}]),
    );
    erp.post("/erp/inventory-adjustments", "k-1", &adjustment)
        .await
        .assert_problem(422, "unknown_return_order");
    let memo = credit_memo("RMA-1", "RO-000099", "EUR", &["1.00"]);
    erp.post("/erp/credit-memos", "k-2", &memo)
        .await
        .assert_problem(422, "unknown_return_order");
    assert!(erp.sim.postings().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_credit_memo_above_the_limit_is_rejected() {
    let erp = erp_with(ErpConfig {
        credit_limit: Some(dec("15.00")),
        ..ErpConfig::default()
    })
    .await;
    erp.return_order("RMA-1", "EUR").await;
    let over = credit_memo("RMA-1", "RO-000001", "EUR", &["10.00", "5.01"]);
    erp.post("/erp/credit-memos", "k-1", &over)
        .await
        .assert_problem(422, "credit_limit_exceeded");
    let at_limit = credit_memo("RMA-1", "RO-000001", "EUR", &["10.00", "5.00"]);
    let response = erp.post("/erp/credit-memos", "k-2", &at_limit).await;
    assert_eq!(response.assert_ok(201)["amount"], "15.00");
}

#[tokio::test]
async fn a_credit_memo_in_another_currency_is_rejected() {
    let erp = open(SimKind::Erp).await;
    erp.return_order("RMA-1", "EUR").await;
    let memo = credit_memo("RMA-1", "RO-000001", "USD", &["1.00"]);
    erp.post("/erp/credit-memos", "k-1", &memo)
        .await
        .assert_problem(422, "currency_mismatch");
}

#[tokio::test]
async fn the_ledger_sums_credits_and_sellable_inventory() {
    let erp = open(SimKind::Erp).await;
    let eur = erp.return_order("RMA-1", "EUR").await;
    let usd = erp.return_order("RMA-2", "USD").await;
    let adjustments = [
        json!([
            {"line_no": 1, "sku": "SKU-1", "quantity": "2", "disposition": "restock"},
            {"line_no": 2, "sku": "SKU-2", "quantity": "1", "disposition": "scrap"}
        ]),
        json!([
            {"line_no": 1, "sku": "SKU-1", "quantity": "1", "disposition": "refurbish"},
            {"line_no": 2, "sku": "SKU-3", "quantity": "1.5", "disposition": "quarantine"}
        ]),
    ];
    for (i, lines) in adjustments.into_iter().enumerate() {
        erp.post(
            "/erp/inventory-adjustments",
            &format!("ia-{i}"),
            &inventory_adjustment("RMA-1", &eur, lines),
        )
        .await
        .assert_ok(201);
    }
    let memos = [
        credit_memo("RMA-1", &eur, "EUR", &["100.00", "23.00"]),
        credit_memo("RMA-1", &eur, "EUR", &["0.50"]),
        credit_memo("RMA-2", &usd, "USD", &["7.25"]),
    ];
    for (i, memo) in memos.iter().enumerate() {
        erp.post("/erp/credit-memos", &format!("cm-{i}"), memo)
            .await
            .assert_ok(201);
    }

    let response = erp.get("/erp/ledger").await;
    assert_eq!(
        response.assert_ok(200),
        &json!({
            "credits": {"EUR": "123.50", "USD": "7.25"},
            "inventory": {"SKU-1": "3"},
            "counts": {"return_order": 2, "inventory_adjustment": 2, "credit_memo": 3,
                       "return_order_cancellation": 0, "supplier_claim": 0,
                       "repair_order": 0, "replacement_order": 0}
        })
    );
    let ledger = erp.sim.ledger().await.unwrap();
    assert_eq!(ledger.credits["EUR"], dec("123.50"));
    assert_eq!(ledger.counts.credit_memo, 3);
}

#[tokio::test]
async fn a_return_order_can_be_cancelled_once_per_key() {
    let erp = open(SimKind::Erp).await;
    let number = erp.return_order("RMA-1", "EUR").await;
    let path = format!("/erp/return-orders/{number}/cancel");
    let cancel = erp
        .post(&path, "x-1", &json!({"reason": "return cancelled"}))
        .await;
    assert_eq!(
        cancel.assert_ok(200),
        &json!({"number": number, "cancelled": true})
    );
    assert!(
        erp.post(&path, "x-1", &json!({"reason": "return cancelled"}))
            .await
            .replayed()
    );
    erp.post("/erp/return-orders/RO-999999/cancel", "x-2", &json!({}))
        .await
        .assert_problem(422, "unknown_return_order");
    let ledger = erp.get("/erp/ledger").await;
    assert_eq!(
        ledger.assert_ok(200)["counts"]["return_order_cancellation"],
        1
    );
}

/// The documents about some units of a return: where each is posted, a
/// body, the kind it is stored as and its number series.
fn unit_documents(
    return_order: &str,
) -> [(&'static str, serde_json::Value, PostingKind, &'static str); 3] {
    [
        (
            "/erp/supplier-claims",
            supplier_claim("RMA-1", return_order, "V-VOLTLINE"),
            PostingKind::SupplierClaim,
            "SC",
        ),
        (
            "/erp/repair-orders",
            repair_order("RMA-1", return_order),
            PostingKind::RepairOrder,
            "RP",
        ),
        (
            "/erp/replacement-orders",
            replacement_order("RMA-1", return_order),
            PostingKind::ReplacementOrder,
            "RS",
        ),
    ]
}

#[tokio::test]
async fn claims_repairs_and_replacements_are_numbered_stored_once_and_counted() {
    let erp = open(SimKind::Erp).await;
    let order = erp.return_order("RMA-1", "EUR").await;
    for (path, body, kind, series) in unit_documents(&order) {
        for n in 1..=2 {
            let key = format!("{series}-key-{n}");
            let response = erp.post(path, &key, &body).await;
            assert_eq!(
                response.assert_ok(201),
                &json!({"number": format!("{series}-00000{n}")}),
                "{path}"
            );
            // The same key again is the same document, not a second one.
            let replay = erp.post(path, &key, &body).await;
            assert!(replay.replayed(), "{path}");
            assert_eq!(replay.body, response.body);
        }
        let stored: Vec<_> = erp
            .sim
            .postings()
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.kind == kind)
            .collect();
        assert_eq!(stored.len(), 2, "{path}");
        assert_eq!(stored[0].rma, "RMA-1");
        assert_eq!(stored[0].body, body);
    }
    let counts = erp.sim.ledger().await.unwrap().counts;
    assert_eq!(
        (
            counts.supplier_claim,
            counts.repair_order,
            counts.replacement_order
        ),
        (2, 2, 2)
    );
    // None of them puts anything on hand or credits anything.
    let ledger = erp.sim.ledger().await.unwrap();
    assert!(ledger.inventory.is_empty() && ledger.credits.is_empty());
}

#[tokio::test]
async fn claims_repairs_and_replacements_need_a_stored_return_order_and_an_open_period() {
    let erp = open(SimKind::Erp).await;
    for (path, body, _, _) in unit_documents("RO-000099") {
        erp.post(path, "k-unknown", &body)
            .await
            .assert_problem(422, "unknown_return_order");
    }
    let order = erp.return_order("RMA-1", "EUR").await;
    erp.sim.set_period_closed(true);
    for (path, body, _, _) in unit_documents(&order) {
        erp.post(path, "k-closed", &body)
            .await
            .assert_problem(422, "period_closed");
    }
    assert_eq!(erp.sim.postings().await.unwrap().len(), 1, "only the order");
}

#[tokio::test]
async fn claims_repairs_and_replacements_refuse_bodies_that_do_not_fit() {
    let erp = open(SimKind::Erp).await;
    let order = erp.return_order("RMA-1", "EUR").await;
    for (path, body, _, _) in unit_documents(&order) {
        let mut bad: Vec<(serde_json::Value, &str)> = Vec::new();
        let mut unknown = body.clone();
        unknown["amount"] = json!("1.00");
        bad.push((unknown, "amount"));
        let mut unknown_in_line = body.clone();
        unknown_in_line["lines"][0]["disposition"] = json!("restock");
        bad.push((unknown_in_line, "lines[0].disposition"));
        let mut without_order = body.clone();
        without_order
            .as_object_mut()
            .unwrap()
            .remove("return_order");
        bad.push((without_order, "return_order"));
        let mut number = body.clone();
        number["lines"][1]["quantity"] = json!(2);
        bad.push((number, "lines[1].quantity"));
        let mut zero = body.clone();
        zero["lines"][1]["quantity"] = json!("0");
        bad.push((zero, "lines[1].quantity"));
        let mut twice = body.clone();
        twice["lines"][1]["line_no"] = json!(1);
        bad.push((twice, "lines"));
        for (n, (body, field)) in bad.into_iter().enumerate() {
            let response = erp.post(path, &format!("bad-{n}"), &body).await;
            let detail = response.assert_problem(400, "invalid_body");
            assert!(
                response.body["field"]
                    .as_str()
                    .is_some_and(|f| f.starts_with(field)),
                "{path}, {field}: {detail}"
            );
        }
    }
    // A claim names its vendor; the other two have none to name.
    let mut claim = supplier_claim("RMA-1", &order, "V-1");
    claim.as_object_mut().unwrap().remove("vendor");
    erp.post("/erp/supplier-claims", "no-vendor", &claim)
        .await
        .assert_problem(400, "invalid_body");
    let mut repair = repair_order("RMA-1", &order);
    repair["vendor"] = json!("V-1");
    erp.post("/erp/repair-orders", "vendor", &repair)
        .await
        .assert_problem(400, "invalid_body");
    assert_eq!(erp.sim.postings().await.unwrap().len(), 1, "only the order");
}
