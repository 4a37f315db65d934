//! CSV column statistics: per-column type, non-empty count, distinct values, extremes and
//! mean, and the `Accumulator` that gathers them (with the user counts) over a run of records
//! and merges runs in file order. Memory is bounded: values kept are cut at
//! `KEPT_VALUE_BYTES`, and the exact tables draw on the analysis's budget.

use std::sync::atomic::Ordering as AtomicOrdering;

use serde_json::Value;

use super::datetime::{self, Instant};
use super::parse::Layout;
use super::users::{UserCounts, UserKey};
use super::{ColumnReport, ColumnType, CsvReport, KEPT_VALUE_BYTES, UserRows, delimiter_name};
use crate::analyze::distinct::{self, Distinct};
use crate::analyze::exact_sum::ExactSum;

/// Statistics of one column over the records seen so far.
#[derive(Debug, Clone)]
pub(super) struct ColumnStats {
    pub(super) non_empty: u64,
    pub(super) saw_float: bool,
    pub(super) saw_string: bool,
    /// Typed cells only (spreadsheets): booleans and dates were seen.
    pub(super) saw_bool: bool,
    pub(super) saw_datetime: bool,
    pub(super) int_min: i64,
    pub(super) int_max: i64,
    pub(super) float_min: f64,
    pub(super) float_max: f64,
    pub(super) numbers: u64,
    pub(super) sum: ExactSum,
    pub(super) bytes_min: ByteExtreme,
    pub(super) bytes_max: ByteExtreme,
    /// CSV dates and date-times: the earliest and latest instants, and whether any value had
    /// a zone (spreadsheet dates keep their text in `bytes_min`/`bytes_max` instead).
    pub(super) instants: Option<(Instant, Instant)>,
    pub(super) zoned: bool,
    pub(super) distinct: Distinct,
}

impl ColumnStats {
    pub(super) fn new(estimated: bool, layout: &Layout) -> Self {
        ColumnStats {
            non_empty: 0,
            saw_float: false,
            saw_string: false,
            saw_bool: false,
            saw_datetime: false,
            int_min: i64::MAX,
            int_max: i64::MIN,
            float_min: f64::INFINITY,
            float_max: f64::NEG_INFINITY,
            numbers: 0,
            sum: ExactSum::default(),
            bytes_min: ByteExtreme::default(),
            bytes_max: ByteExtreme::default(),
            instants: None,
            zoned: false,
            distinct: if estimated {
                Distinct::estimated(layout.policy, &layout.budget)
            } else {
                Distinct::new(layout.policy, &layout.budget)
            },
        }
    }

    /// Adds a non-empty value whose `Distinct::hash` is `hash`.
    #[inline]
    pub(super) fn add(&mut self, value: &[u8], hash: u64) {
        self.distinct.insert_hash(hash);
        self.add_except_distinct(value);
    }

    /// Adds a non-empty value to everything but the distinct count (the user column's distinct
    /// count comes from its per-value table instead).
    #[inline]
    pub(super) fn add_except_distinct(&mut self, value: &[u8]) {
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
                    self.add_integer(i);
                }
                Some(Number::Float(f)) => {
                    self.saw_float = true;
                    self.add_number(f);
                }
                None => match datetime::parse(value) {
                    Some((instant, zoned)) => self.add_instant(instant, zoned),
                    None => self.saw_string = true,
                },
            }
        }
    }

    fn add_instant(&mut self, instant: Instant, zoned: bool) {
        self.saw_datetime = true;
        self.zoned |= zoned;
        self.instants = Some(match self.instants {
            Some((low, high)) => (low.min(instant), high.max(instant)),
            None => (instant, instant),
        });
    }

    /// Adds a typed cell (a spreadsheet's), whose text (`text`, the shortest form of a number)
    /// is what distinct counts, user counts and the text extremes see.
    pub(super) fn add_cell(&mut self, text: &[u8], cell: &TypedCell<'_>) {
        self.non_empty += 1;
        let key = prefix_key(text);
        self.bytes_min.offer(text, key, std::cmp::Ordering::Less);
        self.bytes_max.offer(text, key, std::cmp::Ordering::Greater);
        match *cell {
            TypedCell::Integer(i) => {
                self.int_min = self.int_min.min(i);
                self.int_max = self.int_max.max(i);
                self.add_integer(i);
            }
            TypedCell::Float(f) => {
                self.saw_float = true;
                self.add_number(f);
            }
            TypedCell::Bool(_) => self.saw_bool = true,
            TypedCell::DateTime(_) => self.saw_datetime = true,
            TypedCell::Text(_) => self.saw_string = true,
        }
    }

    #[inline]
    pub(super) fn add_integer(&mut self, i: i64) {
        let x = i as f64;
        self.float_min = self.float_min.min(x);
        self.float_max = self.float_max.max(x);
        self.numbers += 1;
        self.sum.add_integer(i);
    }

    #[inline]
    pub(super) fn add_number(&mut self, x: f64) {
        self.float_min = self.float_min.min(x);
        self.float_max = self.float_max.max(x);
        self.numbers += 1;
        self.sum.add(x);
    }

    pub(super) fn merge(&mut self, other: ColumnStats) {
        self.non_empty += other.non_empty;
        self.saw_float |= other.saw_float;
        self.saw_string |= other.saw_string;
        self.saw_bool |= other.saw_bool;
        self.saw_datetime |= other.saw_datetime;
        self.zoned |= other.zoned;
        if let Some((low, high)) = other.instants {
            self.instants = Some(match self.instants {
                Some((mine_low, mine_high)) => (mine_low.min(low), mine_high.max(high)),
                None => (low, high),
            });
        }
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

    pub(super) fn column_type(&self) -> ColumnType {
        // One type of all values; integers mixed with floats are floats, any other mix is text.
        let families = usize::from(self.numbers > 0)
            + usize::from(self.saw_bool)
            + usize::from(self.saw_datetime)
            + usize::from(self.saw_string);
        if self.non_empty == 0 {
            ColumnType::Empty
        } else if self.saw_string || families > 1 {
            ColumnType::String
        } else if self.saw_bool {
            ColumnType::Bool
        } else if self.saw_datetime {
            ColumnType::Datetime
        } else if self.saw_float {
            ColumnType::Float
        } else {
            ColumnType::Integer
        }
    }

    pub(super) fn into_report(self, name: String) -> ColumnReport {
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
            ColumnType::Datetime if self.instants.is_some() => match self.instants {
                Some((low, high)) => (
                    Value::String(datetime::format(low, self.zoned)),
                    Value::String(datetime::format(high, self.zoned)),
                ),
                None => (Value::Null, Value::Null),
            },
            ColumnType::String | ColumnType::Datetime => {
                (text(self.bytes_min), text(self.bytes_max))
            }
            // `false` < `true`, as their texts compare.
            ColumnType::Bool => (
                Value::Bool(self.bytes_min.value().is_some_and(|(b, _)| b == b"true")),
                Value::Bool(self.bytes_max.value().is_some_and(|(b, _)| b == b"true")),
            ),
        };
        let mean = match column_type {
            ColumnType::Integer | ColumnType::Float => {
                Some(self.sum.value() / self.numbers as f64).filter(|mean| mean.is_finite())
            }
            ColumnType::Empty | ColumnType::String | ColumnType::Bool | ColumnType::Datetime => {
                None
            }
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

pub(super) fn float_value(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// The smallest or largest value seen, in byte order. Most comparisons are decided by the
/// first eight bytes read as a big-endian integer (zero-padded): if those keys differ, the
/// strings compare the same way; only equal keys need the full comparison.
/// Only the first `KEPT_VALUE_BYTES` of a value are kept (`cut` says it was longer): two values
/// that share those bytes compare by them, the cut one being the larger, which is exact but for
/// ties among long values that all show the same way.
#[derive(Debug, Clone, Default)]
pub(super) struct ByteExtreme {
    pub(super) key: u64,
    pub(super) bytes: Option<Vec<u8>>,
    pub(super) cut: bool,
}

#[inline]
pub(super) fn prefix_key(value: &[u8]) -> u64 {
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
    pub(super) fn offer(&mut self, value: &[u8], key: u64, wanted: std::cmp::Ordering) {
        self.offer_kept(value, false, key, wanted);
    }

    #[inline]
    pub(super) fn offer_kept(
        &mut self,
        value: &[u8],
        value_cut: bool,
        key: u64,
        wanted: std::cmp::Ordering,
    ) {
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

    pub(super) fn offer_extreme(&mut self, other: &ByteExtreme, wanted: std::cmp::Ordering) {
        if let Some(bytes) = &other.bytes {
            self.offer_kept(bytes, other.cut, other.key, wanted);
        }
    }

    /// The kept bytes, and whether the value was longer.
    pub(super) fn value(&self) -> Option<(&[u8], bool)> {
        self.bytes.as_deref().map(|bytes| (bytes, self.cut))
    }
}

pub(super) enum Number {
    Integer(i64),
    Float(f64),
}

/// An integer is `[+-]?[0-9]+` within i64; a float is anything else Rust reads as a finite
/// `f64` (`1.5`, `.5`, `5.`, `1e-3`), but not `inf`/`nan` spelled out.
#[inline]
pub(super) fn parse_number(value: &[u8]) -> Option<Number> {
    match plain_decimal(value) {
        Plain::Number(number) => Some(number),
        Plain::NotANumber => None,
        Plain::Other => parse_any_number(value),
    }
}

enum Plain {
    Number(Number),
    /// A byte no number has: not a number, whatever the rest.
    NotANumber,
    /// Needs the general parser (an exponent, many digits, a lone sign or dot).
    Other,
}

/// The common case in one pass: `[+-]?[0-9]*(.[0-9]*)?` with at most 15 digits. Such a value
/// is `m / 10^k` with `m < 2^53` and `k ≤ 15`, both exact in an `f64`, so one division gives the
/// correctly rounded result, the same `str::parse` gives (Clinger's fast path).
#[inline]
fn plain_decimal(value: &[u8]) -> Plain {
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match value.first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0usize;
    let mut point: Option<usize> = None;
    for &byte in digits {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                count += 1;
                if count > 15 {
                    return Plain::Other;
                }
            }
            b'.' if point.is_none() => point = Some(count),
            b'e' | b'E' | b'.' | b'+' | b'-' | b'i' | b'I' | b'n' | b'N' => return Plain::Other,
            _ => return Plain::NotANumber,
        }
    }
    if count == 0 {
        return Plain::Other;
    }
    match point {
        None => {
            let magnitude = mantissa as i64;
            Plain::Number(Number::Integer(if negative {
                -magnitude
            } else {
                magnitude
            }))
        }
        Some(at) => {
            let float = mantissa as f64 / POWERS[count - at];
            Plain::Number(Number::Float(if negative { -float } else { float }))
        }
    }
}

/// Any number Rust reads (the general, slower path).
fn parse_any_number(value: &[u8]) -> Option<Number> {
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

/// A spreadsheet cell's value, with the type its file gave it.
#[derive(Debug, Clone, Copy)]
pub enum TypedCell<'a> {
    Integer(i64),
    Float(f64),
    Bool(bool),
    /// ISO 8601, no time zone.
    DateTime(&'a str),
    Text(&'a str),
}

/// Rows, columns and users gathered from a run of records.
#[derive(Debug, Clone)]
pub(super) struct Accumulator {
    pub(super) header_len: usize,
    pub(super) user_index: Option<usize>,
    pub(super) rows: u64,
    pub(super) malformed: u64,
    pub(super) columns: Vec<ColumnStats>,
    pub(super) users: UserCounts,
    /// Records not yet added: they are added a column at a time, so that one column's tables
    /// stay in the cache for many values instead of all columns' tables taking turns.
    batch: Batch,
}

/// Records held for `Accumulator::flush`: their bytes end to end.
#[derive(Debug, Clone, Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Where each field ends in `bytes`.
    ends: Vec<usize>,
    /// Per record: the index in `ends` of its first field, where its bytes start, and the gap
    /// between one field's end and the next one's start: 0 for fields end to end (from
    /// `csv-core`), 1 for a line with its delimiters (from the fast path).
    records: Vec<(usize, usize, usize)>,
}

/// A batch is added once it holds this many records...
const BATCH_RECORDS: usize = 1024;
/// ...or this many bytes.
pub(super) const BATCH_BYTES: usize = 256 << 10;

impl Accumulator {
    pub(super) fn new(layout: &Layout) -> Self {
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
            batch: Batch::default(),
        }
    }

    /// Adds a record as `csv-core` gives it: its fields end to end, `ends[i]` where field `i`
    /// ends.
    #[inline]
    pub(super) fn add_record(&mut self, fields: &[u8], ends: &[usize]) {
        self.batch_record(fields, ends, 0);
    }

    /// Adds a record given as its line: `ends[i]` is where field `i` ends, and field `i + 1`
    /// starts one byte (the delimiter) later.
    #[inline]
    pub(super) fn add_line(&mut self, line: &[u8], ends: &[usize]) {
        self.batch_record(line, ends, 1);
    }

    /// Counts the record and batches it; `gap` is the bytes between a field's end and the
    /// next one's start.
    #[inline]
    fn batch_record(&mut self, bytes: &[u8], ends: &[usize], gap: usize) {
        self.rows += 1;
        if ends.len() != self.header_len {
            self.malformed += 1;
        }
        let batch = &mut self.batch;
        let base = batch.bytes.len();
        batch.records.push((batch.ends.len(), base, gap));
        batch.bytes.extend_from_slice(bytes);
        batch.ends.extend(ends.iter().map(|&end| base + end));
        if batch.records.len() >= BATCH_RECORDS || batch.bytes.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Adds the batched records, one column at a time.
    fn flush(&mut self) {
        let Batch {
            bytes,
            ends,
            records,
        } = &mut self.batch;
        if records.is_empty() {
            return;
        }
        records.push((ends.len(), bytes.len(), 0));
        for (index, column) in self.columns.iter_mut().enumerate() {
            let is_user = Some(index) == self.user_index;
            for pair in records.windows(2) {
                let ((first, record_start, gap), (next, _, _)) = (pair[0], pair[1]);
                if first + index >= next {
                    continue;
                }
                let start = if index == 0 {
                    record_start
                } else {
                    ends[first + index - 1] + gap
                };
                let value = &bytes[start..ends[first + index]];
                if value.is_empty() {
                    continue;
                }
                let hash = Distinct::hash(value);
                if is_user {
                    // One table serves both the column's distinct count and the per-user rows.
                    self.users.add(value, hash, 1);
                    column.add_except_distinct(value);
                } else {
                    column.add(value, hash);
                }
            }
        }
        bytes.clear();
        ends.clear();
        records.clear();
        // One huge record (up to `MAX_RECORD_BYTES`) must not keep its copy for the rest of
        // the segment: a file's segments each hold a batch.
        if bytes.capacity() > 4 * BATCH_BYTES {
            bytes.shrink_to(BATCH_BYTES);
        }
    }

    /// The bytes the batch holds allocated now.
    #[cfg(test)]
    pub(super) fn batch_capacity(&self) -> usize {
        self.batch.bytes.capacity()
    }

    /// Adds one row of typed cells: `(column, text, cell)`, non-empty, in column order.
    pub(super) fn add_typed_row(&mut self, cells: &[(usize, &[u8], TypedCell<'_>)]) {
        self.rows += 1;
        for &(index, text, ref cell) in cells {
            let Some(column) = self.columns.get_mut(index) else {
                continue;
            };
            let hash = Distinct::hash(text);
            if Some(index) == self.user_index {
                self.users.add(text, hash, 1);
            } else {
                column.distinct.insert_hash(hash);
            }
            column.add_cell(text, cell);
        }
    }

    pub(super) fn merge(&mut self, mut other: Accumulator) {
        self.flush();
        other.flush();
        self.rows += other.rows;
        self.malformed += other.malformed;
        for (mine, theirs) in self.columns.iter_mut().zip(other.columns) {
            mine.merge(theirs);
        }
        self.users.merge(other.users);
    }

    /// Marks the columns whose count is now an estimate, for segments not yet started.
    pub(super) fn publish_estimated(&self, layout: &Layout) {
        debug_assert!(
            self.batch.records.is_empty(),
            "published before its batch was added"
        );
        for (column, flag) in self.columns.iter().zip(&layout.estimated_columns) {
            if column.distinct.count().1 {
                flag.store(true, AtomicOrdering::Relaxed);
            }
        }
    }

    pub(super) fn into_report(
        mut self,
        delimiter: u8,
        header: &[String],
        top: usize,
        layout: &Layout,
    ) -> CsvReport {
        self.flush();
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
        let mut ranked: Vec<(UserKey, u64)> = by_user;
        let order =
            |a: &(UserKey, u64), b: &(UserKey, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
        // Only the first `top` are listed: select them, then sort those few.
        if ranked.len() > top {
            ranked.select_nth_unstable_by(top, order);
            ranked.truncate(top);
        }
        ranked.sort_unstable_by(order);
        // Collected anew, not in place: an in-place `collect` would keep the whole ranking's
        // allocation (every user) behind the few listed, for as long as the report lives.
        let mut top_users: Vec<UserRows> = Vec::with_capacity(top.min(ranked.len()));
        top_users.extend(ranked.into_iter().take(top).map(|(user, rows)| UserRows {
            user: shown_value(user.0, user.1.is_some()),
            rows,
        }));
        // Likewise: a column's statistics are far larger than its report.
        let mut columns = Vec::with_capacity(self.columns.len());
        columns.extend(
            self.columns
                .into_iter()
                .zip(header)
                .map(|(stats, name)| stats.into_report(name.clone())),
        );
        let memory_limited = layout.budget.exhausted();
        let exact_limit = layout.policy.exact_limit;
        CsvReport {
            distinct_exact_limit: (exact_limit < distinct::EXACT_LIMIT)
                .then_some(exact_limit as u64),
            memory_limited,
            delimiter: delimiter_name(delimiter),
            rows: self.rows,
            columns,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn number_bits(number: Option<Number>) -> Option<(bool, u64)> {
        number.map(|number| match number {
            Number::Integer(i) => (true, i as u64),
            Number::Float(f) => (false, f.to_bits()),
        })
    }

    proptest! {
        /// The one-pass path reads every value as the general parser (`str::parse`) does.
        #[test]
        fn the_fast_path_reads_numbers_like_str_parse(
            text in "[+-]?[0-9]{0,18}(\\.[0-9]{0,18})?([eE][+-]?[0-9]{1,3})?|[ -~]{0,12}|[0-9.]{1,20}",
        ) {
            prop_assert_eq!(
                number_bits(parse_number(text.as_bytes())),
                number_bits(parse_any_number(text.as_bytes())),
                "{:?}", text
            );
        }
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
}
