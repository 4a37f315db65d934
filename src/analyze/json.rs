//! JSON analysis: a JSON document or a stream of values (NDJSON / JSON Lines).
//!
//! The file is streamed through serde_json without building a value tree: values are skipped
//! with `IgnoredAny`, only object keys are kept (at most [`MAX_KEYS`] distinct). `.ndjson` and
//! `.jsonl` files, and `.json` files holding more than one value, are reported as `lines`, with
//! one record per value; a single document reports the length of a top-level array, else 1.
//! Invalid JSON (or an empty `.json`) fails with `invalid_json` and serde_json's line/column.

use std::collections::HashSet;
use std::fmt;
use std::io::BufReader;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::segments::RangeReader;
use super::{AnalysisError, AnalysisOptions, Progress, Source};

/// Distinct keys listed in a report.
pub const MAX_KEYS: usize = 100;

/// The `json` section of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonReport {
    /// `document` (one value) or `lines` (a stream of values).
    pub format: &'static str,
    /// JSON type of the top-level value(s): `object`, `array`, `string`, `number`, `boolean`,
    /// `null`, or `mixed` when the values of a stream differ.
    pub top_level: &'static str,
    /// Values in the stream, elements of a top-level array, or 1.
    pub records: u64,
    /// Keys of the top-level objects (of the array's objects for an array document), in order
    /// of first appearance.
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keys_truncated: bool,
}

/// Keys collected in first-seen order, bounded.
#[derive(Debug, Default)]
struct KeyList {
    seen: HashSet<String>,
    ordered: Vec<String>,
    truncated: bool,
}

impl KeyList {
    fn add(&mut self, key: String) {
        if self.seen.contains(&key) {
            return;
        }
        if self.ordered.len() >= MAX_KEYS {
            self.truncated = true;
            return;
        }
        self.seen.insert(key.clone());
        self.ordered.push(key);
    }

    fn absorb(&mut self, other: KeyList) {
        self.truncated |= other.truncated;
        for key in other.ordered {
            self.add(key);
        }
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
            shape.keys.add(key);
            map.next_value::<IgnoredAny>()?;
        }
        Ok(shape)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::scalar("array");
        if self.nested {
            while seq.next_element::<IgnoredAny>()?.is_some() {
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
    let reader = BufReader::with_capacity(256 << 10, RangeReader::new(&source.file, 0, source.len));
    let stream = serde_json::Deserializer::from_reader(reader).into_iter::<TopShape>();

    let mut values = 0u64;
    let mut top_level: Option<&'static str> = None;
    let mut keys = KeyList::default();
    let mut first_elements = 0u64;
    for item in stream {
        let TopShape(shape) = item.map_err(|err| {
            if err.is_io() {
                AnalysisError::Read(err.into())
            } else {
                AnalysisError::InvalidJson(format!("invalid JSON: {err}"))
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
    progress.advance();

    let is_document = !lines_by_name && values == 1;
    if !lines_by_name && values == 0 {
        return Err(AnalysisError::InvalidJson(
            "invalid JSON: the file holds no JSON value".to_string(),
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
        format: if is_document { "document" } else { "lines" },
        top_level: top_level.unwrap_or("null"),
        records,
        keys: keys.ordered,
        keys_truncated: keys.truncated,
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
            (doc.format, doc.top_level, doc.records),
            ("document", "array", 3)
        );
        assert_eq!(doc.keys, vec!["id", "tags", "name"]);

        let object = run("a.json", br#"{"b": [1,2], "a": null}"#).expect("object");
        assert_eq!((object.top_level, object.records), ("object", 1));
        assert_eq!(object.keys, vec!["b", "a"]);

        let lines = run("a.ndjson", b"{\"a\":1}\n\n{\"b\":2}\n[1]\n").expect("ndjson");
        assert_eq!(
            (lines.format, lines.top_level, lines.records),
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
}
