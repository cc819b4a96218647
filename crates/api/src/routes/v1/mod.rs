//! `/v1/...`: version 1 of the API. A breaking change gets `/v2` beside it.

pub(crate) mod backlog;
pub(crate) mod connectors;
pub(crate) mod deliveries;
pub(crate) mod eligibility;
pub(crate) mod master;
pub(crate) mod returns;
pub(crate) mod schema;
pub(crate) mod webhooks;
