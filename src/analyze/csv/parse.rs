//! CSV parsing: the byte-order mark, the delimiter, the header, and the records of one
//! segment with `csv-core` (RFC 4180 quoting, bounded record size), gathered into an
//! `Accumulator`. A segment's parse may be speculative; `SegmentParse` records where it ended
//! so that `verify_and_merge` (in `mod.rs`) can check the guess.
//!
//! Records with no quote and no lone `\r` take a fast path: 64 bytes at a time are classified
//! into bit masks (`classes::csv_block`) and such a line is split at its delimiters, which is
//! all `csv-core` would do with it. Any other record goes to `csv-core`.

use std::sync::atomic::AtomicBool;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::stats::Accumulator;
use super::{MAX_FIELDS, MAX_RECORD_BYTES};
use crate::analyze::budget::MemoryBudget;
use crate::analyze::classes;
use crate::analyze::distinct::Policy;
use crate::analyze::segments::{self, Segment};
use crate::analyze::{AnalysisError, AnalysisOptions, Kind, Source};

pub(super) fn starts_with_bom(source: &Source) -> Result<bool, AnalysisError> {
    if source.len < 3 {
        return Ok(false);
    }
    let mut head = [0u8; 3];
    segments::read_exact_at(&source.file, &mut head, 0)?;
    Ok(head == [0xEF, 0xBB, 0xBF])
}

/// Bytes of the data's start that the delimiter is judged on.
pub(super) const DELIMITER_HEAD_BYTES: usize = 64 * 1024;

/// The one of `, ; \t |` that occurs most in the first non-blank line (`,` wins ties, then
/// the order of that list).
pub(super) fn detect_delimiter(source: &Source, data_start: u64) -> Result<u8, AnalysisError> {
    let want = (source.len - data_start).min(DELIMITER_HEAD_BYTES as u64) as usize;
    let mut head = vec![0u8; want];
    segments::read_exact_at(&source.file, &mut head, data_start)?;
    Ok(delimiter_of(&head))
}

/// The delimiter of data that starts with `head` (at most `DELIMITER_HEAD_BYTES` of it).
pub(super) fn delimiter_of(head: &[u8]) -> u8 {
    let head = &head[..head.len().min(DELIMITER_HEAD_BYTES)];
    let first_line = head
        .split(|&b| b == b'\n' || b == b'\r')
        .find(|line| !line.is_empty())
        .unwrap_or(&[]);
    let mut best = (b',', 0usize);
    for candidate in [b',', b';', b'\t', b'|'] {
        let count = memchr::memchr_iter(candidate, first_line).count();
        if count > best.1 {
            best = (candidate, count);
        }
    }
    best.0
}

pub(super) fn csv_reader(delimiter: u8) -> Reader {
    ReaderBuilder::new().delimiter(delimiter).build()
}

/// Parses the first record; returns its fields and the offset right after it, or `None` when
/// the file holds no record at all.
pub(super) fn read_header(
    source: &Source,
    data_start: u64,
    delimiter: u8,
) -> Result<Option<(Vec<String>, u64)>, AnalysisError> {
    let mut parser = RecordParser::new(delimiter);
    let mut header: Option<Vec<String>> = None;
    let mut pos = data_start;
    let mut buf = vec![0u8; 64 * 1024];
    while header.is_none() && pos < source.len {
        let want = ((source.len - pos) as usize).min(buf.len());
        segments::read_exact_at(&source.file, &mut buf[..want], pos)?;
        let consumed =
            parser.feed_until_record(&buf[..want], &mut |fields: &[u8], ends: &[usize]| {
                header = Some(field_strings(fields, ends));
            })?;
        pos += consumed as u64;
    }
    if header.is_none() {
        parser.finish(&mut |fields: &[u8], ends: &[usize]| {
            header = Some(field_strings(fields, ends))
        })?;
    }
    Ok(header.map(|names| (names, pos)))
}

pub(super) fn field_strings(fields: &[u8], ends: &[usize]) -> Vec<String> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let name = String::from_utf8_lossy(&fields[start..end]).into_owned();
            start = end;
            name
        })
        .collect()
}

/// What every segment needs to know about the file.
pub(super) struct Layout {
    pub(super) delimiter: u8,
    pub(super) header_len: usize,
    pub(super) user_index: Option<usize>,
    /// Columns whose merged distinct count is already an estimate: later segments insert
    /// straight into an estimator instead of building an exact set that would be thrown away.
    pub(super) estimated_columns: Vec<AtomicBool>,
    /// How the distinct counters of this file behave (fixed by its width).
    pub(super) policy: Policy,
    /// What all the tables of this analysis may hold together.
    pub(super) budget: std::sync::Arc<MemoryBudget>,
}

/// Where parsed records go.
pub(super) trait RecordSink {
    /// A record as `csv-core` gives it: its fields end to end, `ends[i]` where field `i` ends.
    fn record(&mut self, fields: &[u8], ends: &[usize]);

    /// A record of the fast path, as its line (without the terminator): `ends[i]` where field
    /// `i` ends in `line`; field `i + 1` starts one byte (the delimiter) later. Unless a sink
    /// takes lines as they are (the `Accumulator` does), the fields are joined end to end.
    fn line(&mut self, line: &[u8], ends: &[usize]) {
        let mut fields = Vec::with_capacity(line.len());
        let mut start = 0;
        let joined: Vec<usize> = ends
            .iter()
            .map(|&end| {
                fields.extend_from_slice(&line[start..end]);
                start = end + 1;
                fields.len()
            })
            .collect();
        self.record(&fields, &joined)
    }
}

impl<F: FnMut(&[u8], &[usize])> RecordSink for F {
    fn record(&mut self, fields: &[u8], ends: &[usize]) {
        self(fields, ends)
    }
}

impl RecordSink for Accumulator {
    #[inline]
    fn record(&mut self, fields: &[u8], ends: &[usize]) {
        self.add_record(fields, ends)
    }

    #[inline]
    fn line(&mut self, line: &[u8], ends: &[usize]) {
        self.add_line(line, ends)
    }
}

/// After a record the fast path could not take, `csv-core` reads up to this many more before
/// the fast path tries again: the count starts at none and doubles with each record in a row
/// that the fast path gives back, so a file with quotes in every line is not classified twice,
/// and one with a quoted field now and then loses nothing.
const SLOW_RECORDS: u32 = 64;

/// A `csv-core` reader plus the buffers of the record being read. Memory is bounded by
/// [`MAX_RECORD_BYTES`] and [`MAX_FIELDS`].
pub(super) struct RecordParser {
    pub(super) reader: Reader,
    pub(super) fields: Vec<u8>,
    pub(super) fields_len: usize,
    pub(super) ends: Vec<usize>,
    pub(super) ends_len: usize,
    delimiter: u8,
    /// `csv-core` has just completed a record (or read nothing yet): the fast path may start.
    at_record_start: bool,
    fast_path: bool,
    /// Records `csv-core` still reads before the fast path tries again...
    slow_records: u32,
    /// ...and how many it reads after the next record the fast path gives back.
    backoff: u32,
    /// The field ends of the fast path's current line.
    line_ends: Vec<usize>,
}

impl RecordParser {
    pub(super) fn new(delimiter: u8) -> Self {
        RecordParser {
            reader: csv_reader(delimiter),
            fields: vec![0; 4096],
            fields_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            delimiter,
            at_record_start: true,
            // A delimiter the fast path's masks cannot tell apart keeps it off.
            fast_path: !matches!(delimiter, b'"' | b'\r' | b'\n'),
            slow_records: 0,
            backoff: 0,
            line_ends: Vec::with_capacity(64),
        }
    }

    /// True when no part of a record is pending: the input so far ended exactly between two
    /// records (a `\n` inside a quoted field is pending output, so it never looks like this).
    pub(super) fn is_between_records(&self) -> bool {
        self.fields_len == 0 && self.ends_len == 0
    }

    /// Parses all of `input` (never empty: an empty input means end of file to csv-core).
    pub(super) fn feed(
        &mut self,
        input: &[u8],
        sink: &mut impl RecordSink,
    ) -> Result<(), AnalysisError> {
        let mut input = input;
        while !input.is_empty() {
            if self.at_record_start && self.fast_path && self.slow_records == 0 {
                let taken = self.plain_lines(input, sink);
                input = &input[taken..];
                if input.is_empty() {
                    break;
                }
            }
            let (consumed, got_record) = self.step(input, sink)?;
            input = &input[consumed..];
            self.at_record_start = got_record;
            if got_record {
                self.slow_records = self.slow_records.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// The fast path: hands `sink` each complete line at the start of `input` that holds no
    /// quote and no `\r` but that of a final `\r\n`, split at its delimiters; skips empty
    /// lines, as `csv-core` does. Returns the bytes taken: up to the start of the first record
    /// left to `csv-core` (one it cannot take, or the last one, not yet ended).
    fn plain_lines(&mut self, input: &[u8], sink: &mut impl RecordSink) -> usize {
        let mut start = 0;
        let mut crlf = false;
        self.line_ends.clear();
        for (block_start, block) in (0..input.len()).step_by(64).map(|at| (at, &input[at..])) {
            let masks = match block.first_chunk::<64>() {
                Some(whole) => classes::csv_block(whole, self.delimiter),
                None => classes::csv_bytes(block, self.delimiter),
            };
            let mut bits = masks.newline | masks.delimiter | masks.special;
            while bits != 0 {
                let i = bits.trailing_zeros();
                bits &= bits - 1;
                let at = block_start + i as usize;
                if masks.delimiter >> i & 1 == 1 {
                    if self.line_ends.len() + 2 >= MAX_FIELDS {
                        // `csv-core` says why the record is refused.
                        return self.give_back(start);
                    }
                    self.line_ends.push(at - start);
                } else if masks.newline >> i & 1 == 1 {
                    let end = if crlf { at - 1 } else { at };
                    if end - start >= MAX_RECORD_BYTES / 2 {
                        return self.give_back(start);
                    }
                    if end > start {
                        self.line_ends.push(end - start);
                        sink.line(&input[start..end], &self.line_ends);
                        self.backoff = 0;
                    }
                    self.line_ends.clear();
                    crlf = false;
                    start = at + 1;
                } else if input[at] == b'\r' && input.get(at + 1) == Some(&b'\n') {
                    crlf = true;
                } else {
                    return self.give_back(start);
                }
            }
        }
        start
    }

    /// The record at `start` is left to `csv-core`, and the `backoff` records after it.
    fn give_back(&mut self, start: usize) -> usize {
        self.slow_records = self.backoff;
        self.backoff = (self.backoff * 2).clamp(1, SLOW_RECORDS);
        start
    }

    /// Like `feed`, but stops after the first complete record; returns the bytes consumed.
    pub(super) fn feed_until_record(
        &mut self,
        input: &[u8],
        sink: &mut impl RecordSink,
    ) -> Result<usize, AnalysisError> {
        let mut consumed = 0;
        while consumed < input.len() {
            let (n, got_record) = self.step(&input[consumed..], sink)?;
            consumed += n;
            if got_record {
                break;
            }
        }
        Ok(consumed)
    }

    /// Signals end of file: flushes a last record that has no line terminator.
    pub(super) fn finish(&mut self, sink: &mut impl RecordSink) -> Result<(), AnalysisError> {
        loop {
            let (res, _, nout, nend) = self.reader.read_record(
                &[],
                &mut self.fields[self.fields_len..],
                &mut self.ends[self.ends_len..],
            );
            self.fields_len += nout;
            self.ends_len += nend;
            match res {
                ReadRecordResult::End => return Ok(()),
                ReadRecordResult::InputEmpty => {}
                other => {
                    self.handle(other, sink)?;
                }
            }
        }
    }

    /// One call into csv-core; returns bytes consumed and whether a record was completed.
    pub(super) fn step(
        &mut self,
        input: &[u8],
        sink: &mut impl RecordSink,
    ) -> Result<(usize, bool), AnalysisError> {
        let (res, nin, nout, nend) = self.reader.read_record(
            input,
            &mut self.fields[self.fields_len..],
            &mut self.ends[self.ends_len..],
        );
        self.fields_len += nout;
        self.ends_len += nend;
        Ok((nin, self.handle(res, sink)?))
    }

    pub(super) fn handle(
        &mut self,
        res: ReadRecordResult,
        sink: &mut impl RecordSink,
    ) -> Result<bool, AnalysisError> {
        match res {
            ReadRecordResult::InputEmpty | ReadRecordResult::End => Ok(false),
            ReadRecordResult::OutputFull => {
                if self.fields.len() >= MAX_RECORD_BYTES {
                    return Err(AnalysisError::invalid(
                        Kind::Csv,
                        format!("a record is larger than {} MiB", MAX_RECORD_BYTES >> 20),
                    ));
                }
                let grown = (self.fields.len() * 2).min(MAX_RECORD_BYTES);
                self.fields.resize(grown, 0);
                Ok(false)
            }
            ReadRecordResult::OutputEndsFull => {
                if self.ends.len() >= MAX_FIELDS {
                    return Err(AnalysisError::invalid(
                        Kind::Csv,
                        format!("a record has more than {MAX_FIELDS} fields"),
                    ));
                }
                let grown = (self.ends.len() * 2).min(MAX_FIELDS);
                self.ends.resize(grown, 0);
                Ok(false)
            }
            ReadRecordResult::Record => {
                sink.record(&self.fields[..self.fields_len], &self.ends[..self.ends_len]);
                self.fields_len = 0;
                self.ends_len = 0;
                Ok(true)
            }
        }
    }
}

/// The parse of one segment (speculative until verified) and the statistics it gathered.
pub(super) struct SegmentParse {
    pub(super) parser: RecordParser,
    pub(super) stats: Accumulator,
    /// A failure is kept, not raised: it only matters if this parse turns out to be the right one.
    pub(super) error: Option<AnalysisError>,
}

impl SegmentParse {
    pub(super) fn of_segment(
        source: &Source,
        segment: Segment,
        layout: &Layout,
        options: &AnalysisOptions,
    ) -> SegmentParse {
        let mut parse = SegmentParse {
            parser: RecordParser::new(layout.delimiter),
            stats: Accumulator::new(layout),
            error: None,
        };
        parse.continue_through(source, segment, options);
        parse
    }

    pub(super) fn continue_through(
        &mut self,
        source: &Source,
        segment: Segment,
        options: &AnalysisOptions,
    ) {
        if self.error.is_some() {
            return;
        }
        let parser = &mut self.parser;
        let stats = &mut self.stats;
        let result = segments::for_each_buffer(source, segment, options.buffer_bytes, |buf| {
            parser.feed(buf, stats)
        });
        if let Err(err) = result {
            self.error = Some(err);
        }
    }

    pub(super) fn check(&mut self) -> Result<(), AnalysisError> {
        match self.error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    pub(super) fn finish(&mut self) -> Result<(), AnalysisError> {
        self.parser.finish(&mut self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Records = Vec<Vec<Vec<u8>>>;

    /// The fields of a record whose field `i` ends at `ends[i]` and whose next field starts
    /// `gap` bytes later.
    fn split(bytes: &[u8], ends: &[usize], gap: usize) -> Vec<Vec<u8>> {
        let mut start = 0;
        ends.iter()
            .map(|&end| {
                let field = bytes[start..end].to_vec();
                start = end + gap;
                field
            })
            .collect()
    }

    /// Every record as `csv-core` alone reads `data`.
    fn core_records(data: &[u8], delimiter: u8) -> Records {
        let mut reader = csv_reader(delimiter);
        let (mut fields, mut ends) = (vec![0u8; data.len() + 1], vec![0usize; data.len() + 2]);
        let (mut fields_len, mut ends_len) = (0, 0);
        let mut records = Vec::new();
        let mut input = data;
        loop {
            let (res, nin, nout, nend) =
                reader.read_record(input, &mut fields[fields_len..], &mut ends[ends_len..]);
            input = &input[nin..];
            fields_len += nout;
            ends_len += nend;
            match res {
                ReadRecordResult::Record => {
                    records.push(split(&fields, &ends[..ends_len], 0));
                    (fields_len, ends_len) = (0, 0);
                }
                ReadRecordResult::End => return records,
                ReadRecordResult::InputEmpty => {}
                other => panic!("buffers sized for the whole input: {other:?}"),
            }
        }
    }

    /// The records `RecordParser` gives for `data` fed `chunk` bytes at a time, and how many
    /// of them came through the fast path.
    #[derive(Default)]
    struct Collected {
        records: Records,
        lines: usize,
    }

    impl RecordSink for Collected {
        fn record(&mut self, fields: &[u8], ends: &[usize]) {
            self.records.push(split(fields, ends, 0));
        }

        fn line(&mut self, line: &[u8], ends: &[usize]) {
            self.lines += 1;
            self.records.push(split(line, ends, 1));
        }
    }

    fn parsed(data: &[u8], delimiter: u8, chunk: usize) -> Collected {
        let mut parser = RecordParser::new(delimiter);
        let mut collected = Collected::default();
        for piece in data.chunks(chunk) {
            parser
                .feed(piece, &mut collected)
                .expect("no limit is reached");
        }
        parser.finish(&mut collected).expect("no limit is reached");
        collected
    }

    #[test]
    fn plain_lines_take_the_fast_path_and_quoted_ones_csv_core() {
        let mut data = Vec::new();
        for i in 0..100 {
            data.extend_from_slice(format!("{i},user{i},{}.5\r\n", i * 3).as_bytes());
        }
        data.extend_from_slice(b"\n\r\n7,\"a, quoted\nvalue\",1\n");
        for i in 0..100 {
            data.extend_from_slice(format!("{i},x\ry,\n").as_bytes());
        }
        for i in 0..100 {
            data.extend_from_slice(format!(",{i},,\n").as_bytes());
        }
        data.extend_from_slice(b"last,line");
        let got = parsed(&data, b',', 4096);
        assert_eq!(got.records, core_records(&data, b','));
        // A lone `\r` ends a record, as `\n` does.
        assert_eq!(got.records.len(), 100 + 1 + 200 + 100 + 1);
        // The fast path takes the CRLF lines, the record after each lone `\r` (`y,`) and the
        // last hundred, but for up to `SLOW_RECORDS` records after ones it could not take;
        // `csv-core` reads the rest, and the last line (which has no terminator).
        assert!(
            got.lines >= 300 - SLOW_RECORDS as usize,
            "{} fast",
            got.lines
        );
        assert!(got.lines <= 300, "{} fast", got.lines);
    }

    #[test]
    fn a_quoted_record_now_and_then_costs_the_fast_path_only_that_record() {
        let mut data = Vec::new();
        for i in 0..1000 {
            if i % 50 == 49 {
                data.extend_from_slice(format!("{i},\"gift, wrapped\nfragile\"\n").as_bytes());
            } else {
                data.extend_from_slice(format!("{i},express\n").as_bytes());
            }
        }
        let got = parsed(&data, b',', 256 << 10);
        assert_eq!(got.records, core_records(&data, b','));
        assert_eq!(got.lines, 1000 - 20);
    }

    #[test]
    fn a_closure_gets_the_fast_paths_lines_as_fields_end_to_end() {
        let data = b"a,bb,,ccc\r\n1,2,3,4\n\"q,x\",y\n";
        let mut records: Records = Vec::new();
        let mut parser = RecordParser::new(b',');
        let mut sink = |fields: &[u8], ends: &[usize]| records.push(split(fields, ends, 0));
        parser.feed(data, &mut sink).expect("no limit");
        parser.finish(&mut sink).expect("no limit");
        assert_eq!(records, core_records(data, b','));
        assert_eq!(records.len(), 3);
    }

    /// `count` copies of `byte` and a newline, fed as one line: the parser's error.
    fn refusal_of_one_line(byte: u8, count: usize) -> String {
        let mut data = vec![byte; count];
        data.push(b'\n');
        let mut parser = RecordParser::new(b',');
        parser
            .feed(&data, &mut Collected::default())
            .expect_err("a line over a limit")
            .to_string()
    }

    #[test]
    fn a_line_too_long_for_a_record_is_refused_as_csv_core_refuses_it() {
        let err = refusal_of_one_line(b'x', MAX_RECORD_BYTES + 100);
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn too_many_fields_are_refused_as_csv_core_refuses_them() {
        let err = refusal_of_one_line(b',', MAX_FIELDS + 1);
        assert!(err.contains("fields"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever the bytes, their cuts and the delimiter, the records are the ones
        /// `csv-core` reads alone.
        #[test]
        fn the_fast_path_reads_what_csv_core_reads(
            data in prop::collection::vec(
                prop::sample::select(b"ab ,;\t\"\"\r\n\n\n\xc3\xa9".to_vec()), 0..600),
            chunk in 1usize..200,
            delimiter in prop::sample::select(b",;\t".to_vec()),
        ) {
            let got = parsed(&data, delimiter, chunk);
            prop_assert_eq!(got.records, core_records(&data, delimiter));
        }
    }
}
