//! A PDF page's text in reading order, placed by position: what `pdftotext` does, in small.
//!
//! `lopdf` decodes the content stream and the fonts' encodings; this module follows the text
//! state (`Tm`, `Td`, `TD`, `T*`, `Tf`, `Tc`, `Tw`, `Tz`, `TL`) and advances along each string
//! by the font's glyph widths (`/Widths` for simple fonts, `/W` for CID fonts). A string that
//! starts on another baseline begins a new line; one that starts more than 0.15 em after the
//! previous string's end (or far before it) is a new word. Without this, a word drawn in two
//! pieces (a font change inside it, a kerned `TJ` array) counts twice, and lines positioned by
//! `Td` run together.

use std::collections::{BTreeMap, HashMap};

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Encoding, Object, ObjectId};

/// The most glyph widths read from one font.
const MAX_WIDTHS: usize = 65_536;
/// A gap wider than this share of the font size separates two words.
const WORD_GAP_EM: f32 = 0.15;
/// A baseline that moved more than this share of the font size starts a new line.
const LINE_SHIFT_EM: f32 = 0.5;

fn number(object: &Object) -> f32 {
    match object {
        Object::Integer(i) => *i as f32,
        Object::Real(r) => *r,
        _ => 0.0,
    }
}

fn resolved<'a>(document: &'a Document, object: &'a Object) -> &'a Object {
    document
        .dereference(object)
        .map_or(object, |(_, object)| object)
}

/// A font's glyph advances, in 1/1000 em, by character code.
struct Widths {
    two_byte: bool,
    by_code: HashMap<u32, f32>,
    default: f32,
}

impl Widths {
    fn of(document: &Document, font: &Dictionary) -> Widths {
        let subtype = font
            .get(b"Subtype")
            .and_then(Object::as_name)
            .unwrap_or(b"");
        if subtype == b"Type0" {
            return Widths::of_cid_font(document, font);
        }
        let first = font.get(b"FirstChar").map_or(0.0, number) as u32;
        let mut by_code = HashMap::new();
        if let Ok(Object::Array(widths)) = font.get(b"Widths").map(|o| resolved(document, o)) {
            for (k, width) in widths.iter().enumerate().take(256) {
                by_code.insert(first + k as u32, number(resolved(document, width)));
            }
        }
        let default = font
            .get(b"FontDescriptor")
            .ok()
            .map(|o| resolved(document, o))
            .and_then(|o| o.as_dict().ok())
            .and_then(|d| d.get(b"MissingWidth").ok().map(number))
            .filter(|width| *width > 0.0)
            .unwrap_or(500.0);
        Widths {
            two_byte: false,
            by_code,
            default,
        }
    }

    /// A composite font: two-byte codes, widths from its descendant's `/W` and `/DW`.
    fn of_cid_font(document: &Document, font: &Dictionary) -> Widths {
        let mut widths = Widths {
            two_byte: true,
            by_code: HashMap::new(),
            default: 1000.0,
        };
        let descendant = match font.get(b"DescendantFonts").map(|o| resolved(document, o)) {
            Ok(Object::Array(fonts)) => fonts.first().map(|o| resolved(document, o)),
            _ => None,
        };
        let Some(Object::Dictionary(cid)) = descendant else {
            return widths;
        };
        if let Ok(default) = cid.get(b"DW") {
            widths.default = number(resolved(document, default));
        }
        let Ok(Object::Array(list)) = cid.get(b"W").map(|o| resolved(document, o)) else {
            return widths;
        };
        let mut i = 0;
        while i < list.len() && widths.by_code.len() < MAX_WIDTHS {
            let first = number(resolved(document, &list[i])) as u32;
            match list.get(i + 1).map(|o| resolved(document, o)) {
                // `c [w1 w2 ...]`
                Some(Object::Array(run)) => {
                    for (k, width) in run.iter().enumerate().take(MAX_WIDTHS) {
                        let code = first.saturating_add(k as u32);
                        widths
                            .by_code
                            .insert(code, number(resolved(document, width)));
                    }
                    i += 2;
                }
                // `c_first c_last w`
                Some(last) => {
                    let last = (number(last) as u32).min(first.saturating_add(MAX_WIDTHS as u32));
                    let width = list
                        .get(i + 2)
                        .map_or(widths.default, |o| number(resolved(document, o)));
                    for code in first..=last {
                        widths.by_code.insert(code, width);
                    }
                    i += 3;
                }
                None => break,
            }
        }
        widths
    }

    fn codes<'b>(&self, bytes: &'b [u8]) -> impl Iterator<Item = u32> + 'b {
        let two_byte = self.two_byte;
        let step = if two_byte { 2 } else { 1 };
        bytes.chunks(step).map(move |chunk| {
            if two_byte {
                (u32::from(chunk[0]) << 8) | u32::from(chunk.get(1).copied().unwrap_or(0))
            } else {
                u32::from(chunk[0])
            }
        })
    }
}

/// The text being written, with the position where the last string ended.
struct Page {
    out: String,
    last_end: Option<(f32, f32)>,
}

impl Page {
    fn separate(&mut self, separator: char) {
        if self.out.is_empty() {
            return;
        }
        if separator == '\n' {
            while self.out.ends_with(' ') {
                self.out.pop();
            }
            if !self.out.ends_with('\n') {
                self.out.push('\n');
            }
        } else if !self.out.ends_with([' ', '\n']) {
            self.out.push(' ');
        }
    }
}

/// The text of page `page`, its lines ended by `\n`; its content may inflate to `limit`
/// bytes.
pub fn page_text(document: &Document, page: ObjectId, limit: usize) -> lopdf::Result<String> {
    let fonts: BTreeMap<Vec<u8>, (Encoding<'_>, Widths)> = document
        .get_page_fonts(page)?
        .into_iter()
        .filter_map(|(name, font)| {
            let encoding = font.get_font_encoding_with_limit(document, limit).ok()?;
            Some((name, (encoding, Widths::of(document, font))))
        })
        .collect();
    let content = Content::decode(&document.get_page_content_with_limit(page, limit)?)?;
    let mut text = Page {
        out: String::new(),
        last_end: None,
    };
    let mut font: Option<&(Encoding<'_>, Widths)> = None;
    let mut size = 10.0f32;
    // The text matrix's scale (a, d) and the line's origin, in user space; `x` is the advance
    // along the line in text space.
    let (mut a, mut d) = (1.0f32, 1.0f32);
    let (mut line_x, mut line_y, mut x) = (0.0f32, 0.0f32, 0.0f32);
    let (mut char_spacing, mut word_spacing, mut leading, mut scale) = (0.0, 0.0, 0.0, 1.0f32);
    for operation in &content.operations {
        let operands = &operation.operands;
        let arg = |i: usize| operands.get(i).map_or(0.0, number);
        match operation.operator.as_str() {
            "BT" => {
                (a, d, line_x, line_y, x) = (1.0, 1.0, 0.0, 0.0, 0.0);
            }
            "Tf" => {
                font = operands
                    .first()
                    .and_then(|name| name.as_name().ok())
                    .and_then(|name| fonts.get(name));
                size = arg(1).abs().max(0.01);
            }
            "Tc" => char_spacing = arg(0),
            "Tw" => word_spacing = arg(0),
            "Tz" => scale = arg(0) / 100.0,
            "TL" => leading = arg(0),
            "Td" | "TD" => {
                if operation.operator == "TD" {
                    leading = -arg(1);
                }
                line_x += arg(0) * a;
                line_y += arg(1) * d;
                x = 0.0;
            }
            "T*" => {
                line_y -= leading * d;
                x = 0.0;
            }
            "Tm" => {
                a = if arg(0) == 0.0 { 1.0 } else { arg(0) };
                d = if arg(3) == 0.0 { 1.0 } else { arg(3) };
                (line_x, line_y, x) = (arg(4), arg(5), 0.0);
            }
            op @ ("Tj" | "TJ" | "'" | "\"") => {
                if op == "'" || op == "\"" {
                    line_y -= leading * d;
                    x = 0.0;
                }
                let Some((encoding, widths)) = font else {
                    continue;
                };
                let pieces: Vec<&Object> = match (op, operands.last()) {
                    ("TJ", Some(Object::Array(items))) => items.iter().collect(),
                    (_, Some(string @ Object::String(..))) => vec![string],
                    _ => continue,
                };
                for piece in pieces {
                    let Object::String(bytes, _) = piece else {
                        // A `TJ` adjustment, in thousandths of an em, backwards.
                        x -= number(piece) / 1000.0 * size * scale;
                        continue;
                    };
                    let start = (line_x + x * a, line_y);
                    if let Some((end_x, end_y)) = text.last_end {
                        let em = size * a.abs();
                        if (start.1 - end_y).abs() > LINE_SHIFT_EM * size * d.abs() {
                            text.separate('\n');
                        } else if start.0 - end_x > WORD_GAP_EM * em || start.0 - end_x < -em {
                            text.separate(' ');
                        }
                    }
                    // Text that cannot be decoded is left out; its advance still counts.
                    let _ = encoding.write_to_string(bytes, &mut text.out);
                    for code in widths.codes(bytes) {
                        let width = widths.by_code.get(&code).copied().unwrap_or(widths.default);
                        let spacing = if !widths.two_byte && code == 32 {
                            word_spacing
                        } else {
                            0.0
                        };
                        x += (width / 1000.0 * size + char_spacing + spacing) * scale;
                    }
                    text.last_end = Some((line_x + x * a, line_y));
                }
            }
            _ => {}
        }
    }
    text.out.push('\n');
    Ok(text.out)
}
