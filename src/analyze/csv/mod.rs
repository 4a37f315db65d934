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

use std::io::Read;
use std::sync::atomic::AtomicBool;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod datetime;
mod parse;
mod stats;
mod users;

use parse::{
    DELIMITER_HEAD_BYTES, Layout, RecordParser, SegmentParse, delimiter_of, detect_delimiter,
    field_strings, read_header, starts_with_bom,
};
use stats::Accumulator;
pub use stats::TypedCell;
use users::find_user_column;

use super::budget::MemoryBudget;
use super::distinct::{self, Policy};
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
    /// Spreadsheet cells only.
    Bool,
    /// Dates and times (spreadsheet date cells; CSV values in an ISO 8601 form), min and max
    /// as ISO 8601.
    Datetime,
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
            ColumnType::Bool => "bool",
            ColumnType::Datetime => "datetime",
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
    check_header(&header)?;
    let user_index = find_user_column(&header, options.user_column.as_deref(), &source.path);
    let columns = header.len().max(1);
    let layout = layout_for(&header, delimiter, user_index);

    let segments = segments::plan(source, header_end, source.len, options.segment_bytes)?;
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

/// Column statistics over typed cells (a spreadsheet's sheet): the CSV statistics and user
/// counts, fed with each cell's own type instead of text to parse.
pub struct TypedTable {
    header: Vec<String>,
    layout: Layout,
    stats: Accumulator,
    top: usize,
}

impl TypedTable {
    /// A table with these column names; `name` (the file's) is for the logs.
    pub fn new(header: Vec<String>, options: &AnalysisOptions, name: &std::path::Path) -> Self {
        let user_index = find_user_column(&header, options.user_column.as_deref(), name);
        let layout = layout_for(&header, b',', user_index);
        let stats = Accumulator::new(&layout);
        TypedTable {
            header,
            layout,
            stats,
            top: options.top_users,
        }
    }

    /// One row below the header: its non-empty cells, `(column, text, cell)`, in column order.
    /// Cells right of the header's last column are not counted in any column.
    pub fn add_row(&mut self, cells: &[(usize, &[u8], TypedCell<'_>)]) {
        self.stats.add_typed_row(cells);
    }

    /// Empty statistics over the same columns, for rows read on another thread; `merge` adds
    /// them back.
    pub fn part(&self) -> TypedPart {
        TypedPart {
            stats: Accumulator::new(&self.layout),
        }
    }

    pub fn merge(&mut self, part: TypedPart) {
        self.stats.merge(part.stats);
    }

    pub fn into_report(self) -> CsvReport {
        self.stats
            .into_report(b',', &self.header, self.top, &self.layout)
    }
}

/// Part of a `TypedTable`'s rows, gathered apart (a block of a sheet parsed on another thread).
pub struct TypedPart {
    stats: Accumulator,
}

impl TypedPart {
    /// As `TypedTable::add_row`.
    pub fn add_row(&mut self, cells: &[(usize, &[u8], TypedCell<'_>)]) {
        self.stats.add_typed_row(cells);
    }
}

/// What every segment of a file with this header needs to know.
fn layout_for(header: &[String], delimiter: u8, user_index: Option<usize>) -> Layout {
    let columns = header.len().max(1);
    Layout {
        delimiter,
        header_len: header.len(),
        user_index,
        estimated_columns: (0..header.len()).map(|_| AtomicBool::new(false)).collect(),
        policy: Policy {
            exact_limit: (EXACT_ENTRIES / columns).clamp(MIN_EXACT_LIMIT, distinct::EXACT_LIMIT),
            coarse: columns > COARSE_FROM_COLUMNS,
        },
        budget: MemoryBudget::new(TABLES_BUDGET),
    }
}

/// The header is checked the same way for a file and for a stream.
fn check_header(header: &[String]) -> Result<(), AnalysisError> {
    if header.len() > MAX_COLUMNS {
        return Err(AnalysisError::invalid(
            Kind::Csv,
            format!(
                "the header has {} fields; at most {MAX_COLUMNS} columns are analysed",
                header.len()
            ),
        ));
    }
    Ok(())
}

/// Analyses a stream (a decompressed file, an archive member) as CSV: the same report as for
/// a file, parsed on one thread. `tsv`: the stream's name ends in `.tsv`; `name` is for logs.
pub fn analyze_stream(
    reader: &mut dyn Read,
    tsv: bool,
    name: &std::path::Path,
    options: &AnalysisOptions,
) -> Result<CsvReport, AnalysisError> {
    let mut buf = vec![0u8; options.buffer_bytes.max(DELIMITER_HEAD_BYTES + 3)];
    // The head: enough for the byte-order mark and the delimiter's first line.
    let mut end = read_full(reader, &mut buf)?;
    let mut start = if buf[..end].starts_with(&[0xEF, 0xBB, 0xBF]) {
        3
    } else {
        0
    };
    let delimiter = if tsv {
        b'\t'
    } else {
        delimiter_of(&buf[start..end])
    };
    let mut parser = RecordParser::new(delimiter);
    let mut header: Option<Vec<String>> = None;
    loop {
        let used =
            parser.feed_until_record(&buf[start..end], &mut |fields: &[u8], ends: &[usize]| {
                header = Some(field_strings(fields, ends));
            })?;
        start += used;
        if header.is_some() {
            break;
        }
        if start < end {
            continue;
        }
        end = read_some(reader, &mut buf)?;
        start = 0;
        if end == 0 {
            parser.finish(&mut |fields: &[u8], ends: &[usize]| {
                header = Some(field_strings(fields, ends))
            })?;
            break;
        }
    }
    let Some(header) = header else {
        return Ok(empty_report(delimiter));
    };
    check_header(&header)?;
    let user_index = find_user_column(&header, options.user_column.as_deref(), name);
    let layout = layout_for(&header, delimiter, user_index);
    let mut parser = RecordParser::new(delimiter);
    let mut stats = Accumulator::new(&layout);
    loop {
        parser.feed(&buf[start..end], &mut stats)?;
        end = read_some(reader, &mut buf)?;
        start = 0;
        if end == 0 {
            break;
        }
    }
    parser.finish(&mut stats)?;
    Ok(stats.into_report(delimiter, &header, options.top_users, &layout))
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> Result<usize, AnalysisError> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_some(reader, &mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// One read, retried when interrupted.
fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> Result<usize, AnalysisError> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(AnalysisError::read(err)),
        }
    }
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
    fn a_report_holds_only_what_it_lists() {
        // 5,000 users, ten listed: the report must not keep the ranking of all of them (an
        // archive keeps every member's report).
        let mut data = String::from("user_id,n\n");
        for i in 0..5_000 {
            data.push_str(&format!("u{i},{i}\n"));
        }
        let report = run(data.as_bytes());
        assert_eq!(report.top_users.len(), 10);
        assert!(
            report.top_users.capacity() <= 10,
            "{}",
            report.top_users.capacity()
        );
        assert!(
            report.columns.capacity() <= 2,
            "{}",
            report.columns.capacity()
        );
        let mut stream: &[u8] = data.as_bytes();
        let options = AnalysisOptions::default();
        let report = analyze_stream(&mut stream, false, std::path::Path::new("s.csv"), &options)
            .expect("stream");
        assert!(
            report.top_users.capacity() <= 10,
            "{}",
            report.top_users.capacity()
        );
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
    fn a_huge_record_leaves_no_huge_batch_behind() {
        let layout = layout_for(&["a".to_string()], b',', None);
        let mut stats = Accumulator::new(&layout);
        let big = vec![b'x'; 8 << 20];
        stats.add_record(&big, &[big.len()]);
        assert!(stats.batch_capacity() <= 4 * stats::BATCH_BYTES);
        stats.add_record(b"y", &[1]);
        let report = stats.into_report(b',', &["a".to_string()], 10, &layout);
        assert_eq!((report.rows, report.columns[0].distinct), (2, 2));
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
