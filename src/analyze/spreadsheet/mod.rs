//! Spreadsheets (SPEC §4.2): one sheet at a time in workbook order, a row at a time, so that
//! memory follows the cells a sheet really has, never the dimension it declares. Each sheet
//! gets the CSV column statistics and user counts (`csv::TypedTable`), fed with each cell's own
//! type. `.xlsx`/`.xlsm` are read by our own reader (`xlsx`), whose sheets are parsed in
//! parallel blocks of rows; `.xlsb` by `calamine`'s cell reader; `.ods` and `.xls`, which
//! `calamine` can only build whole, by `calamine` in a child process with its own limits.
//!
//! Before any reader sees the file, the zip under it passes the archive checks (member count,
//! overlapping members, declared sizes against `--max-unpacked-bytes` and the 1,000:1 ratio),
//! and the parts read whole (shared strings, styles, the workbook) are held to
//! `MAX_LOADED_PART_BYTES`.

mod xlsx;
mod xlsx_sheet;

use std::path::Path;

use calamine::{DataRef, Reader};
use serde::{Deserialize, Serialize};

use super::archive::open_checked;
use super::csv::{ColumnReport, CsvReport, TypedCell, TypedPart, TypedTable, UserRows};
use super::detect::PositionedReader;
use super::section::{Figure, Section, Table, fact, or_dash};
use super::{AnalysisError, AnalysisOptions, Deadline, Kind, Progress, Source};

/// The most bytes one part that `calamine` loads whole (shared strings, styles, the workbook
/// itself) may declare: the shared strings of a workbook with millions of distinct texts fit.
pub const MAX_LOADED_PART_BYTES: u64 = 64 << 20;

/// Parts of the workbook read whole before any sheet (the worksheets themselves are streamed).
const LOADED_WHOLE: [&str; 4] = ["sharedstrings", "styles", "workbook", "metadata"];

/// Cells between two looks at the deadline.
const CELLS_PER_CHECK: u64 = 4096;

/// The `spreadsheet` section of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpreadsheetReport {
    /// `xlsx` or `xlsb`.
    pub format: String,
    pub sheets: Vec<SheetReport>,
}

/// One sheet: the CSV section's meanings, without what only a text file has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetReport {
    pub name: String,
    pub rows: u64,
    pub columns: Vec<ColumnReport>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub columns_truncated: bool,
    pub user_column: Option<String>,
    pub distinct_users: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub users_approx: bool,
    pub top_users: Vec<UserRows>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_limited: bool,
}

impl SheetReport {
    fn of(name: String, table: CsvReport) -> SheetReport {
        SheetReport {
            name,
            rows: table.rows,
            columns: table.columns,
            columns_truncated: table.columns_truncated,
            user_column: table.user_column,
            distinct_users: table.distinct_users,
            users_approx: table.users_approx,
            top_users: table.top_users,
            memory_limited: table.memory_limited,
        }
    }

    /// The sheet as the CSV section its columns are, for the job page's tables.
    fn as_table(&self) -> CsvReport {
        CsvReport {
            delimiter: String::new(),
            rows: self.rows,
            columns: self.columns.clone(),
            columns_truncated: self.columns_truncated,
            malformed_rows: 0,
            user_column: self.user_column.clone(),
            distinct_users: self.distinct_users,
            users_approx: self.users_approx,
            top_users: self.top_users.clone(),
            top_users_truncated: false,
            distinct_exact_limit: None,
            memory_limited: self.memory_limited,
        }
    }
}

/// Analyses `source` as a workbook; `Ok(None)` for a name that is not one.
pub fn analyze(
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Result<Option<SpreadsheetReport>, AnalysisError> {
    let extension = super::rules::extension_of(&source.path);
    progress.start(1);
    let report = match extension.as_str() {
        // Our own reader: a sheet's XML is cut into blocks of rows parsed in parallel.
        ".xlsx" | ".xlsm" => Some(xlsx::analyze(source, options)?),
        ".xlsb" => {
            let mut workbook =
                calamine::Xlsb::new(checked_zip(source, options)?).map_err(xlsb_error)?;
            let names = workbook.sheet_names();
            let mut sheets = Vec::with_capacity(names.len());
            for name in names {
                let mut cells = workbook.worksheet_cells_reader(&name).map_err(xlsb_error)?;
                let table = read_sheet(source, options, || {
                    cells
                        .next_cell()
                        .map_err(xlsb_error)
                        .map(|cell| cell.map(|c| (c.get_position(), c.get_value().clone())))
                })?;
                sheets.push(SheetReport::of(name, table));
            }
            Some(SpreadsheetReport {
                format: "xlsb".to_string(),
                sheets,
            })
        }
        // No cell reader: the sheets are built whole, in a child process with its own limits.
        ".ods" | ".xls" => match super::isolate::in_child(source, Kind::Spreadsheet, options)? {
            Some(super::Details::Spreadsheet(report)) => Some(report),
            _ => None,
        },
        _ => None,
    };
    progress.advance();
    Ok(report)
}

/// The child process's side for `.ods` and `.xls`: each sheet built whole by `calamine`
/// (within the child's memory limit), then read cell by cell like a streamed one.
pub fn analyze_whole(
    source: &Source,
    options: &AnalysisOptions,
) -> Result<Option<SpreadsheetReport>, AnalysisError> {
    let extension = super::rules::extension_of(&source.path);
    let reader = PositionedReader::new(source);
    let (format, mut workbook): (&str, calamine::Sheets<PositionedReader<'_>>) =
        match extension.as_str() {
            ".ods" => {
                let reader = checked_zip(source, options)?;
                let ods = calamine::Ods::new(reader).map_err(|err| invalid(&err))?;
                ("ods", calamine::Sheets::Ods(ods))
            }
            ".xls" => {
                let xls = calamine::Xls::new(reader).map_err(|err| invalid(&err))?;
                ("xls", calamine::Sheets::Xls(xls))
            }
            _ => return Ok(None),
        };
    let names = workbook.sheet_names();
    let mut sheets = Vec::with_capacity(names.len());
    for name in names {
        let range = workbook
            .worksheet_range(&name)
            .map_err(|err| invalid(&err))?;
        let (top, left) = range.start().unwrap_or((0, 0));
        let mut cells = range.used_cells();
        let table = read_sheet(source, options, || {
            Ok(cells.next().map(|(row, column, value)| {
                let at = (top + row as u32, left + column as u32);
                (at, data_ref(value))
            }))
        })?;
        sheets.push(SheetReport::of(name, table));
    }
    Ok(Some(SpreadsheetReport {
        format: format.to_string(),
        sheets,
    }))
}

/// A built sheet's cell as the cell readers give one.
fn data_ref(value: &calamine::Data) -> DataRef<'_> {
    use calamine::Data;
    match value {
        Data::Int(i) => DataRef::Int(*i),
        Data::Float(f) => DataRef::Float(*f),
        Data::String(s) => DataRef::SharedString(s),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(date) => DataRef::DateTime(*date),
        Data::DateTimeIso(text) => DataRef::DateTimeIso(text.clone()),
        Data::DurationIso(text) => DataRef::DurationIso(text.clone()),
        Data::Error(error) => DataRef::Error(error.clone()),
        Data::Empty => DataRef::Empty,
    }
}

/// A workbook that cannot be read.
fn invalid(err: &dyn std::fmt::Display) -> AnalysisError {
    AnalysisError::invalid(Kind::Spreadsheet, format!("not a readable workbook: {err}"))
}

/// The file as a zip that passed the archive checks, and whose parts read whole are small
/// enough to be.
fn checked_zip<'a>(
    source: &'a Source,
    options: &AnalysisOptions,
) -> Result<PositionedReader<'a>, AnalysisError> {
    Ok(checked_archive(source, options)?.into_inner())
}

/// `checked_zip`, opened.
fn checked_archive<'a>(
    source: &'a Source,
    options: &AnalysisOptions,
) -> Result<::zip::ZipArchive<PositionedReader<'a>>, AnalysisError> {
    let reader = PositionedReader::new(source);
    let (archive, parts) = open_checked(reader, options).map_err(|err| match err {
        AnalysisError::Invalid { message, .. } => invalid(&message),
        other => other,
    })?;
    for (name, size) in &parts {
        let lower = name.to_ascii_lowercase();
        let base = lower.rsplit('/').next().unwrap_or_default();
        let loaded_whole = LOADED_WHOLE.iter().any(|part| base.starts_with(part));
        if loaded_whole && *size > MAX_LOADED_PART_BYTES {
            return Err(AnalysisError::LimitExceeded(format!(
                "the workbook's {name} would unpack to {size} bytes, over the {} MiB a part \
                 read whole may have",
                MAX_LOADED_PART_BYTES >> 20
            )));
        }
    }
    Ok(archive)
}

/// Reads one sheet's cells from `calamine` (`next` yields them in row order) into column
/// statistics.
fn read_sheet<'s>(
    source: &Source,
    options: &AnalysisOptions,
    mut next: impl FnMut() -> Result<Option<((u32, u32), DataRef<'s>)>, AnalysisError>,
) -> Result<CsvReport, AnalysisError> {
    let deadline: Deadline = source.deadline;
    let mut sheet = SheetBuilder::new(options, &source.path);
    let mut row = Row::default();
    let mut row_index: Option<u32> = None;
    let mut seen: u64 = 0;
    loop {
        let cell = next()?;
        seen += 1;
        if seen.is_multiple_of(CELLS_PER_CHECK) {
            deadline.check()?;
        }
        let at_row = cell.as_ref().map(|((r, _), _)| *r);
        if at_row != row_index {
            sheet.row(&row);
            row.clear();
        }
        let Some(((r, c), value)) = cell else {
            break;
        };
        row_index = Some(r);
        row.push_value(c, &value);
    }
    Ok(sheet.finish())
}

/// Turns a sheet's rows into column statistics: the header is the first row with a non-empty
/// cell, and every row below with one is counted (SPEC §4.2). Rows may also be read apart, on
/// other threads, into `SheetPart`s merged back here.
pub(super) struct SheetBuilder<'a> {
    options: &'a AnalysisOptions,
    path: &'a Path,
    /// The table, once the header is known, and the header's first column.
    table: Option<(TypedTable, u32)>,
}

impl<'a> SheetBuilder<'a> {
    pub(super) fn new(options: &'a AnalysisOptions, path: &'a Path) -> Self {
        SheetBuilder {
            options,
            path,
            table: None,
        }
    }

    /// The next row of the sheet, in order.
    pub(super) fn row(&mut self, row: &Row) {
        if row.is_empty() {
            return;
        }
        match &mut self.table {
            Some((table, first)) => table.add_row(&row.cells(*first)),
            None => {
                let first = row.cells.iter().map(|c| c.column).min().unwrap_or(0);
                let last = row.cells.iter().map(|c| c.column).max().unwrap_or(0);
                let mut names = vec![String::new(); (last - first) as usize + 1];
                let mut start = 0;
                for cell in &row.cells {
                    names[(cell.column - first) as usize] = row.text[start..cell.end].to_string();
                    start = cell.end;
                }
                let table = TypedTable::new(names, self.options, self.path);
                self.table = Some((table, first));
            }
        }
    }

    /// Whether the header has been read (rows may be read apart only after it).
    pub(super) fn has_header(&self) -> bool {
        self.table.is_some()
    }

    /// Empty statistics for rows below the header read apart; `None` before the header.
    pub(super) fn part(&self) -> Option<SheetPart> {
        self.table.as_ref().map(|(table, first)| SheetPart {
            part: table.part(),
            first: *first,
        })
    }

    pub(super) fn merge(&mut self, part: SheetPart) {
        if let Some((table, _)) = &mut self.table {
            table.merge(part.part);
        }
    }

    pub(super) fn finish(self) -> CsvReport {
        match self.table {
            Some((table, _)) => table.into_report(),
            None => TypedTable::new(Vec::new(), self.options, self.path).into_report(),
        }
    }
}

/// Rows below a sheet's header, gathered apart (`SheetBuilder::part`).
pub(super) struct SheetPart {
    part: TypedPart,
    first: u32,
}

impl SheetPart {
    pub(super) fn row(&mut self, row: &Row) {
        if !row.is_empty() {
            self.part.add_row(&row.cells(self.first));
        }
    }
}

/// One row's non-empty cells: their texts (what distinct and user counts see) end to end in
/// one buffer, and their types. Reused from row to row.
#[derive(Debug, Default)]
pub(super) struct Row {
    text: String,
    cells: Vec<RowCell>,
}

#[derive(Debug, Clone, Copy)]
struct RowCell {
    column: u32,
    /// Where the cell's text ends in `Row::text` (it starts where the previous one ends).
    end: usize,
    kind: CellKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CellKind {
    Integer(i64),
    Float(f64),
    Bool(bool),
    DateTime,
    Text,
}

/// Numbers whole and at most this large are integers (SPEC §4.2).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

impl Row {
    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.cells.clear();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    fn push(&mut self, column: u32, kind: CellKind) {
        self.cells.push(RowCell {
            column,
            end: self.text.len(),
            kind,
        });
    }

    /// A text cell (an empty text is an empty cell).
    pub(super) fn push_text(&mut self, column: u32, text: &str) {
        if !text.is_empty() {
            self.text.push_str(text);
            self.push(column, CellKind::Text);
        }
    }

    /// A date or date-time already written in ISO 8601.
    pub(super) fn push_iso_datetime(&mut self, column: u32, text: &str) {
        if !text.is_empty() {
            self.text.push_str(text);
            self.push(column, CellKind::DateTime);
        }
    }

    pub(super) fn push_bool(&mut self, column: u32, value: bool) {
        self.text.push_str(if value { "true" } else { "false" });
        self.push(column, CellKind::Bool(value));
    }

    /// A number: an integer when whole and exact, written in the shortest text that reads
    /// back as it (`3`, not `3.0`).
    pub(super) fn push_number(&mut self, column: u32, value: f64) {
        use std::fmt::Write;
        let kind = if value.fract() == 0.0 && value.abs() <= MAX_EXACT_INTEGER {
            let integer = value as i64;
            let _ = write!(self.text, "{integer}");
            CellKind::Integer(integer)
        } else {
            if value != 0.0 && (value.abs() >= 1e16 || value.abs() < 1e-5) {
                let _ = write!(self.text, "{value:e}");
            } else {
                let _ = write!(self.text, "{value}");
            }
            CellKind::Float(value)
        };
        self.push(column, kind);
    }

    /// A number whose text is already the shortest one (`canonical_number` said so).
    pub(super) fn push_canonical_number(&mut self, column: u32, text: &str, value: Number) {
        self.text.push_str(text);
        let kind = match value {
            Number::Integer(i) => CellKind::Integer(i),
            Number::Float(f) => CellKind::Float(f),
        };
        self.push(column, kind);
    }

    pub(super) fn push_integer(&mut self, column: u32, value: i64) {
        if value.unsigned_abs() <= 1 << 53 {
            use std::fmt::Write;
            let _ = write!(self.text, "{value}");
            self.push(column, CellKind::Integer(value));
        } else {
            self.push_number(column, value as f64);
        }
    }

    /// An Excel serial date (days since the workbook's epoch), as ISO 8601.
    pub(super) fn push_serial_datetime(&mut self, column: u32, date: &calamine::ExcelDateTime) {
        let (y, mo, d, h, mi, s, ms) = date.to_ymd_hms_milli();
        // `YYYY-MM-DDThh:mm:ss[.mmm]`, digit by digit (this runs for every date cell).
        let fields = [
            (u32::from(y), 4, ""),
            (u32::from(mo), 2, "-"),
            (u32::from(d), 2, "-"),
            (u32::from(h), 2, "T"),
            (u32::from(mi), 2, ":"),
            (u32::from(s), 2, ":"),
        ];
        for (value, width, before) in fields {
            self.text.push_str(before);
            push_digits(&mut self.text, value, width);
        }
        if ms > 0 {
            self.text.push('.');
            push_digits(&mut self.text, u32::from(ms), 3);
        }
        self.push(column, CellKind::DateTime);
    }

    /// A cell as `calamine`'s readers give it.
    fn push_value(&mut self, column: u32, value: &DataRef<'_>) {
        match value {
            DataRef::Empty => {}
            DataRef::Int(i) => self.push_integer(column, *i),
            DataRef::Float(f) => self.push_number(column, *f),
            DataRef::Bool(b) => self.push_bool(column, *b),
            DataRef::String(s) => self.push_text(column, s),
            DataRef::SharedString(s) => self.push_text(column, s),
            DataRef::DateTime(date) => self.push_serial_datetime(column, date),
            DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => {
                self.push_iso_datetime(column, text)
            }
            DataRef::Error(error) => self.push_text(column, &error.to_string()),
        }
    }

    /// The cells at or right of `first`, as `(column - first, text, typed cell)`.
    fn cells(&self, first: u32) -> Vec<(usize, &[u8], TypedCell<'_>)> {
        let mut start = 0;
        let mut out = Vec::with_capacity(self.cells.len());
        for cell in &self.cells {
            let text = &self.text[start..cell.end];
            start = cell.end;
            if cell.column < first {
                continue;
            }
            let typed = match cell.kind {
                CellKind::Integer(i) => TypedCell::Integer(i),
                CellKind::Float(f) => TypedCell::Float(f),
                CellKind::Bool(b) => TypedCell::Bool(b),
                CellKind::DateTime => TypedCell::DateTime(text),
                CellKind::Text => TypedCell::Text(text),
            };
            out.push(((cell.column - first) as usize, text.as_bytes(), typed));
        }
        out
    }
}

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(text: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u32.pow(place)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

/// A number whose text is its shortest form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    Integer(i64),
    Float(f64),
}

/// `text`'s value when `text` is already what `Row::push_number` would write for it: a plain
/// decimal of at most 15 significant digits (which no shorter decimal reads back as), no
/// leading or trailing zeros, not `-0`, and within the range written without an exponent.
/// Anything else gives `None` and goes the long way (parse, then write).
pub(super) fn canonical_number(text: &str) -> Option<Number> {
    let bytes = text.as_bytes();
    let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let point = unsigned.iter().position(|&b| b == b'.');
    let (whole, fraction) = match point {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, &[][..]),
    };
    let digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    if whole.len() > 1 && whole[0] == b'0' {
        return None;
    }
    if point.is_none() {
        if whole.len() > 15 || (whole == b"0" && bytes.len() != unsigned.len()) {
            return None;
        }
        return text.parse().ok().map(Number::Integer);
    }
    if fraction.is_empty() || fraction.ends_with(b"0") {
        return None;
    }
    let significant = if whole == b"0" {
        let zeros = fraction.iter().take_while(|&&b| b == b'0').count();
        if zeros > 4 {
            return None; // below 1e-5: written with an exponent
        }
        fraction.len() - zeros
    } else {
        whole.len() + fraction.len()
    };
    if significant > 15 {
        return None;
    }
    text.parse().ok().map(Number::Float)
}

fn xlsb_error(err: calamine::XlsbError) -> AnalysisError {
    match err {
        calamine::XlsbError::Io(io) => AnalysisError::read(io),
        other => AnalysisError::invalid(
            Kind::Spreadsheet,
            format!("not a readable workbook: {other}"),
        ),
    }
}

impl Section for SpreadsheetReport {
    fn figure(&self) -> Figure {
        Figure {
            value: self.sheets.iter().map(|sheet| sheet.rows).sum(),
            unit: "rows",
        }
    }

    fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![format!("{} · {} sheets", self.format, self.sheets.len())];
        for sheet in &self.sheets {
            lines.push(format!(
                "sheet {:?}: {} rows · {} columns",
                sheet.name,
                sheet.rows,
                sheet.columns.len()
            ));
        }
        lines
    }

    fn tables(&self) -> Vec<Table> {
        let mut tables = vec![Table::facts(
            "spreadsheet",
            "Workbook",
            vec![
                fact("format", &self.format),
                fact("sheets", self.sheets.len()),
            ],
        )];
        for (index, sheet) in self.sheets.iter().enumerate() {
            let mut facts = Table::facts(
                "sheet",
                "Sheet",
                vec![
                    fact("rows", sheet.rows),
                    fact("columns", sheet.columns.len()),
                    fact("user_column", or_dash(sheet.user_column.as_ref())),
                    fact("distinct_users", or_dash(sheet.distinct_users)),
                ],
            );
            facts.id = format!("sheet{index}").into();
            facts.title = sheet.name.clone().into();
            tables.push(facts);
            // The CSV section's columns and top users; its own facts (delimiter, malformed
            // rows) mean nothing for a sheet.
            for mut table in sheet.as_table().tables() {
                if table.id == "csv" {
                    continue;
                }
                table.id = format!("sheet{index}-{}", table.id).into();
                table.title = format!("{} · {}", sheet.name, table.title).into();
                tables.push(table);
            }
        }
        tables
    }

    fn longest_list(&self) -> usize {
        self.sheets
            .iter()
            .map(|sheet| sheet.columns.len().max(sheet.top_users.len()))
            .max()
            .unwrap_or(0)
    }

    fn cut_lists(&mut self, share: f64) -> bool {
        let mut cut = false;
        for sheet in &mut self.sheets {
            let mut table = sheet.as_table();
            if table.cut_lists(share) {
                let name = std::mem::take(&mut sheet.name);
                *sheet = SheetReport::of(name, table);
                cut = true;
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_and_type(value: DataRef<'_>) -> Option<(String, &'static str)> {
        let mut row = Row::default();
        row.push_value(0, &value);
        let cell = row.cells.first()?;
        let kind = match cell.kind {
            CellKind::Integer(_) => "integer",
            CellKind::Float(_) => "float",
            CellKind::Bool(_) => "bool",
            CellKind::DateTime => "datetime",
            CellKind::Text => "string",
        };
        Some((row.text.clone(), kind))
    }

    #[test]
    fn numbers_are_integers_when_whole_and_exact_and_written_shortest() {
        let table: [(DataRef<'_>, &str, &str); 9] = [
            (DataRef::Float(3.0), "3", "integer"),
            (DataRef::Float(-0.0), "0", "integer"),
            (DataRef::Float(2.5), "2.5", "float"),
            (DataRef::Float(0.1), "0.1", "float"),
            (
                DataRef::Float(9_007_199_254_740_992.0),
                "9007199254740992",
                "integer",
            ),
            (
                DataRef::Float(18_014_398_509_481_984.0),
                "1.8014398509481984e16",
                "float",
            ),
            (DataRef::Int(1 << 53), "9007199254740992", "integer"),
            (DataRef::Int((1 << 53) + 2), "9007199254740994", "float"),
            (DataRef::Float(1e-7), "1e-7", "float"),
        ];
        for (value, text, kind) in table {
            let got = text_and_type(value.clone()).expect("a value");
            assert_eq!((got.0.as_str(), got.1), (text, kind), "{value:?}");
        }
    }

    #[test]
    fn empty_cells_are_none_and_errors_are_their_text() {
        assert!(text_and_type(DataRef::Empty).is_none());
        assert!(text_and_type(DataRef::String(String::new())).is_none());
        assert!(text_and_type(DataRef::SharedString("")).is_none());
        let error = text_and_type(DataRef::Error(calamine::CellErrorType::Div0));
        assert_eq!(error, Some(("#DIV/0!".to_string(), "string")));
        assert_eq!(
            text_and_type(DataRef::Bool(true)),
            Some(("true".to_string(), "bool"))
        );
    }

    /// What `push_number` writes for `text`'s value, and its type.
    fn written(text: &str) -> (String, CellKind) {
        let mut row = Row::default();
        row.push_number(0, text.parse::<f64>().expect("a number"));
        (row.text.clone(), row.cells[0].kind)
    }

    #[test]
    fn a_canonical_number_is_what_push_number_would_write() {
        for text in [
            "0",
            "7",
            "-7",
            "569.63",
            "0.5",
            "-0.5",
            "0.00001",
            "123456789012345",
            "1.23456789012345",
            "0.1",
            "99.99",
        ] {
            let number = canonical_number(text).unwrap_or_else(|| panic!("{text} is canonical"));
            let (shortest, kind) = written(text);
            assert_eq!(shortest, text);
            let expected = match kind {
                CellKind::Integer(i) => Number::Integer(i),
                CellKind::Float(f) => Number::Float(f),
                _ => unreachable!(),
            };
            assert_eq!(number, expected, "{text}");
        }
        for text in [
            "",
            "-",
            "-0",
            "007",
            "1.",
            ".5",
            "1.50",
            "3.0",
            "0.000001",
            "1e5",
            "1234567890123456",
            "0.1234567890123456",
            " 1",
            "1_0",
            "+1",
            "NaN",
            "inf",
            "1.2.3",
        ] {
            assert_eq!(canonical_number(text), None, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn canonical_numbers_match_the_long_way(
            whole in 0u64..10_000_000_000_000_000,
            fraction in proptest::option::of("[0-9]{1,17}"),
            negative: bool,
        ) {
            let mut text = if negative { "-".to_string() } else { String::new() };
            text.push_str(&whole.to_string());
            if let Some(fraction) = &fraction {
                text.push('.');
                text.push_str(fraction);
            }
            if let Some(number) = canonical_number(&text) {
                let (shortest, kind) = written(&text);
                proptest::prop_assert_eq!(&shortest, &text);
                let same = match (number, kind) {
                    (Number::Integer(a), CellKind::Integer(b)) => a == b,
                    (Number::Float(a), CellKind::Float(b)) => a.to_bits() == b.to_bits(),
                    _ => false,
                };
                proptest::prop_assert!(same, "{} {:?} {:?}", text, number, kind);
            }
        }
    }
}
