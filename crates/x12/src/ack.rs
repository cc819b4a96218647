//! The 997 functional acknowledgement: which groups and sets of a received
//! interchange were accepted, and for a rejected set which segment and
//! element were wrong. The errors to report come from
//! [`Interchange::validate`] and the transaction parsers; this module only
//! places them (by segment position) and translates them to 997 codes.
//!
//! An interchange-level error (IEA count or control number) rejects every
//! group. An interchange that could not be parsed at all (truncated, its
//! envelopes out of order) has no groups to acknowledge: [`generate_ta1`]
//! answers it with a TA1 interchange acknowledgement saying rejected,
//! provided its ISA could be read (without one there is nobody to answer).
//!
//! Acknowledgements are never acknowledged: a group of 997s (functional id
//! `FA`, a partner answering the 180s we sent) gets no AK1 of its own, and
//! [`read_997`] reads what it says about our groups and sets.

use chrono::NaiveDateTime;

use crate::error::{Error, Location, Problem};
use crate::interchange::{Group, Interchange, InterchangeHeader, TransactionSet};
use crate::write::{self, Body, EnvelopeSettings, Usage, Version};

/// TA105 note codes (X12 element I18) for interchanges rejected whole.
mod note {
    /// Invalid control structure: envelopes out of order or malformed.
    pub(super) const INVALID_CONTROL_STRUCTURE: &str = "022";
    /// Improper (premature) end-of-file: the input stops mid-interchange.
    pub(super) const PREMATURE_END: &str = "023";
    /// Invalid interchange content (e.g. an invalid GS segment).
    pub(super) const INVALID_CONTENT: &str = "024";
}

/// Control numbers and time for the 997's own envelopes; the version and
/// separators are those of the received interchange, and its parties
/// reversed unless `from` names who answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyEnvelope {
    pub interchange_control: u32,
    pub group_control: u32,
    pub set_control: u32,
    pub timestamp: NaiveDateTime,
    /// Who the reply is from. `None`: the party the received interchange
    /// was addressed to. A receiver answering an interchange addressed to
    /// someone else must name itself here, not sign as that other party.
    pub from: Option<ReplyFrom>,
}

impl ReplyEnvelope {
    /// ISA05/ISA06 of the reply to an interchange addressed to `addressed`.
    fn sender<'a>(&'a self, addressed: (&'a str, &'a str)) -> (&'a str, &'a str) {
        self.from
            .as_ref()
            .map_or(addressed, |f| (f.qualifier.as_str(), f.id.as_str()))
    }
}

/// The answering party's ids (ISA05/ISA06 and GS02 of the reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyFrom {
    pub qualifier: String,
    pub id: String,
    pub application_id: String,
}

/// What to acknowledge: every problem found in the received interchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckOutcome {
    pub reply: ReplyEnvelope,
    /// Errors from validation and parsing; an empty list accepts everything.
    pub errors: Vec<Error>,
}

/// Writes the 997 answering `received`.
pub fn generate_997(received: &Interchange, outcome: &AckOutcome) -> Result<String, Error> {
    let version = if received.version() >= "00501" {
        Version::V5010
    } else {
        Version::V4010
    };
    let separators = received.separators();
    let five = version == Version::V5010;
    let interchange_rejected = outcome.errors.iter().any(|e| {
        e.location()
            .is_some_and(|at| at.segment_id == "ISA" || at.segment_id == "IEA")
    });

    let mut body = Body::new(separators);
    for group in received.groups().iter().filter(|g| !is_acknowledgement(g)) {
        let mut ak1 = vec![group.functional_id(), group.control_number()];
        if five {
            ak1.push(group.version());
        }
        body.push("AK1", "AK1", &ak1)?;
        let mut accepted = 0usize;
        for set in group.sets() {
            if acknowledge_set(&mut body, set, &outcome.errors, five)? {
                accepted += 1;
            }
        }
        let mut codes: Vec<&str> = Vec::new();
        for error in &outcome.errors {
            if let Some(code) = group_code(group, error)
                && !codes.contains(&code)
            {
                codes.push(code);
            }
        }
        let total = group.sets().len();
        let status = if !codes.is_empty() || interchange_rejected || (accepted == 0 && total > 0) {
            "R"
        } else if accepted == total {
            "A"
        } else {
            "P"
        };
        let (total, accepted) = (total.to_string(), accepted.to_string());
        let mut ak9 = vec![status, total.as_str(), total.as_str(), accepted.as_str()];
        ak9.extend(codes.iter().take(5));
        body.push("AK9", "AK9", &ak9)?;
    }

    let (sender_q, sender) = outcome.reply.sender(received.receiver());
    let (receiver_q, receiver) = received.sender();
    let first = received.groups().first();
    let settings = EnvelopeSettings {
        separators,
        version,
        usage: if received.usage() == "T" {
            Usage::Test
        } else {
            Usage::Production
        },
        sender_qualifier: sender_q.to_owned(),
        sender_id: sender.to_owned(),
        receiver_qualifier: receiver_q.to_owned(),
        receiver_id: receiver.to_owned(),
        application_sender: match &outcome.reply.from {
            Some(from) => from.application_id.clone(),
            None => first.map_or(sender, |g| g.header().element(3)).to_owned(),
        },
        application_receiver: first.map_or(receiver, |g| g.header().element(2)).to_owned(),
        interchange_control: outcome.reply.interchange_control,
        group_control: outcome.reply.group_control,
        set_control: outcome.reply.set_control,
        timestamp: outcome.reply.timestamp,
        ack_requested: false,
    };
    write::interchange(&settings, "FA", "997", body)
}

/// Whether `group` holds functional acknowledgements (GS01 `FA`): a
/// partner's 997s, which are read, never acknowledged.
pub fn is_acknowledgement(group: &Group) -> bool {
    group.functional_id() == "FA"
}

/// Whether `received` calls for a 997: it has a group other than
/// acknowledgements.
pub fn needs_997(received: &Interchange) -> bool {
    received.groups().iter().any(|g| !is_acknowledgement(g))
}

/// AK901 / AK501: what the partner made of a group or set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// `A`.
    Accepted,
    /// `E`: accepted, errors noted.
    AcceptedWithErrors,
    /// `P`: some sets accepted (groups only).
    PartiallyAccepted,
    /// `R`, or the 005010 security rejections `M`, `W`, `X`.
    Rejected,
}

impl AckStatus {
    fn parse(code: &str) -> Option<AckStatus> {
        match code {
            "A" => Some(AckStatus::Accepted),
            "E" => Some(AckStatus::AcceptedWithErrors),
            "P" => Some(AckStatus::PartiallyAccepted),
            "R" | "M" | "W" | "X" => Some(AckStatus::Rejected),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Accepted => "accepted",
            AckStatus::AcceptedWithErrors => "accepted with errors",
            AckStatus::PartiallyAccepted => "partially accepted",
            AckStatus::Rejected => "rejected",
        }
    }
}

/// A partner's 997: what it says about one of the groups we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAck {
    /// AK101: the functional id of the group it answers (`AR` for 180s).
    pub functional_id: String,
    /// AK102: that group's control number, ours.
    pub group_control: String,
    /// AK901.
    pub status: AckStatus,
    /// The sets (AK202, their control numbers) the partner did not accept
    /// as they were, with AK501.
    pub sets_not_accepted: Vec<(String, AckStatus)>,
}

/// Reads one 997 set of an `FA` group.
pub fn read_997(set: &TransactionSet) -> Result<ReceivedAck, Error> {
    if set.id() != "997" {
        return Err(Error::Content {
            at: set.header().at(Some(1)),
            problem: Problem::Unsupported,
            message: format!(
                "transaction set {:?} in a group of acknowledgements (FA) is not a 997",
                set.id()
            ),
        });
    }
    let missing = |id: &str| Error::Content {
        at: set.trailer().at(None),
        problem: Problem::MissingSegment,
        message: format!("the 997 has no {id}"),
    };
    let status_of = |segment: &crate::interchange::Segment| {
        AckStatus::parse(segment.element(1)).ok_or_else(|| Error::Content {
            at: segment.at(Some(1)),
            problem: Problem::InvalidValue,
            message: format!(
                "{}01 {:?} is not an acknowledgement code (A, E, P, R, M, W, X)",
                segment.id(),
                segment.element(1)
            ),
        })
    };
    let ak1 = set
        .body()
        .iter()
        .find(|s| s.id() == "AK1")
        .ok_or_else(|| missing("AK1"))?;
    let ak9 = set
        .body()
        .iter()
        .find(|s| s.id() == "AK9")
        .ok_or_else(|| missing("AK9"))?;
    let mut sets_not_accepted = Vec::new();
    let mut current: Option<String> = None;
    for segment in set.body() {
        match segment.id() {
            "AK2" => current = Some(segment.element(2).to_owned()),
            "AK5" => {
                let status = status_of(segment)?;
                if status != AckStatus::Accepted {
                    sets_not_accepted.push((current.take().unwrap_or_default(), status));
                }
            }
            _ => {}
        }
    }
    Ok(ReceivedAck {
        functional_id: ak1.element(1).to_owned(),
        group_control: ak1.element(2).to_owned(),
        status: status_of(ak9)?,
        sets_not_accepted,
    })
}

/// Writes AK2…AK5 for one set; returns whether it was accepted.
fn acknowledge_set(
    body: &mut Body,
    set: &TransactionSet,
    errors: &[Error],
    five: bool,
) -> Result<bool, Error> {
    let mut ak2 = vec![set.id(), set.control_number()];
    if five && !set.header().element(3).is_empty() {
        ak2.push(set.header().element(3));
    }
    body.push("AK2", "AK2", &ak2)?;
    let mut codes: Vec<&str> = Vec::new();
    let start = set.header().position();
    for error in errors {
        let Some(at) = error.location().filter(|at| set.contains(at.segment)) else {
            continue;
        };
        let code = set_code(error, at);
        if let Error::Content { problem, .. } = error {
            write_ak3_ak4(body, at, *problem, at.segment - start + 1)?;
        }
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let accepted = codes.is_empty();
    let mut ak5 = vec![if accepted { "A" } else { "R" }];
    ak5.extend(codes.iter().take(5));
    body.push("AK5", "AK5", &ak5)?;
    Ok(accepted)
}

fn write_ak3_ak4(
    body: &mut Body,
    at: &Location,
    problem: Problem,
    position: usize,
) -> Result<(), Error> {
    let position = position.to_string();
    let (segment_code, element_code) = match problem {
        Problem::MissingSegment => ("3", None),
        Problem::UnexpectedSegment => ("2", None),
        Problem::MissingElement => ("8", Some("1")),
        Problem::InvalidValue | Problem::Unsupported => ("8", Some("7")),
        Problem::InvalidDate => ("8", Some("8")),
    };
    body.push("AK3", "AK3", &[&at.segment_id, &position, "", segment_code])?;
    if let (Some(code), Some(element)) = (element_code, at.element) {
        body.push("AK4", "AK4", &[&element.to_string(), "", code])?;
    }
    Ok(())
}

/// AK501 codes for an error inside a set.
fn set_code(error: &Error, at: &Location) -> &'static str {
    match error {
        Error::Count { .. } => "4",
        Error::Control { .. } if at.segment_id == "ST" => "7",
        Error::Control { .. } => "3",
        Error::Content {
            problem: Problem::Unsupported,
            ..
        } => "1",
        Error::Content { .. } | Error::Syntax { .. } | Error::Write { .. } => "5",
    }
}

/// AK905 code for an error on this group's own envelope, if it is one.
fn group_code(group: &Group, error: &Error) -> Option<&'static str> {
    let at = error.location()?;
    let own = group.contains(at.segment) && (at.segment_id == "GS" || at.segment_id == "GE");
    if !own {
        return None;
    }
    Some(match error {
        Error::Count { .. } => "5",
        Error::Control { .. } if at.segment_id == "GS" => "6",
        Error::Control { .. } => "4",
        Error::Content { .. } => "2",
        Error::Syntax { .. } | Error::Write { .. } => "1",
    })
}

/// Writes a TA1 rejecting the interchange whose ISA is `received`, for an
/// interchange that [`Interchange::parse`] refused with `error`: an
/// interchange of its own (ISA, TA1, IEA with no groups), the parties
/// reversed. TA105 says why: 023 when the input ended early (truncated),
/// 022 when an envelope segment was missing or out of place, 024
/// otherwise. Only `reply.interchange_control` and `reply.timestamp` are
/// used.
pub fn generate_ta1(
    received: &InterchangeHeader,
    error: &Error,
    reply: &ReplyEnvelope,
) -> Result<String, Error> {
    let note = match error {
        Error::Syntax { message, .. } if message.contains("truncated") => note::PREMATURE_END,
        Error::Syntax { at, .. } if at.segment_id.is_empty() => note::PREMATURE_END,
        Error::Syntax { message, .. } if message.starts_with("expected") => {
            note::INVALID_CONTROL_STRUCTURE
        }
        Error::Syntax { .. }
        | Error::Count { .. }
        | Error::Control { .. }
        | Error::Content { .. }
        | Error::Write { .. } => note::INVALID_CONTENT,
    };
    let isa = received.segment();
    let version = if received.version() >= "00501" {
        Version::V5010
    } else {
        Version::V4010
    };
    let (sender_q, sender) = reply.sender(received.receiver());
    let (receiver_q, receiver) = received.sender();
    let settings = EnvelopeSettings {
        separators: received.separators(),
        version,
        usage: if received.usage() == "T" {
            Usage::Test
        } else {
            Usage::Production
        },
        sender_qualifier: sender_q.to_owned(),
        sender_id: sender.to_owned(),
        receiver_qualifier: receiver_q.to_owned(),
        receiver_id: receiver.to_owned(),
        application_sender: sender.to_owned(),
        application_receiver: receiver.to_owned(),
        interchange_control: reply.interchange_control,
        group_control: reply.group_control,
        set_control: reply.set_control,
        timestamp: reply.timestamp,
        ack_requested: false,
    };
    let mut body = Body::new(received.separators());
    body.push(
        "TA1",
        "TA1",
        &[
            received.control_number(),
            isa.element(9),
            isa.element(10),
            "R",
            note,
        ],
    )?;
    write::interchange_without_groups(&settings, body)
}
