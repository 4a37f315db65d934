//! CSV analysis: delimiter, rows, malformed rows, per-column statistics and per-user counts.
//!
//! Records are parsed by `csv-core` with RFC 4180 quoting (quoted fields may hold delimiters,
//! doubled quotes and newlines; blank lines are skipped), as Python's `csv.reader` reads them.
//!
//! Parallelism without miscounting: the data after the header is cut into segments that start
//! right after a `\n`, and every segment is parsed *speculatively*, as if it started a record.
//! That guess is wrong when the `\n` sat inside a quoted field. The segments are then walked in
//! order: a parse that is known to be right (the first one, or one continued from a right one)
//! checks whether it ended exactly between two records at the next cut. If it did, the next
//! segment's guess was right and its result is used; if not, that result is thrown away and the
//! right parse simply continues through that segment. Every byte is therefore counted by a
//! parser whose starting state is verified, never guessed, and the result is identical to one
//! sequential parse whatever the cut points.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use nohash_hasher::BuildNoHashHasher;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use smallvec::SmallVec;

use super::budget::{Account, MemoryBudget};
use super::distinct::{self, Distinct, Policy};
use super::exact_sum::ExactSum;
use super::section::{Figure, Grid, Section, Table, fact, or_dash, shown};
use super::segments::{self, Segment};
use super::{AnalysisError, AnalysisOptions, Kind, Progress, Source};

/// A record (all its fields together) larger than this fails the file rather than the memory.
pub const MAX_RECORD_BYTES: usize = 32 << 20;
/// A record with more fields than this fails the file.
pub const MAX_FIELDS: usize = 1 << 20;
/// A header with more fields than this fails the file: every column costs memory in every
/// segment being analysed.
pub const MAX_COLUMNS: usize = 16_384;
/// Distinct users tracked exactly; past this `top_users` and `distinct_users` are approximate.
pub const MAX_TRACKED_USERS: usize = 1_000_000;

/// Bytes that the tables of one CSV analysis (exact distinct sets and per-user counts, in every
/// segment at once) may hold; past it they turn into estimates and the report says so. With
/// the per-column costs below, one analysis stays under the 128 MiB the SPEC allows.
pub const TABLES_BUDGET: usize = 64 << 20;
/// Exact distinct entries across all columns of one segment: the per-column limit is this
/// divided by the number of columns (at most `distinct::EXACT_LIMIT`, at least
/// `MIN_EXACT_LIMIT`), so that it is the same for every segment of a file.
const EXACT_ENTRIES: usize = 1_000_000;
const MIN_EXACT_LIMIT: usize = 32;
/// Files with more columns than this estimate with the coarse sketch (≈ 200 bytes a column).
const COARSE_FROM_COLUMNS: usize = 256;
/// What one column costs in one segment besides its tables (statistics, extremes, sketch).
const COLUMN_BYTES: usize = 1 << 10;
/// Per-column costs of all segments in flight stay under this: a wide file is analysed with
/// fewer segments at once.
const COLUMNS_BUDGET: usize = 24 << 20;
/// Bytes of a value kept for the extremes, the user counts and the report; longer values are
/// cut (and told apart by their hash), and shown ending in `…`.
pub const KEPT_VALUE_BYTES: usize = 256;
/// What one user entry costs besides its kept bytes.
const USER_ENTRY_BYTES: usize = 64;

/// Normalised header names recognised as the user column, in no particular order.
const USER_COLUMN_NAMES: [&str; 8] = [
    "userid",
    "user",
    "username",
    "uid",
    "customerid",
    "clientid",
    "accountid",
    "memberid",
];

/// The `csv` section of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsvReport {
    pub delimiter: String,
    pub rows: u64,
    pub columns: Vec<ColumnReport>,
    /// The report lists only the first columns: all of them would pass its size limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub columns_truncated: bool,
    pub malformed_rows: u64,
    pub user_column: Option<String>,
    pub distinct_users: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub users_approx: bool,
    pub top_users: Vec<UserRows>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub top_users_truncated: bool,
    /// Below `distinct::EXACT_LIMIT` for wide files: each column is exact up to this many
    /// distinct values, then estimated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_exact_limit: Option<u64>,
    /// The tables reached the memory budget: some counts are estimates (marked `_approx`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_limited: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub non_empty: u64,
    pub distinct: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub distinct_approx: bool,
    pub min: Value,
    pub max: Value,
    pub mean: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// No non-empty value.
    Empty,
    Integer,
    Float,
    String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRows {
    pub user: String,
    pub rows: u64,
}

impl ColumnType {
    /// Its name, as the report writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Empty => "empty",
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::String => "string",
        }
    }
}

impl Section for CsvReport {
    fn figure(&self) -> Figure {
        Figure {
            value: self.rows,
            unit: "rows",
        }
    }

    fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{} rows · {} columns · {} malformed · delimiter {:?}",
            self.rows,
            self.columns.len(),
            self.malformed_rows,
            self.delimiter
        )];
        if let (Some(column), Some(users)) = (&self.user_column, self.distinct_users) {
            let top: Vec<String> = self
                .top_users
                .iter()
                .take(5)
                .map(|u| format!("{} ({})", u.user, u.rows))
                .collect();
            lines.push(format!(
                "users ({column}): {users} · top: {}",
                top.join(", ")
            ));
        }
        lines
    }

    fn tables(&self) -> Vec<Table> {
        let mut tables = vec![
            Table::facts(
                "csv",
                "CSV",
                vec![
                    fact("delimiter", &self.delimiter),
                    fact("rows", self.rows),
                    fact("malformed_rows", self.malformed_rows),
                    fact("user_column", or_dash(self.user_column.as_ref())),
                    fact("distinct_users", or_dash(self.distinct_users)),
                ],
            ),
            Table::grid(
                "columns",
                "Columns",
                Grid {
                    header: vec![
                        ("name", false),
                        ("type", false),
                        ("non-empty", true),
                        ("distinct", true),
                        ("min", false),
                        ("max", false),
                        ("mean", true),
                    ],
                    rows: self
                        .columns
                        .iter()
                        .map(|column| {
                            vec![
                                column.name.clone(),
                                column.column_type.as_str().to_string(),
                                column.non_empty.to_string(),
                                if column.distinct_approx {
                                    format!("≈{}", column.distinct)
                                } else {
                                    column.distinct.to_string()
                                },
                                shown(&column.min),
                                shown(&column.max),
                                column.mean.map_or("—".to_string(), |mean| {
                                    serde_json::Value::from(mean).to_string()
                                }),
                            ]
                        })
                        .collect(),
                },
            ),
        ];
        if !self.top_users.is_empty() {
            tables.push(Table::bars(
                "top-users",
                "Top users",
                self.top_users.iter().map(|u| (u.user.clone(), u.rows)),
            ));
        }
        tables
    }

    fn longest_list(&self) -> usize {
        self.columns.len().max(self.top_users.len())
    }

    fn cut_lists(&mut self, share: f64) -> bool {
        let keep = |len: usize| ((len as f64 * share) as usize).min(len - 1);
        if self.top_users.len() > self.columns.len() {
            self.top_users.truncate(keep(self.top_users.len()));
            self.top_users_truncated = true;
        } else if !self.columns.is_empty() {
            self.columns.truncate(keep(self.columns.len()));
            self.columns_truncated = true;
        } else {
            return false;
        }
        true
    }
}

/// Analyses `source` as CSV (tab-separated for `.tsv`).
pub fn analyze(
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Result<CsvReport, AnalysisError> {
    let data_start = if starts_with_bom(source)? { 3 } else { 0 };
    let is_tsv = source
        .path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("tsv"));
    let delimiter = if is_tsv {
        b'\t'
    } else {
        detect_delimiter(source, data_start)?
    };
    let Some((header, header_end)) = read_header(source, data_start, delimiter)? else {
        progress.start(1);
        progress.advance();
        return Ok(empty_report(delimiter));
    };
    if header.len() > MAX_COLUMNS {
        return Err(AnalysisError::invalid(
            Kind::Csv,
            format!(
                "the header has {} fields; at most {MAX_COLUMNS} columns are analysed",
                header.len()
            ),
        ));
    }
    let user_index = find_user_column(&header, options.user_column.as_deref(), source);
    let columns = header.len().max(1);
    let layout = Layout {
        delimiter,
        header_len: header.len(),
        user_index,
        estimated_columns: (0..header.len()).map(|_| AtomicBool::new(false)).collect(),
        policy: Policy {
            exact_limit: (EXACT_ENTRIES / columns).clamp(MIN_EXACT_LIMIT, distinct::EXACT_LIMIT),
            coarse: columns > COARSE_FROM_COLUMNS,
        },
        budget: MemoryBudget::new(TABLES_BUDGET),
    };

    let segments = segments::plan(&source.file, header_end, source.len, options.segment_bytes)?;
    progress.start(segments.len() as u64);
    // Windows of segments are parsed in parallel; the verification and merge of one window runs
    // beside the parsing of the next, so no core waits for the merge.
    let parallel = source.is_large(options);
    // Two windows are alive at once (one merged, one parsed): their per-column costs stay
    // within `COLUMNS_BUDGET`.
    let in_flight = (COLUMNS_BUDGET / (2 * columns * COLUMN_BYTES))
        .clamp(1, 2 * rayon::current_num_threads().max(1));
    let mut total = Accumulator::new(&layout);
    let mut current: Option<SegmentParse> = None;
    let mut pending: Option<(&[Segment], Vec<SegmentParse>)> = None;
    let mut windows = segments.chunks(in_flight);
    loop {
        let next = windows.next();
        let (merged, parsed) = super::join(
            parallel,
            || match pending.take() {
                Some((window, guesses)) => verify_and_merge(
                    source,
                    options,
                    &layout,
                    window,
                    guesses,
                    &mut current,
                    &mut total,
                    progress,
                ),
                None => Ok(()),
            },
            || {
                next.map(|window| {
                    let parse = |&segment: &Segment| {
                        SegmentParse::of_segment(source, segment, &layout, options)
                    };
                    let guesses: Vec<SegmentParse> = if parallel {
                        window.par_iter().map(parse).collect()
                    } else {
                        window.iter().map(parse).collect()
                    };
                    (window, guesses)
                })
            },
        );
        merged?;
        match parsed {
            Some(window) => pending = Some(window),
            None => break,
        }
    }
    if let Some(mut last) = current {
        last.check()?;
        last.finish()?;
        total.merge(last.stats);
    }
    Ok(total.into_report(delimiter, &header, options.top_users, &layout))
}

/// Walks a window's speculative parses in order. `current` is the last parse known to be right:
/// if it ended between two records, the next guess was right and `current` is merged into
/// `total`; if not, the guess is dropped and `current` parses that segment itself.
#[allow(clippy::too_many_arguments)]
fn verify_and_merge(
    source: &Source,
    options: &AnalysisOptions,
    layout: &Layout,
    window: &[Segment],
    guesses: Vec<SegmentParse>,
    current: &mut Option<SegmentParse>,
    total: &mut Accumulator,
    progress: &Progress,
) -> Result<(), AnalysisError> {
    for (&segment, guess) in window.iter().zip(guesses) {
        *current = Some(match current.take() {
            None => guess,
            Some(mut verified) => {
                verified.check()?;
                if verified.parser.is_between_records() {
                    total.merge(verified.stats);
                    total.publish_estimated(layout);
                    guess
                } else {
                    log::debug!(
                        "{}: a quoted field spans the cut at byte {}; re-parsing that segment",
                        source.path.display(),
                        segment.start
                    );
                    verified.continue_through(source, segment, options);
                    verified
                }
            }
        });
        progress.advance();
    }
    Ok(())
}

fn starts_with_bom(source: &Source) -> Result<bool, AnalysisError> {
    if source.len < 3 {
        return Ok(false);
    }
    let mut head = [0u8; 3];
    segments::read_exact_at(&source.file, &mut head, 0)?;
    Ok(head == [0xEF, 0xBB, 0xBF])
}

/// The one of `, ; \t |` that occurs most in the first non-blank line (`,` wins ties, then
/// the order of that list).
fn detect_delimiter(source: &Source, data_start: u64) -> Result<u8, AnalysisError> {
    let want = (source.len - data_start).min(64 * 1024) as usize;
    let mut head = vec![0u8; want];
    segments::read_exact_at(&source.file, &mut head, data_start)?;
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
    Ok(best.0)
}

fn csv_reader(delimiter: u8) -> Reader {
    ReaderBuilder::new().delimiter(delimiter).build()
}

/// Parses the first record; returns its fields and the offset right after it, or `None` when
/// the file holds no record at all.
fn read_header(
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

fn field_strings(fields: &[u8], ends: &[usize]) -> Vec<String> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let name = String::from_utf8_lossy(&fields[start..end]).into_owned();
            start = end;
            name
        })
        .collect()
}

fn normalise_header(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn find_user_column(header: &[String], requested: Option<&str>, source: &Source) -> Option<usize> {
    match requested {
        Some(wanted) => {
            let found = header
                .iter()
                .position(|name| name == wanted)
                .or_else(|| header.iter().position(|n| n.eq_ignore_ascii_case(wanted)));
            if found.is_none() {
                log::warn!(
                    "{}: no column named {wanted:?}; no per-user breakdown",
                    source.path.display()
                );
            }
            found
        }
        None => header
            .iter()
            .position(|name| USER_COLUMN_NAMES.contains(&normalise_header(name).as_str())),
    }
}

fn delimiter_name(delimiter: u8) -> String {
    (delimiter as char).to_string()
}

fn empty_report(delimiter: u8) -> CsvReport {
    CsvReport {
        delimiter: delimiter_name(delimiter),
        rows: 0,
        columns: Vec::new(),
        columns_truncated: false,
        malformed_rows: 0,
        user_column: None,
        distinct_users: None,
        users_approx: false,
        top_users: Vec::new(),
        top_users_truncated: false,
        distinct_exact_limit: None,
        memory_limited: false,
    }
}

/// At most `KEPT_VALUE_BYTES` of a value as text, cut on a character boundary, ending in `…`
/// when cut (`cut`: the value was longer than what is shown).
pub fn shown_value(bytes: &[u8], cut: bool) -> String {
    let (bytes, cut) = if bytes.len() > KEPT_VALUE_BYTES {
        (&bytes[..KEPT_VALUE_BYTES], true)
    } else {
        (bytes, cut)
    };
    let end = match std::str::from_utf8(bytes) {
        // A character split by the cut is left out whole.
        Err(err) if cut && err.error_len().is_none() => err.valid_up_to(),
        _ => bytes.len(),
    };
    let mut text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    if cut {
        text.push('…');
    }
    text
}

/// What every segment needs to know about the file.
struct Layout {
    delimiter: u8,
    header_len: usize,
    user_index: Option<usize>,
    /// Columns whose merged distinct count is already an estimate: later segments insert
    /// straight into an estimator instead of building an exact set that would be thrown away.
    estimated_columns: Vec<AtomicBool>,
    /// How the distinct counters of this file behave (fixed by its width).
    policy: Policy,
    /// What all the tables of this analysis may hold together.
    budget: std::sync::Arc<MemoryBudget>,
}

/// A `csv-core` reader plus the buffers of the record being read. Memory is bounded by
/// [`MAX_RECORD_BYTES`] and [`MAX_FIELDS`].
struct RecordParser {
    reader: Reader,
    fields: Vec<u8>,
    fields_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
}

impl RecordParser {
    fn new(delimiter: u8) -> Self {
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
    fn is_between_records(&self) -> bool {
        self.fields_len == 0 && self.ends_len == 0
    }

    /// Parses all of `input` (never empty: an empty input means end of file to csv-core).
    fn feed(
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
    fn feed_until_record(
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
    fn finish(&mut self, on_record: &mut impl FnMut(&[u8], &[usize])) -> Result<(), AnalysisError> {
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
    fn step(
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

    fn handle(
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
struct SegmentParse {
    parser: RecordParser,
    stats: Accumulator,
    /// A failure is kept, not raised: it only matters if this parse turns out to be the right one.
    error: Option<AnalysisError>,
}

impl SegmentParse {
    fn of_segment(
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

    fn continue_through(&mut self, source: &Source, segment: Segment, options: &AnalysisOptions) {
        if self.error.is_some() {
            return;
        }
        let parser = &mut self.parser;
        let stats = &mut self.stats;
        let result =
            segments::for_each_buffer(&source.file, segment, options.buffer_bytes, |buf| {
                parser.feed(buf, &mut |fields, ends| stats.add_record(fields, ends))
            });
        if let Err(err) = result {
            self.error = Some(err);
        }
    }

    fn check(&mut self) -> Result<(), AnalysisError> {
        match self.error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), AnalysisError> {
        let stats = &mut self.stats;
        self.parser
            .finish(&mut |fields, ends| stats.add_record(fields, ends))
    }
}

/// Statistics of one column over the records seen so far.
#[derive(Debug, Clone)]
struct ColumnStats {
    non_empty: u64,
    saw_float: bool,
    saw_string: bool,
    int_min: i64,
    int_max: i64,
    float_min: f64,
    float_max: f64,
    numbers: u64,
    sum: ExactSum,
    bytes_min: ByteExtreme,
    bytes_max: ByteExtreme,
    distinct: Distinct,
}

impl ColumnStats {
    fn new(estimated: bool, layout: &Layout) -> Self {
        ColumnStats {
            non_empty: 0,
            saw_float: false,
            saw_string: false,
            int_min: i64::MAX,
            int_max: i64::MIN,
            float_min: f64::INFINITY,
            float_max: f64::NEG_INFINITY,
            numbers: 0,
            sum: ExactSum::default(),
            bytes_min: ByteExtreme::default(),
            bytes_max: ByteExtreme::default(),
            distinct: if estimated {
                Distinct::estimated(layout.policy, &layout.budget)
            } else {
                Distinct::new(layout.policy, &layout.budget)
            },
        }
    }

    /// Adds a non-empty value whose `Distinct::hash` is `hash`.
    #[inline]
    fn add(&mut self, value: &[u8], hash: u64) {
        self.distinct.insert_hash(hash);
        self.add_except_distinct(value);
    }

    /// Adds a non-empty value to everything but the distinct count (the user column's distinct
    /// count comes from its per-value table instead).
    #[inline]
    fn add_except_distinct(&mut self, value: &[u8]) {
        self.non_empty += 1;
        let key = prefix_key(value);
        self.bytes_min.offer(value, key, std::cmp::Ordering::Less);
        self.bytes_max
            .offer(value, key, std::cmp::Ordering::Greater);
        // Once a value is not a number the column is a string column: numbers no longer matter.
        if !self.saw_string {
            match parse_number(value) {
                Some(Number::Integer(i)) => {
                    self.int_min = self.int_min.min(i);
                    self.int_max = self.int_max.max(i);
                    self.add_number(i as f64);
                }
                Some(Number::Float(f)) => {
                    self.saw_float = true;
                    self.add_number(f);
                }
                None => self.saw_string = true,
            }
        }
    }

    fn add_number(&mut self, x: f64) {
        self.float_min = self.float_min.min(x);
        self.float_max = self.float_max.max(x);
        self.numbers += 1;
        self.sum.add(x);
    }

    fn merge(&mut self, other: ColumnStats) {
        self.non_empty += other.non_empty;
        self.saw_float |= other.saw_float;
        self.saw_string |= other.saw_string;
        self.int_min = self.int_min.min(other.int_min);
        self.int_max = self.int_max.max(other.int_max);
        self.float_min = self.float_min.min(other.float_min);
        self.float_max = self.float_max.max(other.float_max);
        self.numbers += other.numbers;
        self.sum.merge(&other.sum);
        self.bytes_min
            .offer_extreme(&other.bytes_min, std::cmp::Ordering::Less);
        self.bytes_max
            .offer_extreme(&other.bytes_max, std::cmp::Ordering::Greater);
        self.distinct.merge(other.distinct);
    }

    fn column_type(&self) -> ColumnType {
        if self.non_empty == 0 {
            ColumnType::Empty
        } else if self.saw_string {
            ColumnType::String
        } else if self.saw_float {
            ColumnType::Float
        } else {
            ColumnType::Integer
        }
    }

    fn into_report(self, name: String) -> ColumnReport {
        let column_type = self.column_type();
        let (distinct, distinct_approx) = self.distinct.count();
        let text = |extreme: ByteExtreme| match extreme.value() {
            Some((bytes, cut)) => Value::String(shown_value(bytes, cut)),
            None => Value::Null,
        };
        let (min, max) = match column_type {
            ColumnType::Empty => (Value::Null, Value::Null),
            ColumnType::Integer => (self.int_min.into(), self.int_max.into()),
            ColumnType::Float => (float_value(self.float_min), float_value(self.float_max)),
            ColumnType::String => (text(self.bytes_min), text(self.bytes_max)),
        };
        let mean = match column_type {
            ColumnType::Integer | ColumnType::Float => {
                Some(self.sum.value() / self.numbers as f64).filter(|mean| mean.is_finite())
            }
            ColumnType::Empty | ColumnType::String => None,
        };
        ColumnReport {
            name: shown_value(name.as_bytes(), false),
            column_type,
            non_empty: self.non_empty,
            distinct,
            distinct_approx,
            min,
            max,
            mean,
        }
    }
}

fn float_value(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// The smallest or largest value seen, in byte order. Most comparisons are decided by the
/// first eight bytes read as a big-endian integer (zero-padded): if those keys differ, the
/// strings compare the same way; only equal keys need the full comparison.
/// Only the first `KEPT_VALUE_BYTES` of a value are kept (`cut` says it was longer): two values
/// that share those bytes compare by them, the cut one being the larger, which is exact but for
/// ties among long values that all show the same way.
#[derive(Debug, Clone, Default)]
struct ByteExtreme {
    key: u64,
    bytes: Option<Vec<u8>>,
    cut: bool,
}

#[inline]
fn prefix_key(value: &[u8]) -> u64 {
    match value.first_chunk::<8>() {
        Some(head) => u64::from_be_bytes(*head),
        None => {
            let mut key = 0u64;
            for (i, &b) in value.iter().enumerate() {
                key |= u64::from(b) << (56 - 8 * i);
            }
            key
        }
    }
}

impl ByteExtreme {
    /// Keeps `value` (whose `prefix_key` is `key`) if it compares `wanted` (Less for a
    /// minimum) to the current one.
    #[inline]
    fn offer(&mut self, value: &[u8], key: u64, wanted: std::cmp::Ordering) {
        self.offer_kept(value, false, key, wanted);
    }

    #[inline]
    fn offer_kept(&mut self, value: &[u8], value_cut: bool, key: u64, wanted: std::cmp::Ordering) {
        let (value, value_cut) = if value.len() > KEPT_VALUE_BYTES {
            (&value[..KEPT_VALUE_BYTES], true)
        } else {
            (value, value_cut)
        };
        let better = match &self.bytes {
            None => true,
            Some(current) => match key.cmp(&self.key) {
                // Equal keys and both at most 8 bytes: the zero-padded prefixes are the whole
                // strings, so the shorter one is the smaller.
                std::cmp::Ordering::Equal if value.len() <= 8 && current.len() <= 8 => {
                    value.len().cmp(&current.len()) == wanted
                }
                std::cmp::Ordering::Equal => {
                    (value, value_cut).cmp(&(current.as_slice(), self.cut)) == wanted
                }
                by_prefix => by_prefix == wanted,
            },
        };
        if better {
            let bytes = self.bytes.get_or_insert_with(Vec::new);
            bytes.clear();
            bytes.extend_from_slice(value);
            self.key = key;
            self.cut = value_cut;
        }
    }

    fn offer_extreme(&mut self, other: &ByteExtreme, wanted: std::cmp::Ordering) {
        if let Some(bytes) = &other.bytes {
            self.offer_kept(bytes, other.cut, other.key, wanted);
        }
    }

    /// The kept bytes, and whether the value was longer.
    fn value(&self) -> Option<(&[u8], bool)> {
        self.bytes.as_deref().map(|bytes| (bytes, self.cut))
    }
}

enum Number {
    Integer(i64),
    Float(f64),
}

/// An integer is `[+-]?[0-9]+` within i64; a float is anything else Rust reads as a finite
/// `f64` (`1.5`, `.5`, `5.`, `1e-3`), but not `inf`/`nan` spelled out.
fn parse_number(value: &[u8]) -> Option<Number> {
    let text = std::str::from_utf8(value).ok()?;
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::Integer(i));
    }
    let spelled_out = text.bytes().any(|b| matches!(b, b'i' | b'I' | b'n' | b'N'));
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && !spelled_out => Some(Number::Float(f)),
        _ => None,
    }
}

/// Rows, columns and users gathered from a run of records.
#[derive(Debug, Clone)]
struct Accumulator {
    header_len: usize,
    user_index: Option<usize>,
    rows: u64,
    malformed: u64,
    columns: Vec<ColumnStats>,
    users: UserCounts,
}

impl Accumulator {
    fn new(layout: &Layout) -> Self {
        Accumulator {
            header_len: layout.header_len,
            user_index: layout.user_index,
            rows: 0,
            malformed: 0,
            columns: layout
                .estimated_columns
                .iter()
                .map(|flag| ColumnStats::new(flag.load(AtomicOrdering::Relaxed), layout))
                .collect(),
            users: UserCounts::new(layout),
        }
    }

    #[inline]
    fn add_record(&mut self, fields: &[u8], ends: &[usize]) {
        self.rows += 1;
        if ends.len() != self.header_len {
            self.malformed += 1;
        }
        let mut start = 0;
        for (index, (&end, column)) in ends.iter().zip(self.columns.iter_mut()).enumerate() {
            let value = &fields[start..end];
            start = end;
            if value.is_empty() {
                continue;
            }
            let hash = Distinct::hash(value);
            if Some(index) == self.user_index {
                // One table serves both the column's distinct count and the per-user rows.
                self.users.add(value, hash, 1);
                column.add_except_distinct(value);
            } else {
                column.add(value, hash);
            }
        }
    }

    fn merge(&mut self, other: Accumulator) {
        self.rows += other.rows;
        self.malformed += other.malformed;
        for (mine, theirs) in self.columns.iter_mut().zip(other.columns) {
            mine.merge(theirs);
        }
        self.users.merge(other.users);
    }

    /// Marks the columns whose count is now an estimate, for segments not yet started.
    fn publish_estimated(&self, layout: &Layout) {
        for (column, flag) in self.columns.iter().zip(&layout.estimated_columns) {
            if column.distinct.count().1 {
                flag.store(true, AtomicOrdering::Relaxed);
            }
        }
    }

    fn into_report(
        mut self,
        delimiter: u8,
        header: &[String],
        top: usize,
        layout: &Layout,
    ) -> CsvReport {
        let user_column = self
            .user_index
            .map(|i| shown_value(header[i].as_bytes(), false));
        let users_approx = self.users.capped;
        let mut estimated_users = None;
        if let Some(index) = self.user_index {
            let distinct = self.users.distinct_values(layout);
            if users_approx {
                // Past the cap the users are the column's values: one estimate for both.
                estimated_users = Some(distinct.count().0);
            }
            self.columns[index].distinct = distinct;
        }
        let by_user = self.users.rows_by_trimmed_value();
        let distinct_users = self
            .user_index
            .map(|_| estimated_users.unwrap_or(by_user.len() as u64));
        let mut ranked: Vec<(UserKey, u64)> = by_user.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top_users = ranked
            .into_iter()
            .take(top)
            .map(|(user, rows)| UserRows {
                user: shown_value(user.0, user.1.is_some()),
                rows,
            })
            .collect();
        let memory_limited = layout.budget.exhausted();
        let exact_limit = layout.policy.exact_limit;
        CsvReport {
            distinct_exact_limit: (exact_limit < distinct::EXACT_LIMIT)
                .then_some(exact_limit as u64),
            memory_limited,
            delimiter: delimiter_name(delimiter),
            rows: self.rows,
            columns: self
                .columns
                .into_iter()
                .zip(header)
                .map(|(stats, name)| stats.into_report(name.clone()))
                .collect(),
            columns_truncated: false,
            malformed_rows: self.malformed,
            user_column,
            distinct_users,
            users_approx,
            top_users,
            top_users_truncated: false,
        }
    }
}

/// Rows per value of the user column, keyed by the value's 64-bit hash (already computed).
/// Values are kept as they are, at most `KEPT_VALUE_BYTES` of each (a longer one is told apart
/// by its hash); grouping by the trimmed value happens once, for the report. A value whose hash
/// is taken by a different value is counted in `collided`, by value, so the counts stay exact.
/// Every entry is paid for from the analysis's budget: past it (or past `MAX_TRACKED_USERS`)
/// new values are only counted as distinct, and the figures are marked approximate.
#[derive(Debug, Clone)]
struct UserCounts {
    /// Values up to 24 bytes live inside the table: no pointer to chase when comparing.
    by_hash: HashMap<u64, UserEntry, BuildNoHashHasher<u64>>,
    collided: HashMap<(Box<[u8]>, usize), u64>,
    /// Values no longer tracked once the budget or the count is reached: still counted as
    /// distinct.
    untracked: Distinct,
    capped: bool,
    account: Account,
}

#[derive(Debug, Clone)]
struct UserEntry {
    kept: SmallVec<[u8; 24]>,
    /// The value's whole length (more than `kept` when it was cut).
    len: usize,
    rows: u64,
}

/// A user as the report groups them: the trimmed kept bytes, and for a cut value its hash (two
/// long values that share their first bytes are different users).
type UserKey<'a> = (&'a [u8], Option<u64>);

fn kept_part(value: &[u8]) -> &[u8] {
    &value[..value.len().min(KEPT_VALUE_BYTES)]
}

impl UserCounts {
    fn new(layout: &Layout) -> Self {
        UserCounts {
            by_hash: HashMap::default(),
            collided: HashMap::new(),
            untracked: Distinct::estimated(layout.policy, &layout.budget),
            capped: false,
            account: Account::new(&layout.budget),
        }
    }

    fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    #[inline]
    fn add(&mut self, value: &[u8], hash: u64, rows: u64) {
        self.add_kept(kept_part(value), value.len(), hash, rows);
    }

    fn add_kept(&mut self, kept: &[u8], len: usize, hash: u64, rows: u64) {
        if let Some(entry) = self.by_hash.get_mut(&hash) {
            if entry.kept.as_slice() == kept && entry.len == len {
                entry.rows += rows;
                return;
            }
            if let Some(count) = self.collided.get_mut(&(kept.into(), len)) {
                *count += rows;
                return;
            }
        }
        if self.capped
            || self.len() >= MAX_TRACKED_USERS
            || !self.account.spend(kept.len() + USER_ENTRY_BYTES)
        {
            self.capped = true;
            self.untracked.insert_hash(hash);
        } else if let std::collections::hash_map::Entry::Vacant(slot) = self.by_hash.entry(hash) {
            slot.insert(UserEntry {
                kept: SmallVec::from_slice(kept),
                len,
                rows,
            });
        } else {
            self.collided.insert((kept.into(), len), rows);
        }
    }

    fn merge(&mut self, other: UserCounts) {
        self.capped |= other.capped;
        self.untracked.merge(other.untracked);
        for (hash, entry) in other.by_hash {
            self.add_kept(&entry.kept, entry.len, hash, entry.rows);
        }
        for ((kept, len), rows) in other.collided {
            // Only values short enough to be kept whole can collide by hash and be told apart.
            self.add_kept(&kept, len, Distinct::hash(&kept), rows);
        }
    }

    /// The column's distinct count: exact up to the limit, then an estimate, as for any column.
    fn distinct_values(&self, layout: &Layout) -> Distinct {
        let mut distinct = if self.capped {
            self.untracked.clone()
        } else {
            Distinct::new(layout.policy, &layout.budget)
        };
        for &hash in self.by_hash.keys() {
            distinct.insert_hash(hash);
        }
        for (kept, _) in self.collided.keys() {
            distinct.insert_hash(Distinct::hash(kept));
        }
        distinct
    }

    /// Rows per user: values with surrounding ASCII whitespace trimmed, empty ones dropped.
    fn rows_by_trimmed_value(&self) -> HashMap<UserKey<'_>, u64> {
        let mut by_user: HashMap<UserKey<'_>, u64> = HashMap::new();
        let values = self
            .by_hash
            .iter()
            .map(|(&hash, entry)| {
                let cut = entry.len > entry.kept.len();
                (entry.kept.as_slice(), cut.then_some(hash), entry.rows)
            })
            .chain(
                self.collided
                    .iter()
                    .map(|((kept, _), rows)| (&kept[..], None, *rows)),
            );
        for (value, cut_hash, rows) in values {
            // A cut value's end is not kept: only its start can be trimmed.
            let user = if cut_hash.is_some() {
                value.trim_ascii_start()
            } else {
                value.trim_ascii()
            };
            if !user.is_empty() {
                *by_user.entry((user, cut_hash)).or_insert(0) += rows;
            }
        }
        by_user
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testing::source_with;
    use proptest::prelude::*;

    fn run_with(data: &[u8], segment_bytes: u64, buffer_bytes: usize, tsv: bool) -> CsvReport {
        let mut source = source_with(data);
        if tsv {
            source.path = "data.tsv".into();
        }
        let options = AnalysisOptions {
            segment_bytes,
            buffer_bytes,
            ..AnalysisOptions::default()
        };
        analyze(&source, &options, &Progress::silent()).expect("csv analysis")
    }

    fn run(data: &[u8]) -> CsvReport {
        run_with(data, 5, 3, false)
    }

    fn top(report: &CsvReport) -> Vec<(&str, u64)> {
        report
            .top_users
            .iter()
            .map(|u| (u.user.as_str(), u.rows))
            .collect()
    }

    #[test]
    fn rows_skip_blank_lines_and_count_ragged_records() {
        let data = b"id,name,score\n1,a,3\n\n2,b\n3,c,4,extra\r\n\r\n4,\"x, y\",5\n";
        let got = run(data);
        assert_eq!(got.rows, 4);
        assert_eq!(got.malformed_rows, 2);
        assert_eq!(got.columns.len(), 3);
        assert_eq!(got.columns[2].non_empty, 3);
        assert_eq!(got.columns[2].column_type, ColumnType::Integer);
        assert_eq!(got.columns[2].min, Value::from(3));
        assert_eq!(got.columns[2].max, Value::from(5));
        assert_eq!(got.columns[2].mean, Some(4.0));
        assert_eq!(got.columns[1].distinct, 4);
        assert_eq!(got.columns[1].min, Value::from("a"));
        assert_eq!(got.columns[1].max, Value::from("x, y"));
    }

    #[test]
    fn quoted_newlines_and_quotes_stay_inside_their_field() {
        let data = b"a,b\n\"line1\nline2\n3,4\",\"say \"\"hi\"\"\"\n5,6\n";
        let got = run(data);
        assert_eq!(got.rows, 2);
        assert_eq!(got.malformed_rows, 0);
        assert_eq!(got.columns[1].max, Value::from("say \"hi\""));
    }

    #[test]
    fn delimiter_detection() {
        let table: &[(&[u8], &str)] = &[
            (b"a;b;c\n1;2;3\n", ";"),
            (b"a\tb\n1\t2\n", "\t"),
            (b"a|b|c,d\n", "|"),
            (b"a,b;c\n", ","),
            (b"\n\nx;y\n", ";"),
            (b"single\n1\n", ","),
        ];
        for &(data, want) in table {
            assert_eq!(
                run(data).delimiter,
                want,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
        let tsv = run_with(b"a,b\tc\n1,2\t3\n", 4, 4, true);
        assert_eq!(tsv.delimiter, "\t");
        assert_eq!(tsv.columns.len(), 2);
    }

    #[test]
    fn bom_is_not_part_of_the_first_header() {
        let got = run(b"\xef\xbb\xbfuser_id,v\nu1,1\n");
        assert_eq!(got.columns[0].name, "user_id");
        assert_eq!(got.user_column.as_deref(), Some("user_id"));
    }

    #[test]
    fn user_ranking_breaks_ties_by_value() {
        let data = b"x,Customer-ID\n1, bob \n2,alice\n3,bob\n4,carol\n5,alice\n6,\n7,dave\n";
        let got = run(data);
        assert_eq!(got.user_column.as_deref(), Some("Customer-ID"));
        assert_eq!(got.distinct_users, Some(4));
        assert_eq!(
            top(&got),
            vec![("alice", 2), ("bob", 2), ("carol", 1), ("dave", 1)]
        );
        let options = AnalysisOptions {
            top_users: 1,
            user_column: Some("x".into()),
            ..AnalysisOptions::default()
        };
        let named = analyze(&source_with(data), &options, &Progress::silent()).expect("csv");
        assert_eq!(named.user_column.as_deref(), Some("x"));
        assert_eq!(top(&named), vec![("1", 1)]);
    }

    #[test]
    fn empty_and_header_only_files() {
        let empty = run(b"");
        assert_eq!((empty.rows, empty.columns.len()), (0, 0));
        let header_only = run(b"a,b");
        assert_eq!((header_only.rows, header_only.columns.len()), (0, 2));
        assert_eq!(header_only.columns[0].column_type, ColumnType::Empty);
    }

    #[test]
    fn column_types() {
        let data =
            b"i,f,s,big\n1,1.5,x,9223372036854775807\n-2,2,1,9223372036854775808\n+3,.5e1,inf,1\n";
        let got = run(data);
        let types: Vec<ColumnType> = got.columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            vec![
                ColumnType::Integer,
                ColumnType::Float,
                ColumnType::String,
                ColumnType::Float
            ]
        );
        assert_eq!(got.columns[0].min, Value::from(-2));
        assert_eq!(got.columns[1].max, Value::from(5.0));
        assert_eq!(got.columns[2].min, Value::from("1"));
        assert_eq!(got.columns[2].mean, None);
    }

    #[test]
    fn an_unterminated_quote_runs_to_the_end_of_the_file() {
        let got = run(b"a,b\n1,\"open\n2,3\n4,5\n");
        assert_eq!(got.rows, 1);
        assert_eq!(got.malformed_rows, 0);
    }

    #[test]
    fn an_oversized_record_fails_cleanly() {
        let mut data = b"a\n\"".to_vec();
        data.resize(MAX_RECORD_BYTES + 100, b'x');
        let source = source_with(&data);
        let err = analyze(&source, &AnalysisOptions::default(), &Progress::silent());
        assert!(
            matches!(
                err,
                Err(AnalysisError::Invalid {
                    kind: Kind::Csv,
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn prefix_keys_order_like_the_bytes() {
        let values: [&[u8]; 9] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgi",
            b"b",
        ];
        for a in values {
            for b in values {
                let (ka, kb) = (prefix_key(a), prefix_key(b));
                if ka != kb {
                    assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn past_the_exact_limit_counts_are_estimates_identical_however_cut() {
        let mut data = String::from("id,user_id\n");
        for i in 0..150_000 {
            data.push_str(&format!("{i},u{}\n", i % 1000));
        }
        // Small segments: later segments start after the merged count became an estimate.
        let chunked = run_with(data.as_bytes(), 64 << 10, 16 << 10, false);
        let sequential = run_with(data.as_bytes(), u64::MAX / 2, 1 << 20, false);
        assert_eq!(chunked, sequential);
        let ids = &chunked.columns[0];
        assert!(ids.distinct_approx);
        let error = (ids.distinct as f64 - 150_000.0).abs() / 150_000.0;
        assert!(error < 0.05, "estimate {} is {error:.3} off", ids.distinct);
        assert_eq!(
            (
                chunked.columns[1].distinct,
                chunked.columns[1].distinct_approx
            ),
            (1000, false)
        );
        assert_eq!(chunked.distinct_users, Some(1000));
    }

    #[test]
    fn too_many_columns_fail_cleanly() {
        let header = vec!["c"; MAX_COLUMNS + 1].join(",");
        let source = source_with(format!("{header}\n1\n").as_bytes());
        let err = analyze(&source, &AnalysisOptions::default(), &Progress::silent());
        assert!(
            matches!(
                err,
                Err(AnalysisError::Invalid {
                    kind: Kind::Csv,
                    ..
                })
            ),
            "{err:?}"
        );
    }

    fn csv_strategy() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just(String::new()),
            "[a-c]{1,3}",
            "-?[0-9]{1,4}",
            "[0-9]{1,3}\\.[0-9]{1,2}",
            Just("\"q,\nuo\"\"te\"".to_string()),
            Just("\"\n\"".to_string()),
            Just("\"\r\n1,2\n\"".to_string()),
            Just("x\"y".to_string()),
            Just("\"ab\"cd".to_string()),
            Just("é".to_string()),
        ];
        let terminator = prop_oneof![Just("\n"), Just("\r\n"), Just("\n\n"), Just("\r")];
        let record = (prop::collection::vec(field, 1..5), terminator)
            .prop_map(|(fields, end)| format!("{}{end}", fields.join(",")));
        (prop::collection::vec(record, 0..40), any::<bool>()).prop_map(|(records, bom)| {
            let mut data = if bom {
                "\u{feff}".to_string()
            } else {
                String::new()
            };
            data.push_str("user_id,b,c\n");
            data.push_str(&records.concat());
            data.into_bytes()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn chunked_equals_sequential(
            data in csv_strategy(),
            segment_bytes in 1u64..120,
            buffer_bytes in 1usize..50,
        ) {
            let chunked = run_with(&data, segment_bytes, buffer_bytes, false);
            let sequential = run_with(&data, u64::MAX / 2, 1 << 20, false);
            prop_assert_eq!(chunked, sequential);
        }
    }
}
