//! Documents (SPEC §4.3): the text of `.docx`, `.odt` and `.rtf` is extracted as a stream and
//! counted by the text analyzer's own scanner (`text::TextCounter`), so `document.text` means
//! exactly what a text file's section means.
//!
//! - `.docx`: `word/document.xml`; the text of `w:t` runs, `w:tab` as a tab, `w:br`/`w:cr` as
//!   line breaks, each paragraph (`w:p`) a line. Deleted text and field codes are not text.
//! - `.odt`: `content.xml`; the text inside paragraphs and headings (`text:p`, `text:h`), each a
//!   line; `text:s` as its spaces, `text:tab`, `text:line-break`.
//! - `.rtf`: a small state machine over the bytes: groups, control words, `\'hh` bytes in the
//!   document's code page (`\ansicpgN`, decoded with `encoding_rs`), `\uN` with its `\ucN`
//!   fallback characters skipped, and destinations that are not body text (`\fonttbl`,
//!   `\colortbl`, `\stylesheet`, `\info`, `\pict`, field instructions, any `\*\...`) skipped.
//!
//! - `.pdf`: `lopdf` in the parser process (`isolate`); each page's text laid out by position
//!   (`pdf::page_text`), as `pdftotext` does.
//!
//! The zip of a `.docx` or `.odt` passes the archive checks first, and the part read is counted
//! against `--max-unpacked-bytes` and the deadline. XML is read by `quick-xml`, which expands no
//! entity but the five predefined ones and character references: no entity expansion attack.

mod pdf;

use std::io::{self, BufRead, BufReader, Read};

use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

use super::archive::open_checked;
use super::compressed::{self, Budget};
use super::detect::PositionedReader;
use super::section::{Figure, Section, Table, fact, or_dash};
use super::segments::RangeReader;
use super::text::{TextCounter, TextReport};
use super::{AnalysisError, AnalysisOptions, Kind, Progress, Source};

/// The `document` section of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentReport {
    /// `docx`, `odt`, `rtf` or `pdf`.
    pub format: String,
    /// Pages, for a PDF; `null` for the others.
    pub pages: Option<u64>,
    /// Encrypted, and not opened with the empty password: no text.
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextReport>,
}

/// How deep RTF groups may nest.
const MAX_RTF_DEPTH: usize = 10_000;
/// Spaces one `text:s` may stand for.
const MAX_SPACES: usize = 10_000;

/// Analyses `source` as a document; `Ok(None)` for a format not read in this process.
pub fn analyze(
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Result<Option<DocumentReport>, AnalysisError> {
    let extension = super::rules::extension_of(&source.path);
    progress.start(1);
    let report = match extension.as_str() {
        ".docx" => Some(from_zip(
            source,
            options,
            "docx",
            "word/document.xml",
            docx_text,
        )?),
        ".odt" => Some(from_zip(source, options, "odt", "content.xml", odt_text)?),
        ".rtf" => {
            let mut counter = TextCounter::default();
            let reader =
                BufReader::with_capacity(256 << 10, RangeReader::new(source, 0, source.len));
            rtf_text(reader, &mut counter)?;
            Some(DocumentReport {
                format: "rtf".to_string(),
                pages: None,
                encrypted: false,
                text: Some(counter.finish()),
            })
        }
        // A PDF parser is large and sees hostile input: it runs in a process of its own.
        ".pdf" => match super::isolate::in_child(source, Kind::Document, options)? {
            Some(super::Details::Document(report)) => Some(report),
            _ => None,
        },
        _ => None,
    };
    progress.advance();
    Ok(report)
}

/// The most bytes one page's content streams may inflate to (`lopdf` caps the sum).
const MAX_PAGE_CONTENT_BYTES: usize = 256 << 20;

/// The child process's side for a PDF (`lopdf`): pages, encryption, and the text of each
/// page, one after the other.
pub fn analyze_pdf(source: &Source) -> Result<Option<DocumentReport>, AnalysisError> {
    let mut bytes = Vec::with_capacity(usize::try_from(source.len).unwrap_or(0));
    RangeReader::new(source, 0, source.len)
        .read_to_end(&mut bytes)
        .map_err(AnalysisError::read)?;
    let invalid = |err: lopdf::Error| {
        AnalysisError::invalid(Kind::Document, format!("not a readable PDF: {err}"))
    };
    // A PDF ends with `%%EOF` (give or take a little trailing junk): without it the file was
    // cut short, whatever a lenient parser could still recover.
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if memchr::memmem::find(tail, b"%%EOF").is_none() {
        return Err(AnalysisError::invalid(
            Kind::Document,
            "the PDF is truncated: no %%EOF at its end",
        ));
    }
    let mut document = lopdf::Document::load_mem(&bytes).map_err(invalid)?;
    drop(bytes);
    let encrypted = document.is_encrypted() || document.was_encrypted();
    // An encrypted PDF is read when the empty password opens it.
    if document.is_encrypted() && document.decrypt("").is_err() {
        // Locked: its page tree may not be readable either (then no page count).
        let pages = document.get_pages().len() as u64;
        return Ok(Some(DocumentReport {
            format: "pdf".to_string(),
            pages: (pages > 0).then_some(pages),
            encrypted: true,
            text: None,
        }));
    }
    let pages = document.get_pages();
    let mut counter = TextCounter::default();
    for (&number, &page) in &pages {
        source.deadline.check()?;
        match pdf::page_text(&document, page, MAX_PAGE_CONTENT_BYTES) {
            Ok(text) => counter.feed(text.as_bytes()),
            Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                limit,
            })) => {
                return Err(AnalysisError::LimitExceeded(format!(
                    "page {number}'s content inflates to more than {} MiB",
                    limit >> 20
                )));
            }
            // A page whose content cannot be read (a broken stream) has no text.
            Err(err) => log::debug!("page {number}: no text: {err}"),
        }
    }
    Ok(Some(DocumentReport {
        format: "pdf".to_string(),
        pages: Some(pages.len() as u64),
        encrypted,
        text: Some(counter.finish()),
    }))
}

/// The text of one XML part of a zip-based document.
fn from_zip(
    source: &Source,
    options: &AnalysisOptions,
    format: &str,
    part: &str,
    extract: fn(&mut dyn BufRead, &mut TextCounter) -> Result<(), AnalysisError>,
) -> Result<DocumentReport, AnalysisError> {
    let reader = PositionedReader::new(source);
    let as_document = |err: AnalysisError| match err {
        AnalysisError::Invalid { message, .. } => AnalysisError::invalid(
            Kind::Document,
            format!("not a readable {format}: {message}"),
        ),
        other => other,
    };
    let (mut archive, _) = open_checked(reader, options).map_err(as_document)?;
    let member = archive.by_name(part).map_err(|err| {
        AnalysisError::invalid(
            Kind::Document,
            format!("not a readable {format}: {part}: {err}"),
        )
    })?;
    let budget = Budget::new(options.max_unpacked_bytes, source.deadline);
    let mut counted = BufReader::with_capacity(256 << 10, budget.count(member));
    let mut counter = TextCounter::default();
    extract(&mut counted, &mut counter).map_err(|err| {
        as_document(match err {
            AnalysisError::Read(io) | AnalysisError::Unavailable { source: io, .. } => {
                compressed::classify(io, format)
            }
            other => other,
        })
    })?;
    Ok(DocumentReport {
        format: format.to_string(),
        pages: None,
        encrypted: false,
        text: Some(counter.finish()),
    })
}

/// An XML error as the document's.
fn xml_error(err: quick_xml::Error) -> AnalysisError {
    match err {
        quick_xml::Error::Io(io) => AnalysisError::read(
            std::sync::Arc::try_unwrap(io)
                .unwrap_or_else(|io| io::Error::new(io.kind(), io.to_string())),
        ),
        other => AnalysisError::invalid(Kind::Document, format!("invalid XML: {other}")),
    }
}

/// The text an entity reference (`&amp;`, `&#233;`) stands for: a character reference, or
/// one of XML's five named entities; any other (a DTD's own, never expanded) stands for
/// nothing. `utf8` holds a character's bytes.
pub(crate) fn reference_str<'a>(
    reference: &quick_xml::events::BytesRef<'_>,
    utf8: &'a mut [u8; 4],
) -> &'a str {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        return c.encode_utf8(utf8);
    }
    match &**reference {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => "",
    }
}

fn reference_text(reference: &quick_xml::events::BytesRef<'_>, out: &mut TextCounter) {
    out.feed(reference_str(reference, &mut [0u8; 4]).as_bytes());
}

fn docx_text(input: &mut dyn BufRead, out: &mut TextCounter) -> Result<(), AnalysisError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut in_text = false;
    loop {
        match reader.read_event_into(&mut buf).map_err(xml_error)? {
            Event::Start(e) if e.local_name().into_inner() == "t" => in_text = true,
            Event::End(e) => match e.local_name().into_inner() {
                "t" => in_text = false,
                "p" => out.feed(b"\n"),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().into_inner() {
                "tab" => out.feed(b"\t"),
                "br" | "cr" => out.feed(b"\n"),
                // An empty paragraph is an empty line.
                "p" => out.feed(b"\n"),
                _ => {}
            },
            Event::Text(t) if in_text => out.feed(t.as_bytes()),
            Event::CData(t) if in_text => out.feed(t.as_bytes()),
            Event::GeneralRef(r) if in_text => reference_text(&r, out),
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

fn odt_text(input: &mut dyn BufRead, out: &mut TextCounter) -> Result<(), AnalysisError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    // Depth inside paragraphs and headings (notes hold paragraphs of their own).
    let mut in_paragraph = 0usize;
    loop {
        match reader.read_event_into(&mut buf).map_err(xml_error)? {
            Event::Start(e) => {
                if matches!(e.local_name().into_inner(), "p" | "h") {
                    in_paragraph += 1;
                }
            }
            Event::End(e) => {
                if matches!(e.local_name().into_inner(), "p" | "h") {
                    in_paragraph = in_paragraph.saturating_sub(1);
                    out.feed(b"\n");
                }
            }
            Event::Empty(e) => match e.local_name().into_inner() {
                "p" | "h" => out.feed(b"\n"),
                "tab" if in_paragraph > 0 => out.feed(b"\t"),
                "line-break" if in_paragraph > 0 => out.feed(b"\n"),
                "s" if in_paragraph > 0 => {
                    let count = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().into_inner() == "c")
                        .and_then(|a| a.value.parse::<usize>().ok())
                        .unwrap_or(1)
                        .min(MAX_SPACES);
                    out.feed(&b" ".repeat(count));
                }
                _ => {}
            },
            Event::Text(t) if in_paragraph > 0 => out.feed(t.as_bytes()),
            Event::CData(t) if in_paragraph > 0 => out.feed(t.as_bytes()),
            Event::GeneralRef(r) if in_paragraph > 0 => reference_text(&r, out),
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

/// Destinations whose text is not the document's body.
const SKIPPED_DESTINATIONS: [&str; 20] = [
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "generator",
    "xmlnstbl",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "fldinst",
    "filetbl",
    "header",
    "footer",
];

/// One RTF group's state.
#[derive(Clone, Copy)]
struct Group {
    skip: bool,
    /// Fallback characters after `\uN` (`\ucN`).
    fallback: u32,
}

/// The RTF reader: bytes of the document's code page gathered until something else comes.
struct Rtf<'o> {
    out: &'o mut TextCounter,
    encoding: &'static encoding_rs::Encoding,
    bytes: Vec<u8>,
    high_surrogate: Option<u16>,
    /// Fallback characters still to skip after a `\uN`.
    to_skip: u32,
}

impl Rtf<'_> {
    fn flush(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        let (text, _) = self.encoding.decode_without_bom_handling(&self.bytes);
        self.out.feed(text.as_bytes());
        self.bytes.clear();
    }

    fn char(&mut self, c: char) {
        self.flush();
        let mut utf8 = [0u8; 4];
        self.out.feed(c.encode_utf8(&mut utf8).as_bytes());
    }

    /// A byte of text in the code page (a plain byte or `\'hh`), unless it is a fallback.
    fn byte(&mut self, b: u8) {
        if self.to_skip > 0 {
            self.to_skip -= 1;
            return;
        }
        self.bytes.push(b);
    }

    fn unicode(&mut self, unit: u16) {
        match (self.high_surrogate.take(), unit) {
            (_, 0xD800..=0xDBFF) => self.high_surrogate = Some(unit),
            (Some(high), 0xDC00..=0xDFFF) => {
                let code =
                    0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                self.char(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            (_, unit) => self.char(char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}')),
        }
    }
}

fn rtf_text(mut input: impl BufRead, out: &mut TextCounter) -> Result<(), AnalysisError> {
    let mut rtf = Rtf {
        out,
        encoding: encoding_rs::WINDOWS_1252,
        bytes: Vec::new(),
        high_surrogate: None,
        to_skip: 0,
    };
    let mut stack: Vec<Group> = Vec::new();
    let mut group = Group {
        skip: false,
        fallback: 1,
    };
    // The next control word opens the group (a destination is named first).
    let mut group_start = false;
    let mut next = Bytes::new(&mut input);
    while let Some(b) = next.byte()? {
        match b {
            b'{' => {
                if stack.len() >= MAX_RTF_DEPTH {
                    return Err(AnalysisError::invalid(
                        Kind::Document,
                        format!("RTF groups nested more than {MAX_RTF_DEPTH} deep"),
                    ));
                }
                rtf.flush();
                stack.push(group);
                group_start = true;
                rtf.to_skip = 0;
            }
            b'}' => {
                rtf.flush();
                group = stack.pop().unwrap_or(group);
                group_start = false;
                rtf.to_skip = 0;
            }
            b'\\' => {
                let starts_group = std::mem::take(&mut group_start);
                let Some(c) = next.byte()? else { break };
                if c.is_ascii_alphabetic() {
                    let (word, parameter) = control_word(c, &mut next)?;
                    control(
                        &word,
                        parameter,
                        starts_group,
                        &mut group,
                        &mut rtf,
                        &mut next,
                    )?;
                } else {
                    match c {
                        b'\'' => {
                            let hex = [next.byte()?.unwrap_or(b'0'), next.byte()?.unwrap_or(b'0')];
                            let value = std::str::from_utf8(&hex)
                                .ok()
                                .and_then(|h| u8::from_str_radix(h, 16).ok());
                            if let (Some(value), false) = (value, group.skip) {
                                rtf.byte(value);
                            }
                        }
                        b'*' => group.skip = true,
                        b'~' if !group.skip => rtf.char('\u{A0}'),
                        b'_' if !group.skip => rtf.char('-'),
                        b'\\' | b'{' | b'}' if !group.skip => rtf.byte(c),
                        b'\n' | b'\r' if !group.skip => rtf.char('\n'),
                        _ => {}
                    }
                }
            }
            b'\r' | b'\n' => {}
            _ if group.skip => {}
            _ => {
                group_start = false;
                rtf.byte(b);
            }
        }
    }
    rtf.flush();
    Ok(())
}

/// A control word's name (letters) and optional signed parameter; the space that ends it is
/// consumed.
fn control_word(first: u8, next: &mut Bytes<'_>) -> Result<(String, Option<i32>), AnalysisError> {
    let mut word = String::from(first as char);
    let mut digits = String::new();
    while let Some(c) = next.peek()? {
        if c.is_ascii_alphabetic() && digits.is_empty() && word.len() < 32 {
            word.push(c as char);
        } else if (c.is_ascii_digit() || (c == b'-' && digits.is_empty())) && digits.len() < 11 {
            digits.push(c as char);
        } else {
            if c == b' ' {
                next.byte()?;
            }
            break;
        }
        next.byte()?;
    }
    Ok((word, digits.parse().ok()))
}

fn control(
    word: &str,
    parameter: Option<i32>,
    starts_group: bool,
    group: &mut Group,
    rtf: &mut Rtf<'_>,
    next: &mut Bytes<'_>,
) -> Result<(), AnalysisError> {
    if starts_group && SKIPPED_DESTINATIONS.contains(&word) {
        group.skip = true;
    }
    match word {
        "ansicpg" => {
            if let Some(encoding) = parameter
                .and_then(|p| u16::try_from(p).ok())
                .and_then(codepage::to_encoding)
            {
                rtf.flush();
                rtf.encoding = encoding;
            }
        }
        "uc" => group.fallback = parameter.and_then(|p| u32::try_from(p).ok()).unwrap_or(1),
        "bin" => {
            // Binary data: skipped, whatever group it is in.
            let mut left = parameter.and_then(|p| u64::try_from(p).ok()).unwrap_or(0);
            while left > 0 && next.byte()?.is_some() {
                left -= 1;
            }
        }
        _ if group.skip => {}
        "u" => {
            if let Some(p) = parameter {
                rtf.unicode(p as i16 as u16);
                rtf.to_skip = group.fallback;
            }
        }
        "par" | "line" | "row" | "sect" | "page" => rtf.char('\n'),
        "tab" | "cell" => rtf.char('\t'),
        "emdash" => rtf.char('\u{2014}'),
        "endash" => rtf.char('\u{2013}'),
        "bullet" => rtf.char('\u{2022}'),
        "lquote" => rtf.char('\u{2018}'),
        "rquote" => rtf.char('\u{2019}'),
        "ldblquote" => rtf.char('\u{201C}'),
        "rdblquote" => rtf.char('\u{201D}'),
        _ => {}
    }
    Ok(())
}

/// Bytes one at a time out of a buffered reader.
struct Bytes<'r> {
    input: &'r mut dyn BufRead,
}

impl<'r> Bytes<'r> {
    fn new(input: &'r mut dyn BufRead) -> Self {
        Bytes { input }
    }

    fn peek(&mut self) -> Result<Option<u8>, AnalysisError> {
        loop {
            match self.input.fill_buf() {
                Ok(buf) => return Ok(buf.first().copied()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(AnalysisError::read(err)),
            }
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, AnalysisError> {
        let b = self.peek()?;
        if b.is_some() {
            self.input.consume(1);
        }
        Ok(b)
    }
}

impl Section for DocumentReport {
    fn figure(&self) -> Figure {
        Figure {
            value: self.text.as_ref().map_or(0, |text| text.words),
            unit: "words",
        }
    }

    fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{} · {} pages · {}",
            self.format,
            or_dash(self.pages),
            if self.encrypted {
                "encrypted"
            } else {
                "not encrypted"
            }
        )];
        if let Some(text) = &self.text {
            lines.extend(text.summary_lines());
        }
        lines
    }

    fn tables(&self) -> Vec<Table> {
        let mut tables = vec![Table::facts(
            "document",
            "Document",
            vec![
                fact("format", &self.format),
                fact("pages", or_dash(self.pages)),
                fact("encrypted", self.encrypted),
            ],
        )];
        if let Some(text) = &self.text {
            tables.extend(text.tables());
        }
        tables
    }

    fn longest_list(&self) -> usize {
        0
    }

    fn cut_lists(&mut self, _share: f64) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtf(source: &str) -> TextReport {
        let mut counter = TextCounter::default();
        rtf_text(std::io::Cursor::new(source.as_bytes()), &mut counter).expect("rtf");
        counter.finish()
    }

    #[test]
    fn rtf_text_skips_destinations_and_decodes_escapes() {
        let report = rtf(concat!(
            r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}",
            r"{\colortbl;\red255\green0\blue0;}{\info{\title Secret title words}}",
            r"{\*\generator Nobody 1.0;}\f0 Caf\'e9 na\'efve\par ",
            r"\u8364? costs \uc2\u8364xx euro\par ",
            r"tab\tab here\line next {\b bold} \{braces\}\par}",
        ));
        // Café naïve / € costs € euro / tab<TAB>here / next bold {braces}
        assert_eq!(report.lines, 4, "{report:?}");
        assert_eq!(report.words, 11, "{report:?}");
        assert_eq!(report.chars, Some(54), "{report:?}");
    }

    #[test]
    fn rtf_code_pages_and_surrogates() {
        // Shift_JIS bytes for 日本 (0x93FA 0x967B) under \ansicpg932, and 😀 as a surrogate pair.
        let report = rtf(r"{\rtf1\ansi\ansicpg932 \'93\'fa\'96\'7b \u-10179?\u-8704?\par}");
        assert_eq!(report.words, 2, "{report:?}");
        assert_eq!(report.chars, Some(5), "{report:?}");
    }

    #[test]
    fn rtf_nesting_is_bounded() {
        let deep = "{".repeat(MAX_RTF_DEPTH + 1);
        let mut counter = TextCounter::default();
        let err =
            rtf_text(std::io::Cursor::new(deep.as_bytes()), &mut counter).expect_err("too deep");
        assert_eq!(err.kind(), "invalid_document");
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any bytes after an RTF header give text or an error: never a panic or a hang.
        #[test]
        fn hostile_rtf_never_panics(
            body in prop::collection::vec(prop_oneof![
                any::<u8>(),
                Just(b'\\'), Just(b'{'), Just(b'}'), Just(b'\''), Just(b'u'), Just(b'-'),
                Just(b'*'), Just(b'9'),
            ], 0..400),
        ) {
            let mut input = b"{\\rtf1 ".to_vec();
            input.extend_from_slice(&body);
            let mut counter = TextCounter::default();
            let _ = rtf_text(std::io::Cursor::new(input), &mut counter);
            let _ = counter.finish();
        }
    }
}
