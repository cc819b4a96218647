//! `backhaul_connectors::build`: connector sections as the config file has
//! them, and the ones it refuses, each refusal naming its section.

use std::collections::BTreeMap;

use axum::Router;
use backhaul_connectors::{ConnectorConfig, build, build_with_env};
use backhaul_domain::action::Target;
use backhaul_engine::DeliveryPolicy;
use serde::Deserialize;

/// The `[connectors.*]` part of the config file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    connectors: BTreeMap<String, ConnectorConfig>,
}

fn sections(toml_text: &str) -> BTreeMap<String, ConnectorConfig> {
    toml::from_str::<File>(toml_text).unwrap().connectors
}

/// Routers for every target, as `demo` provides them.
fn every_router() -> BTreeMap<Target, Router> {
    Target::ALL
        .into_iter()
        .map(|t| (t, Router::new()))
        .collect()
}

/// Why `build` refused the sections, as an operator reads it.
#[track_caller]
fn refusal(toml_text: &str, in_process: &BTreeMap<Target, Router>) -> String {
    build(&sections(toml_text), in_process)
        .err()
        .expect("the configuration should be refused")
        .to_string()
}

#[test]
fn a_section_named_after_another_target_is_refused_naming_the_section() {
    let message = refusal(
        r#"
        [connectors.wms]
        kind = "sim-erp"
        "#,
        &every_router(),
    );

    assert!(message.starts_with("connectors.wms: "), "{message}");
    assert!(message.contains("[connectors.erp]"), "{message}");
}

#[test]
fn an_empty_url_without_an_in_process_simulator_is_refused() {
    let message = refusal(
        r#"
        [connectors.carrier]
        kind = "sim-carrier"
        "#,
        &BTreeMap::from([(Target::Erp, Router::new())]),
    );

    assert!(message.starts_with("connectors.carrier: "), "{message}");
    assert!(message.contains("url is empty"), "{message}");
}

#[test]
fn an_https_url_builds_trusting_the_mozilla_roots() {
    // Building makes the client; nothing connects until a delivery.
    let sinks = build(
        &sections(
            r#"
            [connectors.erp]
            kind = "sim-erp"
            url = "https://erp.example.com/returns"
            "#,
        ),
        &every_router(),
    )
    .unwrap();

    assert_eq!(sinks.len(), 1);
}

#[test]
fn a_url_of_another_scheme_is_refused() {
    let message = refusal(
        r#"
        [connectors.erp]
        kind = "sim-erp"
        url = "ftp://erp.example.com"
        "#,
        &every_router(),
    );

    assert!(message.starts_with("connectors.erp: url: "), "{message}");
    assert!(message.contains("https:// or http://"), "{message}");
}

#[test]
fn a_url_that_does_not_parse_is_refused() {
    let message = refusal(
        r#"
        [connectors.portal]
        kind = "sim-portal"
        url = "portal on port 7004"
        "#,
        &every_router(),
    );

    assert!(message.starts_with("connectors.portal: url: "), "{message}");
}

#[test]
fn a_delivery_policy_with_rate_zero_is_refused() {
    let message = refusal(
        r#"
        [connectors.erp]
        kind = "sim-erp"

        [connectors.erp.delivery]
        rate_per_sec = 0.0
        "#,
        &every_router(),
    );

    assert!(
        message.starts_with("connectors.erp: delivery: rate_per_sec"),
        "{message}"
    );
}

#[test]
fn skipped_kinds_must_be_the_targets_own_and_not_needed_by_others() {
    let skip = |kinds: &str| {
        format!(
            "[connectors.erp]\nkind = \"sim-erp\"\n[connectors.erp.delivery]\nskip_kinds = {kinds}\n"
        )
    };
    let sinks = build(
        &sections(&skip(
            r#"["erp_inventory_adjustment", "erp_supplier_claim"]"#,
        )),
        &every_router(),
    )
    .expect("an ERP may skip what it does not take");
    assert_eq!(sinks[0].1.skip_kinds.len(), 2);

    let message = refusal(&skip(r#"["carrier_label"]"#), &every_router());
    assert!(
        message.starts_with(
            "connectors.erp: delivery: skip_kinds: `carrier_label` is an action for carrier"
        ),
        "{message}"
    );
    let message = refusal(&skip(r#"["erp_return_order"]"#), &every_router());
    assert!(
        message.contains("waits for `erp_return_order`"),
        "{message}"
    );
    let message = toml::from_str::<File>(&skip(r#"["erp_returns"]"#))
        .err()
        .expect("an unknown kind is refused when the file is read")
        .to_string();
    assert!(
        message.contains("unknown variant `erp_returns`") && message.contains("erp_supplier_claim"),
        "it names the kind and the known ones: {message}"
    );
}

#[test]
fn a_system_name_that_is_not_a_reference_is_refused() {
    let message = refusal(
        r#"
        [connectors.erp]
        kind = "sim-erp"
        system = "our erp"
        "#,
        &every_router(),
    );

    assert!(message.starts_with("connectors.erp: system: "), "{message}");
}

#[test]
fn one_bad_section_refuses_the_whole_build() {
    let message = refusal(
        r#"
        [connectors.erp]
        kind = "sim-erp"

        [connectors.wms]
        kind = "sim-wms"
        url = "ftp://wms.example.com"
        "#,
        &every_router(),
    );

    assert!(message.starts_with("connectors.wms: "), "{message}");
}

#[test]
fn an_unknown_setting_is_a_config_error_not_ignored() {
    let parsed = toml::from_str::<File>(
        r#"
        [connectors.erp]
        kind = "sim-erp"
        uri = "http://127.0.0.1:7001"
        "#,
    );

    let message = parsed.err().expect("`uri` is not a setting").to_string();
    assert!(message.contains("uri"), "{message}");
}

#[test]
fn every_section_becomes_a_sink_with_its_own_policy() {
    let sinks = build(
        &sections(
            r#"
            [connectors.erp]
            kind = "sim-erp"
            system = "tryton"

            [connectors.erp.delivery]
            rate_per_sec = 5.0
            burst = 2

            [connectors.wms]
            kind = "sim-wms"

            [connectors.carrier]
            kind = "sim-carrier"
            url = "http://127.0.0.1:7003"

            [connectors.portal]
            kind = "sim-portal"
            "#,
        ),
        &every_router(),
    )
    .unwrap();

    let built: Vec<(Target, String, f64, u32)> = sinks
        .iter()
        .map(|(sink, policy)| {
            (
                sink.target(),
                sink.system().as_str().to_owned(),
                policy.rate_per_sec,
                policy.burst,
            )
        })
        .collect();
    let default = DeliveryPolicy::default();
    // Sections come in name order.
    assert_eq!(
        built,
        [
            (
                Target::Carrier,
                "carrier".to_owned(),
                default.rate_per_sec,
                default.burst
            ),
            (Target::Erp, "tryton".to_owned(), 5.0, 2),
            (
                Target::Portal,
                "portal".to_owned(),
                default.rate_per_sec,
                default.burst
            ),
            (
                Target::Wms,
                "wms".to_owned(),
                default.rate_per_sec,
                default.burst
            ),
        ]
    );
}

#[test]
fn a_tryton_connector_is_refused_without_its_settings_url_or_password() {
    let no_table = refusal(
        r#"
        [connectors.erp]
        kind = "tryton"
        url = "http://127.0.0.1:8000"
        "#,
        &every_router(),
    );
    assert!(no_table.starts_with("connectors.erp: "), "{no_table}");
    assert!(no_table.contains("[connectors.erp.tryton]"), "{no_table}");

    let no_password = refusal(
        r#"
        [connectors.erp]
        kind = "tryton"
        url = "http://127.0.0.1:8000"
        [connectors.erp.tryton]
        database = "backhaul"
        password_env = "BACKHAUL_TEST_SURELY_UNSET_PASSWORD"
        "#,
        &every_router(),
    );
    assert!(
        no_password.contains("BACKHAUL_TEST_SURELY_UNSET_PASSWORD is not set"),
        "{no_password}"
    );

    let elsewhere = refusal(
        r#"
        [connectors.erp]
        kind = "sim-erp"
        [connectors.erp.tryton]
        database = "backhaul"
        password_env = "X"
        "#,
        &every_router(),
    );
    assert!(elsewhere.contains("is for kind `tryton`"), "{elsewhere}");
}

#[test]
fn tryton_locations_name_canonical_dispositions() {
    let wrong = toml::from_str::<File>(
        r#"
        [connectors.erp]
        kind = "tryton"
        [connectors.erp.tryton]
        database = "backhaul"
        password_env = "X"
        [connectors.erp.tryton.locations]
        shred = "SCRAP"
        "#,
    );
    let message = wrong
        .err()
        .expect("an unknown disposition is refused")
        .to_string();
    assert!(message.contains("shred"), "{message}");
}

#[test]
fn a_tryton_connector_with_its_password_in_the_environment_builds() {
    let sections = sections(
        r#"
        [connectors.erp]
        kind = "tryton"
        url = "http://127.0.0.1:8000"
        system = "tryton"
        [connectors.erp.tryton]
        database = "backhaul"
        password_env = "TRYTON_PASSWORD"
        "#,
    );
    let sinks = build_with_env(&sections, &every_router(), &|name| {
        (name == "TRYTON_PASSWORD").then(|| "secret".to_owned())
    })
    .unwrap();
    assert_eq!(sinks.len(), 1);
    assert_eq!(sinks[0].0.target(), Target::Erp);
    assert_eq!(sinks[0].0.system().as_str(), "tryton");
}

/// Sections for the vendor ERPs, built with `env` as the environment.
#[track_caller]
fn vendor_refusal(toml_text: &str, env: &[(&str, &str)]) -> String {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    build_with_env(&sections(toml_text), &every_router(), &|name| {
        env.get(name).cloned()
    })
    .err()
    .expect("the configuration should be refused")
    .to_string()
}

#[test]
fn each_vendor_kind_builds_from_its_own_table() {
    let env: BTreeMap<&str, &str> = BTreeMap::from([
        ("SAP_USER", "u"),
        ("SAP_PASSWORD", "p"),
        ("BC_TOKEN", "t"),
        ("NS_TOKEN", "t"),
    ]);
    for section in [
        r#"
        [connectors.erp]
        kind = "sap-s4"
        url = "http://127.0.0.1:7101"
        system = "s4"

        [connectors.erp.sap]
        user_env = "SAP_USER"
        password_env = "SAP_PASSWORD"
        sap_client = "100"
        sales_organization = "1710"
        distribution_channel = "10"
        division = "00"
        amount_condition_type = "ZRFD"
        "#,
        r#"
        [connectors.erp]
        kind = "dynamics-bc"
        url = "http://127.0.0.1:7102"

        [connectors.erp.dynamics_bc]
        token_env = "BC_TOKEN"
        company_id = "5c3f2b1a-8e9d-4c7b-a6f5-0e1d2c3b4a59"
        local_currency = "EUR"
        "#,
        r#"
        [connectors.erp]
        kind = "netsuite"
        url = "http://127.0.0.1:7103"

        [connectors.erp.netsuite]
        token_env = "NS_TOKEN"
        subsidiary_id = "1"
        "#,
    ] {
        let sinks = build_with_env(&sections(section), &every_router(), &|name| {
            env.get(name).map(|v| (*v).to_owned())
        })
        .unwrap_or_else(|e| panic!("{e}\n{section}"));
        assert_eq!(sinks.len(), 1);
        assert_eq!(sinks[0].0.target(), Target::Erp);
    }
}

#[test]
fn a_vendor_kind_without_its_table_is_refused_naming_the_table() {
    let message = vendor_refusal(
        r#"
        [connectors.erp]
        kind = "sap-s4"
        url = "http://127.0.0.1:7101"
        "#,
        &[],
    );

    assert!(message.starts_with("connectors.erp: "), "{message}");
    assert!(message.contains("[connectors.erp.sap]"), "{message}");
}

#[test]
fn another_vendors_table_is_refused() {
    let message = vendor_refusal(
        r#"
        [connectors.erp]
        kind = "sim-erp"

        [connectors.erp.netsuite]
        token_env = "NS_TOKEN"
        "#,
        &[("NS_TOKEN", "t")],
    );

    assert!(
        message.contains("[connectors.erp.netsuite] is for kind `netsuite`, not `sim-erp`"),
        "{message}"
    );
}

#[test]
fn a_credential_missing_from_the_environment_is_named_and_no_value_shown() {
    let message = vendor_refusal(
        r#"
        [connectors.erp]
        kind = "sap-s4"
        url = "http://127.0.0.1:7101"

        [connectors.erp.sap]
        user_env = "SAP_USER"
        password_env = "SAP_PASSWORD"
        sales_organization = "1710"
        distribution_channel = "10"
        division = "00"
        amount_condition_type = "ZRFD"
        "#,
        &[("SAP_USER", "the-user-name")],
    );

    assert!(message.contains("sap.password_env"), "{message}");
    assert!(message.contains("`SAP_PASSWORD`"), "{message}");
    assert!(!message.contains("the-user-name"), "{message}");
}

#[test]
fn vendor_settings_are_checked_against_the_vendors_field_sizes() {
    for (section, expected) in [
        (
            r#"
            [connectors.erp]
            kind = "sap-s4"
            url = "http://127.0.0.1:7101"

            [connectors.erp.sap]
            user_env = "U"
            password_env = "P"
            sales_organization = "17100"
            distribution_channel = "10"
            division = "00"
            amount_condition_type = "ZRFD"
            "#,
            "sap.sales_organization",
        ),
        (
            r#"
            [connectors.erp]
            kind = "dynamics-bc"
            url = "http://127.0.0.1:7102"

            [connectors.erp.dynamics_bc]
            token_env = "T"
            company_id = "CRONUS"
            "#,
            "dynamics_bc.company_id",
        ),
        (
            r#"
            [connectors.erp]
            kind = "netsuite"
            url = "http://127.0.0.1:7103"

            [connectors.erp.netsuite]
            token_env = "T"
            location_id = "Main warehouse"
            "#,
            "netsuite.location_id",
        ),
    ] {
        let message = vendor_refusal(section, &[("U", "u"), ("P", "p"), ("T", "t")]);
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn an_unknown_vendor_setting_is_a_config_error() {
    let parsed = toml::from_str::<File>(
        r#"
        [connectors.erp]
        kind = "netsuite"

        [connectors.erp.netsuite]
        token_env = "T"
        password = "inline secrets are not a setting"
        "#,
    );

    let message = parsed
        .err()
        .expect("`password` is not a setting")
        .to_string();
    assert!(message.contains("password"), "{message}");
}

/// The commented example of `kind` in `backhaul.example.toml`: the run of
/// `#   ` lines around its `kind = …` line, uncommented.
fn commented_example(kind: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../backhaul.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("#   kind = \"{kind}\""))
        .unwrap_or_else(|| panic!("no example of {kind}"));
    let indented = |l: &&str| l.starts_with("#   ");
    let start = lines[..at]
        .iter()
        .rposition(|l| !indented(l))
        .map_or(0, |i| i + 1);
    let end = lines[at..]
        .iter()
        .position(|l| !indented(l))
        .map_or(lines.len(), |i| at + i);
    lines[start..end]
        .iter()
        .map(|l| &l[4..])
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_commented_examples_of_the_generic_connectors_build() {
    for kind in ["rest-wms", "rest-carrier", "soap"] {
        let text = commented_example(kind);
        let connectors = toml::from_str::<File>(&text)
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{text}"))
            .connectors;
        let env = |_: &str| Some("from-the-environment".to_owned());
        let sinks = build_with_env(&connectors, &BTreeMap::new(), &env)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(sinks.len(), 1, "{kind}");
    }
}
