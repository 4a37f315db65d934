//! One `.xlsx` sheet's cells (`<sheetData>`), in parallel: the part is cut into blocks of
//! whole rows (at a `<row` tag outside comments, CDATA and processing instructions), the first
//! blocks are parsed in order until the header row is known, and the rest in windows of
//! blocks on the rayon pool, each block into its own `SheetPart`, while the next window is
//! inflated. A block holds at least one whole row, so a row of more than `MAX_ROW_BYTES` of
//! XML is refused rather than held.

use std::io::Read;

use calamine::{ExcelDateTime, ExcelDateTimeType};
use memchr::{memchr, memmem};
use quick_xml::events::{BytesStart, Event};
use rayon::prelude::*;

use super::xlsx::{Context, push_reference};
use super::{Row, SheetBuilder, SheetPart, canonical_number, invalid};
use crate::analyze::csv::CsvReport;
use crate::analyze::{AnalysisError, AnalysisOptions, Deadline, Source};

/// The size a block is cut at (the first `<row` before it), or `--segment-bytes` if smaller.
const BLOCK_BYTES: usize = 1 << 20;

/// Blocks per window and thread: a window is parsed while the next one is inflated.
const BLOCKS_PER_THREAD: usize = 8;

/// A block grows past `BLOCK_BYTES` only to hold one whole row, and up to this.
pub const MAX_ROW_BYTES: usize = 64 << 20;

/// Columns of a sheet (A to XFD).
const MAX_COLUMNS: u32 = 16_384;

/// Cells between two looks at the deadline.
const CELLS_PER_CHECK: u32 = 4096;

/// Reads one sheet's part (`input`, its unpacked XML, which declares `declared_bytes`) into
/// column statistics.
pub(super) fn read(
    input: impl Read + Send,
    declared_bytes: u64,
    context: &Context,
    source: &Source,
    options: &AnalysisOptions,
) -> Result<CsvReport, AnalysisError> {
    let deadline = source.deadline;
    let block_bytes = usize::try_from(options.segment_bytes)
        .unwrap_or(BLOCK_BYTES)
        .clamp(1, BLOCK_BYTES);
    let mut blocks = Blocks::new(input, block_bytes, MAX_ROW_BYTES);
    let mut sheet = SheetBuilder::new(options, &source.path);
    // In order until the header is known (usually within the first block).
    let mut first = true;
    while !sheet.has_header() {
        let Some(block) = blocks.next()? else {
            return Ok(sheet.finish());
        };
        let end = parse(&block, !first, context, deadline, |row| sheet.row(row))?;
        if end {
            return Ok(sheet.finish());
        }
        first = false;
    }
    // Worth the threads when the sheet is more than a few blocks (a declared size that lies
    // only changes the speed).
    let parallel = declared_bytes > 4 * block_bytes as u64;
    let window = if parallel {
        BLOCKS_PER_THREAD * rayon::current_num_threads().max(1)
    } else {
        1
    };
    let mut pending: Vec<Vec<u8>> = Vec::new();
    loop {
        let (parsed, next) = crate::analyze::join(
            parallel,
            || parse_window(&pending, &sheet, context, deadline, parallel),
            || blocks.take(window),
        );
        for part in parsed? {
            sheet.merge(part);
        }
        pending = next?;
        if pending.is_empty() {
            return Ok(sheet.finish());
        }
    }
}

/// Blocks below the header, into parts (one per piece of work rayon splits the window into).
fn parse_window(
    blocks: &[Vec<u8>],
    sheet: &SheetBuilder<'_>,
    context: &Context,
    deadline: Deadline,
    parallel: bool,
) -> Result<Vec<SheetPart>, AnalysisError> {
    let add = |mut part: Option<SheetPart>, block: &Vec<u8>| {
        parse(block, true, context, deadline, |row| {
            if let Some(part) = &mut part {
                part.row(row);
            }
        })?;
        Ok(part)
    };
    if parallel {
        blocks
            .par_iter()
            .try_fold(|| sheet.part(), add)
            .collect::<Result<Vec<_>, AnalysisError>>()
            .map(|parts| parts.into_iter().flatten().collect())
    } else {
        let part = blocks.iter().try_fold(sheet.part(), add)?;
        Ok(part.into_iter().collect())
    }
}

/// The sheet's XML in blocks that each start at a row (but the first) and end before one.
struct Blocks<R> {
    input: R,
    /// What follows the last cut: the start of the next block.
    carry: Vec<u8>,
    /// `<row`, or `<x:row` in a sheet that writes its elements with a prefix.
    row_tag: Option<Vec<u8>>,
    block_bytes: usize,
    /// `MAX_ROW_BYTES` (smaller in tests).
    max_row_bytes: usize,
    done: bool,
}

impl<R: Read> Blocks<R> {
    fn new(input: R, block_bytes: usize, max_row_bytes: usize) -> Self {
        Blocks {
            input,
            carry: Vec::new(),
            row_tag: None,
            block_bytes,
            max_row_bytes,
            done: false,
        }
    }

    /// Up to `count` blocks; none at the end.
    fn take(&mut self, count: usize) -> Result<Vec<Vec<u8>>, AnalysisError> {
        let mut blocks = Vec::with_capacity(count);
        while blocks.len() < count {
            match self.next()? {
                Some(block) => blocks.push(block),
                None => break,
            }
        }
        Ok(blocks)
    }

    fn next(&mut self) -> Result<Option<Vec<u8>>, AnalysisError> {
        let mut block = std::mem::take(&mut self.carry);
        let mut want = self.block_bytes;
        loop {
            if !self.done {
                let missing = want.saturating_sub(block.len()) as u64;
                let got = (&mut self.input)
                    .take(missing)
                    .read_to_end(&mut block)
                    .map_err(AnalysisError::Read)?;
                self.done = (got as u64) < missing;
            }
            let row_tag = self
                .row_tag
                .get_or_insert_with(|| row_tag_of(&block))
                .as_slice();
            if self.done {
                return Ok((!block.is_empty()).then_some(block));
            }
            if let Some(cut) = last_cut(&block, row_tag) {
                self.carry = block[cut..].to_vec();
                block.truncate(cut);
                return Ok(Some(block));
            }
            if block.len() >= self.max_row_bytes {
                return Err(AnalysisError::LimitExceeded(format!(
                    "a row of the sheet has more than {} MiB of XML",
                    self.max_row_bytes >> 20
                )));
            }
            want = block.len() + self.block_bytes;
        }
    }
}

/// The row tag of a sheet whose XML starts with `head`: `<` and the root element's prefix
/// (`x:` in `<x:worksheet>`, none usually), then `row`.
fn row_tag_of(head: &[u8]) -> Vec<u8> {
    let mut at = 0;
    while let Some(found) = memchr(b'<', &head[at..]) {
        let start = at + found + 1;
        match head.get(start) {
            Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                let name_end = head[start..]
                    .iter()
                    .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/'))
                    .map_or(head.len(), |end| start + end);
                let name = &head[start..name_end];
                let prefix = match name.iter().position(|&b| b == b':') {
                    Some(colon) => &name[..=colon],
                    None => &[][..],
                };
                return [b"<".as_slice(), prefix, b"row"].concat();
            }
            _ => at = start,
        }
    }
    b"<row".to_vec()
}

/// Whether `rest` starts with the row tag and then ends the name.
fn is_row_start(rest: &[u8], row_tag: &[u8]) -> bool {
    rest.starts_with(row_tag)
        && rest
            .get(row_tag.len())
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/'))
}

/// Where to cut `block`: its last row tag after the start that is markup (outside comments,
/// CDATA and processing instructions), if any.
fn last_cut(block: &[u8], row_tag: &[u8]) -> Option<usize> {
    // The XML declaration (`<?xml ...?>`) at the start is the one `<?` a sheet always has.
    let body = if block.starts_with(b"<?xml") {
        memmem::find(block, b"?>").map_or(block.len(), |end| end + 2)
    } else {
        0
    };
    let plain = memmem::find(&block[body..], b"<!").is_none()
        && memmem::find(&block[body..], b"<?").is_none();
    if plain {
        // Nothing can hide a tag: the last one is a row's start.
        return memmem::rfind_iter(block, row_tag)
            .filter(|&at| at > 0)
            .find(|&at| is_row_start(&block[at..], row_tag));
    }
    let mut last = None;
    let mut at = body;
    while let Some(found) = memchr(b'<', &block[at..]) {
        let tag = at + found;
        let rest = &block[tag..];
        let skip_to = |open: usize, close: &[u8]| {
            memmem::find(&rest[open..], close).map(|end| tag + open + end + close.len())
        };
        let next = if rest.starts_with(b"<!--") {
            skip_to(4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            skip_to(9, b"]]>")
        } else if rest.starts_with(b"<?") {
            skip_to(2, b"?>")
        } else if rest.starts_with(b"<!") {
            skip_to(2, b">")
        } else {
            if tag > 0 && is_row_start(rest, row_tag) {
                last = Some(tag);
            }
            Some(tag + 1)
        };
        match next {
            Some(next) => at = next,
            // Unclosed at the block's end: no cut inside it.
            None => break,
        }
    }
    last
}

/// A cell's type (`t`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum CellType {
    Number,
    Shared,
    Inline,
    FormulaText,
    Bool,
    Error,
    IsoDate,
}

impl CellType {
    fn of(value: &str) -> CellType {
        match value {
            "s" => CellType::Shared,
            "inlineStr" => CellType::Inline,
            "str" => CellType::FormulaText,
            "b" => CellType::Bool,
            "e" => CellType::Error,
            "d" => CellType::IsoDate,
            _ => CellType::Number,
        }
    }
}

/// The cell being read.
struct OpenCell {
    column: u32,
    kind: CellType,
    style: usize,
}

/// Parses the rows of one block, calling `on_row` with each; `in_data`: the block starts
/// inside `<sheetData>`. True once `</sheetData>` was seen (nothing after it is a cell).
fn parse(
    xml: &[u8],
    mut in_data: bool,
    context: &Context,
    deadline: Deadline,
    mut on_row: impl FnMut(&Row),
) -> Result<bool, AnalysisError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let config = reader.config_mut();
    config.check_end_names = false;
    // A block but the first closes elements opened in an earlier one.
    config.allow_unmatched_ends = true;
    config.trim_text(false);
    let mut row = Row::default();
    let mut in_row = false;
    let mut next_column = 0u32;
    let mut cell: Option<OpenCell> = None;
    let mut value = String::new();
    let (mut in_value, mut in_inline, mut in_phonetic) = (false, false, false);
    let mut cells = 0u32;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| invalid(&format!("invalid sheet XML: {err}")))?;
        match event {
            Event::Start(e) => match local_name(e.name().as_ref()) {
                "sheetData" => in_data = true,
                "row" if in_data => {
                    in_row = true;
                    next_column = 0;
                    row.clear();
                }
                "c" if in_row => {
                    cell = Some(open_cell(&e, &mut next_column)?);
                    value.clear();
                    cells += 1;
                    if cells.is_multiple_of(CELLS_PER_CHECK) {
                        deadline.check()?;
                    }
                }
                "v" => in_value = cell.as_ref().is_some_and(|c| c.kind != CellType::Inline),
                "is" => in_inline = cell.is_some(),
                "t" => in_value = in_inline && !in_phonetic,
                "rPh" => in_phonetic = true,
                _ => {}
            },
            Event::Empty(e) => match local_name(e.name().as_ref()) {
                "row" if in_data => {
                    // A row without cells: nothing to count.
                    in_row = false;
                }
                "c" if in_row => {
                    // A cell without a value: it only takes its column.
                    open_cell(&e, &mut next_column)?;
                }
                _ => {}
            },
            Event::End(e) => match local_name(e.name().as_ref()) {
                "v" | "t" => in_value = false,
                "is" => in_inline = false,
                "rPh" => in_phonetic = false,
                "c" => {
                    if let Some(open) = cell.take() {
                        add_cell(&open, &value, context, &mut row)?;
                    }
                    in_value = false;
                }
                "row" if in_row => {
                    in_row = false;
                    on_row(&row);
                }
                "sheetData" => {
                    if in_row {
                        on_row(&row);
                    }
                    return Ok(true);
                }
                _ => {}
            },
            Event::Text(t) if in_value => value.push_str(&t),
            Event::CData(t) if in_value => value.push_str(&t),
            Event::GeneralRef(r) if in_value => push_reference(&r, &mut value),
            Event::Eof => {
                if in_row {
                    on_row(&row);
                }
                return Ok(false);
            }
            _ => {}
        }
    }
}

/// An element's name without its prefix (`c` of `x:c`).
#[inline]
fn local_name(name: &str) -> &str {
    match name.as_bytes().iter().rposition(|&b| b == b':') {
        Some(colon) => &name[colon + 1..],
        None => name,
    }
}

/// A `<c>` element's column (its `r`, else the one after the previous cell), type and style.
fn open_cell(element: &BytesStart<'_>, next_column: &mut u32) -> Result<OpenCell, AnalysisError> {
    let mut column = None;
    let mut kind = CellType::Number;
    let mut style = 0usize;
    for attribute in element.attributes().with_checks(false).flatten() {
        match attribute.key.local_name().as_ref() {
            "r" => column = Some(column_of(attribute.value.as_bytes())?),
            "t" => kind = CellType::of(&attribute.value),
            "s" => style = attribute.value.parse().unwrap_or(0),
            _ => {}
        }
    }
    let column = column.unwrap_or(*next_column);
    if column >= MAX_COLUMNS {
        return Err(invalid(&format!(
            "a cell is in column {}, right of the last column a sheet may have (XFD)",
            column + 1
        )));
    }
    *next_column = column + 1;
    Ok(OpenCell {
        column,
        kind,
        style,
    })
}

/// The column (from 0) of a cell reference such as `AB12`.
fn column_of(reference: &[u8]) -> Result<u32, AnalysisError> {
    let letters = reference
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if letters == 0 || letters > 3 {
        return Err(invalid(&format!(
            "{:?} is not a cell reference",
            String::from_utf8_lossy(&reference[..reference.len().min(32)])
        )));
    }
    let number = reference[..letters].iter().fold(0u32, |n, b| {
        n * 26 + u32::from(b.to_ascii_uppercase() - b'A') + 1
    });
    Ok(number - 1)
}

/// A cell's value, read as its type says, into the row.
fn add_cell(
    cell: &OpenCell,
    value: &str,
    context: &Context,
    row: &mut Row,
) -> Result<(), AnalysisError> {
    let column = cell.column;
    match cell.kind {
        CellType::Shared => {
            let Some(index) = value.trim().parse::<usize>().ok() else {
                return Ok(());
            };
            let Some(shared) = context.strings.get(index) else {
                return Err(invalid(&format!(
                    "a cell refers to shared string {index}, but the workbook has {}",
                    context.strings.len()
                )));
            };
            row.push_text(column, shared);
        }
        CellType::Inline | CellType::FormulaText | CellType::Error => row.push_text(column, value),
        CellType::Bool => match value {
            "1" | "true" => row.push_bool(column, true),
            "0" | "false" => row.push_bool(column, false),
            _ => row.push_text(column, value),
        },
        CellType::IsoDate => row.push_iso_datetime(column, value),
        CellType::Number => {
            let text = value.trim();
            if text.is_empty() {
                return Ok(());
            }
            let date = context
                .date_styles
                .get(cell.style)
                .copied()
                .unwrap_or(false);
            if !date && let Some(number) = canonical_number(text) {
                row.push_canonical_number(column, text, number);
                return Ok(());
            }
            match text.parse::<f64>() {
                Ok(number) if number.is_finite() && date => {
                    let serial =
                        ExcelDateTime::new(number, ExcelDateTimeType::DateTime, context.is_1904);
                    row.push_serial_datetime(column, &serial);
                }
                Ok(number) if number.is_finite() => row.push_number(column, number),
                _ => row.push_text(column, text),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_at_row_tags_outside_comments_cdata_and_instructions() {
        let tag = b"<row".as_slice();
        let xml = b"<?xml version=\"1.0\"?><worksheet><sheetData><row r=\"1\"><c/></row>\
                    <row r=\"2\"/><rowBreaks/>";
        assert_eq!(last_cut(xml, tag), memmem::rfind(xml, b"<row r=\"2\""));
        let commented = b"<worksheet><sheetData><row r=\"1\"/><!-- <row r=\"9\"> --><x/>";
        assert_eq!(
            last_cut(commented, tag),
            memmem::find(commented, b"<row r=\"1\"")
        );
        let open = b"<worksheet><sheetData><row r=\"1\"/><row r=\"2\"/><![CDATA[ <row r=\"9\">";
        assert_eq!(last_cut(open, tag), memmem::find(open, b"<row r=\"2\""));
        assert_eq!(last_cut(b"<row r=\"1\"><c/></row>", tag), None);
        assert_eq!(
            row_tag_of(b"<?xml version=\"1.0\"?><x:worksheet xmlns:x=\"u\">"),
            b"<x:row"
        );
        assert_eq!(row_tag_of(b"<worksheet>"), b"<row");
    }

    #[test]
    fn blocks_hold_whole_rows_and_a_row_over_the_limit_is_refused() {
        let rows: String = (1..=50)
            .map(|r| format!("<row r=\"{r}\"><c><v>{r}</v></c></row>"))
            .collect();
        let xml = format!("<worksheet><sheetData>{rows}</sheetData></worksheet>");
        let mut blocks = Blocks::new(xml.as_bytes(), 100, 1 << 20);
        let mut seen = Vec::new();
        while let Some(block) = blocks.next().expect("block") {
            let text = String::from_utf8(block).expect("UTF-8");
            assert!(seen.is_empty() || text.starts_with("<row "), "{text}");
            seen.push(text);
        }
        assert!(seen.len() > 10, "{}", seen.len());
        assert_eq!(seen.concat(), xml);

        let long = format!(
            "<worksheet><sheetData><row r=\"1\"><c><v>{}</v></c></row><row r=\"2\"/>",
            "7".repeat(5000)
        );
        let mut blocks = Blocks::new(long.as_bytes(), 100, 4096);
        let head = blocks.next().expect("the part before the first row");
        assert_eq!(head.as_deref(), Some(b"<worksheet><sheetData>".as_slice()));
        let err = blocks.next().expect_err("over the limit");
        assert!(matches!(err, AnalysisError::LimitExceeded(_)), "{err}");
    }

    #[test]
    fn column_letters_count_from_a() {
        assert_eq!(column_of(b"A1").ok(), Some(0));
        assert_eq!(column_of(b"Z9").ok(), Some(25));
        assert_eq!(column_of(b"AA1").ok(), Some(26));
        assert_eq!(column_of(b"XFD1048576").ok(), Some(16_383));
        assert!(column_of(b"12").is_err());
        assert!(column_of(b"ABCD1").is_err());
    }
}
