//! `.xlsx`/`.xlsm` workbooks (Office Open XML), read with our own parser of their parts
//! (`quick-xml`): the package and workbook relationships, the workbook (sheet names in order,
//! the 1904 date system), the shared strings and the cell styles that make a number a date.
//! The sheets themselves are `xlsx_sheet`'s. Part names come from the file: they are only ever
//! looked up among the zip's own members, never used as paths.

use std::collections::HashMap;
use std::io::Read;

use quick_xml::events::{BytesStart, Event};

use super::xlsx_sheet;
use super::{MAX_LOADED_PART_BYTES, SheetReport, SpreadsheetReport, checked_archive, invalid};
use crate::analyze::compressed::{self, Budget};
use crate::analyze::detect::PositionedReader;
use crate::analyze::{AnalysisError, AnalysisOptions, Source};

/// The most sheets a workbook may list (each is a section of the report; a hostile workbook
/// could list millions, all naming one part).
const MAX_SHEETS: usize = 4096;

/// What a sheet's cells need from the rest of the workbook.
pub(super) struct Context {
    pub strings: SharedStrings,
    /// Per cell style (`s="N"`): whether its number format shows a date or a time.
    pub date_styles: Vec<bool>,
    pub is_1904: bool,
}

/// The shared strings table: every string's text end to end, and where each one ends.
#[derive(Default)]
pub(super) struct SharedStrings {
    text: String,
    ends: Vec<usize>,
}

impl SharedStrings {
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1],
        };
        Some(&self.text[start..end])
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

type Archive<'a> = ::zip::ZipArchive<PositionedReader<'a>>;

/// The zip's members by lower-case name (Office matches part names without case).
struct Parts(HashMap<String, usize>);

impl Parts {
    /// `file_names` lists the members in index order.
    fn of(archive: &Archive<'_>) -> Parts {
        Parts(
            archive
                .file_names()
                .enumerate()
                .filter_map(|(index, name)| {
                    let name = name.ok()?;
                    Some((name.trim_start_matches('/').to_ascii_lowercase(), index))
                })
                .collect(),
        )
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.0
            .get(&name.trim_start_matches('/').to_ascii_lowercase())
            .copied()
    }
}

pub(super) fn analyze(
    source: &Source,
    options: &AnalysisOptions,
) -> Result<SpreadsheetReport, AnalysisError> {
    let mut archive = checked_archive(source, options)?;
    let parts = Parts::of(&archive);
    let budget = Budget::new(options.max_unpacked_bytes, source.deadline);
    let mut whole = |name: &str| read_whole(&mut archive, &parts, &budget, name);

    // The workbook: where the package's relationships say, else where everyone puts it.
    let workbook_path = match whole("_rels/.rels")? {
        Some(rels) => relationships(&rels, "")?
            .into_values()
            .find(|(kind, _)| kind.ends_with("/officeDocument"))
            .map(|(_, target)| target),
        None => None,
    }
    .unwrap_or_else(|| "xl/workbook.xml".to_string());
    let Some(workbook) = whole(&workbook_path)? else {
        return Err(invalid(&format!(
            "the workbook part {workbook_path} is missing"
        )));
    };
    let (folder, file) = match workbook_path.rsplit_once('/') {
        Some((folder, file)) => (folder.to_string(), file.to_string()),
        None => (String::new(), workbook_path.clone()),
    };
    let rels_path = match folder.as_str() {
        "" => format!("_rels/{file}.rels"),
        _ => format!("{folder}/_rels/{file}.rels"),
    };
    let links = match whole(&rels_path)? {
        Some(rels) => relationships(&rels, &folder)?,
        None => HashMap::new(),
    };
    let (sheets, is_1904) = read_workbook(&workbook)?;
    if sheets.len() > MAX_SHEETS {
        return Err(AnalysisError::LimitExceeded(format!(
            "the workbook lists {} sheets; at most {MAX_SHEETS} are read",
            sheets.len()
        )));
    }
    let linked = |suffix: &str, default: &str| {
        links
            .values()
            .find(|(kind, _)| kind.ends_with(suffix))
            .map_or_else(|| default.to_string(), |(_, target)| target.clone())
    };
    let strings = match whole(&linked("/sharedStrings", "xl/sharedStrings.xml"))? {
        Some(xml) => read_shared_strings(&xml)?,
        None => SharedStrings::default(),
    };
    let date_styles = match whole(&linked("/styles", "xl/styles.xml"))? {
        Some(xml) => read_date_styles(&xml)?,
        None => Vec::new(),
    };
    let context = Context {
        strings,
        date_styles,
        is_1904,
    };

    let mut reports = Vec::with_capacity(sheets.len());
    for (name, id) in sheets {
        let Some((_, path)) = links.get(&id) else {
            return Err(invalid(&format!(
                "sheet {name:?} refers to relationship {id:?}, which the workbook does not have"
            )));
        };
        let Some(index) = parts.find(path) else {
            return Err(invalid(&format!("sheet {name:?}'s part {path} is missing")));
        };
        let member = archive.by_index(index).map_err(|err| invalid(&err))?;
        let declared = member.size();
        let table = xlsx_sheet::read(budget.count(member), declared, &context, source, options)
            .map_err(|err| part_error(err, path))?;
        reports.push(SheetReport::of(name, table));
    }
    Ok(SpreadsheetReport {
        format: "xlsx".to_string(),
        sheets: reports,
    })
}

/// An error while reading part `path`: a broken stream is a broken workbook.
fn part_error(err: AnalysisError, path: &str) -> AnalysisError {
    match err {
        AnalysisError::Read(io) | AnalysisError::Unavailable { source: io, .. } => {
            match compressed::classify(io, path) {
                AnalysisError::Invalid { message, .. } => invalid(&message),
                other => other,
            }
        }
        other => other,
    }
}

/// Part `name` read whole (within `MAX_LOADED_PART_BYTES`, whatever its header declares);
/// `None` when the zip has no such member.
fn read_whole(
    archive: &mut Archive<'_>,
    parts: &Parts,
    budget: &Budget,
    name: &str,
) -> Result<Option<Vec<u8>>, AnalysisError> {
    let Some(index) = parts.find(name) else {
        return Ok(None);
    };
    let member = archive.by_index(index).map_err(|err| invalid(&err))?;
    let mut bytes = Vec::new();
    budget
        .count(member)
        .take(MAX_LOADED_PART_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| part_error(AnalysisError::Read(err), name))?;
    if bytes.len() as u64 > MAX_LOADED_PART_BYTES {
        return Err(AnalysisError::LimitExceeded(format!(
            "the workbook's {name} unpacks to more than the {} MiB a part read whole may have",
            MAX_LOADED_PART_BYTES >> 20
        )));
    }
    Ok(Some(bytes))
}

/// A reader over a part held whole, configured for the parts' XML.
fn xml_reader(xml: &[u8]) -> quick_xml::Reader<&[u8]> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.trim_text(false);
    reader
}

fn xml_error(err: quick_xml::Error) -> AnalysisError {
    invalid(&format!("invalid XML: {err}"))
}

/// The value of `element`'s attribute whose local name is `name` (`r:id` matches `id`),
/// entities resolved.
pub(super) fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|value| value.into_owned())
        })
}

/// A relationships part: id → (type, target part name), targets resolved against `folder`.
fn relationships(
    xml: &[u8],
    folder: &str,
) -> Result<HashMap<String, (String, String)>, AnalysisError> {
    let mut reader = xml_reader(xml);
    let mut links = HashMap::new();
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Relationship" => {
                let external = attribute(&e, "TargetMode").is_some_and(|m| m == "External");
                if let (Some(id), Some(kind), Some(target), false) = (
                    attribute(&e, "Id"),
                    attribute(&e, "Type"),
                    attribute(&e, "Target"),
                    external,
                ) {
                    links.insert(id, (kind, resolve(folder, &target)));
                }
            }
            Event::Eof => return Ok(links),
            _ => {}
        }
    }
}

/// A relationship's target as a part name: absolute (`/xl/worksheets/sheet1.xml`) or relative
/// to `folder`, with `.` and `..` segments folded (never above the package's root).
fn resolve(folder: &str, target: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let joined = match target.strip_prefix('/') {
        Some(absolute) => absolute.to_string(),
        None => format!("{folder}/{target}"),
    };
    for segment in joined.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    segments.join("/")
}

/// The workbook part: its sheets in order, `(name, relationship id)`, and whether it counts
/// dates from 1904.
fn read_workbook(xml: &[u8]) -> Result<(Vec<(String, String)>, bool), AnalysisError> {
    let mut reader = xml_reader(xml);
    let mut sheets = Vec::new();
    let mut is_1904 = false;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "workbookPr" => {
                    is_1904 = attribute(&e, "date1904")
                        .is_some_and(|value| value == "1" || value == "true");
                }
                "sheet" => {
                    if let (Some(name), Some(id)) = (attribute(&e, "name"), attribute(&e, "id")) {
                        sheets.push((name, id));
                    }
                }
                _ => {}
            },
            Event::Eof => return Ok((sheets, is_1904)),
            _ => {}
        }
    }
}

/// Appends the text an entity reference stands for (`document::reference_str`).
pub(super) fn push_reference(reference: &quick_xml::events::BytesRef<'_>, out: &mut String) {
    out.push_str(crate::analyze::document::reference_str(
        reference,
        &mut [0u8; 4],
    ));
}

/// The shared strings part: each `<si>`'s text, its runs (`<r><t>`) joined, phonetic runs
/// (`<rPh>`) left out.
fn read_shared_strings(xml: &[u8]) -> Result<SharedStrings, AnalysisError> {
    let mut reader = xml_reader(xml);
    let mut strings = SharedStrings::default();
    let mut current = String::new();
    let (mut in_item, mut in_text, mut in_phonetic) = (false, false, false);
    let finish = |current: &mut String, strings: &mut SharedStrings| {
        strings.text.push_str(current);
        strings.ends.push(strings.text.len());
        current.clear();
    };
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) => match e.local_name().as_ref() {
                "si" => {
                    in_item = true;
                    current.clear();
                }
                "t" => in_text = in_item && !in_phonetic,
                "rPh" => in_phonetic = true,
                _ => {}
            },
            Event::Empty(e) if e.local_name().as_ref() == "si" => {
                current.clear();
                finish(&mut current, &mut strings);
            }
            Event::End(e) => match e.local_name().as_ref() {
                "si" if in_item => {
                    in_item = false;
                    finish(&mut current, &mut strings);
                }
                "t" => in_text = false,
                "rPh" => in_phonetic = false,
                _ => {}
            },
            Event::Text(t) if in_text => current.push_str(&t),
            Event::CData(t) if in_text => current.push_str(&t),
            Event::GeneralRef(r) if in_text => push_reference(&r, &mut current),
            Event::Eof => return Ok(strings),
            _ => {}
        }
    }
}

/// The styles part: for each cell style (`<cellXfs><xf>`), whether its number format shows a
/// date or a time.
fn read_date_styles(xml: &[u8]) -> Result<Vec<bool>, AnalysisError> {
    let mut reader = xml_reader(xml);
    let mut custom: HashMap<u32, bool> = HashMap::new();
    let mut styles = Vec::new();
    let mut in_cell_styles = false;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "numFmt" => {
                    let id = attribute(&e, "numFmtId").and_then(|id| id.parse().ok());
                    if let (Some(id), Some(code)) = (id, attribute(&e, "formatCode")) {
                        custom.insert(id, is_date_format(&code));
                    }
                }
                "cellXfs" => in_cell_styles = true,
                "xf" if in_cell_styles => {
                    let id: u32 = attribute(&e, "numFmtId")
                        .and_then(|id| id.parse().ok())
                        .unwrap_or(0);
                    let date = custom
                        .get(&id)
                        .copied()
                        .unwrap_or_else(|| is_builtin_date_format(id));
                    styles.push(date);
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == "cellXfs" => in_cell_styles = false,
            Event::Eof => return Ok(styles),
            _ => {}
        }
    }
}

/// The built-in number formats (ECMA-376 §18.8.30) that show a date, a time or a duration:
/// 14–22 and 45–47, and the East Asian date formats 27–36 and 50–58.
fn is_builtin_date_format(id: u32) -> bool {
    matches!(id, 14..=22 | 27..=36 | 45..=47 | 50..=58)
}

/// Whether a format code shows a date or a time: a `y m d h s` token, or `AM/PM`, `A/P`, in
/// its first section, outside quoted text, `[...]` (colours, conditions, locales; but `[h]`,
/// `[mm]`, `[ss]` are elapsed time), and characters taken literally (`\x`, `_x`, `*x`).
fn is_date_format(code: &str) -> bool {
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ';' => return false,
            '"' => {
                for quoted in chars.by_ref() {
                    if quoted == '"' {
                        break;
                    }
                }
            }
            '\\' | '_' | '*' => {
                chars.next();
            }
            '[' => {
                let mut inside = String::new();
                for bracketed in chars.by_ref() {
                    if bracketed == ']' {
                        break;
                    }
                    inside.push(bracketed.to_ascii_lowercase());
                }
                let elapsed =
                    !inside.is_empty() && inside.chars().all(|c| matches!(c, 'h' | 'm' | 's'));
                if elapsed {
                    return true;
                }
            }
            'y' | 'Y' | 'm' | 'M' | 'd' | 'D' | 'h' | 'H' | 's' | 'S' => return true,
            'a' | 'A' => {
                let rest: String = chars.clone().take(4).collect();
                let rest = rest.to_ascii_lowercase();
                if rest.starts_with("m/pm") || rest.starts_with("/p") {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_formats_are_told_from_number_formats() {
        for code in [
            "yyyy-mm-dd",
            "d/m/yy h:mm",
            "[$-409]mmmm d, yyyy",
            "h:mm AM/PM",
            "[h]:mm:ss",
            "mm:ss.0",
            "[Red]dd/mm/yyyy",
            "DD.MM.YYYY",
        ] {
            assert!(is_date_format(code), "{code}");
        }
        for code in [
            "General",
            "0.00",
            "#,##0",
            "0.00E+00",
            "\"days\" 0",
            "0 \\d",
            "[Red]0.00",
            "0;[Red]-0;\"zero\"",
            "_(* #,##0_)",
            "@",
        ] {
            assert!(!is_date_format(code), "{code}");
        }
    }

    #[test]
    fn targets_resolve_inside_the_package() {
        assert_eq!(
            resolve("xl", "worksheets/sheet1.xml"),
            "xl/worksheets/sheet1.xml"
        );
        assert_eq!(resolve("xl", "/xl/worksheets/s.xml"), "xl/worksheets/s.xml");
        assert_eq!(resolve("xl", "../../../etc/passwd"), "etc/passwd");
        assert_eq!(resolve("", "xl/workbook.xml"), "xl/workbook.xml");
    }

    #[test]
    fn shared_strings_join_runs_and_leave_out_phonetics() {
        let xml = br#"<?xml version="1.0"?><sst xmlns="x" count="4"><si><t>plain</t></si>
            <si><r><rPr><b/></rPr><t>bo</t></r><r><t xml:space="preserve">ld &amp; more</t></r></si>
            <si><t>&#26481;&#x4eac;</t><rPh sb="0" eb="2"><t>toukyou</t></rPh></si><si/></sst>"#;
        let strings = read_shared_strings(xml).expect("strings");
        assert_eq!(strings.len(), 4);
        assert_eq!(strings.get(0), Some("plain"));
        assert_eq!(strings.get(1), Some("bold & more"));
        assert_eq!(strings.get(2), Some("東京"));
        assert_eq!(strings.get(3), Some(""));
        assert_eq!(strings.get(4), None);
    }

    #[test]
    fn cell_styles_follow_built_in_and_custom_formats() {
        let xml = br#"<styleSheet><numFmts><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>
            <numFmt numFmtId="165" formatCode="0.000"/></numFmts>
            <cellStyleXfs><xf numFmtId="14"/></cellStyleXfs>
            <cellXfs><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="165"/><xf numFmtId="14"/>
            <xf numFmtId="2"/></cellXfs></styleSheet>"#;
        assert_eq!(
            read_date_styles(xml).expect("styles"),
            vec![false, true, false, true, false]
        );
    }
}
