//! The sample master data shipped in `samples/master` must always import
//! cleanly, and must cover what `backhaul demo` uses.

use std::path::PathBuf;

use backhaul_master::{CrosswalkKind, Kind, MasterData, Record, parse_csv, validate};

use crate::support::{account, order_ref, sku};

fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/master")
}

/// Files in an order where each refers only to earlier ones.
const LOAD_ORDER: [Kind; 6] = [
    Kind::Vendor,
    Kind::Sku,
    Kind::Customer,
    Kind::Site,
    Kind::Order,
    Kind::Crosswalk,
];

/// Every sample file, parsed.
fn sample_records() -> Vec<Record> {
    let mut all = Vec::new();
    for kind in LOAD_ORDER {
        let name = format!("{}.csv", kind.file_stem());
        let bytes =
            std::fs::read(sample_dir().join(&name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
        let records = parse_csv(kind, &name, &bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(!records.is_empty(), "{name} has no records");
        assert!(records.iter().all(|r| r.kind() == kind));
        all.extend(records);
    }
    all
}

#[test]
fn every_sample_file_parses_and_validates_as_one_batch() {
    let records = sample_records();
    let changes = validate(&MasterData::empty(), &records).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(changes.written(), records.len());
    assert_eq!(changes.of(Kind::Sku).created, 13);
    assert_eq!(changes.of(Kind::Site).created, 2);
}

#[test]
fn each_sample_file_validates_on_top_of_the_ones_before_it() {
    // As an analyst would load them: one file at a time, references first.
    let records = sample_records();
    let mut stored: Vec<Record> = Vec::new();
    for kind in LOAD_ORDER {
        let data = MasterData::from_records(1, stored.clone()).unwrap_or_else(|e| panic!("{e}"));
        let file: Vec<Record> = records
            .iter()
            .filter(|r| r.kind() == kind)
            .cloned()
            .collect();
        let changes = validate(&data, &file).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(changes.of(kind).created, file.len());
        stored.extend(file);
    }
    assert_eq!(stored.len(), records.len());
}

#[test]
fn samples_cover_what_the_demo_uses() {
    let data = MasterData::from_records(1, sample_records()).unwrap_or_else(|e| panic!("{e}"));
    // `src/demo.rs`: its SKUs (the kit included), site DC1, customers
    // C0001..C0060, orders SO-1000nn with lines SO-1000nn-<n>.
    for code in [
        "DRILL-18V",
        "SAW-CIRC-7",
        "BIT-SET-32",
        "GLOVE-L",
        "LEVEL-24",
        "LADDER-6FT",
        "DRILL-18V-KIT",
    ] {
        let record = data
            .sku(&sku(code))
            .unwrap_or_else(|| panic!("{code} missing"));
        assert!(record.returnable, "{code}: the demo returns it");
    }
    assert!(
        data.site(&backhaul_domain::values::SiteCode::parse("DC1").expect("site"))
            .is_some()
    );
    for n in 1..=60 {
        let code = format!("C{n:04}");
        assert!(data.customer(&account(&code)).is_some(), "{code} missing");
    }
    let order = data.order(&order_ref("SO-100003")).expect("order");
    assert_eq!(order.lines[1].line_ref.as_str(), "SO-100003-2");
    // Reasons the demo sends and conditions it records have codes both ways.
    for reason in ["DAMAGED", "DEFECTIVE", "WRONG_ITEM", "CHANGED_MIND"] {
        let erp = data
            .from_canonical("erp", CrosswalkKind::Reason, reason)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            data.to_canonical("erp", CrosswalkKind::Reason, erp),
            Ok(reason)
        );
    }
    for condition in ["GOOD", "MIXED"] {
        assert!(
            data.from_canonical("wms", CrosswalkKind::Condition, condition)
                .is_ok()
        );
    }
}

#[test]
fn samples_show_the_cases_policies_need() {
    let data = MasterData::from_records(1, sample_records()).unwrap_or_else(|e| panic!("{e}"));
    // A case of 12, a partial prior return, shipped serials, a parent chain.
    let bits = data.sku(&sku("BIT-SET-32")).expect("bits");
    assert_eq!(
        bits.to_base(crate::support::qty("2"), &crate::support::uom("CS"))
            .map(|q| q.to_string()),
        Ok("24".to_owned())
    );
    let gloves = data
        .order_lines_for_sku(&order_ref("SO-100001"), &sku("GLOVE-L"))
        .into_iter()
        .next()
        .expect("glove line");
    assert_eq!(gloves.returnable_quantity().to_string(), "4");
    let drills = data.order_lines_for_sku(&order_ref("SO-100003"), &sku("DRILL-18V"));
    assert_eq!(drills[0].serials.len(), 3);
    let chain: Vec<&str> = data
        .ancestors(&account("C-100001"))
        .iter()
        .map(|c| c.account.as_str())
        .collect();
    assert_eq!(chain, ["G-BUILDRIGHT", "G-NORTHSTAR"]);
    assert!(!data.sku(&sku("WORKBENCH-72")).expect("bench").returnable);
    assert_eq!(
        data.from_canonical("portal", CrosswalkKind::Reason, "SIZE_FIT"),
        Ok("TOO_SMALL")
    );
    assert_eq!(
        data.to_canonical("erp", CrosswalkKind::Reason, "R07"),
        Ok("SIZE_FIT")
    );
}
