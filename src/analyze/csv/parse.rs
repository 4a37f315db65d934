//! CSV parsing: the byte-order mark, the delimiter, the header, and the records of one
//! segment with `csv-core` (RFC 4180 quoting, bounded record size), gathered into an
//! `Accumulator`. A segment's parse may be speculative; `SegmentParse` records where it ended
//! so that `verify_and_merge` (in `mod.rs`) can check the guess.

use std::sync::atomic::AtomicBool;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::stats::Accumulator;
use super::{MAX_FIELDS, MAX_RECORD_BYTES};
use crate::analyze::budget::MemoryBudget;
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
        let consumed = parser.feed_until_record(&buf[..want], &mut |fields, ends| {
            header = Some(field_strings(fields, ends));
        })?;
        pos += consumed as u64;
    }
    if header.is_none() {
        parser.finish(&mut |fields, ends| header = Some(field_strings(fields, ends)))?;
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

/// A `csv-core` reader plus the buffers of the record being read. Memory is bounded by
/// [`MAX_RECORD_BYTES`] and [`MAX_FIELDS`].
pub(super) struct RecordParser {
    pub(super) reader: Reader,
    pub(super) fields: Vec<u8>,
    pub(super) fields_len: usize,
    pub(super) ends: Vec<usize>,
    pub(super) ends_len: usize,
}

impl RecordParser {
    pub(super) fn new(delimiter: u8) -> Self {
        RecordParser {
            reader: csv_reader(delimiter),
            fields: vec![0; 4096],
            fields_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
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
        on_record: &mut impl FnMut(&[u8], &[usize]),
    ) -> Result<(), AnalysisError> {
        let mut input = input;
        while !input.is_empty() {
            let consumed = self.step(input, on_record)?.0;
            input = &input[consumed..];
        }
        Ok(())
    }

    /// Like `feed`, but stops after the first complete record; returns the bytes consumed.
    pub(super) fn feed_until_record(
        &mut self,
        input: &[u8],
        on_record: &mut impl FnMut(&[u8], &[usize]),
    ) -> Result<usize, AnalysisError> {
        let mut consumed = 0;
        while consumed < input.len() {
            let (n, got_record) = self.step(&input[consumed..], on_record)?;
            consumed += n;
            if got_record {
                break;
            }
        }
        Ok(consumed)
    }

    /// Signals end of file: flushes a last record that has no line terminator.
    pub(super) fn finish(
        &mut self,
        on_record: &mut impl FnMut(&[u8], &[usize]),
    ) -> Result<(), AnalysisError> {
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
                    self.handle(other, on_record)?;
                }
            }
        }
    }

    /// One call into csv-core; returns bytes consumed and whether a record was completed.
    pub(super) fn step(
        &mut self,
        input: &[u8],
        on_record: &mut impl FnMut(&[u8], &[usize]),
    ) -> Result<(usize, bool), AnalysisError> {
        let (res, nin, nout, nend) = self.reader.read_record(
            input,
            &mut self.fields[self.fields_len..],
            &mut self.ends[self.ends_len..],
        );
        self.fields_len += nout;
        self.ends_len += nend;
        Ok((nin, self.handle(res, on_record)?))
    }

    pub(super) fn handle(
        &mut self,
        res: ReadRecordResult,
        on_record: &mut impl FnMut(&[u8], &[usize]),
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
                on_record(&self.fields[..self.fields_len], &self.ends[..self.ends_len]);
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
            parser.feed(buf, &mut |fields, ends| stats.add_record(fields, ends))
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
        let stats = &mut self.stats;
        self.parser
            .finish(&mut |fields, ends| stats.add_record(fields, ends))
    }
}
