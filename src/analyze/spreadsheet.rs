//! Spreadsheets (SPEC §4.2): `.xlsx .xlsm .xlsb` read with `calamine`'s cell readers, one
//! sheet at a time in workbook order, a row at a time: memory follows the cells a sheet really
//! has, never the dimension it declares. Each sheet gets the CSV column statistics and user
//! counts (`csv::TypedTable`), fed with each cell's own type.
//!
//! Before `calamine` sees the file, the zip under it passes the archive checks (member count,
//! overlapping members, declared sizes against `--max-unpacked-bytes` and the 1,000:1 ratio),
//! and the tables `calamine` loads whole (shared strings, styles, the workbook) are held to
//! `MAX_LOADED_PART_BYTES`. `.ods` and `.xls` have no cell reader in `calamine`: their sheets
//! are built whole, so they wait for the parser isolation of the spreadsheet issue and complete
//! with size and hash only.

use calamine::{DataRef, Reader};
use serde::{Deserialize, Serialize};

use super::archive::open_checked;
use super::csv::{ColumnReport, CsvReport, TypedCell, TypedTable, UserRows};
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

/// Analyses `source` as a workbook; `Ok(None)` for a format read whole (`.ods`, `.xls`), which
/// completes with size and hash only.
pub fn analyze(
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Result<Option<SpreadsheetReport>, AnalysisError> {
    let extension = super::rules::extension_of(&source.path);
    progress.start(1);
    // The two formats with a cell reader: the same walk over their sheets (their readers
    // share no trait).
    macro_rules! streamed {
        ($workbook:expr, $error:expr, $format:literal) => {{
            let mut workbook = $workbook.map_err($error)?;
            let names = workbook.sheet_names();
            let mut sheets = Vec::with_capacity(names.len());
            for name in names {
                let mut cells = workbook.worksheet_cells_reader(&name).map_err($error)?;
                let table = read_sheet(source, options, || {
                    cells
                        .next_cell()
                        .map_err($error)
                        .map(|cell| cell.map(|c| (c.get_position(), c.get_value().clone())))
                })?;
                sheets.push(SheetReport::of(name, table));
            }
            Some(SpreadsheetReport {
                format: $format.to_string(),
                sheets,
            })
        }};
    }
    let report = match extension.as_str() {
        ".xlsx" | ".xlsm" => streamed!(
            calamine::Xlsx::new(checked_zip(source, options)?),
            xlsx_error,
            "xlsx"
        ),
        ".xlsb" => streamed!(
            calamine::Xlsb::new(checked_zip(source, options)?),
            xlsb_error,
            "xlsb"
        ),
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

/// A workbook `calamine` cannot read.
fn invalid(err: &dyn std::fmt::Display) -> AnalysisError {
    AnalysisError::invalid(Kind::Spreadsheet, format!("not a readable workbook: {err}"))
}

/// The file as a zip that passed the archive checks, and whose parts read whole are small
/// enough to be.
fn checked_zip<'a>(
    source: &'a Source,
    options: &AnalysisOptions,
) -> Result<PositionedReader<'a>, AnalysisError> {
    let reader = PositionedReader::new(source);
    let (_, parts) = open_checked(reader.clone(), options).map_err(|err| match err {
        AnalysisError::Invalid { message, .. } => AnalysisError::invalid(
            Kind::Spreadsheet,
            format!("not a readable workbook: {message}"),
        ),
        other => other,
    })?;
    for (name, size) in parts {
        let lower = name.to_ascii_lowercase();
        let base = lower.rsplit('/').next().unwrap_or_default();
        let loaded_whole = LOADED_WHOLE.iter().any(|part| base.starts_with(part));
        if loaded_whole && size > MAX_LOADED_PART_BYTES {
            return Err(AnalysisError::LimitExceeded(format!(
                "the workbook's {name} would unpack to {size} bytes, over the {} MiB a part \
                 read whole may have",
                MAX_LOADED_PART_BYTES >> 20
            )));
        }
    }
    Ok(reader)
}

/// Reads one sheet's cells (`next` yields them in row order) into column statistics: the header
/// is the first row with a non-empty cell, and every row below with one is counted.
fn read_sheet<'s>(
    source: &Source,
    options: &AnalysisOptions,
    mut next: impl FnMut() -> Result<Option<((u32, u32), DataRef<'s>)>, AnalysisError>,
) -> Result<CsvReport, AnalysisError> {
    let deadline: Deadline = source.deadline;
    let mut table: Option<(TypedTable, u32)> = None;
    let mut header_row: Option<u32> = None;
    let mut row: Vec<(u32, Cell)> = Vec::new();
    let mut row_index: Option<u32> = None;
    let mut seen: u64 = 0;
    loop {
        let cell = next()?;
        seen += 1;
        if seen.is_multiple_of(CELLS_PER_CHECK) {
            deadline.check()?;
        }
        let at_row = cell.as_ref().map(|((r, _), _)| *r);
        if at_row != row_index && !row.is_empty() {
            // The row just read is complete.
            match (&mut table, header_row) {
                (Some((table, first)), _) => add_row(table, *first, &row),
                (None, None) => {
                    let header: Vec<(u32, String)> = row
                        .iter()
                        .map(|(c, cell)| (*c, cell.text.clone()))
                        .collect();
                    header_row = row_index;
                    let first = header.first().map_or(0, |(c, _)| *c);
                    let last = header.last().map_or(0, |(c, _)| *c);
                    let mut names = vec![String::new(); (last - first) as usize + 1];
                    for (c, name) in &header {
                        names[(c - first) as usize] = name.clone();
                    }
                    table = Some((TypedTable::new(names, options, &source.path), first));
                }
                (None, Some(_)) => {}
            }
            row.clear();
        }
        let Some(((r, c), value)) = cell else {
            break;
        };
        row_index = Some(r);
        if let Some(cell) = Cell::of(&value) {
            row.push((c, cell));
        }
    }
    Ok(match table {
        Some((table, _)) => table.into_report(),
        None => TypedTable::new(Vec::new(), options, &source.path).into_report(),
    })
}

/// A non-empty cell: its text (what distinct and user counts see) and its type.
struct Cell {
    text: String,
    kind: CellKind,
}

enum CellKind {
    Integer(i64),
    Float(f64),
    Bool(bool),
    DateTime,
    Text,
}

/// Numbers whole and at most this large are integers (SPEC §4.2).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

impl Cell {
    fn of(value: &DataRef<'_>) -> Option<Cell> {
        let (text, kind) = match value {
            DataRef::Empty => return None,
            DataRef::Int(i) if i.unsigned_abs() <= 1 << 53 => {
                (i.to_string(), CellKind::Integer(*i))
            }
            DataRef::Int(i) => number(*i as f64),
            DataRef::Float(f) => number(*f),
            DataRef::Bool(b) => (b.to_string(), CellKind::Bool(*b)),
            DataRef::String(s) if s.is_empty() => return None,
            DataRef::String(s) => (s.clone(), CellKind::Text),
            DataRef::SharedString("") => return None,
            DataRef::SharedString(s) => (s.to_string(), CellKind::Text),
            DataRef::DateTime(date) => {
                let (y, mo, d, h, mi, s, ms) = date.to_ymd_hms_milli();
                let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
                if ms > 0 {
                    text.push_str(&format!(".{ms:03}"));
                }
                (text, CellKind::DateTime)
            }
            DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => {
                (text.clone(), CellKind::DateTime)
            }
            DataRef::Error(error) => (error.to_string(), CellKind::Text),
        };
        Some(Cell { text, kind })
    }

    fn typed(&self) -> TypedCell<'_> {
        match self.kind {
            CellKind::Integer(i) => TypedCell::Integer(i),
            CellKind::Float(f) => TypedCell::Float(f),
            CellKind::Bool(b) => TypedCell::Bool(b),
            CellKind::DateTime => TypedCell::DateTime(&self.text),
            CellKind::Text => TypedCell::Text(&self.text),
        }
    }
}

/// A number's type and the shortest text that reads back as it (`3`, not `3.0`).
fn number(value: f64) -> (String, CellKind) {
    if value.fract() == 0.0 && value.abs() <= MAX_EXACT_INTEGER {
        let integer = value as i64;
        return (integer.to_string(), CellKind::Integer(integer));
    }
    let text = if value != 0.0 && (value.abs() >= 1e16 || value.abs() < 1e-5) {
        format!("{value:e}")
    } else {
        format!("{value}")
    };
    (text, CellKind::Float(value))
}

fn add_row(table: &mut TypedTable, first: u32, row: &[(u32, Cell)]) {
    let cells: Vec<(usize, &[u8], TypedCell<'_>)> = row
        .iter()
        .filter(|(c, _)| *c >= first)
        .map(|(c, cell)| ((c - first) as usize, cell.text.as_bytes(), cell.typed()))
        .collect();
    table.add_row(&cells);
}

fn xlsx_error(err: calamine::XlsxError) -> AnalysisError {
    match err {
        calamine::XlsxError::Io(io) => AnalysisError::read(io),
        other => AnalysisError::invalid(
            Kind::Spreadsheet,
            format!("not a readable workbook: {other}"),
        ),
    }
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
        Cell::of(&value).map(|cell| {
            let kind = match cell.kind {
                CellKind::Integer(_) => "integer",
                CellKind::Float(_) => "float",
                CellKind::Bool(_) => "bool",
                CellKind::DateTime => "datetime",
                CellKind::Text => "string",
            };
            (cell.text, kind)
        })
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
}
