//! The output side of an analyzer: what its report section shows besides its fields. Each
//! analyzer's section type implements `Section`, and everything downstream (the dashboard's
//! lists, `--input`'s summary, the job page, the report's size limit) asks it through this
//! trait, never by naming the kind.
//!
//! Nothing here reads files or formats HTML: a section hands over figures, lines and tables of
//! plain text, and the templates escape and lay them out.

use std::borrow::Cow;

/// A section's key figure, for a one-line listing: `1,234 rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    pub value: u64,
    /// The plural noun it counts ("lines", "rows", "records").
    pub unit: &'static str,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.value, self.unit)
    }
}

/// One table on the job page: facts (a name and its value per row), bars (a label and a
/// count per row, drawn to scale), or a grid with a header. A table has one of the three.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The element id on the page (tests and scripts find tables by it).
    pub id: Cow<'static, str>,
    pub title: Cow<'static, str>,
    pub facts: Vec<(String, String)>,
    pub bars: Vec<Bar>,
    pub grid: Option<Grid>,
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: u64,
    /// Of the largest value in its table, 0–100.
    pub percent: u64,
}

#[derive(Debug, Clone)]
pub struct Grid {
    /// Column names, each with whether its cells are numbers (aligned right).
    pub header: Vec<(&'static str, bool)>,
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    /// Whether the cells of `column` are numbers.
    pub fn is_numeric(&self, column: usize) -> bool {
        self.header.get(column).is_some_and(|(_, numeric)| *numeric)
    }
}

impl Table {
    pub fn facts(id: &'static str, title: &'static str, facts: Vec<(String, String)>) -> Table {
        Table {
            id: id.into(),
            title: title.into(),
            facts,
            ..Table::default()
        }
    }

    /// Bars scaled to the largest value.
    pub fn bars(
        id: &'static str,
        title: &'static str,
        items: impl IntoIterator<Item = (String, u64)>,
    ) -> Table {
        let items: Vec<(String, u64)> = items.into_iter().collect();
        let most = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let bars = items
            .into_iter()
            .map(|(label, value)| Bar {
                label,
                value,
                percent: value.saturating_mul(100) / most,
            })
            .collect();
        Table {
            id: id.into(),
            title: title.into(),
            bars,
            ..Table::default()
        }
    }

    pub fn grid(id: &'static str, title: &'static str, grid: Grid) -> Table {
        Table {
            id: id.into(),
            title: title.into(),
            grid: Some(grid),
            ..Table::default()
        }
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
            && self.bars.is_empty()
            && self.grid.as_ref().is_none_or(|g| g.rows.is_empty())
    }
}

/// A fact's name as shown: `max_line_bytes` → `max line bytes`.
pub fn fact(name: &str, value: impl ToString) -> (String, String) {
    (name.replace('_', " "), value.to_string())
}

/// An optional value as shown: the value, or a dash.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "—".to_string(), |v| v.to_string())
}

/// A JSON value as table text: strings bare, null as a dash, lists joined.
pub fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "—".to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// What every analyzer's report section provides.
pub trait Section {
    /// Its key figure, for the dashboard's lists.
    fn figure(&self) -> Figure;

    /// A few lines for `--input`'s summary at a terminal (without indentation).
    fn summary_lines(&self) -> Vec<String>;

    /// Its tables on the job page, in order.
    fn tables(&self) -> Vec<Table>;

    /// The length of its longest list: a report whose lists are all short is never measured
    /// against the size limit.
    fn longest_list(&self) -> usize {
        0
    }

    /// Cuts its longest list to `share` (0–1) of its length and flags it cut, so that the
    /// report shrinks toward its size limit; `false` when there is nothing left to cut.
    fn cut_lists(&mut self, _share: f64) -> bool {
        false
    }
}
