//! CSV import: one happy path per layout, then every kind of problem with
//! the file, line and column an analyst needs to fix it.

use backhaul_master::{Control, CrosswalkKind, Kind, MasterData, Record, dry_run, parse_csv};
use rust_decimal_macros::dec;

use crate::support::{day, lines_of, parse_err, parse_ok};

#[test]
fn skus_parse_with_controls_vendors_and_conversions() {
    let records = parse_ok(
        Kind::Sku,
        "sku,description,category,control,returnable,vendor,base_uom,conversions\n\
         BIT-SET-32,32-piece bit set,consumables,,true,V-1,EA,CS=12;PL=480\n\
         DRILL-18V,\"Drill, 18V\",electronics,serial,yes,,EA,\n\
         TAPE-48,Tape,consumables,LOT,0,,EA, CS = 12 ;\n",
    );
    let skus: Vec<_> = records
        .iter()
        .map(|r| match r {
            Record::Sku(s) => s,
            other => panic!("not a SKU: {other:?}"),
        })
        .collect();
    assert_eq!(skus.len(), 3);
    assert_eq!(skus[0].control, Control::None, "empty control means none");
    assert_eq!(skus[0].vendor.as_ref().map(|v| v.as_str()), Some("V-1"));
    let conversions: Vec<(String, _)> = skus[0]
        .conversions
        .iter()
        .map(|c| (c.uom.to_string(), c.factor.get()))
        .collect();
    assert_eq!(
        conversions,
        [("CS".to_owned(), dec!(12)), ("PL".to_owned(), dec!(480))]
    );
    assert_eq!(skus[1].description, "Drill, 18V");
    assert_eq!(
        (
            skus[1].control,
            skus[1].returnable,
            skus[1].vendor.is_none()
        ),
        (Control::Serial, true, true)
    );
    assert!(skus[1].conversions.is_empty());
    assert_eq!((skus[2].control, skus[2].returnable), (Control::Lot, false));
    assert_eq!(skus[2].conversions.len(), 1);
}

#[test]
fn customers_sites_vendors_and_crosswalks_parse() {
    let customers = parse_ok(
        Kind::Customer,
        "account,name,parent,segment,region\nG-1,Group,,key_account,\nC1,Shop,G-1,retail,US_EAST\n",
    );
    match &customers[1] {
        Record::Customer(c) => {
            assert_eq!(c.parent.as_ref().map(|p| p.as_str()), Some("G-1"));
            assert_eq!(c.region.as_ref().map(|r| r.as_str()), Some("US_EAST"));
            assert_eq!(c.segment.as_str(), "retail");
        }
        other => panic!("{other:?}"),
    }
    // Optional columns may be left out of the header entirely.
    let sites = parse_ok(
        Kind::Site,
        "site,name,default_location\nDC1,Columbus,RET-1\n",
    );
    match &sites[0] {
        Record::Site(s) => assert_eq!((s.site.as_str(), s.timezone.as_deref()), ("DC1", None)),
        other => panic!("{other:?}"),
    }
    let vendors = parse_ok(
        Kind::Vendor,
        "vendor,name,accepts_returns,window_days,restocking_percent,requires_authorisation\n\
         V-1,Voltline,true,365,12.5,false\nV-2,No terms,,,,\n",
    );
    match (&vendors[0], &vendors[1]) {
        (Record::Vendor(a), Record::Vendor(b)) => {
            let terms = a.agreement.as_ref().expect("agreement");
            assert!(terms.accepts_returns && !terms.requires_authorisation);
            assert_eq!(
                (terms.window_days, terms.restocking_percent.get()),
                (365, dec!(12.5))
            );
            assert_eq!(b.agreement, None);
        }
        other => panic!("{other:?}"),
    }
    let crosswalks = parse_ok(
        Kind::Crosswalk,
        "system,kind,external,canonical,preferred\nportal,reason,TOO_SMALL,SIZE_FIT,true\n\
         wms,disposition,\"Trop petit, à jeter\",scrap,\n",
    );
    match (&crosswalks[0], &crosswalks[1]) {
        (Record::Crosswalk(a), Record::Crosswalk(b)) => {
            assert_eq!(
                (
                    a.kind,
                    a.external.as_str(),
                    a.canonical.as_str(),
                    a.preferred
                ),
                (CrosswalkKind::Reason, "TOO_SMALL", "SIZE_FIT", true)
            );
            assert_eq!(
                (b.external.as_str(), b.preferred),
                ("Trop petit, à jeter", false)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn orders_group_their_lines_and_take_defaults() {
    let records = parse_ok(
        Kind::Order,
        "order_ref,customer,currency,sold_at,line_ref,sku,quantity,uom,unit_price,unit_tax,shipped_at,shipped_quantity,serials,returned_quantity\n\
         SO-1,C1,USD,2026-11-01,SO-1-1,DRILL,2,EA,129.00,10.32,2026-11-02T10:00:00+01:00,2,S-1; S-2,1\n\
         SO-2,C2,EUR,2026-11-03T08:00:00Z,SO-2-1,BITS,1,CS,299.88,23.99,,,,\n\
         SO-1,C1,USD,2026-11-01T00:00:00Z,SO-1-2,BITS,3,EA,24.99,1.99,2026-11-02,3,,\n",
    );
    assert_eq!(records.len(), 2, "two orders");
    let Record::Order(first) = &records[0] else {
        panic!("{:?}", records[0]);
    };
    assert_eq!(first.order_ref.as_str(), "SO-1");
    assert_eq!(first.sold_at, day(1), "a date means midnight UTC");
    assert_eq!(
        first.lines.len(),
        2,
        "rows of one order need not be adjacent"
    );
    let drill = &first.lines[0];
    assert_eq!(
        drill.serials.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        ["S-1", "S-2"]
    );
    assert_eq!(drill.unit_price.to_string(), "129.00 USD");
    assert_eq!(drill.returned_quantity.to_string(), "1");
    assert_eq!(
        drill.shipped_at.map(|t| t.to_rfc3339()),
        Some("2026-11-02T09:00:00+00:00".to_owned())
    );
    let Record::Order(second) = &records[1] else {
        panic!("{:?}", records[1]);
    };
    let bits = &second.lines[0];
    assert_eq!(
        bits.unit_tax.to_string(),
        "23.99 EUR",
        "amounts take the order's currency"
    );
    assert!(
        bits.shipped_quantity.is_zero()
            && bits.returned_quantity.is_zero()
            && bits.shipped_at.is_none()
    );
}

#[test]
fn excel_habits_are_tolerated() {
    // A byte-order mark, upper-case headers, spaces, CRLF line ends, blank
    // lines and a quoted value spanning two lines (later line numbers still
    // count from the file's real lines).
    let text = "\u{feff}SKU , Description,Category,Returnable,Base_UOM\r\n\
                A-1,\"Two-line\r\ndescription\",tools,true,EA\r\n\
                \r\n\
                A-2,Plain,tools,maybe,EA\r\n";
    let problems = parse_err(Kind::Sku, "skus.csv", text);
    assert_eq!(
        problems,
        [
            // A description is one line, even when the CSV can quote more.
            "skus.csv:2: column \"description\": must be one line of printable text",
            "skus.csv:5: column \"returnable\": \"maybe\" is not true or false",
        ]
    );
    // Rows of empty cells, as spreadsheets export below the data, are
    // skipped like blank lines.
    let records = parse_ok(
        Kind::Site,
        "site,name,default_location\nDC1,Columbus,RET\n,,\n , ,\n",
    );
    assert_eq!(records.len(), 1);
}

#[test]
fn header_problems_name_each_column() {
    let problems = parse_err(
        Kind::Sku,
        "skus.csv",
        "sku,description,categroy,returnable,sku\nA,B,c,true,A\n",
    );
    assert_eq!(
        problems,
        [
            "skus.csv:1: column \"categroy\": unknown column; the columns are sku,description,category,control,returnable,vendor,base_uom,conversions",
            "skus.csv:1: column \"sku\": appears twice in the header",
            "skus.csv:1: column \"category\": required column is missing from the header",
            "skus.csv:1: column \"base_uom\": required column is missing from the header",
        ]
    );
    assert_eq!(
        parse_err(Kind::Site, "sites.csv", ""),
        [
            "sites.csv:1: the file is empty; its first line must be the header: site,name,default_location,timezone"
        ]
    );
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_column() {
    let text = "sku,description,category,control,returnable,vendor,base_uom,conversions\n\
                OK-1,Fine,tools,none,true,,EA,CS=12\n\
                BAD SKU,,tools,serialised,true,,ea,CS:12\n\
                OK-2,Fine,tools,none,true,,EA,CS=0;PL=1.5x\n\
                OK-1,Again,tools,none,true,,EA,\n\
                OK-3,Short,tools\n\
                OK-4,Fine,tools,none,true,,EA,EA=1;CS=12;CS=24\n";
    assert_eq!(
        parse_err(Kind::Sku, "skus.csv", text),
        [
            "skus.csv:3: column \"sku\": \"BAD SKU\": invalid SKU: ' ' is not allowed (letters, digits and '-' '_' '.' '/' only)",
            "skus.csv:3: column \"description\": is required",
            "skus.csv:3: column \"control\": \"serialised\" is not none, serial or lot",
            "skus.csv:3: column \"base_uom\": \"ea\": invalid unit of measure: must be upper case",
            "skus.csv:3: column \"conversions\": \"CS:12\" is not UOM=factor (write e.g. CS=12)",
            "skus.csv:4: column \"conversions\": \"CS=0\": invalid conversion factor: must be greater than zero, got 0",
            "skus.csv:5: column \"sku\": \"OK-1\" is already on line 2 of this file",
            "skus.csv:6: the row has 3 values but the header has 8 columns",
            "skus.csv:7: column \"conversions\": EA is the base unit; list only the other units",
            "skus.csv:7: column \"conversions\": CS is listed twice",
        ]
    );
}

#[test]
fn order_rows_report_bad_decimals_dates_and_disagreeing_headers() {
    let header = "order_ref,customer,currency,sold_at,line_ref,sku,quantity,uom,unit_price,unit_tax,shipped_at,shipped_quantity,serials,returned_quantity\n";
    let text = format!(
        "{header}\
         SO-1,C1,USD,2026-11-01,SO-1-1,A,\"1,5\",EA,10.00,0.80,,,,\n\
         SO-1,C1,EUR,2026-11-01,SO-1-2,A,1,EA,10.00,0.80,,,,\n\
         SO-1,C1,USD,01/11/2026,SO-1-3,A,1,EA,10.00,0.80,2026-13-01,,,\n\
         SO-1,C1,USD,2026-11-01,SO-1-1,A,1,EA,10.00,0.80,,,,\n\
         SO-2,C1,usd,2026-11-01,SO-2-1,A,1,EA,ten,0.801,,-1,,\n\
         SO-3,C1,JPY,2026-11-01,SO-3-1,A,1,EA,10.001,0,,,,\n"
    );
    assert_eq!(
        parse_err(Kind::Order, "orders.csv", &text),
        [
            "orders.csv:2: column \"quantity\": \"1,5\" is not a decimal number (write e.g. 12 or 12.5)",
            "orders.csv:3: column \"currency\": order SO-1 has USD on line 2 and EUR here; every line of an order repeats the same currency",
            "orders.csv:4: column \"sold_at\": \"01/11/2026\" is not a date or time: write 2025-03-01 (midnight UTC) or 2025-03-01T14:30:00Z",
            "orders.csv:4: column \"shipped_at\": \"2026-13-01\" is not a date or time: write 2025-03-01 (midnight UTC) or 2025-03-01T14:30:00Z",
            "orders.csv:5: column \"line_ref\": line SO-1-1 of order SO-1 is already on line 2 of this file",
            "orders.csv:6: column \"currency\": \"usd\": invalid currency: \"usd\" is not a supported ISO 4217 code (upper case, e.g. \"USD\")",
            "orders.csv:6: column \"unit_price\": \"ten\" is not a decimal number (write e.g. 12 or 12.5)",
            "orders.csv:6: column \"shipped_quantity\": \"-1\": invalid quantity: must not be negative, got -1",
            "orders.csv:7: column \"unit_price\": \"10.001\": invalid money: 10.001 has more than 2 decimal places for JPY",
        ]
    );
}

#[test]
fn a_rows_own_rules_are_placed_on_its_line() {
    let header = "order_ref,customer,currency,sold_at,line_ref,sku,quantity,uom,unit_price,unit_tax,shipped_at,shipped_quantity,serials,returned_quantity\n";
    let text = format!(
        "{header}\
         SO-1,C1,USD,2026-11-05,SO-1-1,A,2,EA,10.00,0.80,2026-11-06,3,S-1,\n\
         SO-1,C1,USD,2026-11-05,SO-1-2,A,2,EA,10.00,0.80,2026-11-01,1,S-1,2\n\
         SO-1,C1,USD,2026-11-05,SO-1-3,A,2,EA,10.00,0.80,,1,,\n"
    );
    assert_eq!(
        parse_err(Kind::Order, "orders.csv", &text),
        [
            "orders.csv:2: column \"shipped_quantity\": 3 shipped is more than the 2 ordered",
            "orders.csv:3: column \"returned_quantity\": 2 returned is more than the 1 shipped",
            "orders.csv:3: column \"shipped_at\": 2026-11-01 00:00:00 UTC is before the order was sold (2026-11-05 00:00:00 UTC)",
            "orders.csv:3: column \"serials\": serial S-1 appears twice in the order",
            "orders.csv:4: column \"shipped_at\": is required when something was shipped",
        ]
    );
}

#[test]
fn vendor_terms_come_all_together_and_crosswalk_codes_are_checked() {
    assert_eq!(
        parse_err(
            Kind::Vendor,
            "vendors.csv",
            "vendor,name,accepts_returns,window_days,restocking_percent,requires_authorisation\n\
             V-1,Half terms,true,30,,\nV-2,Bad terms,true,thirty,150,no\n",
        ),
        [
            "vendors.csv:2: column \"restocking_percent\": is required",
            "vendors.csv:2: column \"requires_authorisation\": is required",
            "vendors.csv:3: column \"window_days\": \"thirty\" is not a whole number of days",
            "vendors.csv:3: column \"restocking_percent\": \"150\": invalid percentage: must be between 0 and 100, got 150",
        ]
    );
    assert_eq!(
        parse_err(
            Kind::Crosswalk,
            "crosswalks.csv",
            "system,kind,external,canonical\nERP,reason,R07,SIZE_FIT\nerp,colour,R08,RED\n\
             erp,disposition,X,bin\nerp,reason,R09,size fit\nerp,reason,R07,SIZE_FIT\nerp,reason,R07,DAMAGED\n",
        ),
        [
            "crosswalks.csv:2: column \"system\": \"ERP\": invalid system name: must start with a lower-case letter, got 'E'",
            "crosswalks.csv:3: column \"kind\": \"colour\" is not reason, condition or disposition",
            "crosswalks.csv:4: column \"canonical\": \"bin\" is not a disposition (one of restock, refurbish, scrap, quarantine, vendor_return, replacement)",
            "crosswalks.csv:5: column \"canonical\": invalid reason code: ' ' is not allowed (letters, digits and '_' only)",
            "crosswalks.csv:7: column \"external\": \"erp:reason:R07\" is already on line 6 of this file",
        ]
    );
}

#[test]
fn text_that_is_not_utf8_is_reported_on_its_line() {
    let mut bytes = b"site,name,default_location\nDC1,Ok,RET\nDC2,K\xf6ln,RET\n".to_vec();
    bytes.extend_from_slice(b"DC3,Fine,RET\n");
    let errors = parse_csv(Kind::Site, "sites.csv", &bytes).expect_err("latin-1 byte");
    assert_eq!(
        lines_of(&errors),
        ["sites.csv:3: column \"name\": is not UTF-8 text; save the file as \"CSV UTF-8\""]
    );
}

#[test]
fn references_are_checked_against_the_stored_data_and_the_file_and_placed_on_lines() {
    let stored = MasterData::from_records(
        4,
        parse_ok(
            Kind::Sku,
            "sku,description,category,returnable,base_uom,conversions\n\
             BITS,Bits,consumables,true,EA,CS=12\nPLAIN,Plain,tools,true,EA,\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let header = "order_ref,customer,currency,sold_at,line_ref,sku,quantity,uom,unit_price,unit_tax,shipped_at,shipped_quantity,serials,returned_quantity\n";
    let text = format!(
        "{header}\
         SO-1,C1,USD,2026-11-01,SO-1-1,BITS,2,CS,10.00,0.80,2026-11-02,2,,\n\
         SO-1,C1,USD,2026-11-01,SO-1-2,BITS,1,PL,10.00,0.80,2026-11-02,1,,\n\
         SO-1,C1,USD,2026-11-01,SO-1-3,NOPE,1,EA,10.00,0.80,2026-11-02,1,,\n\
         SO-1,C1,USD,2026-11-01,SO-1-4,PLAIN,2,EA,10.00,0.80,2026-11-02,2,S-1,\n"
    );
    let errors =
        dry_run(&stored, Kind::Order, "orders.csv", text.as_bytes()).expect_err("bad references");
    assert_eq!(
        lines_of(&errors),
        [
            "orders.csv:2: column \"customer\": customer C1 does not exist",
            "orders.csv:3: column \"uom\": SKU BITS has no unit of measure PL (it has EA, CS)",
            "orders.csv:4: column \"sku\": SKU NOPE does not exist",
            "orders.csv:5: column \"serials\": SKU PLAIN is not serial-controlled (control is none), so its lines carry no serials",
        ]
    );
}

#[test]
fn dry_run_counts_what_would_change() {
    let stored = MasterData::from_records(
        3,
        parse_ok(
            Kind::Site,
            "site,name,default_location\nDC1,Columbus,RET-1\nDC2,Reno,RET-A\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let changes = dry_run(
        &stored,
        Kind::Site,
        "sites.csv",
        b"site,name,default_location\nDC1,Columbus,RET-1\nDC2,Reno,RET-B\nDC3,Austin,RET-1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sites = changes.of(Kind::Site);
    assert_eq!((sites.created, sites.updated, sites.unchanged), (1, 1, 1));
    assert_eq!(changes.written(), 2);
    assert_eq!(changes.of(Kind::Sku).created, 0);
    assert_eq!(
        serde_json::to_value(&changes).expect("json"),
        serde_json::json!({ "site": { "created": 1, "updated": 1, "unchanged": 1 } })
    );
    // The snapshot it was checked against is untouched.
    assert_eq!(stored.count(Kind::Site), 2);
}

#[test]
fn rows_that_do_not_parse_and_references_to_nothing_are_reported_together_once() {
    let stored = MasterData::from_records(
        1,
        parse_ok(
            Kind::Sku,
            "sku,description,category,returnable,base_uom,conversions\nBITS,Bits,consumables,true,EA,\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let header = "order_ref,customer,currency,sold_at,line_ref,sku,quantity,uom,unit_price,unit_tax,shipped_at,shipped_quantity,serials,returned_quantity\n";
    // Line 2 breaks a row's own rule, line 3 does not parse, line 4 names
    // a SKU nobody has: three problems, each once.
    let text = format!(
        "{header}\
         SO-1,C1,USD,2026-11-01,SO-1-1,BITS,2,EA,10.00,0.80,2026-11-02,3,,\n\
         SO-1,C1,USD,2026-11-01,SO-1-2,BITS,two,EA,10.00,0.80,2026-11-02,1,,\n\
         SO-2,C1,USD,2026-11-01,SO-2-1,NOPE,1,EA,10.00,0.80,2026-11-02,1,,\n"
    );
    let errors = dry_run(&stored, Kind::Order, "orders.csv", text.as_bytes()).expect_err("bad");
    let lines = lines_of(&errors);
    let on = |line: &str| lines.iter().filter(|l| l.starts_with(line)).count();
    assert_eq!(on("orders.csv:2:"), 2, "{lines:#?}"); // shipped > ordered, and customer C1
    assert_eq!(on("orders.csv:3:"), 1, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("orders.csv:4: column \"sku\"")),
        "{lines:#?}"
    );
    let mut unique = lines.clone();
    unique.dedup();
    assert_eq!(unique, lines, "no problem twice");
}
