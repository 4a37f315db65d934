//! JSON analysis: a JSON document or a stream of values (NDJSON / JSON Lines).
//!
//! The file is streamed through serde_json without building a value tree: values are skipped
//! with `IgnoredAny`, only object keys are kept (at most [`MAX_KEYS`] distinct). `.ndjson` and
//! `.jsonl` files, and `.json` files holding more than one value, are reported as `lines`, with
//! one record per value; a single document reports the length of a top-level array, else 1.
//! Invalid JSON (or an empty `.json`) fails with `invalid_json` and serde_json's line/column.
//! Nesting deeper than [`MAX_DEPTH`] fails too (serde_json's recursion limit, which `Skip`
//! keeps in force for the values it skips). Keys are kept as a hash plus at most [`MAX_KEY_BYTES`] of their text.

use std::collections::HashSet;
use std::fmt;
use std::io::BufReader;

use std::borrow::Cow;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::section::{Figure, Section, Table, fact};
use super::segments::RangeReader;
use super::{AnalysisError, AnalysisOptions, Kind, Progress, Source};

/// Distinct keys listed in a report.
pub const MAX_KEYS: usize = 100;

/// Deepest nesting of arrays and objects accepted: serde_json's own recursion limit.
pub const MAX_DEPTH: usize = 127;

/// Longest key text kept in a report; a longer key is cut and ends in `…`.
pub const MAX_KEY_BYTES: usize = 256;

/// The `json` section of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct JsonReport {
    /// `document` (one value) or `lines` (a stream of values).
    pub format: Cow<'static, str>,
    /// JSON type of the top-level value(s): `object`, `array`, `string`, `number`, `boolean`,
    /// `null`, or `mixed` when the values of a stream differ.
    pub top_level: Cow<'static, str>,
    /// Values in the stream, elements of a top-level array, or 1.
    pub records: u64,
    /// Keys of the top-level objects (of the array's objects for an array document), in order
    /// of first appearance.
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keys_truncated: bool,
}

impl Section for JsonReport {
    fn figure(&self) -> Figure {
        Figure {
            value: self.records,
            unit: "records",
        }
    }

    fn summary_lines(&self) -> Vec<String> {
        vec![format!(
            "{} · {} · {} records · {} keys",
            self.format,
            self.top_level,
            self.records,
            self.keys.len()
        )]
    }

    fn tables(&self) -> Vec<Table> {
        vec![Table::facts(
            "json",
            "JSON",
            vec![
                fact("format", &self.format),
                fact("top_level", &self.top_level),
                fact("records", self.records),
                fact("keys", self.keys.join(", ")),
            ],
        )]
    }
}

/// Keys collected in first-seen order, bounded.
#[derive(Debug, Default)]
struct KeyList {
    /// Hashes of the whole keys: a key costs 8 bytes here whatever its length.
    seen: HashSet<u64>,
    ordered: Vec<(u64, String)>,
    truncated: bool,
}

impl KeyList {
    fn add(&mut self, key: &str) {
        self.add_hashed(xxhash_rust::xxh3::xxh3_64(key.as_bytes()), || {
            shortened(key)
        });
    }

    fn add_hashed(&mut self, hash: u64, text: impl FnOnce() -> String) {
        if self.seen.contains(&hash) {
            return;
        }
        if self.ordered.len() >= MAX_KEYS {
            self.truncated = true;
            return;
        }
        self.seen.insert(hash);
        self.ordered.push((hash, text()));
    }

    fn absorb(&mut self, other: KeyList) {
        self.truncated |= other.truncated;
        for (hash, key) in other.ordered {
            self.add_hashed(hash, || key);
        }
    }

    fn into_keys(self) -> Vec<String> {
        self.ordered.into_iter().map(|(_, key)| key).collect()
    }
}

/// At most `MAX_KEY_BYTES` of `key`, cut on a character boundary and marked with `…`.
fn shortened(key: &str) -> String {
    if key.len() <= MAX_KEY_BYTES {
        return key.to_string();
    }
    let mut end = MAX_KEY_BYTES;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}

/// A value skipped without being built, nested values included. Unlike `IgnoredAny` (which
/// serde_json skips without recursion but with one byte of memory per level, so that a file of
/// `[` would cost its own size), it goes through `deserialize_any`, so serde_json's recursion
/// limit of 128 levels applies: deeper nesting fails the file as invalid JSON.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// What one value looked like: its type, its keys, and for an array the element count and
/// the keys of its object elements.
#[derive(Debug)]
struct Shape {
    json_type: &'static str,
    keys: KeyList,
    elements: u64,
}

impl Shape {
    fn scalar(json_type: &'static str) -> Self {
        Shape {
            json_type,
            keys: KeyList::default(),
            elements: 0,
        }
    }
}

/// Deserialises a value keeping only its shape. `nested` is false for the top level, whose
/// array elements are themselves inspected for keys (one level deep, no further).
struct ShapeVisitor {
    nested: bool,
}

/// A top-level value.
struct TopShape(Shape);
/// An element of a top-level array.
struct ElementShape(Shape);

impl<'de> Deserialize<'de> for TopShape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ShapeVisitor { nested: false })
            .map(TopShape)
    }
}

impl<'de> Deserialize<'de> for ElementShape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ShapeVisitor { nested: true })
            .map(ElementShape)
    }
}

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::scalar("boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::scalar("number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::scalar("number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::scalar("number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::scalar("string"))
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::scalar("null"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::scalar("object");
        while let Some(key) = map.next_key::<String>()? {
            shape.keys.add(&key);
            map.next_value::<Skip>()?;
        }
        Ok(shape)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::scalar("array");
        if self.nested {
            while seq.next_element::<Skip>()?.is_some() {
                shape.elements += 1;
            }
        } else {
            while let Some(ElementShape(element)) = seq.next_element::<ElementShape>()? {
                shape.elements += 1;
                shape.keys.absorb(element.keys);
            }
        }
        Ok(shape)
    }
}

/// Analyses `source` as JSON.
pub fn analyze(
    source: &Source,
    _options: &AnalysisOptions,
    progress: &Progress,
) -> Result<JsonReport, AnalysisError> {
    progress.start(1);
    let lines_by_name = source
        .path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("ndjson") || ext.eq_ignore_ascii_case("jsonl"));
    let mut reader = RangeReader::new(source, 0, source.len);
    let report = analyze_stream(&mut reader, lines_by_name);
    progress.advance();
    report
}

/// Analyses a stream as JSON: one document, or (`lines_by_name`, or several values) a stream
/// of values.
pub fn analyze_stream(
    reader: &mut dyn std::io::Read,
    lines_by_name: bool,
) -> Result<JsonReport, AnalysisError> {
    let reader = BufReader::with_capacity(256 << 10, reader);
    let stream = serde_json::Deserializer::from_reader(reader).into_iter::<TopShape>();

    let mut values = 0u64;
    let mut top_level: Option<&'static str> = None;
    let mut keys = KeyList::default();
    let mut first_elements = 0u64;
    for item in stream {
        let TopShape(shape) = item.map_err(|err| {
            if err.is_io() {
                AnalysisError::read(err.into())
            } else {
                AnalysisError::invalid(Kind::Json, format!("invalid JSON: {err}"))
            }
        })?;
        values += 1;
        top_level = match top_level {
            None => Some(shape.json_type),
            Some(seen) if seen == shape.json_type => Some(seen),
            Some(_) => Some("mixed"),
        };
        if values == 1 {
            first_elements = shape.elements;
        }
        keys.absorb(shape.keys);
    }

    let is_document = !lines_by_name && values == 1;
    if !lines_by_name && values == 0 {
        return Err(AnalysisError::invalid(
            Kind::Json,
            "invalid JSON: the file holds no JSON value",
        ));
    }
    let records = if is_document {
        if top_level == Some("array") {
            first_elements
        } else {
            1
        }
    } else {
        values
    };
    Ok(JsonReport {
        format: Cow::Borrowed(if is_document { "document" } else { "lines" }),
        top_level: Cow::Borrowed(top_level.unwrap_or("null")),
        records,
        keys_truncated: keys.truncated,
        keys: keys.into_keys(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testing::source_with;

    fn run(name: &str, data: &[u8]) -> Result<JsonReport, AnalysisError> {
        let mut source = source_with(data);
        source.path = name.into();
        analyze(&source, &AnalysisOptions::default(), &Progress::silent())
    }

    #[test]
    fn documents_streams_and_failures() {
        let doc = run(
            "a.json",
            br#"[{"id":1,"tags":{"x":1}},{"id":2,"name":"b"},3]"#,
        )
        .expect("valid document");
        assert_eq!(
            (&*doc.format, &*doc.top_level, doc.records),
            ("document", "array", 3)
        );
        assert_eq!(doc.keys, vec!["id", "tags", "name"]);

        let object = run("a.json", br#"{"b": [1,2], "a": null}"#).expect("object");
        assert_eq!((&*object.top_level, object.records), ("object", 1));
        assert_eq!(object.keys, vec!["b", "a"]);

        let lines = run("a.ndjson", b"{\"a\":1}\n\n{\"b\":2}\n[1]\n").expect("ndjson");
        assert_eq!(
            (&*lines.format, &*lines.top_level, lines.records),
            ("lines", "mixed", 3)
        );

        let empty_lines = run("a.jsonl", b"").expect("empty ndjson");
        assert_eq!(empty_lines.records, 0);

        for (name, data) in [
            ("broken.json", &b"{\"a\": }"[..]),
            ("empty.json", b"  \n"),
            ("bad-line.ndjson", b"{\"a\":1}\n{oops}\n"),
            ("deep.json", &[b'['; 10_000][..]),
        ] {
            let err = run(name, data).expect_err(name);
            assert_eq!(err.kind(), "invalid_json", "{name}");
        }
        let err = run("bad-line.ndjson", b"{\"a\":1}\n{oops}\n").expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn key_list_is_bounded() {
        let body: Vec<String> = (0..MAX_KEYS + 5).map(|i| format!("\"k{i}\":{i}")).collect();
        let data = format!("{{{}}}", body.join(","));
        let got = run("wide.json", data.as_bytes()).expect("wide object");
        assert_eq!(got.keys.len(), MAX_KEYS);
        assert!(got.keys_truncated);
    }

    #[test]
    fn nesting_is_limited_outside_strings_only() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let deepest = run("ok.json", nested(MAX_DEPTH).as_bytes()).expect("128 levels");
        assert_eq!((&*deepest.top_level, deepest.records), ("array", 1));
        let err = run("deep.json", nested(MAX_DEPTH + 1).as_bytes()).expect_err("129 levels");
        assert_eq!(err.kind(), "invalid_json");
        assert!(err.to_string().contains("recursion limit"), "{err}");
        let err = run("deep.json", nested(100_000).as_bytes()).expect_err("100,000 levels");
        assert_eq!(err.kind(), "invalid_json");
        // Brackets inside strings, escaped quotes and backslashes are text, not nesting.
        let text = format!(
            r#"["{}", "a\"[[[", "\\", {{"k[": "{}"}}]"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        let got = run("strings.json", text.as_bytes()).expect("brackets in strings");
        assert_eq!((got.records, got.keys.clone()), (4, vec!["k[".to_string()]));
    }

    #[test]
    fn long_keys_are_cut_and_marked_but_told_apart_whole() {
        let long = |c: char| c.to_string().repeat(3 << 20);
        let data = format!(
            r#"{{"{a}x": 1, "{a}y": 2, "{b}": 3, "{a}x": 4}}"#,
            a = long('a'),
            b = "é".repeat(200)
        );
        let got = run("keys.json", data.as_bytes()).expect("long keys");
        assert_eq!(got.keys.len(), 3, "distinct by the whole key");
        for key in &got.keys {
            assert!(key.len() <= MAX_KEY_BYTES + '…'.len_utf8(), "{}", key.len());
            assert!(key.ends_with('…'));
        }
    }
}
