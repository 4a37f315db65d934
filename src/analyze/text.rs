//! Text analysis: lines, words, characters, blank lines, longest line and log-level counts.
//!
//! Exact meanings (SPEC §4): `lines` is the number of `\n` bytes, plus one when the file is
//! non-empty and does not end in `\n`; `words` are runs of bytes that are not ASCII whitespace
//! (Python's `len(data.split())`); `chars` counts Unicode scalar values and is `None` unless the
//! whole file is valid UTF-8. A line is blank when it holds only ASCII whitespace;
//! `max_line_bytes` excludes the `\n` and a `\r` right before it. A line's log level is decided
//! from its first bytes by the rule of [`levels`].
//!
//! The file is cut into line-aligned segments analysed in parallel; each segment is streamed
//! through fixed-size buffers, so the result never depends on where buffers or segments end.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::classes;
use super::levels::{self, LEVELS};
use super::section::{Figure, Section, Table, fact, or_dash};
use super::segments::{self, Segment};
use super::tree_hash::TreeHash;
use super::{AnalysisError, AnalysisOptions, Progress, Source};

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

/// Streams one segment. Each buffer is read in blocks of 64 bytes whose byte classes are bit
/// masks ([`classes`]): words and characters are population counts of those masks, and lines
/// are found bit by bit in the newline mask, so no loop runs over single bytes except at a
/// line's start (its level) and in the last block of a buffer.
struct TextScanner {
    counts: TextCounts,
    utf8: Utf8Stream,
    /// Bytes of the segment before the current buffer.
    offset: u64,
    /// Whether the byte before the next one is a space (a segment starts at the file's start
    /// or after a `\n`).
    prev_is_space: bool,
    /// The last byte of the previous buffer (a `\r` before a `\n` that starts this one).
    prev_byte: u8,
    /// Where the open line starts, in the segment.
    line_start: u64,
    /// One past the last non-space byte seen (0: none): the open line is blank while this is
    /// not past its start.
    non_space_end: u64,
    /// The open line's first bytes (up to `levels::WINDOW_CAP`) when it started in an earlier
    /// buffer.
    window: Vec<u8>,
}

impl TextScanner {
    fn new() -> Self {
        TextScanner {
            counts: TextCounts::default(),
            utf8: Utf8Stream::new(),
            offset: 0,
            prev_is_space: true,
            prev_byte: 0,
            line_start: 0,
            non_space_end: 0,
            window: Vec::new(),
        }
    }

    fn feed(&mut self, buf: &[u8]) {
        let Some(&last) = buf.last() else {
            return;
        };
        self.utf8.feed(buf);
        let (blocks, tail) = buf.as_chunks::<64>();
        self.blocks(buf, blocks);
        if !tail.is_empty() {
            let valid = u64::MAX >> (64 - tail.len());
            self.block(buf, blocks.len() * 64, classes::text_bytes(tail), valid);
        }
        // The open line's first bytes, kept for its level when it ends in a later buffer.
        let end = self.offset + buf.len() as u64;
        if self.line_start < end && self.window.len() < levels::WINDOW_CAP {
            let from = self.line_start.saturating_sub(self.offset) as usize;
            let room = levels::WINDOW_CAP - self.window.len();
            let piece = &buf[from..];
            self.window
                .extend_from_slice(&piece[..room.min(piece.len())]);
        }
        self.prev_byte = last;
        self.offset = end;
    }

    /// The whole blocks of `buf`: with AVX2 (32 bytes per instruction) where the processor
    /// has it, else with [`classes::text_block`].
    fn blocks(&mut self, buf: &[u8], blocks: &[[u8; 64]]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2 (checked just above), the only requirement of
            // `blocks_avx2`.
            unsafe { self.blocks_avx2(buf, blocks) };
            return;
        }
        for (i, block) in blocks.iter().enumerate() {
            self.block(buf, i * 64, classes::text_block(block), u64::MAX);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn blocks_avx2(&mut self, buf: &[u8], blocks: &[[u8; 64]]) {
        for (i, block) in blocks.iter().enumerate() {
            self.block(buf, i * 64, classes::avx2::text_block(block), u64::MAX);
        }
    }

    /// One block of `buf` at `at`; `valid` has a bit for each byte the block holds.
    #[inline(always)]
    fn block(&mut self, buf: &[u8], at: usize, classes: classes::Text, valid: u64) {
        let non_space = !classes.space & valid;
        let word_starts = non_space & ((classes.space << 1) | u64::from(self.prev_is_space));
        self.counts.words += u64::from(word_starts.count_ones());
        self.counts.char_starts += u64::from((!classes.continuation & valid).count_ones());
        let top = 63 - valid.leading_zeros();
        self.prev_is_space = classes.space >> top & 1 == 1;
        let base = self.offset + at as u64;
        let mut newlines = classes.newline;
        while newlines != 0 {
            let bit = newlines.trailing_zeros();
            let before = non_space & ((1u64 << bit) - 1);
            if before != 0 {
                self.non_space_end = base + u64::from(64 - before.leading_zeros());
            }
            self.end_line(buf, at + bit as usize);
            newlines &= newlines - 1;
        }
        if non_space != 0 {
            self.non_space_end = base + u64::from(64 - non_space.leading_zeros());
        }
    }

    /// The open line ends at the `\n` at `buf[newline]`.
    fn end_line(&mut self, buf: &[u8], newline: usize) {
        let end = self.offset + newline as u64;
        let len = end - self.line_start;
        let before = if newline > 0 {
            buf[newline - 1]
        } else {
            self.prev_byte
        };
        let content_len = len - u64::from(len > 0 && before == b'\r');
        let level = if self.line_start >= self.offset {
            let from = (self.line_start - self.offset) as usize;
            levels::level_of_line(&buf[from..newline])
        } else {
            let room = levels::WINDOW_CAP.saturating_sub(self.window.len());
            self.window.extend_from_slice(&buf[..room.min(newline)]);
            let level = levels::level_of_line(&self.window);
            self.window.clear();
            level
        };
        self.record_line(content_len, level);
        self.line_start = end + 1;
    }

    fn record_line(&mut self, content_len: u64, level: Option<usize>) {
        self.counts.lines += 1;
        self.counts.blank_lines += u64::from(self.non_space_end <= self.line_start);
        self.counts.max_line_bytes = self.counts.max_line_bytes.max(content_len);
        if let Some(level) = level {
            self.counts.levels[level] += 1;
        }
    }

    /// Ends the segment. Only the file's last segment can end inside a line.
    fn finish(mut self, at_end_of_file: bool) -> TextCounts {
        if at_end_of_file && self.offset > self.line_start {
            let len = self.offset - self.line_start;
            let content_len = len - u64::from(self.prev_byte == b'\r');
            let level = levels::level_of_line(&self.window);
            self.record_line(content_len, level);
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
    analyze_hashing(source, options, progress, None)
}

/// `analyze`, also feeding every byte it reads to `tree` (BLAKE3 from the same reads).
pub fn analyze_hashing(
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
    tree: Option<&TreeHash>,
) -> Result<TextReport, AnalysisError> {
    let segments = segments::plan(source, 0, source.len, options.segment_bytes)?;
    progress.start(segments.len() as u64);
    let last = segments.len() - 1;
    let scan = |(index, &segment): (usize, &Segment)| {
        let counts = scan_segment(source, segment, options, index == last, tree)?;
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
    tree: Option<&TreeHash>,
) -> Result<TextCounts, AnalysisError> {
    let mut scanner = TextScanner::new();
    let mut hasher = tree.map(|tree| tree.segment(segment));
    segments::for_each_buffer(source, segment, options.buffer_bytes, |buf| {
        scanner.feed(buf);
        if let Some(hasher) = &mut hasher {
            hasher.feed(buf);
        }
        Ok(())
    })?;
    if let Some(hasher) = hasher {
        hasher.done();
    }
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

    /// The level rule has its own tests (`levels`); here it is applied to whole lines, so
    /// that the streamed windows must agree with it.
    fn reference_level(line: &[u8]) -> Option<&'static str> {
        levels::level_of_line(line).map(|i| LEVELS[i])
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
    fn log_levels_count_where_logs_put_them() {
        let data = b"2026-01-01 INFO start\n\
            WARNING:root:disk\n\
            x [error] lower case\n\
            INFORMATION is not a level\n\
            x ERROR_CODE=5 pkg-error y\n\
            the job ended with an error\n\
            INFO then ERROR counts once as INFO\n";
        let got = run(data, 16, 7);
        assert_eq!(
            got.log_levels,
            levels(&[("ERROR", 1), ("INFO", 2), ("WARN", 1)])
        );
        let mut far = vec![b'x'; levels::LEVEL_WINDOW];
        far.extend_from_slice(b" [ERROR]\n");
        let mut near = vec![b'x'; levels::LEVEL_WINDOW - 3];
        near.extend_from_slice(b" [ERROR]\n");
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
            Just(b"[warn]".to_vec()),
            Just(b"Error:".to_vec()),
            Just(b"level=".to_vec()),
            Just(b"\"level\": \"".to_vec()),
            Just(b"2026-11-23T08:00:00Z ".to_vec()),
            Just(b"-".to_vec()),
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

    #[test]
    fn utf8_is_judged_the_same_wherever_the_buffers_end() {
        let cases: [&[u8]; 9] = [
            "aé€😀z".as_bytes(),
            b"ab\xf0\x9f\x98",
            b"\xf0\x9f\x98\x80\x80",
            b"x\xc3",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\xff\xfe",
            b"\xe2\x82",
            b"\x80abc",
        ];
        for data in cases {
            let want = std::str::from_utf8(data).is_ok();
            for a in 0..=data.len() {
                for b in a..=data.len() {
                    let mut stream = Utf8Stream::new();
                    for piece in [&data[..a], &data[a..b], &data[b..]] {
                        if !piece.is_empty() {
                            stream.feed(piece);
                        }
                    }
                    assert_eq!(stream.finish(), want, "{data:?} cut at {a}, {b}");
                }
            }
        }
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
