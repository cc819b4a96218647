//! Attribute ownership at the edge: which system is the source of truth for
//! which governed attribute (see `backhaul_domain::ownership`), and which
//! system each sender speaks for. The engine checks every command against
//! it before deciding; a refused update is recorded on the return and
//! answered with [`NotOwner`].
//!
//! Not here: which attributes a command sets (the domain says), how the
//! refusal reads over HTTP (the api crate maps [`crate::Error::NotOwner`]).

use std::collections::{BTreeMap, BTreeSet};

use backhaul_domain::Command;
use backhaul_domain::ownership::Attribute;
use serde::{Deserialize, Serialize};

/// `[engine.ownership]` in the hub's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnershipConfig {
    /// Attribute (`price`, `tax`, `customer_intent`, `quantity_received`,
    /// `condition`, `disposition`) → the systems allowed to set it. An
    /// attribute not listed may be set by anyone: ownership is opt-in, so a
    /// hub without this section behaves as before.
    pub owners: BTreeMap<String, Vec<String>>,
    /// Sender → the system it speaks for. A sender is an API key's partner,
    /// `connector:<target>` for results fed back by the dispatcher, or a
    /// source's name. A sender not listed speaks for the system of its own
    /// name (`connector:erp` for `erp`).
    pub partners: BTreeMap<String, String>,
}

/// A command set an attribute its sender's system does not own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{system} does not own {attribute} (owned by {owners}); the update was refused and recorded",
    attribute = attribute.as_str(),
    owners = owners.join(", ")
)]
pub struct NotOwner {
    pub system: String,
    pub attribute: Attribute,
    pub owners: Vec<String>,
}

/// The checked form of [`OwnershipConfig`]; deserialising one checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "OwnershipConfig")]
pub struct Ownership {
    owners: BTreeMap<Attribute, BTreeSet<String>>,
    partners: BTreeMap<String, String>,
}

impl Ownership {
    /// Checks the configuration: every attribute must be one the hub
    /// governs and have at least one owner.
    pub fn build(config: &OwnershipConfig) -> Result<Ownership, String> {
        let mut owners = BTreeMap::new();
        for (name, systems) in &config.owners {
            let attribute = Attribute::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Attribute::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "engine.ownership.owners: unknown attribute {name:?} (known: {})",
                    known.join(", ")
                )
            })?;
            if systems.is_empty() || systems.iter().any(|s| s.trim().is_empty()) {
                return Err(format!(
                    "engine.ownership.owners.{name}: list at least one system, none empty"
                ));
            }
            owners.insert(attribute, systems.iter().cloned().collect());
        }
        Ok(Ownership {
            owners,
            partners: config.partners.clone(),
        })
    }

    /// The system `sender` speaks for.
    pub fn system_of(&self, sender: &str) -> String {
        if let Some(system) = self.partners.get(sender) {
            return system.clone();
        }
        sender
            .strip_prefix("connector:")
            .unwrap_or(sender)
            .to_owned()
    }

    /// `Err` names the first attribute of `command` that `sender`'s system
    /// does not own.
    pub fn check(&self, sender: &str, command: &Command) -> Result<(), NotOwner> {
        let attributes = command.attributes();
        if attributes.is_empty() {
            return Ok(());
        }
        let system = self.system_of(sender);
        for attribute in attributes {
            if let Some(owners) = self.owners.get(&attribute)
                && !owners.contains(&system)
            {
                return Err(NotOwner {
                    system,
                    attribute,
                    owners: owners.iter().cloned().collect(),
                });
            }
        }
        Ok(())
    }
}

impl TryFrom<OwnershipConfig> for Ownership {
    type Error = String;

    fn try_from(config: OwnershipConfig) -> Result<Self, String> {
        Ownership::build(&config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_domain::command::Receipt;
    use backhaul_domain::values::ExternalRef;

    fn ownership() -> Ownership {
        let config: OwnershipConfig = toml::from_str(
            r#"
            owners = { quantity_received = ["wms"], price = ["erp", "finance"] }
            partners = { "acme-3pl" = "wms" }
            "#,
        )
        .unwrap();
        Ownership::build(&config).unwrap()
    }

    fn receipt() -> Command {
        Command::RecordReceipt(Receipt {
            receipt_ref: ExternalRef::parse("R-1").unwrap(),
            lines: vec![],
        })
    }

    #[test]
    fn senders_speak_for_their_system() {
        let o = ownership();
        assert_eq!(o.system_of("acme-3pl"), "wms");
        assert_eq!(o.system_of("connector:erp"), "erp");
        assert_eq!(o.system_of("portal"), "portal");
    }

    #[test]
    fn only_the_owner_sets_an_owned_attribute() {
        let o = ownership();
        assert_eq!(o.check("acme-3pl", &receipt()), Ok(()));
        assert_eq!(o.check("wms", &receipt()), Ok(()));
        let refused = o.check("portal", &receipt()).unwrap_err();
        assert_eq!(refused.system, "portal");
        assert_eq!(refused.attribute, Attribute::QuantityReceived);
        assert!(refused.to_string().contains("owned by wms"), "{refused}");
        // Not configured: anyone may.
        assert_eq!(o.check("portal", &Command::Close), Ok(()));
        assert_eq!(
            Ownership::default().check("portal", &receipt()),
            Ok(()),
            "without configuration nothing is governed"
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_the_key_named() {
        let config: OwnershipConfig = toml::from_str(r#"owners = { colour = ["wms"] }"#).unwrap();
        let err = Ownership::build(&config).unwrap_err();
        assert!(
            err.contains("colour") && err.contains("quantity_received"),
            "{err}"
        );
        let config: OwnershipConfig = toml::from_str(r#"owners = { price = [] }"#).unwrap();
        assert!(Ownership::build(&config).unwrap_err().contains("price"));
        assert!(toml::from_str::<OwnershipConfig>(r#"owner = {}"#).is_err());
    }
}
