//! The x12-partner connector (target `edi`): the 180 file of an RMA
//! notification compared with the fixture next to the connector
//! (`src/x12_partner/fixtures`) and read back with `backhaul-x12`; the
//! connector contract on files (its own action answered, a repeated
//! delivery rewrites one file with the same control numbers, other kinds
//! refused, healthy); and the configurations `build` refuses, each naming
//! its key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use backhaul_connectors::{ConnectorConfig, build};
use backhaul_domain::action::{Action, ActionKind, ActionResult, PartnerDecision, Target};
use backhaul_engine::{DeliveryRequest, Sink, SinkError};
use backhaul_master::MasterData;
use backhaul_x12::Interchange;
use backhaul_x12::ts180::notifications;
use serde::Deserialize;
use uuid::Uuid;

use crate::helpers::{RMA, action, assert_business, document, first_primary_result, primary};

/// The key the outbox gives the fixture's delivery.
const KEY: &str = "RMA-000042:edi_rma_notification:3";

/// The agreement the fixture is written under (`{dir}` is the folder).
const SECTION: &str = r#"
[connectors.edi]
kind = "x12-partner"

[connectors.edi.x12_partner]
outbound_dir = "{dir}"
sender_qualifier = "ZZ"
sender_id = "BACKHAUL"

[connectors.edi.x12_partner.partners.CUST-001]
receiver_qualifier = "ZZ"
receiver_id = "MEGAMART"
usage = "T"
name = "MEGAMART STORES"
"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    connectors: BTreeMap<String, ConnectorConfig>,
}

fn sections(toml_text: &str, dir: &Path) -> BTreeMap<String, ConnectorConfig> {
    let text = toml_text.replace("{dir}", &dir.display().to_string());
    toml::from_str::<File>(&text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .connectors
}

fn connector(toml_text: &str, dir: &Path) -> Arc<dyn Sink> {
    let mut sinks = build(&sections(toml_text, dir), &BTreeMap::new()).unwrap();
    assert_eq!(sinks.len(), 1);
    sinks.remove(0).0
}

/// Why `build` refused the section.
#[track_caller]
fn refusal(toml_text: &str, dir: &Path) -> String {
    build(&sections(toml_text, dir), &BTreeMap::new())
        .err()
        .expect("the configuration should be refused")
        .to_string()
}

/// One attempt of delivery `id`, as the dispatcher makes it.
async fn deliver(
    sink: &dyn Sink,
    action: &Action,
    id: i64,
    key: &str,
    attempt: i32,
) -> Result<ActionResult, SinkError> {
    sink.deliver(DeliveryRequest {
        delivery_id: id,
        key,
        attempt,
        action,
        prerequisites: &BTreeMap::new(),
        correlation_id: Uuid::from_u128(7),
        master: &MasterData::empty(),
    })
    .await
}

/// Every file in the folder, by name.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The fixture, one segment per line for reading; the file has no breaks.
fn fixture() -> String {
    let path = format!(
        "{}/src/x12_partner/fixtures/edi_rma_notification.edi",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("~\n", "~")
}

#[tokio::test]
async fn an_rma_notification_is_written_as_the_180_of_its_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let sink = connector(SECTION, dir.path());

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::EdiRmaNotification),
        42,
        KEY,
        1,
    )
    .await
    .unwrap();

    assert_eq!(
        result,
        document("000000042"),
        "the interchange control number"
    );
    let name = "180-MEGAMART-RMA-000042_edi_rma_notification_3.edi";
    assert_eq!(files(dir.path()), [name]);
    let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(text, fixture());

    // Read back: a valid interchange whose 180 says what the action said.
    let interchange = Interchange::parse_valid(text.as_bytes()).unwrap();
    assert!(
        interchange.validate().is_empty(),
        "{:?}",
        interchange.validate()
    );
    assert_eq!(interchange.control_number(), "000000042");
    assert_eq!(interchange.sender(), ("ZZ", "BACKHAUL"));
    assert_eq!(interchange.receiver(), ("ZZ", "MEGAMART"));
    let rma = notifications(&interchange).remove(0).unwrap();
    assert_eq!(rma.rma_number, RMA);
    assert_eq!(rma.request_reference, "RAR-2025-0042");
    assert_eq!(rma.partner.id, "CUST-001");
    let lines: Vec<(&str, &str, String, &str, Option<&str>)> = rma
        .lines
        .iter()
        .map(|l| {
            (
                l.line_id.as_str(),
                l.sku.as_str(),
                l.quantity.to_string(),
                l.uom.as_str(),
                l.disposition.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("001", "SKU-A", "2".to_owned(), "EA", Some("RA")),
            ("002", "SKU-B", "0".to_owned(), "CA", Some("RD")),
        ]
    );
}

#[tokio::test]
async fn a_repeated_delivery_rewrites_one_file_with_the_same_control_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = connector(SECTION, dir.path());
    let action = action(ActionKind::EdiRmaNotification);

    let first = deliver(sink.as_ref(), &action, 42, KEY, 1).await.unwrap();
    let written = files(dir.path());
    let bytes = std::fs::read(dir.path().join(&written[0])).unwrap();
    // The lease ran out and the delivery is attempted again.
    let second = deliver(sink.as_ref(), &action, 42, KEY, 2).await.unwrap();

    assert_eq!(first, second);
    assert_eq!(files(dir.path()), written, "one file, no temporary left");
    assert_eq!(std::fs::read(dir.path().join(&written[0])).unwrap(), bytes);

    // Another delivery is another file under other numbers.
    let other = deliver(
        sink.as_ref(),
        &action,
        43,
        "RMA-000042:edi_rma_notification:4",
        1,
    )
    .await
    .unwrap();
    assert_eq!(other, document("000000043"));
    assert_eq!(files(dir.path()).len(), 2);
}

#[tokio::test]
async fn a_rejection_denies_every_line_and_says_why_in_rdr04() {
    let dir = tempfile::tempdir().unwrap();
    let sink = connector(SECTION, dir.path());
    let mut rejected = action(ActionKind::EdiRmaNotification);
    for line in &mut rejected.lines {
        line.quantity = backhaul_domain::values::Quantity::ZERO;
    }
    let answer = rejected.answer.as_mut().unwrap();
    answer.decision = PartnerDecision::Rejected;
    // Delimiters and line breaks in people's text are tidied, not refused.
    answer.reason = Some(format!(
        "outside the return window*see policy~\n{}",
        "x".repeat(90)
    ));

    deliver(
        sink.as_ref(),
        &rejected,
        7,
        "RMA-000042:edi_rma_notification:2",
        1,
    )
    .await
    .unwrap();

    let text = std::fs::read_to_string(dir.path().join(&files(dir.path())[0])).unwrap();
    let interchange = Interchange::parse_valid(text.as_bytes()).unwrap();
    assert!(interchange.validate().is_empty());
    let rma = notifications(&interchange).remove(0).unwrap();
    for line in &rma.lines {
        assert!(line.quantity.is_zero());
        assert_eq!(line.disposition.as_deref(), Some("RD"));
        let description = line.description.as_deref().unwrap();
        assert!(
            description.starts_with("outside the return window see policy xxx"),
            "{description}"
        );
        assert_eq!(description.chars().count(), 80);
    }
}

#[tokio::test]
async fn the_x12_partner_connector_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let sink = connector(SECTION, dir.path());
    assert_eq!(sink.target(), Target::Edi);
    assert_eq!(sink.system().as_str(), "edi");
    assert_eq!(sink.health().await, Ok(()));

    // Its own action answered as the contract table expects (delivery 1).
    let result = deliver(
        sink.as_ref(),
        &action(primary(Target::Edi)),
        1,
        "contract-1",
        1,
    )
    .await
    .unwrap();
    assert_eq!(result, first_primary_result(Target::Edi));
    std::fs::remove_file(dir.path().join("180-MEGAMART-contract-1.edi")).unwrap();

    for kind in ActionKind::ALL
        .into_iter()
        .filter(|k| k.target() != Target::Edi)
    {
        let result = deliver(sink.as_ref(), &action(kind), 1, "foreign", 1).await;
        let message = assert_business(result, "unsupported_action", None);
        assert!(message.contains(kind.as_str()), "{kind:?}: {message}");
    }
    assert!(
        files(dir.path()).is_empty(),
        "a refused action writes nothing"
    );

    // A folder gone is reported, as an unreachable system would be.
    drop(dir);
    assert!(matches!(
        sink.health().await,
        Err(SinkError::Technical { .. })
    ));
}

#[tokio::test]
async fn an_unknown_partner_or_a_missing_request_number_goes_to_the_exception_queue() {
    let dir = tempfile::tempdir().unwrap();
    let sink = connector(SECTION, dir.path());

    let mut stranger = action(ActionKind::EdiRmaNotification);
    stranger.customer = backhaul_domain::values::CustomerAccount::parse("CUST-999").unwrap();
    let message = assert_business(
        deliver(sink.as_ref(), &stranger, 5, "k1", 1).await,
        "unknown_partner",
        None,
    );
    assert!(message.contains("partners.CUST-999"), "{message}");

    let mut unanswerable = action(ActionKind::EdiRmaNotification);
    unanswerable.answer.as_mut().unwrap().request_ref = None;
    assert_business(
        deliver(sink.as_ref(), &unanswerable, 6, "k2", 1).await,
        "missing_partner_reference",
        None,
    );

    // A value X12 cannot carry is refused, not written: BLI04 is two
    // characters.
    let mut each = action(ActionKind::EdiRmaNotification);
    each.lines[0].uom = Some(backhaul_domain::values::Uom::parse("EACH").unwrap());
    let message = assert_business(
        deliver(sink.as_ref(), &each, 8, "k3", 1).await,
        "x12_write",
        None,
    );
    assert!(message.contains("BLI04"), "{message}");
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn a_004010_partner_gets_a_004010_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let section = format!("{SECTION}version = \"004010\"\nack_requested = true\n");
    let sink = connector(&section, dir.path());

    deliver(
        sink.as_ref(),
        &action(ActionKind::EdiRmaNotification),
        9,
        KEY,
        1,
    )
    .await
    .unwrap();

    let text = std::fs::read_to_string(dir.path().join(&files(dir.path())[0])).unwrap();
    let isa: Vec<&str> = text.split('~').next().unwrap().split('*').collect();
    assert_eq!(
        (isa[11], isa[12], isa[14], isa[15]),
        ("U", "00401", "1", "T")
    );
    let interchange = Interchange::parse_valid(text.as_bytes()).unwrap();
    assert!(interchange.validate().is_empty());
    assert_eq!(
        notifications(&interchange).remove(0).unwrap().rma_number,
        RMA
    );
}

#[test]
fn a_bad_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let at = |edit: &dyn Fn(&str) -> String| refusal(&edit(SECTION), dir.path());

    let missing = at(&|s| s.replace("{dir}", "{dir}/nowhere"));
    assert!(
        missing.starts_with("connectors.edi.x12_partner.outbound_dir: ")
            && missing.contains("must exist"),
        "{missing}"
    );
    let long = at(&|s| {
        s.replace(
            "sender_id = \"BACKHAUL\"",
            "sender_id = \"BACKHAUL-RETURNS-HUB\"",
        )
    });
    assert!(
        long.starts_with("connectors.edi.x12_partner.sender_id: ") && long.contains("1 to 15"),
        "{long}"
    );
    let receiver = at(&|s| {
        s.replace(
            "receiver_id = \"MEGAMART\"",
            "receiver_id = \"MEGAMART-STORES-INC\"",
        )
    });
    assert!(
        receiver.starts_with("connectors.edi.x12_partner.partners.CUST-001.receiver_id: "),
        "{receiver}"
    );
    let qualifier = at(&|s| s.replace("sender_qualifier = \"ZZ\"", "sender_qualifier = \"ZZZ\""));
    assert!(
        qualifier.starts_with("connectors.edi.x12_partner.sender_qualifier: "),
        "{qualifier}"
    );
    let separators = at(&|s| {
        format!("{s}[connectors.edi.x12_partner.partners.CUST-001.separators]\nelement = \"~\"\n")
    });
    assert!(
        separators.starts_with("connectors.edi.x12_partner.partners.CUST-001.separators: ")
            && separators.contains("both"),
        "{separators}"
    );
    let clash = at(&|s| s.replace("name = \"MEGAMART STORES\"", "name = \"MEGA*MART\""));
    assert!(
        clash.starts_with("connectors.edi.x12_partner.partners.CUST-001.name: ")
            && clash.contains("delimiter"),
        "{clash}"
    );
    let url = at(&|s| {
        s.replace(
            "kind = \"x12-partner\"",
            "kind = \"x12-partner\"\nurl = \"http://127.0.0.1:1\"",
        )
    });
    assert!(url.starts_with("connectors.edi.url: "), "{url}");
    let none = at(&|_| "[connectors.edi]\nkind = \"x12-partner\"\n".to_owned());
    assert!(none.contains("[connectors.edi.x12_partner]"), "{none}");
    let foreign = at(&|s| {
        s.replace("[connectors.edi]", "[connectors.portal]")
            .replace("kind = \"x12-partner\"", "kind = \"sim-portal\"")
            .replace("connectors.edi.", "connectors.portal.")
    });
    assert!(
        foreign.contains("[connectors.portal.x12_partner] is for kind `x12-partner`"),
        "{foreign}"
    );
    let misnamed = at(&|s| {
        s.replace("[connectors.edi]", "[connectors.portal]")
            .replace("connectors.edi.", "connectors.portal.")
    });
    assert!(misnamed.contains("[connectors.edi]"), "{misnamed}");
    // A usage must be chosen; unknown keys are refused by serde.
    let text = SECTION.replace("usage = \"T\"\n", "").replace("{dir}", "x");
    assert!(toml::from_str::<File>(&text).is_err());
    let text = SECTION
        .replace("usage = \"T\"", "usage = \"T\"\nusgae = \"P\"")
        .replace("{dir}", "x");
    assert!(toml::from_str::<File>(&text).is_err());
}
