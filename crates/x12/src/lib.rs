//! X12 EDI for Backhaul: inbound 180 return authorization requests from
//! retail partners, outbound 180 RMA notifications, and 997 functional
//! acknowledgements. A small own X12 layer rather than a crate, because the
//! available crates either hard-code delimiters or know no envelopes.
//!
//! # Layout
//! - [`interchange`]: separators from the ISA, tokenizing, the ISA/GS/ST
//!   tree with positions, count and control-number validation.
//! - [`ts180`]: the typed 180 subset, read and written.
//! - [`ack`]: the 997 for a received interchange, and the TA1 for one
//!   that could not be read past its ISA.
//! - [`write`]: envelope settings and the delimiter-safe segment writer.
//! - [`mapping`]: a 180 request to the hub's canonical `ReturnRequest`.
//! - [`error`]: the one error type, naming segment and element.
//!
//! Nothing here does I/O or reads the clock: times and control numbers
//! are passed in.

pub mod ack;
pub mod error;
pub mod interchange;
pub mod mapping;
pub mod ts180;
pub mod write;

pub use ack::{
    AckOutcome, AckStatus, ReceivedAck, ReplyEnvelope, ReplyFrom, generate_997, generate_ta1,
    is_acknowledgement, needs_997, read_997,
};
pub use error::{Error, Location, Problem};
pub use interchange::{Group, Interchange, InterchangeHeader, Segment, Separators, TransactionSet};
pub use ts180::{
    Line, Party, ProductId, ReturnAuthorizationRequest, RmaNotification, generate_180,
};
pub use write::{EnvelopeSettings, Usage, Version};
