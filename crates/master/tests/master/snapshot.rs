//! The snapshot's lookups and the batch rules behind it: units of measure,
//! the customer hierarchy, crosswalks both ways, references between records.

use backhaul_domain::values::{Quantity, SerialNumber};
use backhaul_master::{
    Control, ConversionError, CrosswalkKind, Direction, ImportErrors, Kind, MasterData, Record,
    Unmapped, validate,
};

use crate::support::{
    account, crosswalk, customer, data, line, line_ref, lines_of, money, order, order_ref, qty,
    sku, sku_record, uom, vendor,
};

fn problems(base: &MasterData, records: &[Record]) -> Vec<String> {
    match validate(base, records) {
        Ok(changes) => panic!("expected problems, got {changes:?}"),
        Err(errors) => lines_of(&errors),
    }
}

#[test]
fn quantities_convert_to_the_base_unit() {
    let bits = sku_record(
        "BITS",
        Control::None,
        &[("CS", "12"), ("PL", "480"), ("HALF", "0.5")],
    );
    let base = |q: &str, u: &str| bits.to_base(qty(q), &uom(u)).map(|q| q.to_string());
    assert_eq!(base("1", "CS"), Ok("12".to_owned()), "1 CS = 12 EA");
    assert_eq!(base("2.5", "CS"), Ok("30".to_owned()));
    assert_eq!(
        base("7", "EA"),
        Ok("7".to_owned()),
        "the base unit is itself"
    );
    assert_eq!(base("1", "PL"), Ok("480".to_owned()));
    assert_eq!(base("3", "HALF"), Ok("1.5".to_owned()));
    assert_eq!(base("0", "CS"), Ok("0".to_owned()));

    let unknown = bits.to_base(qty("1"), &uom("BX")).expect_err("no boxes");
    assert_eq!(
        unknown,
        ConversionError::UnknownUom {
            sku: sku("BITS"),
            uom: uom("BX"),
            known: vec![uom("EA"), uom("CS"), uom("PL"), uom("HALF")],
        }
    );
    assert_eq!(
        unknown.to_string(),
        "SKU BITS has no unit of measure BX (it has EA, CS, PL, HALF)"
    );
    // Beyond what a quantity may be: refused with the SKU named, not wrapped.
    let huge = bits
        .to_base(qty("100000000"), &uom("PL"))
        .expect_err("too many");
    assert!(
        huge.to_string()
            .starts_with("100000000 PL of SKU BITS cannot be counted in EA"),
        "{huge}"
    );
    assert_eq!(bits.factor(&uom("EA")), Some(rust_decimal::Decimal::ONE));
    assert_eq!(bits.factor(&uom("BX")), None);
}

#[test]
fn ancestors_walk_up_the_hierarchy() {
    let data = data(vec![
        Record::Customer(customer("STORE-1", Some("CHAIN"))),
        Record::Customer(customer("CHAIN", Some("GROUP"))),
        Record::Customer(customer("GROUP", None)),
        Record::Customer(customer("LONER", None)),
    ]);
    let names = |code: &str| -> Vec<String> {
        data.ancestors(&account(code))
            .iter()
            .map(|c| c.account.to_string())
            .collect()
    };
    assert_eq!(names("STORE-1"), ["CHAIN", "GROUP"]);
    assert_eq!(names("CHAIN"), ["GROUP"]);
    assert!(names("GROUP").is_empty());
    assert!(names("LONER").is_empty());
    assert!(names("NOBODY").is_empty());
    assert_eq!(
        data.customer(&account("CHAIN")).map(|c| c.name.as_str()),
        Some("Customer CHAIN")
    );
}

#[test]
fn hierarchy_cycles_and_missing_parents_are_refused() {
    // Within one batch.
    assert_eq!(
        problems(
            &MasterData::empty(),
            &[
                Record::Customer(customer("A", Some("B"))),
                Record::Customer(customer("B", Some("C"))),
                Record::Customer(customer("C", Some("A"))),
                Record::Customer(customer("D", Some("D"))),
                Record::Customer(customer("E", Some("GHOST"))),
            ],
        ),
        [
            "customer \"D\": field \"parent\": D cannot be its own parent",
            "customer \"E\": field \"parent\": parent account GHOST does not exist",
            "customer \"A\": field \"parent\": the hierarchy would have a cycle: A → B → C → A",
        ]
    );
    // Closing a loop through stored customers: only the changed one is sent.
    let stored = data(vec![
        Record::Customer(customer("A", None)),
        Record::Customer(customer("B", Some("A"))),
        Record::Customer(customer("C", Some("B"))),
    ]);
    assert_eq!(
        problems(&stored, &[Record::Customer(customer("A", Some("C")))]),
        ["customer \"A\": field \"parent\": the hierarchy would have a cycle: A → C → B → A"]
    );
    // Re-parenting without a loop is fine.
    assert!(validate(&stored, &[Record::Customer(customer("C", Some("A")))]).is_ok());
}

#[test]
fn crosswalks_translate_both_ways() {
    let data = data(vec![
        Record::Crosswalk(crosswalk(
            "portal",
            CrosswalkKind::Reason,
            "TOO_SMALL",
            "SIZE_FIT",
            true,
        )),
        Record::Crosswalk(crosswalk(
            "portal",
            CrosswalkKind::Reason,
            "TOO_LARGE",
            "SIZE_FIT",
            false,
        )),
        Record::Crosswalk(crosswalk(
            "erp",
            CrosswalkKind::Reason,
            "R07",
            "SIZE_FIT",
            false,
        )),
        Record::Crosswalk(crosswalk(
            "wms",
            CrosswalkKind::Disposition,
            "RS",
            "restock",
            false,
        )),
    ]);
    let reason = CrosswalkKind::Reason;
    // portal TOO_SMALL ↔ SIZE_FIT ↔ erp R07
    let canonical = data.to_canonical("portal", reason, "TOO_SMALL");
    assert_eq!(canonical, Ok("SIZE_FIT"));
    assert_eq!(data.from_canonical("erp", reason, "SIZE_FIT"), Ok("R07"));
    assert_eq!(data.to_canonical("erp", reason, "R07"), Ok("SIZE_FIT"));
    assert_eq!(
        data.to_canonical("portal", reason, "TOO_LARGE"),
        Ok("SIZE_FIT")
    );
    assert_eq!(
        data.from_canonical("portal", reason, "SIZE_FIT"),
        Ok("TOO_SMALL"),
        "the preferred one"
    );
    assert_eq!(
        data.to_canonical("wms", CrosswalkKind::Disposition, "RS"),
        Ok("restock")
    );
    assert_eq!(data.count(Kind::Crosswalk), 4);

    // Unmapped codes are errors naming system, kind and code, never a default.
    let unmapped = data
        .to_canonical("portal", reason, "too_small")
        .expect_err("case matters");
    assert_eq!(
        unmapped,
        Unmapped {
            system: "portal".to_owned(),
            kind: reason,
            code: "too_small".to_owned(),
            direction: Direction::ToCanonical,
        }
    );
    assert_eq!(
        unmapped.to_string(),
        "portal reason code \"too_small\" is not mapped to a canonical reason code; add it to the crosswalks"
    );
    let outbound = data
        .from_canonical("erp", reason, "DAMAGED")
        .expect_err("no ERP code");
    assert_eq!(
        outbound.to_string(),
        "canonical reason code \"DAMAGED\" has no erp code; add it to the crosswalks"
    );
    // Another vocabulary or system does not leak into this one.
    assert!(
        data.to_canonical("erp", CrosswalkKind::Condition, "R07")
            .is_err()
    );
    assert!(data.to_canonical("carrier", reason, "R07").is_err());
}

#[test]
fn ambiguous_outbound_codes_are_refused() {
    let reason = CrosswalkKind::Reason;
    assert_eq!(
        problems(
            &MasterData::empty(),
            &[
                Record::Crosswalk(crosswalk("portal", reason, "TOO_SMALL", "SIZE_FIT", false)),
                Record::Crosswalk(crosswalk("portal", reason, "TOO_LARGE", "SIZE_FIT", false)),
                Record::Crosswalk(crosswalk("erp", reason, "R01", "DEFECTIVE", true)),
                Record::Crosswalk(crosswalk("erp", reason, "R11", "DEFECTIVE", true)),
                // Another system may use the same canonical code freely.
                Record::Crosswalk(crosswalk("wms", reason, "SZ", "SIZE_FIT", false)),
            ],
        ),
        [
            "crosswalk \"erp:reason:R01\": field \"preferred\": canonical reason code DEFECTIVE would have 2 preferred erp codes (R01, R11): only one may be preferred",
            "crosswalk \"portal:reason:TOO_LARGE\": field \"preferred\": canonical reason code SIZE_FIT would have 2 portal codes (TOO_LARGE, TOO_SMALL) and none is preferred: mark exactly one preferred, the code the hub sends to portal",
        ]
    );
    // Against stored data: a second code for a mapped canonical code needs a
    // preferred one, and moving the preferred code away leaves the rest
    // ambiguous.
    let stored = data(vec![
        Record::Crosswalk(crosswalk("portal", reason, "TOO_SMALL", "SIZE_FIT", true)),
        Record::Crosswalk(crosswalk("portal", reason, "TOO_LARGE", "SIZE_FIT", false)),
        Record::Crosswalk(crosswalk("portal", reason, "TOO_WIDE", "SIZE_FIT", false)),
        Record::Crosswalk(crosswalk("erp", reason, "R07", "SIZE_FIT", false)),
    ]);
    assert_eq!(
        problems(
            &stored,
            &[Record::Crosswalk(crosswalk(
                "erp", reason, "R08", "SIZE_FIT", false
            ))]
        ),
        [
            "crosswalk \"erp:reason:R08\": field \"preferred\": canonical reason code SIZE_FIT would have 2 erp codes (R07, R08) and none is preferred: mark exactly one preferred, the code the hub sends to erp"
        ]
    );
    assert_eq!(
        problems(
            &stored,
            &[Record::Crosswalk(crosswalk(
                "portal",
                reason,
                "TOO_SMALL",
                "FIT",
                false
            ))]
        ),
        [
            "crosswalk \"portal:reason:TOO_SMALL\": field \"preferred\": canonical reason code SIZE_FIT would have 2 portal codes (TOO_LARGE, TOO_WIDE) and none is preferred: mark exactly one preferred, the code the hub sends to portal"
        ]
    );
    // Moving the preference is fine, and takes effect.
    let moved = [
        Record::Crosswalk(crosswalk("portal", reason, "TOO_SMALL", "SIZE_FIT", false)),
        Record::Crosswalk(crosswalk("portal", reason, "TOO_LARGE", "SIZE_FIT", true)),
    ];
    let changes = validate(&stored, &moved).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changes.of(Kind::Crosswalk).updated, 2);
    let mut all: Vec<Record> = vec![
        Record::Crosswalk(crosswalk("portal", reason, "TOO_WIDE", "SIZE_FIT", false)),
        Record::Crosswalk(crosswalk("erp", reason, "R07", "SIZE_FIT", false)),
    ];
    all.extend(moved);
    assert_eq!(
        data(all).from_canonical("portal", reason, "SIZE_FIT"),
        Ok("TOO_LARGE")
    );
    // A canonical code must be one of the vocabulary's.
    assert_eq!(
        problems(
            &MasterData::empty(),
            &[Record::Crosswalk(crosswalk(
                "wms",
                CrosswalkKind::Disposition,
                "XX",
                "RESTOCK",
                false
            ))]
        ),
        [
            "crosswalk \"wms:disposition:XX\": field \"canonical\": \"RESTOCK\" is not a disposition (one of restock, refurbish, scrap, quarantine, vendor_return, replacement)"
        ]
    );
}

fn catalogue() -> Vec<Record> {
    let mut drill = sku_record("DRILL", Control::Serial, &[]);
    drill.vendor = Some(vendor("V-1").vendor);
    vec![
        Record::Vendor(vendor("V-1")),
        Record::Sku(drill),
        Record::Sku(sku_record("BITS", Control::None, &[("CS", "12")])),
        Record::Customer(customer("C1", None)),
    ]
}

#[test]
fn orders_are_found_by_line_and_by_sku() {
    let mut drills = line("SO-1-2", "DRILL", "3", "EA");
    drills.serials = ["S-1", "S-2", "S-3"]
        .iter()
        .map(|s| SerialNumber::parse(s).expect("serial"))
        .collect();
    drills.returned_quantity = qty("1");
    let mut records = catalogue();
    records.push(Record::Order(order(
        "SO-1",
        "C1",
        vec![
            line("SO-1-1", "BITS", "2", "CS"),
            drills,
            line("SO-1-3", "BITS", "5", "EA"),
        ],
    )));
    let data = data(records);
    let so1 = order_ref("SO-1");
    let found = data.order_line(&so1, &line_ref("SO-1-2")).expect("line 2");
    assert_eq!((found.sku.as_str(), found.serials.len()), ("DRILL", 3));
    assert_eq!(
        found.returnable_quantity(),
        qty("2"),
        "3 shipped, 1 returned before"
    );
    assert!(data.order_line(&so1, &line_ref("SO-1-9")).is_none());
    assert!(
        data.order_line(&order_ref("SO-2"), &line_ref("SO-1-1"))
            .is_none()
    );
    let bits: Vec<&str> = data
        .order_lines_for_sku(&so1, &sku("BITS"))
        .iter()
        .map(|l| l.line_ref.as_str())
        .collect();
    assert_eq!(bits, ["SO-1-1", "SO-1-3"]);
    assert!(data.order_lines_for_sku(&so1, &sku("GLOVE")).is_empty());
    assert_eq!(data.order(&so1).map(|o| o.lines.len()), Some(3));
    assert_eq!(
        data.vendor(&vendor("V-1").vendor).map(|v| v.name.as_str()),
        Some("Vendor V-1")
    );
    assert_eq!(data.revision(), 1);
}

#[test]
fn order_lines_must_fit_their_skus_and_the_order() {
    let mut too_many_serials = line("SO-1-2", "DRILL", "2", "EA");
    too_many_serials.serials = ["S-1", "S-2", "S-3"]
        .iter()
        .map(|s| SerialNumber::parse(s).expect("serial"))
        .collect();
    let mut in_euros = line("SO-1-3", "BITS", "1", "EA");
    in_euros.unit_price = money("10.00", "EUR");
    let mut unshipped = line("SO-1-4", "BITS", "1", "EA");
    unshipped.shipped_quantity = Quantity::ZERO;
    unshipped.shipped_at = None;
    let mut batch = catalogue();
    batch.push(Record::Order(order(
        "SO-1",
        "NOBODY",
        vec![
            line("SO-1-1", "BITS", "1", "PL"),
            too_many_serials,
            in_euros,
            unshipped,
            line("SO-1-5", "GHOST", "1", "EA"),
        ],
    )));
    assert_eq!(
        problems(&MasterData::empty(), &batch),
        [
            "order \"SO-1\" line \"SO-1-3\": field \"unit_price\": 10.00 EUR is not in the order's currency USD",
            "order \"SO-1\": field \"customer\": customer NOBODY does not exist",
            "order \"SO-1\" line \"SO-1-1\": field \"uom\": SKU BITS has no unit of measure PL (it has EA, CS)",
            "order \"SO-1\" line \"SO-1-2\": field \"serials\": 3 serials for 2 EA shipped",
            "order \"SO-1\" line \"SO-1-5\": field \"sku\": SKU GHOST does not exist",
        ]
    );
}

#[test]
fn a_sku_change_may_not_break_stored_orders() {
    let mut records = catalogue();
    let mut shipped = line("SO-1-1", "DRILL", "1", "EA");
    shipped.serials = vec![SerialNumber::parse("S-1").expect("serial")];
    records.push(Record::Order(order(
        "SO-1",
        "C1",
        vec![line("SO-1-2", "BITS", "2", "CS"), shipped],
    )));
    let stored = data(records);
    assert_eq!(
        problems(
            &stored,
            &[
                Record::Sku(sku_record("BITS", Control::None, &[])),
                Record::Sku(sku_record("DRILL", Control::None, &[])),
            ]
        ),
        [
            "sku \"BITS\": field \"conversions\": stored order SO-1 line SO-1-2 would become invalid: SKU BITS has no unit of measure CS (it has EA)",
            "sku \"DRILL\": field \"control\": stored order SO-1 line SO-1-1 would become invalid: SKU DRILL is not serial-controlled (control is none), so its lines carry no serials",
        ]
    );
    // Unless the same batch fixes the order too.
    let fixed = vec![
        Record::Sku(sku_record("BITS", Control::None, &[])),
        Record::Order(order(
            "SO-1",
            "C1",
            vec![line("SO-1-2", "BITS", "24", "EA")],
        )),
    ];
    assert!(validate(&stored, &fixed).is_ok());
}

#[test]
fn references_to_vendors_must_resolve_and_keys_are_unique_per_batch() {
    let mut orphan = sku_record("LONELY", Control::None, &[]);
    orphan.vendor = Some(vendor("V-404").vendor);
    assert_eq!(
        problems(
            &MasterData::empty(),
            &[
                Record::Sku(orphan),
                Record::Customer(customer("C1", None)),
                Record::Customer(customer("C1", None)),
            ]
        ),
        [
            "customer \"C1\": field \"account\": appears more than once in this batch",
            "sku \"LONELY\": field \"vendor\": vendor V-404 does not exist",
        ]
    );
}

#[test]
fn stored_data_with_broken_rules_is_refused_when_loaded() {
    let looped = MasterData::from_records(
        7,
        vec![
            Record::Customer(customer("A", Some("B"))),
            Record::Customer(customer("B", Some("A"))),
        ],
    );
    let errors: ImportErrors = looped.expect_err("a cycle");
    assert_eq!(errors.problems().len(), 1);
    assert!(errors.to_string().contains("A → B → A"), "{errors}");
}

#[test]
fn records_as_json_are_tagged_strict_and_exact() {
    let record: Record = serde_json::from_value(serde_json::json!({
        "type": "sku", "sku": "BITS", "description": "Bits", "category": "consumables",
        "returnable": true, "base_uom": "EA", "conversions": [{ "uom": "CS", "factor": "12" }]
    }))
    .expect("a SKU");
    assert_eq!(record, Record::Sku(sku_record_named("BITS", "Bits")));
    let json = serde_json::to_value(&record).expect("serialise");
    assert_eq!(json["type"], "sku");
    assert_eq!(json["control"], "none");
    assert_eq!(
        serde_json::from_value::<Record>(json).expect("round trip"),
        record
    );

    let refused = [
        // An unknown field.
        serde_json::json!({ "type": "site", "site": "DC1", "name": "x", "default_location": "R", "colour": "red" }),
        // A float factor.
        serde_json::json!({ "type": "sku", "sku": "B", "description": "B", "category": "c", "returnable": true,
                            "base_uom": "EA", "conversions": [{ "uom": "CS", "factor": 12.0 }] }),
        // An unknown kind.
        serde_json::json!({ "type": "warehouse", "site": "DC1" }),
    ];
    for json in refused {
        assert!(
            serde_json::from_value::<Record>(json.clone()).is_err(),
            "{json}"
        );
    }
    let entry: Record = serde_json::from_value(serde_json::json!({
        "type": "crosswalk", "system": "erp", "kind": "reason", "external": "R07", "canonical": "SIZE_FIT"
    }))
    .expect("a crosswalk entry");
    assert_eq!(entry.key(), "erp:reason:R07");
    assert_eq!(entry.kind(), Kind::Crosswalk);
}

fn sku_record_named(code: &str, description: &str) -> backhaul_master::SkuRecord {
    let mut record = sku_record(code, Control::None, &[("CS", "12")]);
    record.description = description.to_owned();
    record.category = backhaul_master::Code::parse("consumables").expect("code");
    record
}
