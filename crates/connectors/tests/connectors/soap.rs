//! The generic SOAP connector (`soap`) against an in-process fake of a
//! legacy ERP's return-order service: the rendered body is the fixture in
//! `src/soap/fixtures`, the fake verifies the WS-Security UsernameToken
//! (recomputing the PasswordDigest from the nonce and creation time it
//! received), the SOAPAction and the idempotency header and element, the
//! document number is read from the configured element, and SOAP Faults
//! are classified by their code (Client/Sender business, Server/Receiver
//! technical), not by the HTTP 500 they come with.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use backhaul_connectors::ConnectorConfig;
use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_engine::Sink;
use base64::Engine as _;
use quick_xml::Reader;
use quick_xml::events::Event;
use sha1::{Digest, Sha1};

use crate::erp_fake::{erp_reasons, fixture_text, sink_for};
use crate::helpers::{
    action, assert_business, assert_technical, deliver, deliver_with_master, delivered, document,
    no_prerequisites,
};

const FOLDER: &str = "soap";
const ENV: &[(&str, &str)] = &[("ERP_WS_USER", "hub&co"), ("ERP_WS_PASSWORD", "pa<ss>")];
const KEY: &str = "RMA-000042:erp_return_order:3";
const NUMBER: &str = "RO-2025-000917";
const CREATE: &str = "urn:acme:returns:CreateReturnOrder";
const CANCEL: &str = "urn:acme:returns:CancelReturnOrder";
const DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

// The body template is written at the left margin: its whitespace is sent
// as is, and the fixture has the same.
const CONFIG: &str = r#"
kind = "soap"

[soap]
target = "erp"
path = "/ws/returns"
idempotency_header = "x-idempotency-key"
header = '<h:MessageID xmlns:h="urn:acme:headers">{{delivery_key}}</h:MessageID>'

[soap.security]
username_env = "ERP_WS_USER"
password_env = "ERP_WS_PASSWORD"
password_type = "digest"

[soap.actions.erp_return_order]
soap_action = "urn:acme:returns:CreateReturnOrder"
number = "ReturnOrderNumber"
body = '''
<ret:CreateReturnOrder xmlns:ret="urn:acme:returns:v1">
<ret:ExternalReference>{{delivery_key}}</ret:ExternalReference>
<ret:Rma>{{rma}}</ret:Rma>
<ret:Customer>{{customer}}</ret:Customer>
<ret:SalesOrder>{{order_ref}}</ret:SalesOrder>
<ret:Site>{{site}}</ret:Site>
<ret:Lines>{{#lines}}
<ret:Line><ret:No>{{line_no}}</ret:No><ret:Item>{{sku}}</ret:Item><ret:Qty>{{quantity}}</ret:Qty><ret:Price currency="{{currency}}">{{unit_price}}</ret:Price><ret:Reason>{{reason_code}}</ret:Reason></ret:Line>{{/lines}}
</ret:Lines>
</ret:CreateReturnOrder>
'''

[soap.actions.erp_cancel_return_order]
soap_action = "urn:acme:returns:CancelReturnOrder"
body = '<ret:CancelReturnOrder xmlns:ret="urn:acme:returns:v1"><ret:Number>{{prerequisite_number}}</ret:Number></ret:CancelReturnOrder>'
"#;

fn config(text: &str) -> ConnectorConfig {
    toml::from_str(text).unwrap()
}

/// One request the fake received, as text.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    xml: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The content of `soap:Body`, as sent.
    fn body(&self) -> &str {
        let from = self.xml.find("<soap:Body>").unwrap() + "<soap:Body>".len();
        let to = self.xml.find("</soap:Body>").unwrap();
        &self.xml[from..to]
    }
}

/// The text of every element by local name, and the `Type` of the
/// password: what the fake needs of the security header.
fn elements(xml: &str) -> (Vec<(String, String)>, Option<String>) {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut password_type = None;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                let name = AsRef::<str>::as_ref(&e.local_name()).to_owned();
                if name == "Password" {
                    password_type = e
                        .try_get_attribute("Type")
                        .unwrap()
                        .map(|a| a.value.into_owned());
                }
                names.push(name);
            }
            Event::Text(t) => {
                if let Some(name) = names.last() {
                    out.push((name.clone(), t.xml10_content().into_owned()));
                }
            }
            Event::GeneralRef(r) => {
                let entity = r.xml10_content();
                let c = quick_xml::escape::resolve_predefined_entity(&entity).unwrap();
                if let Some(name) = names.last() {
                    out.push((name.clone(), c.to_owned()));
                }
            }
            Event::End(_) => {
                names.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // Text split around entities comes as several pieces: join them.
    let mut joined: Vec<(String, String)> = Vec::new();
    for (name, text) in out {
        match joined.last_mut() {
            Some((last, value)) if *last == name => value.push_str(&text),
            _ => joined.push((name, text)),
        }
    }
    (joined, password_type)
}

/// What the fake answers next instead of its normal answer.
type Queued = Arc<Mutex<Vec<(StatusCode, String)>>>;

/// The ERP's SOAP service, checking what a WS-Security server checks.
#[derive(Clone, Default)]
struct SoapFake {
    log: Arc<Mutex<Vec<Received>>>,
    queued: Queued,
    /// The password type the service expects (digest unless a test says).
    expect: Arc<Mutex<Option<&'static str>>>,
}

fn xml_response(status: StatusCode, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}

const AUTH_FAULT: &str = r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">wsse:FailedAuthentication</faultcode><faultstring>The security token could not be authenticated</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;

impl SoapFake {
    fn router(&self) -> Router {
        let fake = self.clone();
        Router::new().fallback(move |request: Request| {
            let fake = fake.clone();
            async move { fake.handle(request).await }
        })
    }

    fn sink(&self, text: &str) -> Arc<dyn Sink> {
        sink_for(Target::Erp, config(text), self.router(), ENV).unwrap()
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    fn queue(&self, status: StatusCode, fixture: &str) {
        self.queued
            .lock()
            .unwrap()
            .push((status, fixture_text(FOLDER, fixture)));
    }

    /// Whether the UsernameToken is the configured user's, with the
    /// password sent as `expected` says.
    fn authenticated(&self, xml: &str) -> bool {
        let (elements, password_type) = elements(xml);
        let get = |name: &str| {
            elements
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
                .unwrap_or_default()
        };
        let (user, password, nonce, created) = (
            get("Username"),
            get("Password"),
            get("Nonce"),
            get("Created"),
        );
        let expected = self.expect.lock().unwrap().unwrap_or(DIGEST);
        if user != "hub&co" || password_type.as_deref() != Some(expected) {
            return false;
        }
        if expected == TEXT {
            return password == "pa<ss>";
        }
        // The profile's digest, recomputed: Base64(SHA-1(nonce + created
        // + password)) over the decoded nonce bytes.
        let Ok(nonce) = base64::engine::general_purpose::STANDARD.decode(&nonce) else {
            return false;
        };
        let mut sha = Sha1::new();
        sha.update(&nonce);
        sha.update(created.as_bytes());
        sha.update("pa<ss>".as_bytes());
        let digest = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
        nonce.len() == 16
            && chrono::DateTime::parse_from_rfc3339(&created).is_ok()
            && password == digest
    }

    async fn handle(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let received = Received {
            headers: parts.headers,
            xml: String::from_utf8(bytes.to_vec()).unwrap(),
        };
        self.log.lock().unwrap().push(received.clone());
        let soap11 = received.header("content-type") == Some("text/xml; charset=utf-8");
        let content_type = if soap11 {
            "text/xml; charset=utf-8"
        } else {
            "application/soap+xml; charset=utf-8"
        };
        if !self.authenticated(&received.xml) {
            return xml_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                content_type,
                AUTH_FAULT.to_owned(),
            );
        }
        if let Some((status, body)) = self.queued.lock().unwrap().pop() {
            return xml_response(status, content_type, body);
        }
        let action = if soap11 {
            received
                .header("soapaction")
                .unwrap_or("")
                .trim_matches('"')
                .to_owned()
        } else {
            let ct = received.header("content-type").unwrap_or("");
            ct.split("action=\"")
                .nth(1)
                .unwrap_or("")
                .trim_end_matches('"')
                .to_owned()
        };
        let fixture = match action.as_str() {
            CREATE => "return_order.response.xml",
            CANCEL => "cancel.response.xml",
            _ => "fault11.client.xml",
        };
        xml_response(StatusCode::OK, content_type, fixture_text(FOLDER, fixture))
    }
}

#[tokio::test]
async fn the_return_order_is_rendered_signed_and_its_number_read() {
    let fake = SoapFake::default();
    let sink = fake.sink(CONFIG);

    let result = deliver_with_master(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await;

    assert_eq!(result, Ok(document(NUMBER)));
    let received = fake.received();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent.body(), fixture_text(FOLDER, "return_order.body.xml"));
    assert_eq!(
        sent.header("soapaction"),
        Some(format!("\"{CREATE}\"").as_str())
    );
    assert_eq!(sent.header("x-idempotency-key"), Some(KEY));
    assert!(
        sent.xml.contains(&format!(
            r#"<h:MessageID xmlns:h="urn:acme:headers">{KEY}</h:MessageID>"#
        )),
        "{}",
        sent.xml
    );
    // The user name's `&` is escaped like every value.
    assert!(
        sent.xml
            .contains("<wsse:Username>hub&amp;co</wsse:Username>")
    );
    assert!(sent.xml.starts_with(r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#));
}

#[tokio::test]
async fn every_attempt_has_a_fresh_nonce() {
    let fake = SoapFake::default();
    let sink = fake.sink(CONFIG);
    let order = action(ActionKind::ErpReturnOrder);
    for _ in 0..2 {
        deliver_with_master(
            sink.as_ref(),
            &order,
            KEY,
            &no_prerequisites(),
            &erp_reasons(),
        )
        .await
        .unwrap();
    }
    let nonces: Vec<String> = fake
        .received()
        .iter()
        .map(|r| {
            elements(&r.xml)
                .0
                .into_iter()
                .find(|(n, _)| n == "Nonce")
                .unwrap()
                .1
        })
        .collect();
    assert_ne!(nonces[0], nonces[1]);
}

#[tokio::test]
async fn a_password_text_token_sends_the_password_escaped() {
    let fake = SoapFake::default();
    *fake.expect.lock().unwrap() = Some(TEXT);
    let sink =
        fake.sink(&CONFIG.replace(r#"password_type = "digest""#, r#"password_type = "text""#));

    let result = deliver_with_master(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await;

    assert_eq!(result, Ok(document(NUMBER)));
    assert!(
        fake.received()[0]
            .xml
            .contains(">pa&lt;ss&gt;</wsse:Password>")
    );
}

#[tokio::test]
async fn a_refused_token_is_technical_like_a_refused_credential_elsewhere() {
    let fake = SoapFake::default();
    // The service wants text; the connector sends a digest.
    *fake.expect.lock().unwrap() = Some(TEXT);
    let sink = fake.sink(CONFIG);

    let result = deliver_with_master(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await;

    assert_technical(result, "soap_failedauthentication", Some(500));
}

#[tokio::test]
async fn faults_are_classified_by_code_not_by_status() {
    let cases = [
        (
            "fault11.client.xml",
            false,
            "soap_client",
            "blocked for returns & credits",
        ),
        ("fault11.server.xml", true, "soap_server", "pool exhausted"),
        ("fault12.sender.xml", false, "soap_sender", "(OrderClosed)"),
        ("fault12.receiver.xml", true, "soap_receiver", "batch job"),
    ];
    for (fixture, technical, code, text) in cases {
        let fake = SoapFake::default();
        let sink = fake.sink(CONFIG);
        fake.queue(StatusCode::INTERNAL_SERVER_ERROR, fixture);
        let result = deliver_with_master(
            sink.as_ref(),
            &action(ActionKind::ErpReturnOrder),
            KEY,
            &no_prerequisites(),
            &erp_reasons(),
        )
        .await;
        let message = match result {
            Err(backhaul_engine::SinkError::Technical {
                code: got,
                message,
                status,
                ..
            }) if technical => {
                assert_eq!((got.as_str(), status), (code, Some(500)), "{fixture}");
                message
            }
            Err(backhaul_engine::SinkError::Business {
                code: got,
                message,
                status,
            }) if !technical => {
                assert_eq!((got.as_str(), status), (code, Some(500)), "{fixture}");
                message
            }
            other => panic!("{fixture}: {other:?}"),
        };
        assert!(message.contains(text), "{fixture}: {message}");
    }
}

#[tokio::test]
async fn without_a_fault_the_http_status_decides() {
    let fake = SoapFake::default();
    let sink = fake.sink(CONFIG);
    fake.queued.lock().unwrap().push((
        StatusCode::SERVICE_UNAVAILABLE,
        "<html>maintenance</html>".to_owned(),
    ));
    let result = deliver_with_master(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await;
    assert_technical(result, "http_503", Some(503));

    // A success without the number element is a business failure: the
    // service acted, so sending again cannot fix the answer.
    fake.queue(StatusCode::OK, "cancel.response.xml");
    let result = deliver_with_master(
        sink.as_ref(),
        &action(ActionKind::ErpReturnOrder),
        KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await;
    let message = assert_business(result, "invalid_response", None);
    assert!(message.contains("<ReturnOrderNumber>"), "{message}");
}

#[tokio::test]
async fn soap_1_2_sends_the_action_in_the_content_type_and_cancels_by_number() {
    let fake = SoapFake::default();
    let sink =
        fake.sink(&CONFIG.replace("target = \"erp\"", "target = \"erp\"\nversion = \"1.2\""));

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpCancelReturnOrder),
        "RMA-000042:erp_cancel_return_order:8",
        &delivered(ActionKind::ErpReturnOrder, NUMBER),
    )
    .await;

    assert_eq!(result, Ok(ActionResult::Accepted));
    let sent = &fake.received()[0];
    assert_eq!(
        sent.header("content-type"),
        Some(format!("application/soap+xml; charset=utf-8; action=\"{CANCEL}\"").as_str())
    );
    assert_eq!(sent.header("soapaction"), None);
    assert!(
        sent.xml
            .contains(r#"xmlns:soap="http://www.w3.org/2003/05/soap-envelope""#)
    );
    assert!(
        sent.body()
            .contains(&format!("<ret:Number>{NUMBER}</ret:Number>"))
    );
}

#[tokio::test]
async fn an_action_without_a_template_or_a_value_is_a_business_failure() {
    let fake = SoapFake::default();
    let sink = fake.sink(CONFIG);
    let credit = deliver(
        sink.as_ref(),
        &action(ActionKind::ErpCreditMemo),
        "k",
        &delivered(ActionKind::ErpReturnOrder, NUMBER),
    )
    .await;
    assert_business(credit, "unsupported_action", None);

    // A return order line without a price, which the template asks for
    // (with its currency, which comes first in the template).
    let mut order = action(ActionKind::ErpReturnOrder);
    order.lines[1].unit_price = None;
    let result = deliver_with_master(
        sink.as_ref(),
        &order,
        KEY,
        &no_prerequisites(),
        &erp_reasons(),
    )
    .await;
    let message = assert_business(result, "missing_field", None);
    assert!(
        message.contains("needs `currency`, which line 2 does not have"),
        "{message}"
    );
    assert!(fake.received().is_empty(), "nothing half-rendered is sent");
}

#[test]
fn bad_settings_are_refused_naming_the_key() {
    let cases = [
        (
            "{{site}}",
            "{{warehouse}}",
            "soap.actions.erp_return_order.body: unknown field `{{warehouse}}`",
        ),
        (
            "<ret:Rma>{{rma}}</ret:Rma>",
            "<ret:Rma>{{rma}}</ret:Rmx>",
            "soap.actions.erp_return_order.body: not well-formed XML",
        ),
        (
            "[soap.actions.erp_cancel_return_order]",
            "[soap.actions.wms_expected_receipt]",
            "soap.actions.wms_expected_receipt: a wms action, but this connector serves `erp`",
        ),
        (
            "[soap.actions.erp_cancel_return_order]",
            "[soap.actions.erp_return_orders]",
            "soap.actions.erp_return_orders: `erp_return_orders` is not an action kind",
        ),
        (
            r#"number = "ReturnOrderNumber""#,
            "",
            "soap.actions.erp_return_order.number must name the answer element",
        ),
        (
            "{{delivery_key}}</h:MessageID>",
            "{{sku}}</h:MessageID>",
            "soap.header: `{{sku}}` is a line field",
        ),
        (
            r#"password_env = "ERP_WS_PASSWORD""#,
            r#"password_env = "ERP_WS_PASS""#,
            "soap.security.password_env: the environment variable `ERP_WS_PASS`",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(CONFIG.contains(from), "{from}");
        let text = CONFIG.replacen(from, to, 1);
        let message = sink_for(Target::Erp, config(&text), Router::new(), ENV)
            .err()
            .expect("the configuration should be refused")
            .to_string();
        assert!(message.starts_with("connectors.erp: "), "{message}");
        assert!(message.contains(expected), "{to}: {message}");
    }
}

#[test]
fn a_soap_connector_serves_an_erp_or_a_wms_only() {
    let text = CONFIG.replace(r#"target = "erp""#, r#"target = "carrier""#);
    let error = toml::from_str::<ConnectorConfig>(&text)
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown variant `carrier`"), "{error}");
}

#[test]
fn a_soap_section_must_be_named_after_its_target() {
    let text = CONFIG.replace(r#"target = "erp""#, r#"target = "wms""#);
    let message = sink_for(Target::Erp, config(&text), Router::new(), ENV)
        .err()
        .map(|e| e.to_string());
    // Built as [connectors.erp] while the settings say wms.
    let message = message.expect("refused");
    assert!(
        message.contains("name the section [connectors.wms]"),
        "{message}"
    );
}
