//! SOAP's wire format, pure: the envelope around a rendered body (SOAP 1.1
//! or 1.2), the WS-Security UsernameToken header, and reading answers (an
//! element's text, a Fault's code and reason) with `quick-xml`.
//!
//! WS-Security, per the OASIS Web Services Security UsernameToken Profile
//! 1.1: `PasswordText` sends the password; `PasswordDigest` sends
//! `Base64(SHA-1(nonce + created + password))`, where `nonce` is the raw
//! bytes whose Base64 is sent in `Nonce` and `created` the exact text sent
//! in `wsu:Created`. Both carry a fresh nonce and the creation time, so a
//! server that keeps a nonce cache can refuse a replay.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::Reader;
use quick_xml::events::Event;
use sha1::{Digest, Sha1};

use super::template::escape;

const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PROFILE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";
const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// The SOAP version spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml`, the action in the `SOAPAction` header.
    #[serde(rename = "1.1")]
    Soap11,
    /// SOAP 1.2: `application/soap+xml` with the action as its parameter.
    #[serde(rename = "1.2")]
    Soap12,
}

impl SoapVersion {
    fn namespace(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => "http://schemas.xmlsoap.org/soap/envelope/",
            SoapVersion::Soap12 => "http://www.w3.org/2003/05/soap-envelope",
        }
    }
}

/// How the password travels in the UsernameToken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordType {
    /// `#PasswordText`: the password itself (only over a protected channel).
    Text,
    /// `#PasswordDigest`: Base64(SHA-1(nonce + created + password)).
    Digest,
}

/// `PasswordDigest` of the profile: Base64(SHA-1(nonce + created +
/// password)).
pub(crate) fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The `wsse:Security` header with one UsernameToken, for inside
/// [`envelope`] (which declares the `soap` prefix). `nonce` and `created`
/// are passed in so the header is reproducible in tests.
pub(crate) fn security_header(
    user: &str,
    password: &str,
    kind: PasswordType,
    nonce: &[u8],
    created: DateTime<Utc>,
) -> String {
    let created = created.to_rfc3339_opts(SecondsFormat::Millis, true);
    let (type_suffix, sent) = match kind {
        PasswordType::Text => ("PasswordText", password.to_owned()),
        PasswordType::Digest => ("PasswordDigest", password_digest(nonce, &created, password)),
    };
    let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
    // `mustUnderstand` is "1" in 1.1 and a boolean in 1.2; "1" is valid in
    // both, so one header serves either version.
    format!(
        concat!(
            r#"<wsse:Security xmlns:wsse="{wsse}" xmlns:wsu="{wsu}" soap:mustUnderstand="1">"#,
            r#"<wsse:UsernameToken wsu:Id="UsernameToken-1">"#,
            "<wsse:Username>{user}</wsse:Username>",
            r#"<wsse:Password Type="{profile}#{type_suffix}">{sent}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="{base64}">{nonce}</wsse:Nonce>"#,
            "<wsu:Created>{created}</wsu:Created>",
            "</wsse:UsernameToken></wsse:Security>"
        ),
        wsse = WSSE_NS,
        wsu = WSU_NS,
        user = escape(user),
        profile = PROFILE,
        type_suffix = type_suffix,
        sent = escape(&sent),
        base64 = BASE64_BINARY,
        nonce = nonce,
        created = created,
    )
}

/// The whole envelope: the XML declaration, `soap:Header` with `header`
/// (when not empty) and `soap:Body` with `body`.
pub(crate) fn envelope(version: SoapVersion, header: &str, body: &str) -> String {
    let header = if header.is_empty() {
        String::new()
    } else {
        format!("<soap:Header>{header}</soap:Header>")
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ns}">{header}<soap:Body>{body}</soap:Body></soap:Envelope>"#,
        ns = version.namespace()
    )
}

/// Checks that `xml` (a fragment: several top-level elements allowed) is
/// well formed: tags balanced and closed, attributes quoted.
pub(crate) fn check_well_formed(xml: &str) -> Result<(), String> {
    let wrapped = format!("<root>{xml}</root>");
    let mut reader = Reader::from_str(&wrapped);
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return Ok(()),
            Ok(Event::Start(e) | Event::Empty(e)) => {
                for attribute in e.attributes() {
                    attribute.map_err(|err| format!("not well-formed XML: {err}"))?;
                }
            }
            Ok(_) => {}
            Err(err) => {
                return Err(format!(
                    "not well-formed XML at byte {}: {err}",
                    reader.error_position()
                ));
            }
        }
    }
}

/// A SOAP Fault read from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// The fault code's local part (`Client`, `Server.Busy`; 1.2:
    /// `Sender`, `Receiver`).
    pub(crate) code: String,
    /// The subcode's local part (1.2 `Subcode/Value`, a 1.1 code's dotted
    /// suffix), the more precise reason when there is one.
    pub(crate) subcode: Option<String>,
    pub(crate) reason: String,
}

/// Whether a fault's class says the request was wrong (business) or the
/// server failed (technical).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultClass {
    Business,
    Technical,
}

impl Fault {
    /// `Client`/`Sender` (the request was wrong) and `VersionMismatch`,
    /// `MustUnderstand`, `DataEncodingUnknown` (the request cannot be
    /// processed as sent) are business: repeating the same request cannot
    /// help. `Server`/`Receiver` is technical: the server failed and may
    /// succeed later. An unknown code is technical too, so an outage that a
    /// server reports in its own words is retried, not parked.
    pub(crate) fn class(&self) -> FaultClass {
        let top = self.code.split('.').next().unwrap_or("");
        match top {
            "Client" | "Sender" | "VersionMismatch" | "MustUnderstand" | "DataEncodingUnknown" => {
                FaultClass::Business
            }
            _ => FaultClass::Technical,
        }
    }
}

/// The local part of a qualified name (`soap:Client` → `Client`).
fn local(qualified: &str) -> &str {
    qualified.rsplit(':').next().unwrap_or(qualified).trim()
}

/// The text content of each element of the answer in document order, by
/// local name, with the names of its ancestors: enough to find a fault's
/// parts and a configured element, and no DOM.
struct Texts {
    /// (path of local names, text).
    items: Vec<(Vec<String>, String)>,
}

fn texts(xml: &[u8]) -> Result<Texts, String> {
    let text = std::str::from_utf8(xml).map_err(|e| format!("the answer is not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut items = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                stack.push(AsRef::<str>::as_ref(&e.local_name()).to_owned());
                open.push(String::new());
            }
            Ok(Event::Empty(e)) => {
                let mut path = stack.clone();
                path.push(AsRef::<str>::as_ref(&e.local_name()).to_owned());
                items.push((path, String::new()));
            }
            Ok(Event::End(_)) => {
                let content = open.pop().unwrap_or_default();
                items.push((stack.clone(), content.trim().to_owned()));
                stack.pop();
            }
            Ok(Event::Text(t)) => {
                if let Some(current) = open.last_mut() {
                    current.push_str(&t.xml10_content());
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(current) = open.last_mut() {
                    current.push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .map(str::to_owned),
                    Err(_) => None,
                };
                let resolved =
                    resolved.ok_or_else(|| "an unknown entity in the answer".to_owned())?;
                if let Some(current) = open.last_mut() {
                    current.push_str(&resolved);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "the answer is not well-formed XML at byte {}: {e}",
                    reader.error_position()
                ));
            }
        }
    }
    Ok(Texts { items })
}

impl Texts {
    /// The text of the first element named `name` (local name) whose
    /// ancestors include `under`, if given.
    fn first(&self, name: &str, under: &[&str]) -> Option<&str> {
        self.items
            .iter()
            .find(|(path, _)| {
                path.last().is_some_and(|n| n == name)
                    && under.iter().all(|u| path.iter().any(|p| p == u))
            })
            .map(|(_, text)| text.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.items
            .iter()
            .any(|(path, _)| path.last().is_some_and(|n| n == name))
    }
}

/// What an answer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    Fault(Fault),
    /// No Fault; the text of the element asked for, if it was there.
    Body(Option<String>),
}

/// Reads an answer: a Fault if it holds one (either version's shape),
/// otherwise the text of the first element with local name `number`.
pub(crate) fn read(xml: &[u8], number: Option<&str>) -> Result<Reading, String> {
    let texts = texts(xml)?;
    if texts.has("Fault") {
        // SOAP 1.1: faultcode / faultstring. SOAP 1.2: Code/Value (with an
        // optional Subcode/Value) / Reason/Text.
        let fault = if let Some(code) = texts.first("faultcode", &["Fault"]) {
            let code = local(code).to_owned();
            let subcode = code.split_once('.').map(|(_, s)| s.to_owned());
            Fault {
                code,
                subcode,
                reason: texts
                    .first("faultstring", &["Fault"])
                    .unwrap_or("")
                    .to_owned(),
            }
        } else {
            let top = texts
                .items
                .iter()
                .find(|(path, _)| {
                    path.ends_with(&["Code".to_owned(), "Value".to_owned()])
                        && !path.iter().any(|p| p == "Subcode")
                })
                .map(|(_, t)| local(t).to_owned())
                .unwrap_or_default();
            Fault {
                code: top,
                subcode: texts
                    .first("Value", &["Fault", "Subcode"])
                    .map(|s| local(s).to_owned()),
                reason: texts
                    .first("Text", &["Fault", "Reason"])
                    .unwrap_or("")
                    .to_owned(),
            }
        };
        return Ok(Reading::Fault(fault));
    }
    Ok(Reading::Body(number.and_then(|n| {
        texts.first(n, &["Body"]).map(str::to_owned)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_matches_the_profile_example() {
        // A nonce, time and password often used to illustrate the
        // profile; the expected digest was recomputed independently
        // (Python's hashlib over the raw nonce bytes + Created + password).
        let nonce = base64::engine::general_purpose::STANDARD
            .decode("LKqI6G/AikKCQrN0zqZFlg==")
            .unwrap();
        let digest = password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword");
        assert_eq!(digest, "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
    }

    #[test]
    fn faults_of_both_versions_are_read() {
        let v11 = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client.UnknownSku</faultcode><faultstring>SKU &lt;X&gt; unknown</faultstring></s:Fault></s:Body></s:Envelope>"#;
        let Reading::Fault(fault) = read(v11, None).unwrap() else {
            panic!("a fault")
        };
        assert_eq!(fault.code, "Client.UnknownSku");
        assert_eq!(fault.reason, "SKU <X> unknown");
        assert_eq!(fault.class(), FaultClass::Business);

        let v12 = br#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value><env:Subcode><env:Value>m:Busy</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">Try later</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
        let Reading::Fault(fault) = read(v12, None).unwrap() else {
            panic!("a fault")
        };
        assert_eq!(
            (fault.code.as_str(), fault.subcode.as_deref()),
            ("Receiver", Some("Busy"))
        );
        assert_eq!(fault.class(), FaultClass::Technical);
    }
}
