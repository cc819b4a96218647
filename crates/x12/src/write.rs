//! Writing X12: the envelope settings a partner agreement fixes, and a
//! segment writer that refuses values containing a delimiter rather than
//! producing an interchange the partner would misread. Transaction content
//! is written by `ts180` and `ack`; this module only knows envelopes.

use chrono::NaiveDateTime;

use crate::error::Error;
use crate::interchange::Separators;

/// Largest control number X12 allows (nine digits).
const MAX_CONTROL: u32 = 999_999_999;

/// The X12 release used for ISA12 and GS08.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 004010: ISA11 is the standards identifier `U`, no repetition separator.
    V4010,
    /// 005010: ISA11 is the repetition separator.
    V5010,
}

impl Version {
    fn isa12(self) -> &'static str {
        match self {
            Version::V4010 => "00401",
            Version::V5010 => "00501",
        }
    }

    pub(crate) fn gs08(self) -> &'static str {
        match self {
            Version::V4010 => "004010",
            Version::V5010 => "005010",
        }
    }
}

/// ISA15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Production,
    Test,
}

impl Usage {
    fn code(self) -> &'static str {
        match self {
            Usage::Production => "P",
            Usage::Test => "T",
        }
    }
}

/// Everything an outbound interchange's envelopes need besides content:
/// identities from the trading partner agreement, control numbers from the
/// caller's sequence (kept by the caller so this crate stays pure), and the
/// time of writing (injected, never read from the clock here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSettings {
    pub separators: Separators,
    pub version: Version,
    pub usage: Usage,
    /// ISA05, e.g. `ZZ` (mutually defined) or `01` (DUNS).
    pub sender_qualifier: String,
    /// ISA06, at most 15 characters; padded when written.
    pub sender_id: String,
    /// ISA07.
    pub receiver_qualifier: String,
    /// ISA08, at most 15 characters.
    pub receiver_id: String,
    /// GS02 application sender code.
    pub application_sender: String,
    /// GS03 application receiver code.
    pub application_receiver: String,
    /// ISA13 / IEA02, 1 to 999999999.
    pub interchange_control: u32,
    /// GS06 / GE02.
    pub group_control: u32,
    /// ST02 / SE02, written with at least four digits.
    pub set_control: u32,
    /// ISA09/ISA10 and GS04/GS05.
    pub timestamp: NaiveDateTime,
    /// ISA14: whether a TA1 is requested.
    pub ack_requested: bool,
}

/// Collects segments of one transaction set body with the right separators.
pub(crate) struct Body {
    separators: Separators,
    segments: Vec<String>,
}

impl Body {
    pub(crate) fn new(separators: Separators) -> Self {
        Body {
            separators,
            segments: Vec::new(),
        }
    }

    /// Adds a segment; trailing empty elements are dropped as X12 requires.
    pub(crate) fn push(
        &mut self,
        id: &str,
        field: &'static str,
        elements: &[&str],
    ) -> Result<(), Error> {
        let used = elements
            .iter()
            .rposition(|e| !e.is_empty())
            .map_or(0, |i| i + 1);
        let mut segment = id.to_owned();
        for value in elements.iter().take(used) {
            if let Some(c) = self.separators.clashes(value) {
                return Err(Error::Write {
                    field,
                    message: format!("{value:?} contains the delimiter {c:?}"),
                });
            }
            segment.push(self.separators.element());
            segment.push_str(value);
        }
        self.segments.push(segment);
        Ok(())
    }
}

fn fixed(field: &'static str, value: &str, width: usize) -> Result<String, Error> {
    if value.is_empty() || value.len() > width || !value.is_ascii() {
        return Err(Error::Write {
            field,
            message: format!("{value:?} must be 1 to {width} ASCII characters"),
        });
    }
    Ok(format!("{value:<width$}"))
}

fn control(field: &'static str, value: u32) -> Result<u32, Error> {
    if value == 0 || value > MAX_CONTROL {
        return Err(Error::Write {
            field,
            message: format!("{value} must be between 1 and {MAX_CONTROL}"),
        });
    }
    Ok(value)
}

/// Wraps one transaction set in ST/SE, GS/GE and ISA/IEA.
pub(crate) fn interchange(
    settings: &EnvelopeSettings,
    functional_id: &str,
    set_id: &str,
    body: Body,
) -> Result<String, Error> {
    let seps = settings.separators;
    let ic = control("interchange control number", settings.interchange_control)?;
    let gc = control("group control number", settings.group_control)?;
    let sc = control("transaction set control number", settings.set_control)?;
    let mut out = isa(settings, ic)?;
    let mut envelope = Body::new(seps);
    envelope.push(
        "GS",
        "GS",
        &[
            functional_id,
            &settings.application_sender,
            &settings.application_receiver,
            &settings.timestamp.format("%Y%m%d").to_string(),
            &settings.timestamp.format("%H%M").to_string(),
            &gc.to_string(),
            "X",
            settings.version.gs08(),
        ],
    )?;
    if settings.application_sender.is_empty() || settings.application_receiver.is_empty() {
        return Err(Error::Write {
            field: "GS",
            message: "application sender and receiver codes are required".into(),
        });
    }
    let st02 = format!("{sc:04}");
    envelope.push("ST", "ST", &[set_id, &st02])?;
    let count = body.segments.len() + 2;
    envelope.segments.extend(body.segments);
    envelope.push("SE", "SE", &[&count.to_string(), &st02])?;
    envelope.push("GE", "GE", &["1", &gc.to_string()])?;
    envelope.push("IEA", "IEA", &["1", &format!("{ic:09}")])?;
    for segment in envelope.segments {
        out.push_str(&segment);
        out.push(seps.segment());
    }
    Ok(out)
}

/// Wraps interchange-level segments (a TA1) in ISA/IEA, with no groups.
pub(crate) fn interchange_without_groups(
    settings: &EnvelopeSettings,
    body: Body,
) -> Result<String, Error> {
    let seps = settings.separators;
    let ic = control("interchange control number", settings.interchange_control)?;
    let mut out = isa(settings, ic)?;
    let mut envelope = body;
    envelope.push("IEA", "IEA", &["0", &format!("{ic:09}")])?;
    for segment in envelope.segments {
        out.push_str(&segment);
        out.push(seps.segment());
    }
    Ok(out)
}

/// The ISA segment with its terminator; `ic` is the checked control number.
fn isa(settings: &EnvelopeSettings, ic: u32) -> Result<String, Error> {
    let seps = settings.separators;
    let (e, t) = (seps.element(), seps.segment());
    let isa11 = match settings.version {
        Version::V4010 => 'U',
        Version::V5010 => seps.repetition().ok_or(Error::Write {
            field: "separators",
            message: "005010 needs a repetition separator (ISA11)".into(),
        })?,
    };
    let isa = [
        "00".to_owned(),
        " ".repeat(10),
        "00".to_owned(),
        " ".repeat(10),
        fixed("ISA05 sender qualifier", &settings.sender_qualifier, 2)?,
        fixed("ISA06 sender id", &settings.sender_id, 15)?,
        fixed("ISA07 receiver qualifier", &settings.receiver_qualifier, 2)?,
        fixed("ISA08 receiver id", &settings.receiver_id, 15)?,
        settings.timestamp.format("%y%m%d").to_string(),
        settings.timestamp.format("%H%M").to_string(),
        isa11.to_string(),
        settings.version.isa12().to_owned(),
        format!("{ic:09}"),
        if settings.ack_requested { "1" } else { "0" }.to_owned(),
        settings.usage.code().to_owned(),
        seps.component().to_string(),
    ];
    // ISA11 and ISA16 are the repetition and component separators
    // themselves, so only the other elements must be free of delimiters.
    for (i, value) in isa.iter().enumerate().filter(|(i, _)| *i != 10 && *i != 15) {
        if let Some(c) = seps.clashes(value) {
            return Err(Error::Write {
                field: "ISA",
                message: format!("ISA{:02} {value:?} contains the delimiter {c:?}", i + 1),
            });
        }
    }
    let mut out = String::from("ISA");
    for value in &isa {
        out.push(e);
        out.push_str(value);
    }
    out.push(t);
    Ok(out)
}
