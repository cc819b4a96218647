//! `backhaul_connectors::build`: connector sections as the config file has
//! them, and the ones it refuses, each refusal naming its section.

use std::collections::BTreeMap;

use axum::Router;
use backhaul_connectors::{ConnectorConfig, build};
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
fn an_https_url_is_refused_because_no_tls_is_compiled_in() {
    let message = refusal(
        r#"
        [connectors.erp]
        kind = "sim-erp"
        url = "https://erp.example.com"
        "#,
        &every_router(),
    );

    assert!(message.starts_with("connectors.erp: url: "), "{message}");
    assert!(message.contains("only http://"), "{message}");
    assert!(message.contains("no TLS"), "{message}");
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
        url = "https://wms.example.com"
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
    assert!(no_table.contains("[tryton]"), "{no_table}");

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
    assert!(elsewhere.contains("kind = \"tryton\""), "{elsewhere}");
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
