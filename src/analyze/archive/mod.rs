//! Archives (SPEC §4.1): zip, and tar plain or compressed with gzip, zstd, xz or bzip2. Nothing is
//! extracted: each member is streamed through the same analyzers as a top-level file (text,
//! CSV, JSON; a compressed member is decompressed first; an archive inside is analysed in turn
//! down to `--max-depth`), and the report lists the members with their sections, the kinds and
//! the totals.
//!
//! A member's name is reported as stored and never used as a path. A link is listed, never
//! followed. What the archive may cost is bounded: `--max-entries` members, every byte
//! decompressed at every layer against `--max-unpacked-bytes`, and the 1,000:1 ratio of each
//! compressed stream; past any of them the file fails with `limit_exceeded`. Data that cannot be
//! read as the archive it claims to be fails it with `invalid_archive`; a member whose own
//! analysis fails (bad JSON, say) is `failed` in the list, and the archive still completes.
//! Zip members are independent: they are analysed in parallel, each through its own handle.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

mod tar;
mod zip;

use tar::{read_tar, tar_format};
pub(crate) use zip::open_checked;
use zip::read_zip;

use super::detect::PositionedReader;

use super::compressed::{self, Budget};
use super::section::{Figure, Grid, Section, Table, fact};
use super::{AnalysisError, AnalysisOptions, Details, Kind, Progress, Source};
use crate::job::ErrorInfo;

/// Members listed in a report; the others are counted.
pub const MAX_LISTED_MEMBERS: usize = 1_000;

/// A zip inside an archive is opened in memory up to this size; a larger one is skipped.
const MAX_NESTED_ZIP_BYTES: u64 = 32 << 20;

/// A nested zip's bytes, read once and shared by the handles its members are read through.
#[derive(Clone)]
struct SharedBytes(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Longest member name kept in a report; a longer one is cut and ends in `…`.
const MAX_NAME_BYTES: usize = 1024;

/// The `archive` section of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveReport {
    /// `tar`, `tar.gz`, `tar.zst`, `tar.xz`, `tar.bz2` (`zip` later).
    pub format: String,
    /// Every member, folders and links included.
    pub entries: u64,
    /// Regular-file members.
    pub files: u64,
    /// The files' real sizes, summed.
    pub unpacked_bytes: u64,
    /// Members not analysed because encrypted.
    pub encrypted: u64,
    /// Files per kind.
    pub kinds: BTreeMap<String, u64>,
    pub totals: Totals,
    pub members: Vec<Member>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub members_truncated: bool,
}

impl ArchiveReport {
    /// A report of `format` with nothing in it yet.
    pub(super) fn empty(format: &str) -> ArchiveReport {
        ArchiveReport {
            format: format.to_string(),
            entries: 0,
            files: 0,
            unpacked_bytes: 0,
            encrypted: 0,
            kinds: BTreeMap::new(),
            totals: Totals::default(),
            members: Vec::new(),
            members_truncated: false,
        }
    }
}

/// Sums over the members analysed, at every depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Lines and words of the text members.
    pub lines: u64,
    pub words: u64,
    /// Rows of the CSV members.
    pub rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    Completed,
    Failed,
    Skipped,
}

/// One member as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// As stored (lossy where it is not UTF-8; cut past 1 KiB).
    pub name: String,
    pub size_bytes: u64,
    /// The kind it was analysed as; `folder`, `symlink` or `link` for what is not a file.
    pub kind: String,
    pub status: MemberStatus,
    /// Why a member was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A compressed member's format and sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<compressed::CompressionReport>,
    /// Its kind's section, under the same name as for a top-level file.
    #[serde(flatten)]
    pub details: Option<Details>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// What every member's analysis shares.
pub(super) struct Context<'a> {
    options: &'a AnalysisOptions,
    budget: &'a Budget,
    max_entries: u64,
    max_depth: u32,
}

/// Analyses `source` as an archive; `Ok(None)` for a format not read yet (zip).
pub fn analyze(
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Result<Option<ArchiveReport>, AnalysisError> {
    let name = source.path.to_string_lossy();
    let budget = Budget::new(options.max_unpacked_bytes, source.deadline);
    let context = Context {
        options,
        budget: &budget,
        max_entries: options.max_entries,
        max_depth: options.max_depth,
    };
    let Some((format, compression)) = tar_format(&name) else {
        // Not a tar: a zip (`.zip`, `.jar`).
        progress.start(1);
        let reader = zip::FileReads(PositionedReader::new(source));
        let report = read_zip(reader, "zip", 1, &context);
        progress.advance();
        return report
            .map(Some)
            .map_err(|err| compressed::fatal(err, "zip"));
    };
    let packed = compressed::file_reader(source, progress);
    let report = match compression {
        Some(compression) => {
            let mut unpacked = compressed::unpack(packed, compression, &budget)
                .map_err(|err| compressed::classify(err, format))?;
            read_tar(&mut unpacked, format, 1, &context)
        }
        None => {
            let mut packed = packed;
            read_tar(&mut packed, format, 1, &context)
        }
    };
    progress.advance();
    report
        .map(Some)
        .map_err(|err| compressed::fatal(err, format))
}

/// A member's name as the report shows it: lossy text, at most `MAX_NAME_BYTES`.
pub(super) fn shown_name(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_NAME_BYTES)];
    let mut name = String::from_utf8_lossy(raw).into_owned();
    if raw.len() == MAX_NAME_BYTES {
        name.push('…');
    }
    name
}

/// Streams one regular-file member through the analyzer its name picks. Errors of the stream
/// (a limit, data that cannot be read) fail the whole file; the member's own analysis failing
/// makes it `failed`.
pub(super) fn analyze_member(
    name: &str,
    size: u64,
    data: &mut dyn Read,
    depth: u32,
    context: &Context,
) -> Result<Member, AnalysisError> {
    let (kind, compression) = Kind::of_name(std::path::Path::new(name));
    let mut member = Member {
        name: name.to_string(),
        size_bytes: size,
        kind: kind.unwrap_or(Kind::Binary).as_str().to_string(),
        status: MemberStatus::Completed,
        reason: None,
        compression: None,
        details: None,
        error: None,
    };
    let outcome = match (kind, compression) {
        (Some(Kind::Archive), _) => match tar_format(name) {
            _ if depth >= context.max_depth => {
                member.status = MemberStatus::Skipped;
                member.reason = Some(format!(
                    "an archive nested {} deep, past --max-depth {}",
                    depth + 1,
                    context.max_depth
                ));
                drain(data)?;
                return Ok(member);
            }
            Some((format, inner)) => {
                let report = match inner {
                    Some(inner) => {
                        let mut unpacked = compressed::unpack(&mut *data, inner, context.budget)
                            .map_err(|err| compressed::classify(err, format))?;
                        read_tar(&mut unpacked, format, depth + 1, context)?
                    }
                    None => read_tar(data, format, depth + 1, context)?,
                };
                member.details = Some(Details::Archive(Box::new(report)));
                return Ok(member);
            }
            // A zip needs its end first: one inside an archive is read into memory, up to a
            // bound, and opened there.
            None if size > MAX_NESTED_ZIP_BYTES => {
                member.status = MemberStatus::Skipped;
                member.reason = Some(format!(
                    "a zip inside an archive is opened up to {} MiB",
                    MAX_NESTED_ZIP_BYTES >> 20
                ));
                drain(data)?;
                return Ok(member);
            }
            None => {
                let mut bytes = Vec::with_capacity(size as usize);
                data.take(MAX_NESTED_ZIP_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(AnalysisError::read)?;
                context
                    .budget
                    .spend(bytes.len() as u64)
                    .map_err(AnalysisError::read)?;
                // Shared by the handles of its members, without a copy (`Arc<[u8]>::from`
                // would copy up to MAX_NESTED_ZIP_BYTES once more).
                let bytes = SharedBytes(std::sync::Arc::new(bytes));
                let report = read_zip(std::io::Cursor::new(bytes), "zip", depth + 1, context)?;
                member.details = Some(Details::Archive(Box::new(report)));
                drain(data)?;
                return Ok(member);
            }
        },
        (kind, Some(format)) => {
            let inner_name = compressed::Compression::of_name(name).map_or(name, |(_, rest)| rest);
            let mut unpacked = compressed::unpack(&mut *data, format, context.budget)
                .map_err(|err| compressed::classify(err, format.as_str()))?;
            let (kind, details) =
                compressed::analyze_stream(kind, inner_name, &mut unpacked, context.options);
            member.compression = Some(compressed::CompressionReport {
                format,
                packed_bytes: size,
                unpacked_bytes: unpacked.yielded(),
            });
            (kind, details)
        }
        (kind, None) => {
            let mut counted = context.budget.count(&mut *data);
            compressed::analyze_stream(kind, name, &mut counted, context.options)
        }
    };
    let (kind, details) = outcome;
    member.kind = kind.as_str().to_string();
    match details {
        Ok(details) => member.details = details,
        Err(err) if is_stream_error(&err) => return Err(err),
        Err(err) => {
            member.status = MemberStatus::Failed;
            member.error = Some(ErrorInfo {
                kind: err.kind(),
                message: err.to_string(),
            });
            drain(data)?;
        }
    }
    Ok(member)
}

/// Errors of the stream itself (they fail the file), as against the content's.
fn is_stream_error(err: &AnalysisError) -> bool {
    matches!(
        err,
        AnalysisError::Read(_)
            | AnalysisError::Unavailable { .. }
            | AnalysisError::LimitExceeded(_)
            | AnalysisError::TimedOut(_)
            | AnalysisError::Invalid {
                kind: Kind::Archive,
                ..
            }
    )
}

/// Reads what a member's analysis left unread (the next header comes after it), still
/// counted against the limits by the layers below.
fn drain(data: &mut dyn Read) -> Result<(), AnalysisError> {
    std::io::copy(data, &mut std::io::sink())
        .map(|_| ())
        .map_err(AnalysisError::read)
}

pub(super) fn add_totals(totals: &mut Totals, member: &Member) {
    match &member.details {
        Some(Details::Text(text)) => {
            totals.lines += text.lines;
            totals.words += text.words;
        }
        Some(Details::Csv(csv)) => totals.rows += csv.rows,
        Some(Details::Archive(inner)) => {
            totals.lines += inner.totals.lines;
            totals.words += inner.totals.words;
            totals.rows += inner.totals.rows;
        }
        _ => {}
    }
}

impl Section for ArchiveReport {
    fn figure(&self) -> Figure {
        Figure {
            value: self.files,
            unit: "files",
        }
    }

    fn summary_lines(&self) -> Vec<String> {
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        vec![
            format!(
                "{} · {} entries · {} files · {} bytes unpacked · {} encrypted",
                self.format, self.entries, self.files, self.unpacked_bytes, self.encrypted
            ),
            format!(
                "kinds: {} · totals: {} lines · {} words · {} rows",
                kinds.join(" · "),
                self.totals.lines,
                self.totals.words,
                self.totals.rows
            ),
        ]
    }

    fn tables(&self) -> Vec<Table> {
        let mut tables = vec![Table::facts(
            "archive",
            "Archive",
            vec![
                fact("format", &self.format),
                fact("entries", self.entries),
                fact("files", self.files),
                fact("unpacked_bytes", self.unpacked_bytes),
                fact("encrypted", self.encrypted),
                fact("lines", self.totals.lines),
                fact("words", self.totals.words),
                fact("rows", self.totals.rows),
            ],
        )];
        if !self.kinds.is_empty() {
            tables.push(Table::bars(
                "kinds",
                "Kinds",
                self.kinds.iter().map(|(kind, n)| (kind.clone(), *n)),
            ));
        }
        let rows = self
            .members
            .iter()
            .map(|member| {
                let headline = member
                    .details
                    .as_ref()
                    .map(|details| details.section().figure().to_string())
                    .or_else(|| member.reason.clone())
                    .or_else(|| {
                        member
                            .error
                            .as_ref()
                            .map(|e| format!("{}: {}", e.kind, e.message))
                    })
                    .unwrap_or_default();
                vec![
                    member.name.clone(),
                    member.size_bytes.to_string(),
                    member.kind.clone(),
                    format!("{:?}", member.status).to_lowercase(),
                    headline,
                ]
            })
            .collect();
        tables.push(Table::grid(
            "members",
            if self.members_truncated {
                "Members (the first 1,000)"
            } else {
                "Members"
            },
            Grid {
                header: vec![
                    ("name", false),
                    ("size", true),
                    ("kind", false),
                    ("status", false),
                    ("", false),
                ],
                rows,
            },
        ));
        tables
    }

    fn longest_list(&self) -> usize {
        self.members.len()
    }

    fn cut_lists(&mut self, share: f64) -> bool {
        if self.members.is_empty() {
            return false;
        }
        let keep = ((self.members.len() as f64 * share) as usize).min(self.members.len() - 1);
        self.members.truncate(keep);
        self.members_truncated = true;
        true
    }
}
