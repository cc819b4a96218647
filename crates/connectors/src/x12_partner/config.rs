//! `[connectors.edi.x12_partner]` as the config file has it, and its
//! checks: every problem is refused when the connector is built, naming
//! its key, so nothing is first found wrong on a return.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use backhaul_domain::values::CustomerAccount;
use backhaul_x12::{EnvelopeSettings, Party, Separators, Usage, Version};
use serde::{Deserialize, Serialize};

/// Who the hub is in X12 and where the 180s go, with one agreement per
/// trading partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X12PartnerConfig {
    /// The folder the 180s are written to, for the partner transport (an
    /// AS2 or SFTP agent) to pick up. It must exist and be writable: the hub
    /// does not create it, so a mistyped path is refused rather than
    /// becoming a folder nobody watches.
    pub outbound_dir: PathBuf,
    /// Our interchange id qualifier (ISA05), e.g. `ZZ` (mutually defined)
    /// or `01` (DUNS): what the partners address us with.
    pub sender_qualifier: String,
    /// Our interchange id (ISA06), 1 to 15 characters.
    pub sender_id: String,
    /// Our application sender code (GS02), 2 to 15 characters. Default:
    /// `sender_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_sender: Option<String>,
    /// The trading partner agreements, keyed by the partner's customer
    /// account: the id its 180s name it by (N104), which the returns it
    /// sends are opened for. A return of a customer not listed here is
    /// refused to the exception queue (`unknown_partner`).
    pub partners: BTreeMap<String, PartnerConfig>,
}

/// One trading partner agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// The partner's interchange id qualifier (ISA07).
    pub receiver_qualifier: String,
    /// The partner's interchange id (ISA08), 1 to 15 characters.
    pub receiver_id: String,
    /// The partner's application receiver code (GS03), 2 to 15
    /// characters. Default: `receiver_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_receiver: Option<String>,
    /// `005010` or `004010` (ISA12 `00501`/`00401`, GS08).
    #[serde(default)]
    pub version: X12Version,
    /// `P` (production) or `T` (test), ISA15. Required: a test file taken
    /// for production (or the reverse) is worse than a refused start.
    pub usage: X12Usage,
    /// Ask the partner for a TA1 (ISA14).
    #[serde(default)]
    pub ack_requested: bool,
    /// The N1 loop naming the partner in the 180: entity code (N101),
    /// default `BY` (buyer), as the partner named itself in its request.
    #[serde(default = "default_entity")]
    pub entity: String,
    /// N103, the qualifier of the customer account written in N104;
    /// default `92` (assigned by buyer).
    #[serde(default = "default_id_qualifier")]
    pub id_qualifier: String,
    /// N102, the partner's name, if it wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The delimiters of the partner's interchanges.
    #[serde(default)]
    pub separators: SeparatorsConfig,
}

fn default_entity() -> String {
    "BY".to_owned()
}

fn default_id_qualifier() -> String {
    "92".to_owned()
}

/// The X12 release of a partner's interchanges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum X12Version {
    #[default]
    #[serde(rename = "005010")]
    V5010,
    #[serde(rename = "004010")]
    V4010,
}

/// ISA15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum X12Usage {
    #[serde(rename = "P")]
    Production,
    #[serde(rename = "T")]
    Test,
}

/// Delimiters, one character each: ASCII punctuation or control
/// characters, all different.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeparatorsConfig {
    /// Between elements (ISA04 position), default `*`.
    pub element: char,
    /// Between components (ISA16), default `>`.
    pub component: char,
    /// Between repetitions (ISA11), default `^`. Used by 005010 only: in
    /// 004010 ISA11 is the standards identifier `U`.
    pub repetition: char,
    /// After each segment, default `~`.
    pub segment: char,
}

impl Default for SeparatorsConfig {
    fn default() -> Self {
        SeparatorsConfig {
            element: '*',
            component: '>',
            repetition: '^',
            segment: '~',
        }
    }
}

/// One partner's agreement, checked: everything the envelope and the N1
/// loop need except the control numbers and the time, which come with
/// each delivery.
#[derive(Debug, Clone)]
pub(crate) struct Agreement {
    /// The envelope with placeholder control numbers (1) and time.
    pub(crate) envelope: EnvelopeSettings,
    /// N1 without the id, which is the action's customer account.
    pub(crate) party: Party,
}

/// The whole section, checked.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) outbound_dir: PathBuf,
    pub(crate) partners: BTreeMap<String, Agreement>,
}

/// A refusal: the key at fault (below `x12_partner`) and why.
pub(crate) type Refusal = (String, String);

impl X12PartnerConfig {
    /// Checks every value, and that the folder exists and takes files.
    pub(crate) fn check(&self) -> Result<Checked, Refusal> {
        let field = |key: &str, message: String| (key.to_owned(), message);
        writable(&self.outbound_dir).map_err(|m| field("outbound_dir", m))?;
        code("sender_qualifier", &self.sender_qualifier, 2, 2)?;
        code("sender_id", &self.sender_id, 1, 15)?;
        let application_sender = self
            .application_sender
            .clone()
            .unwrap_or_else(|| self.sender_id.clone());
        let sender_key = if self.application_sender.is_some() {
            "application_sender"
        } else {
            "sender_id"
        };
        code(sender_key, &application_sender, 2, 15)?;
        if self.partners.is_empty() {
            return Err(field(
                "partners",
                "at least one trading partner agreement ([connectors.edi.x12_partner.partners.<customer>])".into(),
            ));
        }
        let mut partners = BTreeMap::new();
        for (customer, partner) in &self.partners {
            let key = |name: &str| format!("partners.{customer}.{name}");
            CustomerAccount::parse(customer)
                .map_err(|e| (format!("partners.{customer}"), e.to_string()))?;
            code(
                &key("receiver_qualifier"),
                &partner.receiver_qualifier,
                2,
                2,
            )?;
            code(&key("receiver_id"), &partner.receiver_id, 1, 15)?;
            let application_receiver = partner
                .application_receiver
                .clone()
                .unwrap_or_else(|| partner.receiver_id.clone());
            let receiver_key = if partner.application_receiver.is_some() {
                key("application_receiver")
            } else {
                key("receiver_id")
            };
            code(&receiver_key, &application_receiver, 2, 15)?;
            code(&key("entity"), &partner.entity, 2, 3)?;
            code(&key("id_qualifier"), &partner.id_qualifier, 1, 2)?;
            if let Some(name) = &partner.name {
                text(&key("name"), name, 60)?;
            }
            let (version, repetition) = match partner.version {
                X12Version::V5010 => (Version::V5010, Some(partner.separators.repetition)),
                X12Version::V4010 => (Version::V4010, None),
            };
            let s = partner.separators;
            let separators = Separators::new(s.element, s.component, repetition, s.segment)
                .map_err(|e| (key("separators"), strip(&e.to_string())))?;
            // A delimiter inside an id would split it in the partner's reader.
            for (name, value) in [
                ("sender_id".to_owned(), &self.sender_id),
                (sender_key.to_owned(), &application_sender),
                (key("receiver_id"), &partner.receiver_id),
                (receiver_key.clone(), &application_receiver),
                (key("entity"), &partner.entity),
                (key("id_qualifier"), &partner.id_qualifier),
            ]
            .into_iter()
            .chain(partner.name.as_ref().map(|n| (key("name"), n)))
            {
                if let Some(c) = value.chars().find(|c| {
                    [s.element, s.component, s.segment].contains(c) || Some(*c) == repetition
                }) {
                    return Err((
                        name,
                        format!(
                            "{value:?} contains {c:?}, a delimiter of {customer}'s interchanges"
                        ),
                    ));
                }
            }
            let envelope = EnvelopeSettings {
                separators,
                version,
                usage: match partner.usage {
                    X12Usage::Production => Usage::Production,
                    X12Usage::Test => Usage::Test,
                },
                sender_qualifier: self.sender_qualifier.clone(),
                sender_id: self.sender_id.clone(),
                receiver_qualifier: partner.receiver_qualifier.clone(),
                receiver_id: partner.receiver_id.clone(),
                application_sender: application_sender.clone(),
                application_receiver,
                interchange_control: 1,
                group_control: 1,
                set_control: 1,
                timestamp: chrono::NaiveDateTime::default(),
                ack_requested: partner.ack_requested,
            };
            let party = Party {
                entity: partner.entity.clone(),
                name: partner.name.clone(),
                id_qualifier: partner.id_qualifier.clone(),
                id: customer.clone(),
            };
            partners.insert(customer.clone(), Agreement { envelope, party });
        }
        Ok(Checked {
            outbound_dir: self.outbound_dir.clone(),
            partners,
        })
    }
}

/// An X12 identifier: `min` to `max` ASCII letters, digits and the
/// punctuation ids use, no spaces at the ends (the ISA pads with them).
fn code(key: &str, value: &str, min: usize, max: usize) -> Result<(), Refusal> {
    let len = value.chars().count();
    let refusal = |why: String| (key.to_owned(), why);
    if len < min || len > max {
        return Err(refusal(format!(
            "{value:?} is {len} characters; X12 allows {min} to {max} here"
        )));
    }
    if !value.chars().all(|c| c.is_ascii_graphic() || c == ' ') || value.trim() != value {
        return Err(refusal(format!(
            "{value:?} must be visible ASCII characters, without spaces at either end"
        )));
    }
    Ok(())
}

/// Free text (N102): 1 to `max` ASCII characters.
fn text(key: &str, value: &str, max: usize) -> Result<(), Refusal> {
    if value.trim().is_empty() || value.chars().count() > max || !value.is_ascii() {
        return Err((
            key.to_owned(),
            format!("{value:?} must be 1 to {max} ASCII characters"),
        ));
    }
    Ok(())
}

/// The X12 writer's message without its own prefix (`cannot write
/// separators: `), so the refusal reads as the key's.
fn strip(message: &str) -> String {
    message
        .split_once(": ")
        .map_or(message, |(_, rest)| rest)
        .to_owned()
}

/// Whether `dir` is an existing folder the hub can create files in (by
/// creating and removing one).
fn writable(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Err(e) => return Err(format!("{shown}: {e} (the folder must exist)")),
        Ok(m) if !m.is_dir() => return Err(format!("{shown} is not a folder")),
        Ok(_) => {}
    }
    let probe = dir.join(format!(".backhaul-probe-{}.tmp", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("{shown} does not take files: {e}"))?;
    std::fs::remove_file(&probe)
        .map_err(|e| format!("{shown}: cannot remove {}: {e}", probe.display()))
}
