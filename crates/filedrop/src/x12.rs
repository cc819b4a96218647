//! Inbound X12 (`x12` drops): one interchange per file, each 180
//! transaction set a return request, every interchange answered.
//!
//! What is applied, and how it is acknowledged:
//! - the ISA cannot be read: nothing applied, no acknowledgement possible
//!   (nobody to address it to); the reject file says why;
//! - the rest cannot be read (truncated, envelopes out of order): nothing
//!   applied, a TA1 saying rejected (023 premature end, 022 control
//!   structure, 024 content);
//! - an error on the interchange's own envelope (IEA count or control
//!   number, an interchange addressed to someone else): nothing applied, a
//!   997 rejecting every group;
//! - an error on a group's envelope (GE count or control number, GS03 not
//!   ours): none of that group's sets applied, AK9 R;
//! - an error inside a set (SE count or control number, content outside
//!   the supported 180 subset, a value the canonical model refuses, a
//!   request the hub refuses): that set is not applied (AK5 R), the
//!   others are.
//!
//! A group of 997s (`FA`: the partner acknowledging the 180s the
//! `x12-partner` connector sent) is read, not applied and never answered:
//! each 997 is an item of the file's summary saying what the partner made
//! of our group (its control number is the outbox delivery id), and one
//! that is not an acceptance is logged as a warning.
//!
//! The 997 is a functional acknowledgement, but a set the hub refused
//! (unmapped code, zero quantity) is reported as rejected in it too (AK5 R
//! with AK3 at the ST), so the partner learns of it in the answer it
//! already reads.
//!
//! Dedup key of a set: `x12:<ISA05>:<ISA06>:<ISA13>:<GS06>:<ST02>` (the
//! sender's own unique control numbers, so a re-sent interchange is a
//! duplicate whatever its file is called); a re-used key with another
//! content is refused (`dedup_key_reused`). The reply's control numbers
//! mirror the received ISA13, so the acknowledgement of an interchange
//! processed again after a crash is the same file with the same numbers.

use backhaul_engine::Inbox;
use backhaul_x12::error::{Location, Problem as X12Problem};
use backhaul_x12::{
    AckOutcome, AckStatus, Error as X12Error, Group, Interchange, InterchangeHeader, ReplyEnvelope,
    ReplyFrom, TransactionSet, generate_997, generate_ta1, is_acknowledgement, mapping, needs_997,
    read_997, ts180,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::X12Checked;
use crate::reject::{Item, ItemOutcome, Rejects};
use crate::source::{Verdict, verdict};
use crate::table::Problem;

/// The original columns of an X12 reject file.
const COLUMNS: [&str; 3] = ["group", "set", "reference"];

/// What processing an interchange produced.
#[derive(Debug)]
pub(crate) struct Processed {
    pub(crate) items: Vec<Item>,
    pub(crate) rejects: Rejects,
    /// Why the whole interchange was rejected, if it was.
    pub(crate) refused: Option<String>,
    /// The acknowledgement's file name and content.
    pub(crate) ack: Option<(String, String)>,
}

pub(crate) async fn process(
    bytes: &[u8],
    sha: &str,
    settings: &X12Checked,
    inbox: &Inbox,
    now: DateTime<Utc>,
    stop: &CancellationToken,
) -> Result<Processed, String> {
    let mut out = Processed {
        items: Vec::new(),
        rejects: Rejects::with_columns(&COLUMNS),
        refused: None,
        ack: None,
    };
    let header = match InterchangeHeader::parse(bytes) {
        Ok(header) => header,
        Err(e) => {
            out.rejects
                .push(Vec::new(), &problem(&e, "interchange_rejected"));
            out.refused = Some(format!(
                "the ISA cannot be read, so the interchange cannot be acknowledged: {e}"
            ));
            return Ok(out);
        }
    };
    let control = reply_control(header.control_number(), sha);
    let reply = ReplyEnvelope {
        interchange_control: control,
        group_control: control,
        set_control: 1,
        timestamp: now.naive_utc(),
        // Always this hub's own ids: an interchange addressed to someone
        // else is answered by us, not in that party's name.
        from: Some(ReplyFrom {
            qualifier: settings.our_qualifier.clone(),
            id: settings.our_id.clone(),
            application_id: settings.our_application_id.clone(),
        }),
    };
    let interchange = match Interchange::parse(bytes) {
        Ok(interchange) => interchange,
        Err(e) => {
            out.rejects
                .push(Vec::new(), &problem(&e, "interchange_rejected"));
            out.refused = Some(format!("interchange rejected, nothing applied: {e}"));
            match generate_ta1(&header, &e, &reply) {
                Ok(ta1) => out.ack = Some((ack_name("TA1", &header), ta1)),
                Err(write) => {
                    tracing::error!(error = %write, "cannot write the TA1");
                }
            }
            return Ok(out);
        }
    };
    let mut errors = interchange.validate();
    let (their_q, their_id) = interchange.receiver();
    if (their_q, their_id) != (settings.our_qualifier.as_str(), settings.our_id.as_str()) {
        errors.push(X12Error::Syntax {
            at: interchange.header().at(Some(8)),
            message: format!(
                "the interchange is addressed to {their_q}/{their_id}, not to this hub ({}/{})",
                settings.our_qualifier, settings.our_id
            ),
        });
    }
    for group in interchange.groups() {
        let receiver = group.header().element(3);
        if receiver != settings.our_application_id {
            errors.push(X12Error::Syntax {
                at: group.header().at(Some(3)),
                message: format!(
                    "the group is addressed to application {receiver:?}, not {:?}",
                    settings.our_application_id
                ),
            });
        }
    }
    let envelope_error = errors
        .iter()
        .find(|e| {
            e.location()
                .is_some_and(|at| at.segment_id == "ISA" || at.segment_id == "IEA")
        })
        .cloned();
    if let Some(e) = &envelope_error {
        out.refused = Some(format!("interchange rejected, nothing applied: {e}"));
        for error in errors.iter().filter(|e| {
            e.location()
                .is_some_and(|at| at.segment_id == "ISA" || at.segment_id == "IEA")
        }) {
            out.rejects
                .push(Vec::new(), &problem(error, "interchange_rejected"));
        }
    }
    let requests = ts180::requests(&interchange);
    let mut parsed = requests.into_iter();
    let (sender_q, sender_id) = interchange.sender();
    for group in interchange.groups() {
        if is_acknowledgement(group) {
            for set in group.sets() {
                acknowledgement(&mut out, group, set, &errors);
            }
            continue;
        }
        let (gs, ge) = (group.header().position(), group.trailer().position());
        let group_error = errors
            .iter()
            .find(|e| {
                e.location()
                    .is_some_and(|at| at.segment == gs || at.segment == ge)
            })
            .cloned();
        if let Some(e) = &group_error {
            out.rejects.push(
                vec![group.control_number().to_owned()],
                &problem(e, "group_rejected"),
            );
        }
        for set in group.sets() {
            if stop.is_cancelled() {
                return Err("the hub is shutting down".into());
            }
            let request = parsed.next();
            let reference = format!("{}/{}", group.control_number(), set.control_number());
            let original = |bgn: &str| {
                vec![
                    group.control_number().to_owned(),
                    set.control_number().to_owned(),
                    bgn.to_owned(),
                ]
            };
            let lines = set_lines(set);
            let reject = |out: &mut Processed, bgn: &str, problems: Vec<Problem>| {
                let reason = problems.first().map(|p| p.reason.clone());
                for p in &problems {
                    out.rejects.push(original(bgn), p);
                }
                out.items.push(Item {
                    reference: reference.clone(),
                    lines: lines.clone(),
                    outcome: ItemOutcome::Rejected,
                    return_id: None,
                    reason,
                });
            };
            // The set's own errors, found by validation.
            let own: Vec<Problem> = errors
                .iter()
                .filter(|e| e.location().is_some_and(|at| within(set, at)))
                .map(|e| problem(e, code_of(e)))
                .collect();
            let parsed_request = match request {
                Some(Ok(r)) => Ok(r),
                Some(Err(e)) => {
                    let p = problem(&e, code_of(&e));
                    errors.push(e);
                    Err(p)
                }
                None => Err(Problem::new(0, "ST", "invalid_content", "set not read")),
            };
            let bgn = parsed_request
                .as_ref()
                .map(|r| r.reference.clone())
                .unwrap_or_default();
            if let Some(e) = &envelope_error {
                let mut p = problem(e, "interchange_rejected");
                p.reason = format!("the interchange was rejected: {}", p.reason);
                reject(&mut out, &bgn, vec![p]);
                continue;
            }
            if let Some(e) = &group_error {
                let mut p = problem(e, "group_rejected");
                p.reason = format!("the group was rejected: {}", p.reason);
                reject(&mut out, &bgn, vec![p]);
                continue;
            }
            let request = match parsed_request {
                Err(p) => {
                    let mut all = own;
                    all.push(p);
                    reject(&mut out, &bgn, all);
                    continue;
                }
                Ok(_) if !own.is_empty() => {
                    reject(&mut out, &bgn, own);
                    continue;
                }
                Ok(r) => r,
            };
            let canonical = match mapping::to_return_request(&request, &settings.mapping) {
                Ok(c) => c,
                Err(e) => {
                    let error = refusal(set, e.to_string());
                    reject(&mut out, &bgn, vec![problem(&error, "invalid_value")]);
                    errors.push(error);
                    continue;
                }
            };
            let key = format!(
                "x12:{sender_q}:{sender_id}:{}:{}:{}",
                interchange.control_number(),
                group.control_number(),
                set.control_number()
            );
            let received = inbox.create(canonical, &key, &fingerprint(set), None).await;
            match verdict(received)? {
                Verdict::Applied(id) => out.items.push(Item {
                    reference: reference.clone(),
                    lines: lines.clone(),
                    outcome: ItemOutcome::Applied,
                    return_id: Some(id.to_string()),
                    reason: None,
                }),
                Verdict::Duplicate(id) => out.items.push(Item {
                    reference: reference.clone(),
                    lines: lines.clone(),
                    outcome: ItemOutcome::Duplicate,
                    return_id: Some(id.to_string()),
                    reason: Some(
                        "applied before under the same control numbers; not applied again".into(),
                    ),
                }),
                Verdict::Refused { code, reason } => {
                    let error = refusal(set, reason.clone());
                    let mut p = problem(&error, &code);
                    p.reason = reason;
                    reject(&mut out, &bgn, vec![p]);
                    errors.push(error);
                }
            }
        }
    }
    // Acknowledgements are never acknowledged: a file of the partner's
    // 997s alone gets no answer.
    if needs_997(&interchange) {
        match generate_997(&interchange, &AckOutcome { reply, errors }) {
            Ok(ack) => out.ack = Some((ack_name("997", &header), ack)),
            Err(e) => tracing::error!(error = %e, "cannot write the 997"),
        }
    }
    Ok(out)
}

/// A partner's 997 answering an interchange the hub sent (the 180s of the
/// `x12-partner` connector, whose group control number is the outbox
/// delivery id): recorded in the file's summary, a rejection logged as a
/// warning for operations; nothing to apply and nothing to answer.
fn acknowledgement(out: &mut Processed, group: &Group, set: &TransactionSet, errors: &[X12Error]) {
    let reference = format!("{}/{}", group.control_number(), set.control_number());
    let lines = set_lines(set);
    let own = errors
        .iter()
        .find(|e| e.location().is_some_and(|at| within(set, at)))
        .cloned();
    let read = match own {
        Some(e) => Err(e),
        None => read_997(set),
    };
    match read {
        Ok(ack) => {
            let mut reason = format!(
                "the partner's 997 for our group {} ({}): {}",
                ack.group_control,
                ack.functional_id,
                ack.status.as_str()
            );
            if !ack.sets_not_accepted.is_empty() {
                let sets: Vec<String> = ack
                    .sets_not_accepted
                    .iter()
                    .map(|(control, status)| format!("{control} {}", status.as_str()))
                    .collect();
                reason.push_str(&format!("; sets not accepted: {}", sets.join(", ")));
            }
            if ack.status != AckStatus::Accepted || !ack.sets_not_accepted.is_empty() {
                tracing::warn!(
                    group_control = %ack.group_control,
                    status = ack.status.as_str(),
                    "a trading partner did not accept an interchange the hub sent \
                     (the group control number is the x12-partner delivery's id)"
                );
            }
            out.items.push(Item {
                reference,
                lines,
                outcome: ItemOutcome::Acknowledgement,
                return_id: None,
                reason: Some(reason),
            });
        }
        Err(e) => {
            let p = problem(&e, code_of(&e));
            out.rejects.push(
                vec![
                    group.control_number().to_owned(),
                    set.control_number().to_owned(),
                    String::new(),
                ],
                &p,
            );
            out.items.push(Item {
                reference,
                lines,
                outcome: ItemOutcome::Rejected,
                return_id: None,
                reason: Some(format!("an unreadable 997 (not answered): {}", p.reason)),
            });
        }
    }
}

/// The segment positions of a set's ST and SE: its "lines" in the summary.
fn set_lines(set: &TransactionSet) -> Vec<u64> {
    vec![
        u64::try_from(set.header().position()).unwrap_or(u64::MAX),
        u64::try_from(set.trailer().position()).unwrap_or(u64::MAX),
    ]
}

/// A set the hub refused, as a content error at its ST (AK5 R).
fn refusal(set: &TransactionSet, message: String) -> X12Error {
    X12Error::Content {
        at: set.header().at(None),
        problem: X12Problem::InvalidValue,
        message,
    }
}

fn within(set: &TransactionSet, at: &Location) -> bool {
    (set.header().position()..=set.trailer().position()).contains(&at.segment)
}

/// The reject file's code for an X12 error.
fn code_of(error: &X12Error) -> &'static str {
    match error {
        X12Error::Syntax { .. } => "syntax",
        X12Error::Count { .. } => "wrong_count",
        X12Error::Control { .. } => "control_number",
        X12Error::Content { .. } => "invalid_content",
        X12Error::Write { .. } => "write",
    }
}

/// An X12 error as a reject row's line (segment position), field
/// (`SE01`) and reason.
fn problem(error: &X12Error, code: &str) -> Problem {
    let (line, field) = match error.location() {
        Some(at) => (
            u64::try_from(at.segment).unwrap_or(u64::MAX),
            match at.element {
                Some(n) => format!("{}{n:02}", at.segment_id),
                None => at.segment_id.clone(),
            },
        ),
        None => (0, String::new()),
    };
    Problem::new(line, &field, code, error.to_string())
}

/// The set's segments as text: what its dedup key stands for.
fn fingerprint(set: &TransactionSet) -> String {
    let mut hasher = Sha256::new();
    for segment in std::iter::once(set.header())
        .chain(set.body())
        .chain(std::iter::once(set.trailer()))
    {
        hasher.update(segment.id().as_bytes());
        for n in 1..=segment.element_count() {
            hasher.update(b"*");
            hasher.update(segment.element(n).as_bytes());
        }
        hasher.update(b"~");
    }
    hex::encode(hasher.finalize())
}

/// The reply's control number: the received ISA13 when it is one (so a
/// re-run answers with the same number), else one derived from the
/// content.
fn reply_control(received: &str, sha: &str) -> u32 {
    match received.trim().parse::<u32>() {
        Ok(n) if (1..=999_999_999).contains(&n) => n,
        Ok(_) | Err(_) => {
            let n = sha
                .get(..8)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            n % 999_999_999 + 1
        }
    }
}

/// `997-<sender>-<ISA13>.edi`, with anything but letters, digits, `-` and
/// `_` in the sender's id replaced.
fn ack_name(kind: &str, header: &InterchangeHeader) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{kind}-{}-{}.edi",
        clean(header.sender().1),
        clean(header.control_number().trim())
    )
}
