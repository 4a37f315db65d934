//! Text analysis: lines, words, characters, blank lines, longest line and log-level counts.
//!
//! Exact meanings (SPEC §4): `lines` is the number of `\n` bytes, plus one when the file is
//! non-empty and does not end in `\n`; `words` are runs of bytes that are not ASCII whitespace
//! (Python's `len(data.split())`); `chars` counts Unicode scalar values and is `None` unless the
//! whole file is valid UTF-8. A line is blank when it holds only ASCII whitespace;
//! `max_line_bytes` excludes the `\n` and a `\r` right before it. A line's log level is the first
//! level word (whole word, all upper or all lower case) that starts within its first
//! [`LEVEL_WINDOW`] bytes.
//!
//! The file is cut into line-aligned segments analysed in parallel; each segment is streamed
//! through fixed-size buffers, so the result never depends on where buffers or segments end.

use std::collections::BTreeMap;

use memchr::memchr_iter;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::section::{Figure, Section, Table, fact, or_dash};
use super::segments::{self, Segment};
use super::{AnalysisError, AnalysisOptions, Progress, Source};

/// Only the first bytes of a line are searched for a level word: loggers put it near the start,
/// and a bound keeps a 10 GB line from costing anything extra.
pub const LEVEL_WINDOW: usize = 256;

/// Canonical level names, in report order.
const LEVELS: [&str; 8] = [
    "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRITICAL", "FATAL",
];

/// Words recognised as levels and the canonical level each one counts as.
const LEVEL_WORDS: [(&str, usize); 9] = [
    ("TRACE", 0),
    ("DEBUG", 1),
    ("INFO", 2),
    ("NOTICE", 3),
    ("WARNING", 4),
    ("WARN", 4),
    ("ERROR", 5),
    ("CRITICAL", 6),
    ("FATAL", 7),
];
const LONGEST_LEVEL_WORD: usize = 8;

/// The `text` section of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextReport {
    pub lines: u64,
    pub words: u64,
    pub chars: Option<u64>,
    pub blank_lines: u64,
    pub max_line_bytes: u64,
    pub log_levels: BTreeMap<String, u64>,
}

impl Section for TextReport {
    fn figure(&self) -> Figure {
        Figure {
            value: self.lines,
            unit: "lines",
        }
    }

    fn summary_lines(&self) -> Vec<String> {
        let chars = self
            .chars
            .map_or("not UTF-8".to_string(), |c| format!("{c} chars"));
        let mut lines = vec![format!(
            "{} lines · {} words · {chars} · {} blank · longest {} bytes",
            self.lines, self.words, self.blank_lines, self.max_line_bytes
        )];
        if !self.log_levels.is_empty() {
            let levels: Vec<String> = self
                .log_levels
                .iter()
                .map(|(level, n)| format!("{level} {n}"))
                .collect();
            lines.push(format!("levels: {}", levels.join(" · ")));
        }
        lines
    }

    fn tables(&self) -> Vec<Table> {
        let mut tables = vec![Table::facts(
            "text",
            "Text",
            vec![
                fact("lines", self.lines),
                fact("words", self.words),
                fact("chars", or_dash(self.chars)),
                fact("blank_lines", self.blank_lines),
                fact("max_line_bytes", self.max_line_bytes),
            ],
        )];
        if !self.log_levels.is_empty() {
            tables.push(Table::bars(
                "levels",
                "Log levels",
                self.log_levels.iter().map(|(level, n)| (level.clone(), *n)),
            ));
        }
        tables
    }
}

/// The level of a line given as `window` (its first bytes at most `OpenLine::WINDOW_CAP`):
/// the level of its first level word that starts within `LEVEL_WINDOW`. A level word counts
/// only as a whole word, so it is a whole token (a run of word bytes): the search steps from
/// token to token and compares only tokens of a level word's length, and it stops at the
/// first level. The rest of the line is never read.
fn level_in_window(window: &[u8]) -> Option<usize> {
    let starts_before = window.len().min(LEVEL_WINDOW);
    let mut at = 0;
    while at < starts_before {
        if !is_word_byte(window[at]) {
            at += 1;
            continue;
        }
        let start = at;
        while at < window.len() && is_word_byte(window[at]) {
            at += 1;
        }
        // A token cut by the window's end is longer than any level word: the window reaches
        // `LONGEST_LEVEL_WORD + 1` bytes past the last start it searches.
        if let Some(level) = level_of_word(&window[start..at]) {
            return Some(level);
        }
    }
    None
}

/// The level a token names: one of `LEVEL_WORDS`, all upper or all lower case.
fn level_of_word(token: &[u8]) -> Option<usize> {
    if !(4..=LONGEST_LEVEL_WORD).contains(&token.len()) {
        return None;
    }
    LEVEL_WORDS.iter().find_map(|&(word, level)| {
        let word = word.as_bytes();
        let same = token == word
            || (token.len() == word.len()
                && token
                    .iter()
                    .zip(word)
                    .all(|(&t, &w)| t == w.to_ascii_lowercase()));
        same.then_some(level)
    })
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// ASCII whitespace as Python's `bytes.split()` sees it: space and `\t \n \v \f \r`.
#[inline(always)]
fn is_space(b: u8) -> bool {
    b == b' ' || b.wrapping_sub(b'\t') < 5
}

/// Counts word starts in `buf`: a non-space byte whose predecessor is a space (or, for the
/// first byte, when `prev_is_space`). Written as a flat loop over two offset slices so that the
/// compiler vectorises it.
fn count_word_starts(buf: &[u8], prev_is_space: bool) -> u64 {
    let Some(&first) = buf.first() else {
        return 0;
    };
    let mut total = u64::from(prev_is_space && !is_space(first));
    let (before, after) = (&buf[..buf.len() - 1], &buf[1..]);
    // Per-block u8 counters keep the vector lanes 16 bytes wide (a block of 255 cannot overflow).
    for (a, b) in before.chunks(255).zip(after.chunks(255)) {
        let mut block: u8 = 0;
        for (&x, &y) in a.iter().zip(b) {
            block += u8::from(is_space(x) & !is_space(y));
        }
        total += u64::from(block);
    }
    total
}

/// Bytes that start a UTF-8 character (everything but continuation bytes `10xxxxxx`).
fn count_char_starts(buf: &[u8]) -> u64 {
    let mut total = 0u64;
    for block in buf.chunks(255) {
        let mut n: u8 = 0;
        for &b in block {
            n += u8::from((b as i8) >= -0x40);
        }
        total += u64::from(n);
    }
    total
}

/// UTF-8 validation across buffer boundaries: at most three bytes of an unfinished character
/// are carried to the next buffer.
#[derive(Debug, Clone)]
struct Utf8Stream {
    carry: [u8; 4],
    carry_len: usize,
    valid: bool,
}

impl Utf8Stream {
    fn new() -> Self {
        Utf8Stream {
            carry: [0; 4],
            carry_len: 0,
            valid: true,
        }
    }

    fn feed(&mut self, mut buf: &[u8]) {
        if !self.valid {
            return;
        }
        if self.carry_len > 0 {
            let lead = self.carry[0];
            let char_len = if lead < 0xE0 {
                2
            } else if lead < 0xF0 {
                3
            } else {
                4
            };
            let take = (char_len - self.carry_len).min(buf.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&buf[..take]);
            self.carry_len += take;
            buf = &buf[take..];
            if self.carry_len < char_len {
                return;
            }
            if std::str::from_utf8(&self.carry[..char_len]).is_err() {
                self.valid = false;
                return;
            }
            self.carry_len = 0;
        }
        if let Err(err) = simdutf8::compat::from_utf8(buf) {
            if err.error_len().is_some() {
                self.valid = false;
            } else {
                let tail = &buf[err.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
            }
        }
    }

    fn finish(&mut self) -> bool {
        if self.carry_len > 0 {
            self.valid = false;
        }
        self.valid
    }
}

/// Partial results of one segment; merged by plain addition and max.
#[derive(Debug, Clone, Default)]
struct TextCounts {
    lines: u64,
    words: u64,
    char_starts: u64,
    invalid_utf8: bool,
    blank_lines: u64,
    max_line_bytes: u64,
    levels: [u64; LEVELS.len()],
}

impl TextCounts {
    fn merge(&mut self, other: &TextCounts) {
        self.lines += other.lines;
        self.words += other.words;
        self.char_starts += other.char_starts;
        self.invalid_utf8 |= other.invalid_utf8;
        self.blank_lines += other.blank_lines;
        self.max_line_bytes = self.max_line_bytes.max(other.max_line_bytes);
        for (mine, theirs) in self.levels.iter_mut().zip(other.levels) {
            *mine += theirs;
        }
    }
}

/// The line still open at the end of a buffer.
#[derive(Debug, Clone)]
struct OpenLine {
    len: u64,
    only_space: bool,
    last_byte: u8,
    /// The first `LEVEL_WINDOW + LONGEST_LEVEL_WORD + 1` bytes, enough to decide its level.
    window: Vec<u8>,
}

impl OpenLine {
    const WINDOW_CAP: usize = LEVEL_WINDOW + LONGEST_LEVEL_WORD + 1;

    fn new() -> Self {
        OpenLine {
            len: 0,
            only_space: true,
            last_byte: 0,
            window: Vec::new(),
        }
    }

    fn extend(&mut self, piece: &[u8]) {
        let Some(&last) = piece.last() else {
            return;
        };
        if self.window.len() < Self::WINDOW_CAP {
            let room = Self::WINDOW_CAP - self.window.len();
            self.window
                .extend_from_slice(&piece[..room.min(piece.len())]);
        }
        self.only_space = self.only_space && piece.iter().all(|&b| is_space(b));
        self.last_byte = last;
        self.len += piece.len() as u64;
    }
}

/// Streams one segment.
struct TextScanner {
    counts: TextCounts,
    prev_is_space: bool,
    utf8: Utf8Stream,
    open: OpenLine,
}

impl TextScanner {
    fn new() -> Self {
        TextScanner {
            counts: TextCounts::default(),
            // A segment starts at the file start or after a `\n`.
            prev_is_space: true,
            utf8: Utf8Stream::new(),
            open: OpenLine::new(),
        }
    }

    fn feed(&mut self, buf: &[u8]) {
        let Some(&last) = buf.last() else {
            return;
        };
        self.counts.words += count_word_starts(buf, self.prev_is_space);
        self.prev_is_space = is_space(last);
        self.counts.char_starts += count_char_starts(buf);
        self.utf8.feed(buf);

        let mut line_start = 0;
        for newline in memchr_iter(b'\n', buf) {
            if self.open.len > 0 {
                self.open.extend(&buf[line_start..newline]);
                self.close_open_line();
            } else {
                self.close_line_in_buffer(buf, line_start, newline);
            }
            line_start = newline + 1;
        }
        self.open.extend(&buf[line_start..]);
    }

    fn close_line_in_buffer(&mut self, buf: &[u8], start: usize, end: usize) {
        let line = &buf[start..end];
        let content_len = line.len() - usize::from(line.last() == Some(&b'\r'));
        self.record_line(content_len as u64, line.iter().all(|&b| is_space(b)));
        // Only the line's first bytes are searched, and only up to its first level word:
        // the automaton never sees the rest of the line.
        let window = &line[..line.len().min(OpenLine::WINDOW_CAP)];
        if let Some(level) = level_in_window(window) {
            self.counts.levels[level] += 1;
        }
    }

    fn close_open_line(&mut self) {
        let open = std::mem::replace(&mut self.open, OpenLine::new());
        let content_len = open.len - u64::from(open.last_byte == b'\r');
        self.record_line(content_len, open.only_space);
        if let Some(level) = level_in_window(&open.window) {
            self.counts.levels[level] += 1;
        }
    }

    fn record_line(&mut self, content_len: u64, only_space: bool) {
        self.counts.lines += 1;
        self.counts.blank_lines += u64::from(only_space);
        self.counts.max_line_bytes = self.counts.max_line_bytes.max(content_len);
    }

    /// Ends the segment. Only the file's last segment can end inside a line.
    fn finish(mut self, at_end_of_file: bool) -> TextCounts {
        if at_end_of_file && self.open.len > 0 {
            self.close_open_line();
        }
        self.counts.invalid_utf8 = !self.utf8.finish();
        self.counts
    }
}

/// Analyses `source` as text.
pub fn analyze(
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Result<TextReport, AnalysisError> {
    let segments = segments::plan(source, 0, source.len, options.segment_bytes)?;
    progress.start(segments.len() as u64);
    let last = segments.len() - 1;
    let scan = |(index, &segment): (usize, &Segment)| {
        let counts = scan_segment(source, segment, options, index == last)?;
        progress.advance();
        Ok(counts)
    };
    let parts = if source.is_large(options) {
        segments
            .par_iter()
            .enumerate()
            .map(scan)
            .collect::<Result<Vec<_>, AnalysisError>>()?
    } else {
        segments
            .iter()
            .enumerate()
            .map(scan)
            .collect::<Result<Vec<_>, AnalysisError>>()?
    };
    let mut total = TextCounts::default();
    for part in &parts {
        total.merge(part);
    }
    Ok(report_from(total))
}

/// Analyses a stream (a decompressed file, an archive member) as text: the same counts, on
/// one thread.
pub fn analyze_stream(
    reader: &mut dyn std::io::Read,
    options: &AnalysisOptions,
) -> Result<TextReport, AnalysisError> {
    let mut scanner = TextScanner::new();
    let mut buf = vec![0u8; options.buffer_bytes.max(1)];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => scanner.feed(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(AnalysisError::read(err)),
        }
    }
    Ok(report_from(scanner.finish(true)))
}

/// Counts text handed over piece by piece (the text extracted from a document): the same
/// counts, by the same scanner, as for a text file.
pub struct TextCounter {
    scanner: TextScanner,
    pending: Vec<u8>,
}

impl Default for TextCounter {
    fn default() -> Self {
        TextCounter {
            scanner: TextScanner::new(),
            pending: Vec::with_capacity(PENDING_BYTES),
        }
    }
}

/// Text gathered before the scanner sees it (extractors hand over small pieces).
const PENDING_BYTES: usize = 64 << 10;

impl TextCounter {
    pub fn feed(&mut self, text: &[u8]) {
        if self.pending.len() + text.len() > PENDING_BYTES {
            self.scanner.feed(&self.pending);
            self.pending.clear();
        }
        if text.len() > PENDING_BYTES {
            self.scanner.feed(text);
        } else {
            self.pending.extend_from_slice(text);
        }
    }

    pub fn finish(mut self) -> TextReport {
        self.scanner.feed(&self.pending);
        report_from(self.scanner.finish(true))
    }
}

fn scan_segment(
    source: &Source,
    segment: Segment,
    options: &AnalysisOptions,
    at_end_of_file: bool,
) -> Result<TextCounts, AnalysisError> {
    let mut scanner = TextScanner::new();
    segments::for_each_buffer(source, segment, options.buffer_bytes, |buf| {
        scanner.feed(buf);
        Ok(())
    })?;
    Ok(scanner.finish(at_end_of_file))
}

fn report_from(total: TextCounts) -> TextReport {
    let log_levels = LEVELS
        .iter()
        .zip(total.levels)
        .filter(|&(_, count)| count > 0)
        .map(|(name, count)| (name.to_string(), count))
        .collect();
    TextReport {
        lines: total.lines,
        words: total.words,
        chars: (!total.invalid_utf8).then_some(total.char_starts),
        blank_lines: total.blank_lines,
        max_line_bytes: total.max_line_bytes,
        log_levels,
    }
}

/// Whether the file was valid UTF-8 (used to tell text from binary for unknown extensions).
pub fn is_utf8(report: &TextReport) -> bool {
    report.chars.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testing::source_with;
    use proptest::prelude::*;

    /// A plainly sequential reading of the SPEC's definitions, written independently of the
    /// streaming code above: the reference the chunked analysis must match.
    fn reference(data: &[u8]) -> TextReport {
        let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        let lines = newlines + u64::from(!data.is_empty() && data.last() != Some(&b'\n'));
        let words = data
            .split(|&b| b" \t\n\x0b\x0c\r".contains(&b))
            .filter(|w| !w.is_empty())
            .count() as u64;
        let chars = std::str::from_utf8(data)
            .ok()
            .map(|s| s.chars().count() as u64);
        let mut body: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if data.is_empty() || data.last() == Some(&b'\n') {
            body.pop();
        }
        let mut blank_lines = 0;
        let mut max_line_bytes = 0;
        let mut log_levels = BTreeMap::new();
        for line in body {
            if line.iter().all(|b| b" \t\n\x0b\x0c\r".contains(b)) {
                blank_lines += 1;
            }
            let content = line.strip_suffix(b"\r").unwrap_or(line);
            max_line_bytes = max_line_bytes.max(content.len() as u64);
            if let Some(level) = reference_level(line) {
                *log_levels.entry(level.to_string()).or_insert(0) += 1;
            }
        }
        TextReport {
            lines,
            words,
            chars,
            blank_lines,
            max_line_bytes,
            log_levels,
        }
    }

    fn reference_level(line: &[u8]) -> Option<&'static str> {
        let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        for start in 0..line.len().min(LEVEL_WINDOW) {
            if start > 0 && word_byte(line[start - 1]) {
                continue;
            }
            let mut end = start;
            while end < line.len() && word_byte(line[end]) {
                end += 1;
            }
            let word = &line[start..end];
            let upper = word.to_ascii_uppercase();
            let is_one_case = word == upper.as_slice() || word == word.to_ascii_lowercase();
            if !is_one_case {
                continue;
            }
            let name = match upper.as_slice() {
                b"TRACE" => "TRACE",
                b"DEBUG" => "DEBUG",
                b"INFO" => "INFO",
                b"NOTICE" => "NOTICE",
                b"WARN" | b"WARNING" => "WARN",
                b"ERROR" => "ERROR",
                b"CRITICAL" => "CRITICAL",
                b"FATAL" => "FATAL",
                _ => continue,
            };
            return Some(name);
        }
        None
    }

    fn run(data: &[u8], segment_bytes: u64, buffer_bytes: usize) -> TextReport {
        let source = source_with(data);
        let options = AnalysisOptions {
            segment_bytes,
            buffer_bytes,
            ..AnalysisOptions::default()
        };
        analyze(&source, &options, &Progress::silent()).expect("text analysis")
    }

    fn levels(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn edge_cases_match_the_definitions() {
        // name, data, then lines, words, chars, blank lines, max_line_bytes.
        type Case = (&'static str, &'static [u8], u64, u64, Option<u64>, u64, u64);
        let cases: &[Case] = &[
            ("empty", b"", 0, 0, Some(0), 0, 0),
            ("one newline", b"\n", 1, 0, Some(1), 1, 0),
            ("no trailing newline", b"a b\nc", 2, 3, Some(5), 0, 3),
            ("crlf", b"ab\r\n\r\ncd\r\n", 3, 2, Some(10), 1, 2),
            ("bom", b"\xef\xbb\xbfhi\n", 1, 1, Some(4), 0, 5),
            ("nul bytes", b"a\0b\n\0\n", 2, 2, Some(6), 0, 3),
            ("invalid utf-8", b"ok \xff\xfe\n", 1, 2, None, 0, 5),
            ("truncated utf-8", b"\xe2\x82", 1, 1, None, 0, 2),
            (
                "vertical tab splits words",
                b"a\x0bb\x0cc",
                1,
                3,
                Some(5),
                0,
                5,
            ),
            ("only spaces", b"   \n\t\n", 2, 0, Some(6), 2, 3),
            (
                "multibyte",
                "héllo wörld €\n".as_bytes(),
                1,
                3,
                Some(14),
                0,
                17,
            ),
        ];
        for &(name, data, lines, words, chars, blank, max_line) in cases {
            let got = run(data, 4, 3);
            assert_eq!(got.lines, lines, "{name}: lines");
            assert_eq!(got.words, words, "{name}: words");
            assert_eq!(got.chars, chars, "{name}: chars");
            assert_eq!(got.blank_lines, blank, "{name}: blank lines");
            assert_eq!(got.max_line_bytes, max_line, "{name}: max line");
            assert_eq!(got, reference(data), "{name}: reference");
        }
    }

    #[test]
    fn log_levels_are_whole_words_near_the_start() {
        let data = b"2026-01-01 INFO start\n\
            WARNING disk\n\
            [error] lower case\n\
            INFORMATION is not a level\n\
            x ERROR_CODE=5 ERROR y\n\
            Error mixed case is not a level\n\
            INFO then ERROR counts once as INFO\n";
        let got = run(data, 16, 7);
        assert_eq!(
            got.log_levels,
            levels(&[("ERROR", 2), ("INFO", 2), ("WARN", 1)])
        );
        let mut far = vec![b'x'; LEVEL_WINDOW];
        far.extend_from_slice(b" ERROR\n");
        let mut near = vec![b'x'; LEVEL_WINDOW - 2];
        near.extend_from_slice(b" ERROR\n");
        let got = run(&[far, near].concat(), 100, 33);
        assert_eq!(got.log_levels, levels(&[("ERROR", 1)]));
    }

    #[test]
    fn a_multi_megabyte_single_line() {
        let mut data = b"FATAL ".to_vec();
        data.extend(std::iter::repeat_n(b'z', 3 << 20));
        data.extend_from_slice(" é".as_bytes());
        let got = run(&data, 1 << 16, 1 << 12);
        assert_eq!(got, reference(&data));
        assert_eq!(got.lines, 1);
        assert_eq!(got.words, 3);
        assert_eq!(got.max_line_bytes, data.len() as u64);
        assert_eq!(got.log_levels, levels(&[("FATAL", 1)]));
    }

    fn text_strategy() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\t\x0b\x0c".to_vec()),
            Just(b"INFO".to_vec()),
            Just(b"error".to_vec()),
            Just(b"WARNING".to_vec()),
            Just(b"_".to_vec()),
            Just("é€😀".as_bytes().to_vec()),
            Just(b"\xf0\x9f".to_vec()),
            Just(b"\xff".to_vec()),
            Just(b"\0".to_vec()),
            "[a-z]{1,12}".prop_map(String::into_bytes),
            (0usize..400).prop_map(|n| vec![b'x'; n]),
        ];
        prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn chunked_equals_sequential(
            data in text_strategy(),
            segment_bytes in 1u64..300,
            buffer_bytes in 1usize..70,
        ) {
            let chunked = run(&data, segment_bytes, buffer_bytes);
            let sequential = run(&data, u64::MAX / 2, 1 << 20);
            prop_assert_eq!(&chunked, &sequential);
            prop_assert_eq!(&chunked, &reference(&data));
        }
    }
}
