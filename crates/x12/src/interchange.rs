//! Reading any X12 interchange: separators taken from the ISA, segments
//! tokenized with their positions, and the ISA/GS/ST envelopes assembled
//! into a tree whose counts and control numbers can then be checked.
//!
//! Nothing here knows what a transaction set means; `ts180` does. Parsing
//! never panics on any input (the fuzz target in `crates/x12/fuzz` checks
//! that), it returns an [`Error`] naming the segment and element instead.

use crate::error::{Error, Location};

/// Length of the fixed-width ISA segment including its terminator.
const ISA_LEN: usize = 106;

/// Widths of ISA01..ISA16. The ISA is the only fixed-width segment and the
/// only place the separators are declared, so its shape is checked exactly.
const ISA_WIDTHS: [usize; 16] = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1];

/// The four delimiters of an interchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    element: u8,
    component: u8,
    repetition: Option<u8>,
    segment: u8,
}

impl Separators {
    /// The common `*`, `>`, `^`, `~` set.
    pub const STANDARD: Separators = Separators {
        element: b'*',
        component: b'>',
        repetition: Some(b'^'),
        segment: b'~',
    };

    /// Checks that the delimiters are distinct ASCII characters that cannot
    /// occur in ordinary data (no letters, digits or space).
    pub fn new(
        element: char,
        component: char,
        repetition: Option<char>,
        segment: char,
    ) -> Result<Self, Error> {
        let mut all = vec![("element", element), ("component", component)];
        if let Some(r) = repetition {
            all.push(("repetition", r));
        }
        all.push(("segment", segment));
        for (name, c) in &all {
            if !c.is_ascii() || c.is_ascii_alphanumeric() || *c == ' ' {
                return Err(Error::Write {
                    field: "separators",
                    message: format!("{name} separator {c:?} must be ASCII punctuation or control"),
                });
            }
        }
        for (i, (a, ca)) in all.iter().enumerate() {
            if let Some((b, _)) = all.iter().skip(i + 1).find(|(_, cb)| cb == ca) {
                return Err(Error::Write {
                    field: "separators",
                    message: format!("{a} and {b} separators are both {ca:?}"),
                });
            }
        }
        // All checked ASCII above, so the casts cannot truncate.
        let byte = |c: char| u8::try_from(c).unwrap_or(b'?');
        Ok(Separators {
            element: byte(element),
            component: byte(component),
            repetition: repetition.map(byte),
            segment: byte(segment),
        })
    }

    pub fn element(&self) -> char {
        char::from(self.element)
    }

    pub fn component(&self) -> char {
        char::from(self.component)
    }

    /// The repetition separator (ISA11 from version 00501 on); `None` for
    /// 00401 and earlier, where ISA11 is the standards identifier `U`.
    pub fn repetition(&self) -> Option<char> {
        self.repetition.map(char::from)
    }

    pub fn segment(&self) -> char {
        char::from(self.segment)
    }

    /// Whether `value` contains any of the delimiters or a line break, and so
    /// cannot be written as an element value.
    pub(crate) fn clashes(&self, value: &str) -> Option<char> {
        value.chars().find(|c| {
            let c = *c;
            c == self.element()
                || c == self.component()
                || c == self.segment()
                || Some(c) == self.repetition()
                || c == '\r'
                || c == '\n'
        })
    }
}

/// One segment with its position in the interchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    id: String,
    /// Elements after the id; `elements[0]` is element 1.
    elements: Vec<String>,
    position: usize,
    offset: usize,
}

impl Segment {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Element `n` (1-based), or `""` when absent: X12 treats an absent
    /// trailing element and an empty one alike.
    pub fn element(&self, n: usize) -> &str {
        n.checked_sub(1)
            .and_then(|i| self.elements.get(i))
            .map_or("", String::as_str)
    }

    /// Number of elements present after the id.
    pub fn element_count(&self) -> usize {
        self.elements.len()
    }

    /// 1-based index of the segment in the interchange (ISA is 1).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Byte offset of the segment in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Location of this segment, optionally narrowed to one element.
    pub fn at(&self, element: Option<usize>) -> Location {
        Location {
            segment_id: self.id.clone(),
            segment: self.position,
            offset: self.offset,
            element,
        }
    }
}

/// A transaction set: ST, its body, SE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSet {
    st: Segment,
    body: Vec<Segment>,
    se: Segment,
}

impl TransactionSet {
    /// ST01, e.g. `180`.
    pub fn id(&self) -> &str {
        self.st.element(1)
    }

    /// ST02.
    pub fn control_number(&self) -> &str {
        self.st.element(2)
    }

    pub fn header(&self) -> &Segment {
        &self.st
    }

    /// The segments between ST and SE.
    pub fn body(&self) -> &[Segment] {
        &self.body
    }

    pub fn trailer(&self) -> &Segment {
        &self.se
    }

    /// Whether a segment at this interchange position belongs to this set.
    pub(crate) fn contains(&self, position: usize) -> bool {
        (self.st.position..=self.se.position).contains(&position)
    }
}

/// A functional group: GS, its transaction sets, GE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    gs: Segment,
    sets: Vec<TransactionSet>,
    ge: Segment,
}

impl Group {
    /// GS01, e.g. `AN` for 180, `FA` for 997.
    pub fn functional_id(&self) -> &str {
        self.gs.element(1)
    }

    /// GS06.
    pub fn control_number(&self) -> &str {
        self.gs.element(6)
    }

    /// GS08, e.g. `005010`.
    pub fn version(&self) -> &str {
        self.gs.element(8)
    }

    pub fn header(&self) -> &Segment {
        &self.gs
    }

    pub fn sets(&self) -> &[TransactionSet] {
        &self.sets
    }

    pub fn trailer(&self) -> &Segment {
        &self.ge
    }

    pub(crate) fn contains(&self, position: usize) -> bool {
        (self.gs.position..=self.ge.position).contains(&position)
    }
}

/// A whole interchange: ISA, functional groups, IEA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interchange {
    separators: Separators,
    isa: Segment,
    groups: Vec<Group>,
    iea: Segment,
}

impl Interchange {
    /// Reads the envelope structure. Counts and control numbers are not
    /// checked here (see [`Interchange::validate`]) so that an interchange
    /// with wrong trailers can still be acknowledged as rejected.
    pub fn parse(input: &[u8]) -> Result<Interchange, Error> {
        let (separators, segments) = tokenize(input)?;
        build(separators, segments, input.len())
    }

    /// [`Interchange::parse`] then [`Interchange::validate`], failing on the
    /// first problem.
    pub fn parse_valid(input: &[u8]) -> Result<Interchange, Error> {
        let interchange = Interchange::parse(input)?;
        match interchange.validate().into_iter().next() {
            Some(error) => Err(error),
            None => Ok(interchange),
        }
    }

    pub fn separators(&self) -> Separators {
        self.separators
    }

    pub fn header(&self) -> &Segment {
        &self.isa
    }

    pub fn trailer(&self) -> &Segment {
        &self.iea
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// ISA13.
    pub fn control_number(&self) -> &str {
        self.isa.element(13)
    }

    /// ISA12, e.g. `00501`.
    pub fn version(&self) -> &str {
        self.isa.element(12)
    }

    /// ISA05/ISA06 with the padding removed.
    pub fn sender(&self) -> (&str, &str) {
        (self.isa.element(5).trim(), self.isa.element(6).trim())
    }

    /// ISA07/ISA08 with the padding removed.
    pub fn receiver(&self) -> (&str, &str) {
        (self.isa.element(7).trim(), self.isa.element(8).trim())
    }

    /// ISA15: `P` production, `T` test.
    pub fn usage(&self) -> &str {
        self.isa.element(15)
    }

    /// Every count and control-number problem of the envelopes, in input
    /// order of the segment that carries the wrong value.
    pub fn validate(&self) -> Vec<Error> {
        let mut errors = Vec::new();
        for group in &self.groups {
            check_control(&group.gs, 6, 1, 9, &mut errors);
            for set in &group.sets {
                check_control(&set.st, 2, 4, 9, &mut errors);
                let counted = set.body.len() + 2;
                check_count(&set.se, 1, counted, "segments", &mut errors);
                check_same(&set.se, 2, &set.st, 2, &mut errors);
            }
            check_count(
                &group.ge,
                1,
                group.sets.len(),
                "transaction sets",
                &mut errors,
            );
            check_same(&group.ge, 2, &group.gs, 6, &mut errors);
        }
        check_count(
            &self.iea,
            1,
            self.groups.len(),
            "functional groups",
            &mut errors,
        );
        check_same(&self.iea, 2, &self.isa, 13, &mut errors);
        errors
    }
}

fn check_control(seg: &Segment, n: usize, min: usize, max: usize, errors: &mut Vec<Error>) {
    let value = seg.element(n);
    let ok = (min..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        errors.push(Error::Control {
            at: seg.at(Some(n)),
            message: format!("control number {value:?} must be {min} to {max} digits"),
        });
    }
}

fn check_count(seg: &Segment, n: usize, counted: usize, what: &str, errors: &mut Vec<Error>) {
    let said = seg.element(n);
    if said.parse::<usize>().ok() != Some(counted) || said.starts_with('+') {
        errors.push(Error::Count {
            at: seg.at(Some(n)),
            message: format!("{counted} {what} counted, {}{n:02} says {said}", seg.id()),
        });
    }
}

fn check_same(trailer: &Segment, n: usize, header: &Segment, m: usize, errors: &mut Vec<Error>) {
    let (t, h) = (trailer.element(n), header.element(m));
    // Control numbers are compared as numbers so that `1` and `0001` agree,
    // as most translators do; a non-numeric one was reported already.
    let same = match (t.parse::<u64>(), h.trim().parse::<u64>()) {
        (Ok(a), Ok(b)) => a == b,
        (Ok(_) | Err(_), _) => t == h.trim(),
    };
    if !same {
        errors.push(Error::Control {
            at: trailer.at(Some(n)),
            message: format!(
                "{}{n:02} is {t:?} but {}{m:02} is {h:?}",
                trailer.id(),
                header.id()
            ),
        });
    }
}

fn isa_error(offset: usize, element: Option<usize>, message: String) -> Error {
    Error::Syntax {
        at: Location {
            segment_id: "ISA".into(),
            segment: 1,
            offset,
            element,
        },
        message,
    }
}

/// The ISA of an interchange on its own: enough to answer an interchange
/// whose rest cannot be read (a TA1 needs the parties, the control number
/// and the separators, nothing after the ISA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterchangeHeader {
    separators: Separators,
    isa: Segment,
}

impl InterchangeHeader {
    /// Reads only the ISA; what follows it is not looked at.
    pub fn parse(input: &[u8]) -> Result<InterchangeHeader, Error> {
        let (separators, isa) = read_isa(input)?;
        Ok(InterchangeHeader { separators, isa })
    }

    pub fn separators(&self) -> Separators {
        self.separators
    }

    pub fn segment(&self) -> &Segment {
        &self.isa
    }

    /// ISA13.
    pub fn control_number(&self) -> &str {
        self.isa.element(13)
    }

    /// ISA12.
    pub fn version(&self) -> &str {
        self.isa.element(12)
    }

    /// ISA05/ISA06 with the padding removed.
    pub fn sender(&self) -> (&str, &str) {
        (self.isa.element(5).trim(), self.isa.element(6).trim())
    }

    /// ISA07/ISA08 with the padding removed.
    pub fn receiver(&self) -> (&str, &str) {
        (self.isa.element(7).trim(), self.isa.element(8).trim())
    }

    /// ISA15.
    pub fn usage(&self) -> &str {
        self.isa.element(15)
    }
}

/// Reads the separators from the ISA and splits the input into segments.
fn tokenize(input: &[u8]) -> Result<(Separators, Vec<Segment>), Error> {
    let (separators, isa) = read_isa(input)?;
    let segments = segments_after_isa(input, separators, isa)?;
    Ok((separators, segments))
}

/// Reads the ISA: its fixed-width elements and the separators it declares.
fn read_isa(input: &[u8]) -> Result<(Separators, Segment), Error> {
    // A BOM or blank lines before the ISA are tolerated; anything else is not.
    let mut start = 0;
    if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
        start = 3;
    }
    while input.get(start).is_some_and(u8::is_ascii_whitespace) {
        start += 1;
    }
    let rest = input.get(start..).unwrap_or_default();
    if !rest.starts_with(b"ISA") {
        return Err(isa_error(
            start,
            None,
            "an interchange must start with ISA".into(),
        ));
    }
    let Some(&element) = rest.get(3) else {
        return Err(isa_error(start, None, "input ends inside ISA".into()));
    };
    if element.is_ascii_alphanumeric() || element == b' ' {
        return Err(isa_error(
            start,
            None,
            format!(
                "element separator {:?} must not be a letter, digit or space",
                char::from(element)
            ),
        ));
    }
    // Walk the fixed widths: each element must end exactly where the next
    // separator is expected, else the ISA is not 106 characters wide.
    let mut pos = 4;
    let mut fields: Vec<&[u8]> = Vec::with_capacity(16);
    for (i, width) in ISA_WIDTHS.iter().enumerate() {
        let n = i + 1;
        let field = rest.get(pos..pos + width);
        let actual = rest
            .get(pos..)
            .unwrap_or_default()
            .iter()
            .position(|b| *b == element)
            .unwrap_or(rest.len().saturating_sub(pos));
        let ends_right = if n == 16 {
            field.is_some_and(|f| !f.contains(&element))
        } else {
            rest.get(pos + width) == Some(&element) && field.is_some_and(|f| !f.contains(&element))
        };
        let Some(field) = field.filter(|_| ends_right) else {
            let message = if n == 16 && rest.len() < ISA_LEN - 1 {
                format!(
                    "input ends inside ISA ({} of {ISA_LEN} characters)",
                    rest.len()
                )
            } else {
                format!(
                    "ISA{n:02} is {actual} characters wide, must be {width} (ISA is fixed-width, {ISA_LEN} characters)"
                )
            };
            return Err(isa_error(start, Some(n), message));
        };
        fields.push(field);
        pos += width + 1;
    }
    let component = rest.get(ISA_LEN - 2).copied().unwrap_or(b' ');
    let Some(&segment) = rest.get(ISA_LEN - 1) else {
        return Err(isa_error(
            start,
            None,
            format!(
                "input ends inside ISA ({} of {ISA_LEN} characters)",
                rest.len()
            ),
        ));
    };
    let version = String::from_utf8_lossy(fields.get(11).copied().unwrap_or_default()).into_owned();
    // ISA11 became the repetition separator in 00501; before it is `U`.
    let repetition = if version.as_str() >= "00501" {
        // Some senders keep `U` in 00501; then there is no repetition separator.
        fields
            .get(10)
            .and_then(|f| f.first())
            .copied()
            .filter(|b| !b.is_ascii_alphanumeric() && *b != b' ')
    } else {
        None
    };
    let separators = Separators::new(
        char::from(element),
        char::from(component),
        repetition.map(char::from),
        char::from(segment),
    )
    .map_err(|e| {
        let message = match e {
            Error::Write { message, .. } => message,
            other => other.to_string(),
        };
        isa_error(start, Some(16), message)
    })?;

    let isa = Segment {
        id: "ISA".into(),
        elements: fields
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect(),
        position: 1,
        offset: start,
    };
    Ok((separators, isa))
}

/// Splits the rest of the input into segments, after the ISA.
fn segments_after_isa(
    input: &[u8],
    separators: Separators,
    isa: Segment,
) -> Result<Vec<Segment>, Error> {
    let (element, segment) = (separators.element, separators.segment);
    let mut at = isa.offset + ISA_LEN;
    let mut segments = vec![isa];
    loop {
        while input.get(at).is_some_and(|b| *b == b'\r' || *b == b'\n') {
            at += 1;
        }
        let remaining = input.get(at..).unwrap_or_default();
        if remaining.is_empty() {
            break;
        }
        let position = segments.len() + 1;
        let Some(len) = remaining.iter().position(|b| *b == segment) else {
            if remaining.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            let id = segment_id(remaining, element);
            return Err(Error::Syntax {
                at: Location {
                    segment_id: id,
                    segment: position,
                    offset: at,
                    element: None,
                },
                message: format!(
                    "segment is not terminated by {:?}: the interchange is truncated",
                    char::from(segment)
                ),
            });
        };
        let raw = remaining.get(..len).unwrap_or_default();
        let mut parts = raw.split(|b| *b == element);
        let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let id_ok = (2..=3).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !id_ok {
            return Err(Error::Syntax {
                at: Location {
                    segment_id: String::new(),
                    segment: position,
                    offset: at,
                    element: None,
                },
                message: format!("{id:?} is not a segment id (2-3 upper-case letters or digits)"),
            });
        }
        segments.push(Segment {
            id,
            elements: parts
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            position,
            offset: at,
        });
        at += len + 1;
    }
    Ok(segments)
}

fn segment_id(raw: &[u8], element: u8) -> String {
    let id = raw.split(|b| *b == element).next().unwrap_or_default();
    let id = String::from_utf8_lossy(id);
    if (2..=3).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        id.into_owned()
    } else {
        String::new()
    }
}

/// Assembles segments into ISA/GS/ST envelopes.
fn build(
    separators: Separators,
    segments: Vec<Segment>,
    input_len: usize,
) -> Result<Interchange, Error> {
    let count = segments.len();
    let mut iter = segments.into_iter();
    let end = |expected: &str| Error::Syntax {
        at: Location {
            segment_id: String::new(),
            segment: count + 1,
            offset: input_len,
            element: None,
        },
        message: format!("input ends where {expected} was expected: the interchange is truncated"),
    };
    let unexpected = |seg: &Segment, expected: &str| Error::Syntax {
        at: seg.at(None),
        message: format!("expected {expected}, found {}", seg.id),
    };
    let isa = iter.next().ok_or_else(|| end("ISA"))?;
    let mut groups = Vec::new();
    loop {
        let seg = iter.next().ok_or_else(|| end("GS or IEA"))?;
        match seg.id.as_str() {
            "IEA" => {
                if let Some(extra) = iter.next() {
                    return Err(Error::Syntax {
                        at: extra.at(None),
                        message: "segment after IEA: one interchange per input".into(),
                    });
                }
                return Ok(Interchange {
                    separators,
                    isa,
                    groups,
                    iea: seg,
                });
            }
            "GS" => {
                let gs = seg;
                let mut sets = Vec::new();
                let ge = loop {
                    let seg = iter.next().ok_or_else(|| end("ST or GE"))?;
                    match seg.id.as_str() {
                        "GE" => break seg,
                        "ST" => {
                            let st = seg;
                            let mut body = Vec::new();
                            let se = loop {
                                let seg = iter.next().ok_or_else(|| end("SE"))?;
                                match seg.id.as_str() {
                                    "SE" => break seg,
                                    "ST" | "GS" | "GE" | "ISA" | "IEA" => {
                                        return Err(unexpected(&seg, "SE closing the open ST"));
                                    }
                                    _ => body.push(seg),
                                }
                            };
                            sets.push(TransactionSet { st, body, se });
                        }
                        _ => return Err(unexpected(&seg, "ST or GE")),
                    }
                };
                groups.push(Group { gs, sets, ge });
            }
            _ => return Err(unexpected(&seg, "GS or IEA")),
        }
    }
}
