//! X12 180 out to EDI trading partners (`kind = "x12-partner"`, target
//! `edi`): the answer to a partner's return request — the RMA with the
//! authorised quantity of every line it asked for, or its rejection —
//! written as an X12 180 file into a folder the partner transport (an AS2
//! or SFTP agent) sends from.
//!
//! Same folder shape as the other connectors:
//! - `config`: [`X12PartnerConfig`] (`[connectors.edi.x12_partner]`): our
//!   interchange ids, the outbound folder, one [`PartnerConfig`] per partner
//!   (its ids, version, usage, separators, the N1 it is named with), all
//!   checked at build naming the key.
//! - `mapping`: pure, the action and its delivery → the 180 text and its
//!   file name (control numbers, RDR codes, the rejection's text).
//! - `sink`: [`X12PartnerSink`], which picks the partner's agreement by
//!   the return's customer account and writes the file atomically.
//! - `fixtures/`: the 180 of a fixed action under a fixed agreement, which
//!   the tests compare byte for byte.
//!
//! # The 180
//!
//! The inbound side (`backhaul-filedrop`'s `x12` drop and
//! `backhaul_x12::mapping`) opens a return for the partner's customer
//! account (its N104) with the partner's request number (BGN02) as the
//! external reference `edi` and each line's N9*LI id as its
//! `order_line_ref`. The answer turns that around: BGN01 `11` (response),
//! BGN02 our RMA number, BGN03 the decision's date, BGN06 the partner's
//! request number; one N1 naming the partner; per line BLI with the SKU
//! (`SK`), the authorised quantity and the requested unit, N9*LI with the
//! partner's line id (the canonical line number where the request had
//! none), RDR01 `RA` (authorised: return under the RMA number) or `RD`
//! (denied: authorised for zero, every line of a rejected return), and on
//! a rejection RDR04 with the reason (delimiters replaced, cut to 80
//! characters). The partner's other product ids (vendor part, UPC) and its
//! per-line PO references are not kept by the canonical return, so they
//! are not echoed.
//!
//! # Control numbers and files
//!
//! ISA13, GS06 and ST02 are one number derived from the delivery's outbox
//! id (`(id - 1) mod 999,999,999 + 1`): the outbox id is a store sequence
//! that never hands out the same value twice, so the numbers are unique
//! for every partner and the same on every attempt of a delivery, with no
//! counter of the connector's own to lose. They increase, but not by one
//! per partner (other deliveries take the ids between). A hub started on a
//! new database starts its outbox ids, and so the control numbers, again.
//!
//! The file is `180-<partner ISA08>-<delivery key>.edi` (characters other
//! than letters, digits, `.`, `-`, `_` replaced by `_`). It is written as
//! `<name>.<attempt>.tmp` in the same folder, flushed to disk, renamed
//! over the final name and the folder flushed, so a transport never sees a
//! partial file, and a retried delivery (a crash after the rename, a
//! lease taken over) rewrites the same file with the same bytes — the
//! envelope's date and time are the decision's, not the attempt's —
//! instead of adding a second. If the transport already sent the first
//! copy, the partner receives the same ISA13 twice, which X12 receivers
//! drop as a duplicate.
//!
//! # Failures
//!
//! Business (to the exception queue): another action kind, a customer with
//! no agreement (`unknown_partner`), an EDI return without the partner's
//! request number (`missing_partner_reference`), a value X12 cannot carry
//! (`x12_write`: a delimiter in a SKU, a unit that is not two characters).
//! Technical (retried): the file cannot be written or renamed.
//!
//! The result is a document whose number is the interchange control
//! number, which the 997 the partner sends back refers to; it changes
//! nothing on the return.

mod config;
mod mapping;
mod sink;

pub use config::{PartnerConfig, SeparatorsConfig, X12PartnerConfig, X12Usage, X12Version};
pub use sink::X12PartnerSink;
