//! The analysis engine: detects a file's kind, hashes it and runs the analyzer for that kind.
//!
//! `analyze()` is the one entry point used by `--input` and by the daemon. Every analyzer has
//! the same signature, `fn analyze(&Source, &AnalysisOptions, &Progress) -> Result<_, _>`,
//! streams the file through bounded buffers and runs its segments on the current rayon pool.
//! An analyzer never panics on input and never moves or writes files: it only reads.
//!
//! A new kind plugs in here: its analyzer is one file (`analyze/<kind>.rs`) with that
//! `analyze` function and a section type that implements `section::Section` (figure, summary
//! lines, job-page tables); `Details` gets one variant, named as the report field it is
//! written under; `Kind` names it, `Kind::from_extension` maps its extensions, `analyze_as`
//! calls it, and `Details::section` hands out its section (the compiler points at each
//! match). A file it cannot read as its kind fails with `AnalysisError::Invalid`, which the
//! report writes as `invalid_<kind>`.

pub mod archive;
pub mod budget;
pub mod classes;
pub mod compressed;
pub mod csv;
pub mod detect;
pub mod distinct;
pub mod document;
pub mod exact_sum;
pub mod hash;
pub mod isolate;
pub mod json;
pub mod levels;
pub mod rules;
pub mod section;
pub mod segments;
pub mod spreadsheet;
pub mod text;
pub mod tree_hash;

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};

use section::Section;

/// What a file is analysed as (SPEC §4 `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Text,
    Csv,
    Json,
    Archive,
    Spreadsheet,
    Document,
    Binary,
}

/// Names that end like an archive, tested before a compression suffix is peeled off
/// (`logs.tar.gz` is an archive, `app.log.gz` compressed text).
const ARCHIVE_SUFFIXES: [&str; 11] = [
    ".zip", ".jar", ".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.xz", ".txz", ".tar.bz2",
    ".tbz2",
];

impl Kind {
    /// The kind named by the file's extension (case-insensitive), if the extension names one.
    /// A compression suffix is not peeled off here: see `Kind::of_name`.
    pub fn from_extension(path: &Path) -> Option<Kind> {
        // Lossy: a name that is not UTF-8 still has an extension that is.
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if ARCHIVE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
            return Some(Kind::Archive);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" | "tsv" => Kind::Csv,
            "txt" | "log" | "md" => Kind::Text,
            "json" | "ndjson" | "jsonl" => Kind::Json,
            "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => Kind::Spreadsheet,
            "pdf" | "rtf" | "docx" | "odt" => Kind::Document,
            _ => return None,
        })
    }

    /// The kind a file's name says, and the compression to peel off first: `app.log.gz` is
    /// gzip-compressed text, `logs.tar.gz` an archive, `blob.gz` gzip of an unnamed kind.
    pub fn of_name(path: &Path) -> (Option<Kind>, Option<compressed::Compression>) {
        let by_extension = Kind::from_extension(path);
        if by_extension == Some(Kind::Archive) {
            return (by_extension, None);
        }
        let name = path.file_name().map(|name| name.to_string_lossy());
        match name.as_deref().and_then(compressed::Compression::of_name) {
            Some((format, inner)) => (Kind::from_extension(Path::new(inner)), Some(format)),
            None => (by_extension, None),
        }
    }

    /// Every kind, in the order SPEC §4 lists them (`Kind::ALL[kind as usize] == kind`).
    pub const ALL: [Kind; 7] = [
        Kind::Text,
        Kind::Csv,
        Kind::Json,
        Kind::Archive,
        Kind::Spreadsheet,
        Kind::Document,
        Kind::Binary,
    ];

    /// The kind named `name` (as `as_str` writes it).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Csv => "csv",
            Kind::Json => "json",
            Kind::Archive => "archive",
            Kind::Spreadsheet => "spreadsheet",
            Kind::Document => "document",
            Kind::Binary => "binary",
        }
    }
}

/// Settings that shape an analysis; resolved once from the command line.
#[derive(Debug, Clone)]
pub struct AnalysisOptions {
    /// Target size of a parallel segment (cut points move to the next line start).
    pub segment_bytes: u64,
    /// Size of each read buffer; one per running segment.
    pub buffer_bytes: usize,
    /// `--user-column`: the CSV column counted per user, instead of the detected one.
    pub user_column: Option<String>,
    /// `--top`: how many users `top_users` lists.
    pub top_users: usize,
    /// `--max-unpacked-bytes`: the most bytes decompressing one file may yield.
    pub max_unpacked_bytes: u64,
    /// `--max-entries`: the most members an archive may have.
    pub max_entries: u64,
    /// `--max-depth`: 1 the file itself; an archive nested deeper is listed, not analysed.
    pub max_depth: u32,
    /// `--accept` / `--reject`.
    pub rules: rules::TypeRules,
    /// `--job-timeout`: how long one file's analysis may run.
    pub job_timeout: Duration,
    /// This program, to run the parsers that need isolation in a child process
    /// (`isolate`); without it (the unit tests) those formats get no section.
    pub child_binary: Option<PathBuf>,
    /// `--hash`: the content hash the report carries.
    pub hash: hash::HashAlgorithm,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            segment_bytes: 8 << 20,
            buffer_bytes: 256 << 10,
            user_column: None,
            top_users: 10,
            max_unpacked_bytes: 16 << 30,
            max_entries: 100_000,
            max_depth: 2,
            rules: rules::TypeRules::default(),
            job_timeout: Duration::from_secs(600),
            child_binary: None,
            hash: hash::HashAlgorithm::default(),
        }
    }
}

/// Why a file could not be analysed. Stored on the job and written to its error report; the
/// program always goes on. `Unavailable` is the machine's fault, not the file's: the daemon
/// analyses the file again later instead of failing it.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("cannot open the file: {0}")]
    Open(#[source] io::Error),
    #[error("cannot read the file: {0}")]
    Read(#[source] io::Error),
    /// The daemon could not open or read it now (no descriptors or memory left, an
    /// interrupted call): it goes back to the queue, with a log line, and is analysed again.
    #[error("cannot {during} the file: {source}")]
    Unavailable {
        during: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the file got shorter while it was being analysed")]
    Truncated,
    /// The bytes are not a valid file of its kind: `invalid_<kind>`.
    #[error("{message}")]
    Invalid { kind: Kind, message: String },
    #[error("not a regular file")]
    NotRegular,
    #[error("the file kept changing (replaced or written to) while it was being analysed")]
    Changed,
    /// A limit on what a file may cost (`--max-unpacked-bytes`, the compression ratio): the
    /// message names the limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// The type rules refuse the file (`--accept`, `--reject`): the message says why.
    #[error("{0}")]
    Rejected(String),
    /// The analysis ran past `--job-timeout` and was stopped.
    #[error("the analysis ran longer than --job-timeout {} and was stopped", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// A bug in an analyzer (it panicked); the file goes to `failed/` and the daemon goes on.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Errors of the machine, not of the file. EIO is not among them: a bad sector does not heal,
/// and a file retried forever would hold the queue (nothing new is claimed while a job waits).
const TRANSIENT: [i32; 6] = [
    libc_errno::EMFILE,
    libc_errno::ENFILE,
    libc_errno::ENOMEM,
    libc_errno::EAGAIN,
    libc_errno::EINTR,
    libc_errno::ENOBUFS,
];

fn is_transient_io(err: &io::Error) -> bool {
    err.raw_os_error()
        .is_some_and(|code| TRANSIENT.contains(&code))
}

impl AnalysisError {
    /// The file could not be opened: its fault, or (`Unavailable`) the machine's.
    pub fn open(err: io::Error) -> AnalysisError {
        if is_transient_io(&err) {
            AnalysisError::Unavailable {
                during: "open",
                source: err,
            }
        } else {
            AnalysisError::Open(err)
        }
    }

    /// The file could not be read: its fault, or (`Unavailable`) the machine's; or a reader
    /// stopped it at the deadline.
    pub fn read(err: io::Error) -> AnalysisError {
        if let Some(limit) = Deadline::passed_in(&err) {
            AnalysisError::TimedOut(limit)
        } else if is_transient_io(&err) {
            AnalysisError::Unavailable {
                during: "read",
                source: err,
            }
        } else {
            AnalysisError::Read(err)
        }
    }

    /// The bytes are not a valid `kind` file.
    pub fn invalid(kind: Kind, message: impl Into<String>) -> AnalysisError {
        AnalysisError::Invalid {
            kind,
            message: message.into(),
        }
    }

    /// A failure of the machine, not of the file: the file is analysed again later instead
    /// of being failed.
    pub fn is_transient(&self) -> bool {
        matches!(self, AnalysisError::Unavailable { .. })
    }

    /// The stable `error.kind` of a report.
    pub fn kind(&self) -> String {
        match self {
            AnalysisError::Open(_) | AnalysisError::Read(_) | AnalysisError::Unavailable { .. } => {
                "io".to_string()
            }
            AnalysisError::Truncated | AnalysisError::Changed => {
                "changed_during_analysis".to_string()
            }
            AnalysisError::Invalid { kind, .. } => format!("invalid_{}", kind.as_str()),
            AnalysisError::NotRegular => "not_a_regular_file".to_string(),
            AnalysisError::LimitExceeded(_) => "limit_exceeded".to_string(),
            AnalysisError::Rejected(_) => "rejected".to_string(),
            AnalysisError::TimedOut(_) => "timeout".to_string(),
            AnalysisError::Internal(_) => "internal".to_string(),
        }
    }
}

/// The errno values `is_transient` looks for (Linux).
mod libc_errno {
    pub const EINTR: i32 = rustix::io::Errno::INTR.raw_os_error();
    pub const EAGAIN: i32 = rustix::io::Errno::AGAIN.raw_os_error();
    pub const ENOMEM: i32 = rustix::io::Errno::NOMEM.raw_os_error();
    pub const ENFILE: i32 = rustix::io::Errno::NFILE.raw_os_error();
    pub const EMFILE: i32 = rustix::io::Errno::MFILE.raw_os_error();
    pub const ENOBUFS: i32 = rustix::io::Errno::NOBUFS.raw_os_error();
}

/// When one file's analysis must stop (`--job-timeout`). Analyses are stopped cooperatively:
/// every read of the file, every buffer of a segment, every decompressed block and every
/// archive member checks it, so a file stops within one buffer's work of its deadline.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Option<Instant>,
    limit: Duration,
}

/// Carried through `io::Error` by a reader stopped at the deadline.
#[derive(Debug)]
struct Expired(Duration);

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "past the job timeout of {:?}", self.0)
    }
}

impl std::error::Error for Expired {}

impl Deadline {
    /// No deadline.
    pub fn none() -> Deadline {
        Deadline {
            at: None,
            limit: Duration::MAX,
        }
    }

    /// `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(limit),
            limit,
        }
    }

    /// The time left (zero once passed; a long time without a deadline).
    pub fn remaining(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(365 * 24 * 3600),
        }
    }

    /// The `--job-timeout` it stands for.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// `TimedOut` once the deadline has passed.
    pub fn check(&self) -> Result<(), AnalysisError> {
        match self.at {
            Some(at) if Instant::now() >= at => Err(AnalysisError::TimedOut(self.limit)),
            _ => Ok(()),
        }
    }

    /// As `check`, for readers: an `io::Error` that `AnalysisError::read` turns back into
    /// `TimedOut`.
    pub fn check_io(&self) -> io::Result<()> {
        match self.at {
            Some(at) if Instant::now() >= at => Err(io::Error::other(Expired(self.limit))),
            _ => Ok(()),
        }
    }

    /// The limit, when `err` is a reader's stop at the deadline (at any depth of wrapping).
    pub fn passed_in(err: &io::Error) -> Option<Duration> {
        let mut inner: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
        while let Some(error) = inner {
            if let Some(Expired(limit)) = error.downcast_ref::<Expired>() {
                return Some(*limit);
            }
            inner = match error.downcast_ref::<io::Error>() {
                Some(io) => io.get_ref().map(|e| e as _),
                None => error.source(),
            };
        }
        None
    }
}

/// Segments done out of segments planned, readable from any thread while an analysis runs.
pub struct Progress {
    total: AtomicU64,
    done: AtomicU64,
    on_change: Option<Box<dyn Fn(u64, u64) + Send + Sync>>,
}

impl Progress {
    pub fn silent() -> Self {
        Progress {
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            on_change: None,
        }
    }

    /// Calls `on_change(done, total)` after every change.
    pub fn with_callback(on_change: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        Progress {
            on_change: Some(Box::new(on_change)),
            ..Progress::silent()
        }
    }

    pub fn start(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.notify();
    }

    pub fn advance(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.notify();
    }

    /// `(done, total)`.
    pub fn get(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    fn notify(&self) {
        if let Some(on_change) = &self.on_change {
            let (done, total) = self.get();
            on_change(done, total);
        }
    }
}

/// An open file under analysis, with the size measured when it was opened.
pub struct Source {
    pub file: File,
    pub len: u64,
    pub path: PathBuf,
    /// When its analysis must stop; every reader of the file checks it.
    pub deadline: Deadline,
    /// A small file's bytes, read once when it was opened: every reader (signature, analysis,
    /// hash) is served from here, so a burst of small files costs one `pread` each, not one
    /// per reader. `None` for a larger file, which is read in buffers as it is analysed.
    held: Option<Box<[u8]>>,
    /// What `fstat` said of the open file.
    pub metadata: std::fs::Metadata,
}

/// Files up to this size are read whole when they are opened ([`Source::read_at`]).
pub const HELD_BYTES: u64 = 64 << 10;

impl Source {
    pub fn open(path: &Path) -> Result<Source, AnalysisError> {
        // Non-blocking, so that a FIFO swapped in for the file cannot hang the open; no
        // following of links, so that a link swapped in cannot point the analysis elsewhere.
        let file = File::options()
            .read(true)
            .custom_flags((OFlags::NONBLOCK | OFlags::NOFOLLOW).bits() as i32)
            .open(path)
            .map_err(AnalysisError::open)?;
        Source::of_file(file, path)
    }

    /// The source of a file already open: it must be a regular file. A small one is read whole
    /// now; if that read falls short (the file shrank) or fails, nothing is held and every
    /// reader meets the same condition on its own, as for a large file.
    pub fn of_file(file: File, path: &Path) -> Result<Source, AnalysisError> {
        let metadata = file.metadata().map_err(AnalysisError::open)?;
        if !metadata.is_file() {
            return Err(AnalysisError::NotRegular);
        }
        let len = metadata.len();
        let held = (len > 0 && len <= HELD_BYTES)
            .then(|| {
                let mut bytes = vec![0u8; len as usize].into_boxed_slice();
                segments::read_exact_at(&file, &mut bytes, 0)
                    .ok()
                    .map(|_| bytes)
            })
            .flatten();
        Ok(Source {
            file,
            len,
            path: path.to_path_buf(),
            deadline: Deadline::none(),
            held,
            metadata,
        })
    }

    /// Reads at `offset` into `buf` like `pread`: from the bytes held for a small file, else
    /// from the file. Never past `len` for a held file (0 there, as at the end of a file).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        match &self.held {
            Some(bytes) => {
                let start = offset.min(bytes.len() as u64) as usize;
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                Ok(n)
            }
            None => self.file.read_at(buf, offset),
        }
    }

    /// Whether the file's bytes were read whole when it was opened.
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

impl Source {
    /// Worth spreading over the pool: more than one segment. A smaller file is analysed on the
    /// calling thread, where handing work to the pool would cost more than the work itself.
    pub fn is_large(&self, options: &AnalysisOptions) -> bool {
        self.len > options.segment_bytes
    }
}

/// Starts the pool the analyzers run a large file's segments on: `threads` rayon threads,
/// named `analyze-N`. Called once, by either mode, before the first analysis.
pub fn start_pool(threads: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("analyze-{i}"))
        .build_global()
}

/// `rayon::join` for a large file; for a small one, `a` then `b` on the calling thread.
pub(crate) fn join<A, B, RA, RB>(parallel: bool, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if parallel {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// The per-kind section of a report: each variant is written under its own field, the
/// variant's name in lower case (`text`, `csv`, `json`: the SPEC's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Details {
    Text(text::TextReport),
    Csv(csv::CsvReport),
    Json(json::JsonReport),
    Archive(Box<archive::ArchiveReport>),
    Spreadsheet(spreadsheet::SpreadsheetReport),
    Document(document::DocumentReport),
}

impl Details {
    /// Its section, for the figure, summary lines and tables every kind provides.
    pub fn section(&self) -> &dyn Section {
        match self {
            Details::Text(text) => text,
            Details::Csv(csv) => csv,
            Details::Json(json) => json,
            Details::Archive(archive) => &**archive,
            Details::Spreadsheet(spreadsheet) => spreadsheet,
            Details::Document(document) => document,
        }
    }

    /// The section of a report read back as JSON, when it has one that reads as its kind's
    /// (a report is data anyone may have written: anything else is no section).
    pub fn of_report(report: &serde_json::Value) -> Option<Details> {
        #[derive(Deserialize)]
        struct Sections {
            #[serde(flatten)]
            details: Option<Details>,
        }
        Sections::deserialize(report).ok().and_then(|s| s.details)
    }

    pub fn section_mut(&mut self) -> &mut dyn Section {
        match self {
            Details::Text(text) => text,
            Details::Csv(csv) => csv,
            Details::Json(json) => json,
            Details::Archive(archive) => &mut **archive,
            Details::Spreadsheet(spreadsheet) => spreadsheet,
            Details::Document(document) => document,
        }
    }
}

/// Everything an analysis found; `details` holds the error when the file could not be
/// analysed as its kind, while size and hash are still known. Binary files (and kinds
/// without an analyzer yet) complete with size and hash only: no details.
#[derive(Debug)]
pub struct Analysis {
    pub kind: Kind,
    /// What the first bytes say the file is (`None` when it could not be opened).
    pub detected: Option<String>,
    pub size_bytes: u64,
    /// `--hash`'s hash of the file as stored.
    pub hash: hash::ContentHash,
    /// For a compressed file: its format and both sizes.
    pub compression: Option<compressed::CompressionReport>,
    pub details: Result<Option<Details>, AnalysisError>,
}

/// Analyses the file at `path`. For a large file, hash and kind analysis run side by side and
/// its segments in parallel on the rayon pool; a small one is analysed on the calling thread.
/// The type rules and the extension's promise are judged first, from the name and the content
/// signature: a refused file is neither hashed nor analysed.
pub fn analyze(path: &Path, options: &AnalysisOptions, progress: &Progress) -> Analysis {
    analyze_noting(path, options, progress, &mut None)
}

/// [`analyze`], noting in `opened` what `fstat` said of the file it opened (left alone when
/// it could not be opened): the daemon compares it with the path afterwards, to tell whether
/// the file changed during its analysis, without a `stat` of its own before.
pub fn analyze_noting(
    path: &Path,
    options: &AnalysisOptions,
    progress: &Progress,
    opened: &mut Option<std::fs::Metadata>,
) -> Analysis {
    match Source::open(path) {
        Ok(source) => {
            *opened = Some(source.metadata.clone());
            analyze_open(path, source, options, progress)
        }
        Err(err) => Analysis {
            kind: Kind::of_name(path).0.unwrap_or(Kind::Binary),
            detected: None,
            size_bytes: 0,
            hash: hash::ContentHash::missing(options.hash),
            compression: None,
            details: Err(err),
        },
    }
}

/// The analysis of the file at `path`, open as `source`.
fn analyze_open(
    path: &Path,
    mut source: Source,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Analysis {
    let (by_name, compression) = Kind::of_name(path);
    // A signature reads a few KiB: it is taken before the deadline starts to count.
    let signature = detect::detect(&source);
    source.deadline = Deadline::after(options.job_timeout);
    if let Err(refusal) = options.rules.judge(path, &signature) {
        progress.start(1);
        progress.advance();
        return Analysis {
            kind: by_name.unwrap_or(Kind::Binary),
            detected: Some(signature.name()),
            size_bytes: source.len,
            hash: hash::ContentHash::missing(options.hash),
            compression: None,
            details: Err(AnalysisError::Rejected(refusal.to_string())),
        };
    }
    let broken_promise = rules::promise_kept(path, &signature).err();
    // A compressed file or an archive is one stream, on one thread: its hash runs beside it
    // whatever its size.
    let parallel =
        source.is_large(options) || compression.is_some() || by_name == Some(Kind::Archive);
    // BLAKE3 of a text file is gathered from the analysis's own reads: one read of the file.
    let shares_reads = options.hash == hash::HashAlgorithm::Blake3
        && broken_promise.is_none()
        && compression.is_none()
        && matches!(by_name, Some(Kind::Text) | None);
    let (digest, outcome) = if shares_reads {
        let tree = tree_hash::TreeHash::new(source.len);
        let (kind, details) = analyze_as(by_name, &source, options, progress, Some(&tree));
        // A file that could not be read through has no hash, as when hashing on its own.
        let digest = match details {
            Ok(_) => tree.finish(&source).map(Some),
            Err(_) => Ok(None),
        };
        let outcome = compressed::Outcome {
            kind,
            details,
            compression: None,
        };
        (digest, outcome)
    } else {
        join(
            parallel,
            || hash::digest(&source, options.hash),
            || match (broken_promise, compression) {
                (Some(err), _) => compressed::Outcome {
                    kind: by_name.unwrap_or(Kind::Binary),
                    details: Err(err),
                    compression: None,
                },
                (None, Some(format)) => {
                    compressed::analyze(&source, format, by_name, options, progress)
                }
                (None, None) => {
                    let (kind, details) = analyze_as(by_name, &source, options, progress, None);
                    compressed::Outcome {
                        kind,
                        details,
                        compression: None,
                    }
                }
            },
        )
    };
    let compressed::Outcome {
        kind,
        details,
        compression,
    } = outcome;
    let (hex, details) = match (digest, details) {
        (Ok(hex), details) => (hex, details),
        // Stopped at the deadline, the analysis says so, whichever side noticed first.
        (Err(err @ AnalysisError::TimedOut(_)), _) | (_, Err(err @ AnalysisError::TimedOut(_))) => {
            (None, Err(err))
        }
        // A read failure while hashing makes the whole analysis fail, even if the analyzer
        // itself got through.
        (Err(err), _) => (None, Err(err)),
    };
    Analysis {
        kind,
        detected: Some(signature.name()),
        size_bytes: source.len,
        hash: hash::ContentHash {
            algorithm: options.hash,
            hex,
        },
        compression,
        details,
    }
}

/// The analysis of `source` as the kind its name gives (`None`: text or binary, by its
/// bytes); text feeds `tree` the bytes it reads, when given one.
fn analyze_as(
    by_extension: Option<Kind>,
    source: &Source,
    options: &AnalysisOptions,
    progress: &Progress,
    tree: Option<&tree_hash::TreeHash>,
) -> (Kind, Result<Option<Details>, AnalysisError>) {
    let details = match by_extension {
        Some(Kind::Text) => {
            text::analyze_hashing(source, options, progress, tree).map(Details::Text)
        }
        Some(Kind::Csv) => csv::analyze(source, options, progress).map(Details::Csv),
        Some(Kind::Json) => json::analyze(source, options, progress).map(Details::Json),
        Some(Kind::Archive) => {
            let report = archive::analyze(source, options, progress);
            let details = report.map(|report| report.map(|r| Details::Archive(Box::new(r))));
            return (Kind::Archive, details);
        }
        Some(Kind::Spreadsheet) => {
            let report = spreadsheet::analyze(source, options, progress);
            return (
                Kind::Spreadsheet,
                report.map(|r| r.map(Details::Spreadsheet)),
            );
        }
        Some(Kind::Document) => {
            let report = document::analyze(source, options, progress);
            return (Kind::Document, report.map(|r| r.map(Details::Document)));
        }
        Some(Kind::Binary) => {
            progress.start(1);
            progress.advance();
            return (Kind::Binary, Ok(None));
        }
        // No telling extension: text when the bytes are valid UTF-8, else binary.
        None => {
            return match text::analyze_hashing(source, options, progress, tree) {
                Ok(report) if text::is_utf8(&report) => {
                    (Kind::Text, Ok(Some(Details::Text(report))))
                }
                Ok(_) => (Kind::Binary, Ok(None)),
                Err(err) => (Kind::Binary, Err(err)),
            };
        }
    };
    (by_extension.unwrap_or(Kind::Binary), details.map(Some))
}

/// The analysis a child process runs (`isolate::child_main`): the parsers that must not run
/// in the daemon's own process, picked by the file's extension.
pub fn analyze_in_child(
    source: &Source,
    options: &AnalysisOptions,
) -> Result<Option<Details>, AnalysisError> {
    match Kind::of_name(&source.path) {
        (Some(Kind::Spreadsheet), None) => {
            spreadsheet::analyze_whole(source, options).map(|r| r.map(Details::Spreadsheet))
        }
        (Some(Kind::Document), None) => {
            document::analyze_pdf(source).map(|r| r.map(Details::Document))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Source;
    use std::io::Write;

    /// An in-memory-like source backed by an anonymous temp file.
    pub fn source_with(data: &[u8]) -> Source {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(data).expect("write temp file");
        Source {
            metadata: file.metadata().expect("fstat"),
            file,
            len: data.len() as u64,
            path: "test-data".into(),
            deadline: super::Deadline::none(),
            held: None,
        }
    }

    /// The same, read whole as a small file is when it is opened.
    pub fn held_source_with(data: &[u8]) -> Source {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(data).expect("write temp file");
        let source = Source::of_file(file, "test-data".as_ref()).expect("a regular file");
        assert_eq!(
            source.is_held(),
            !data.is_empty() && data.len() as u64 <= super::HELD_BYTES
        );
        source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_faults_are_transient_and_bad_files_are_not() {
        let os = |errno: rustix::io::Errno| std::io::Error::from_raw_os_error(errno.raw_os_error());
        for errno in [
            rustix::io::Errno::MFILE,
            rustix::io::Errno::NFILE,
            rustix::io::Errno::NOMEM,
        ] {
            assert!(AnalysisError::open(os(errno)).is_transient(), "{errno:?}");
            assert!(AnalysisError::read(os(errno)).is_transient(), "{errno:?}");
        }
        assert!(!AnalysisError::read(os(rustix::io::Errno::IO)).is_transient());
        assert!(!AnalysisError::open(os(rustix::io::Errno::NOENT)).is_transient());
        assert!(!AnalysisError::invalid(Kind::Json, "x").is_transient());
        assert_eq!(AnalysisError::invalid(Kind::Csv, "x").kind(), "invalid_csv");
        assert_eq!(AnalysisError::read(os(rustix::io::Errno::IO)).kind(), "io");
    }
    use proptest::prelude::*;

    /// Random bytes, with the bytes that structure CSV, JSON and text (quotes, commas, line
    /// ends, brackets, letters, spaces) drawn often enough to form records and lines.
    fn structured_bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(b'"'),
                Just(b','),
                Just(b'\n'),
                Just(b'\r'),
                Just(b'{'),
                Just(b'['),
                Just(b'a'),
                Just(b' '),
            ],
            len,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any bytes, under any extension, give a result or an error: never a panic.
        #[test]
        fn hostile_bytes_never_panic(
            data in structured_bytes(0..600),
            extension in prop::sample::select(vec![
                "csv", "tsv", "json", "ndjson", "txt", "bin", "csv.gz", "log.zst", "json.xz",
                "txt.bz2", "gz", "tar.gz", "zip", "xlsx", "xlsb", "ods", "xls", "pdf", "docx",
                "odt", "rtf",
            ]),
            segment_bytes in 1u64..64,
        ) {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join(format!("input.{extension}"));
            std::fs::write(&path, &data).expect("write");
            let options = AnalysisOptions { segment_bytes, buffer_bytes: 7, ..AnalysisOptions::default() };
            let analysis = analyze(&path, &options, &Progress::silent());
            prop_assert_eq!(analysis.size_bytes, data.len() as u64);
            prop_assert!(analysis.hash.hex.is_some());
        }

        /// A compressed file's section is the one its plain bytes get: the stream analyzers
        /// (one thread, any buffer boundary) agree with the segmented ones.
        #[test]
        fn a_compressed_file_reads_as_its_plain_bytes(
            data in structured_bytes(0..600),
            kind in prop::sample::select(vec!["csv", "tsv", "log", "ndjson"]),
            format in prop::sample::select(vec!["gz", "zst", "xz", "bz2"]),
            segment_bytes in 1u64..64,
        ) {
            let dir = tempfile::tempdir().expect("temp dir");
            let plain = dir.path().join(format!("plain.{kind}"));
            std::fs::write(&plain, &data).expect("write");
            let packed = dir.path().join(format!("packed.{kind}.{format}"));
            std::fs::write(&packed, compress(&data, format)).expect("write");
            let options = AnalysisOptions { segment_bytes, buffer_bytes: 7, ..AnalysisOptions::default() };
            let want = analyze(&plain, &options, &Progress::silent());
            let got = analyze(&packed, &options, &Progress::silent());
            prop_assert_eq!(got.kind, want.kind);
            match (&got.details, &want.details) {
                (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
                (Err(got), Err(want)) => prop_assert_eq!(got.kind(), want.kind()),
                (got, want) => prop_assert!(false, "{got:?} against {want:?}"),
            }
            let compression = got.compression.expect("a compression section");
            prop_assert_eq!(compression.unpacked_bytes, data.len() as u64);
        }

        /// A small file read whole when it is opened gets the same analysis, signature and
        /// hash as when every reader reads the file itself.
        #[test]
        fn a_small_file_read_whole_is_analysed_as_one_read_in_buffers(
            data in structured_bytes(1..3000),
            extension in prop::sample::select(vec![
                "csv", "json", "ndjson", "log", "bin", "csv.gz", "zip", "xlsx", "pdf",
            ]),
            hash in prop::sample::select(vec![
                hash::HashAlgorithm::Sha256, hash::HashAlgorithm::Blake3,
            ]),
            segment_bytes in 1u64..4000,
        ) {
            let options = AnalysisOptions {
                segment_bytes,
                buffer_bytes: 61,
                hash,
                ..AnalysisOptions::default()
            };
            let path = Path::new("input").with_extension(extension);
            let analyse = |source| analyze_open(&path, source, &options, &Progress::silent());
            let held = analyse(testing::held_source_with(&data));
            let read = analyse(testing::source_with(&data));
            prop_assert_eq!(&held.kind, &read.kind);
            prop_assert_eq!(&held.detected, &read.detected);
            prop_assert_eq!(&held.hash.hex, &read.hash.hex);
            match (&held.details, &read.details) {
                (Ok(held), Ok(read)) => prop_assert_eq!(held, read),
                (Err(held), Err(read)) => prop_assert_eq!(held.to_string(), read.to_string()),
                (held, read) => prop_assert!(false, "{held:?} against {read:?}"),
            }
        }
    }

    #[test]
    fn only_small_files_are_read_whole_and_a_read_stops_at_their_end() {
        let small = testing::held_source_with(b"abc\n");
        let mut buf = [0u8; 8];
        assert_eq!(small.read_at(&mut buf, 1).expect("read"), 3);
        assert_eq!(&buf[..3], b"bc\n");
        assert_eq!(small.read_at(&mut buf, 4).expect("read"), 0);
        assert_eq!(small.read_at(&mut buf, 99).expect("read"), 0);
        assert!(matches!(
            small.read_exact_at(&mut buf, 0),
            Err(AnalysisError::Truncated)
        ));
        let large = vec![b'x'; HELD_BYTES as usize + 1];
        assert!(!testing::held_source_with(&large).is_held());
        assert!(!testing::held_source_with(b"").is_held());
    }

    fn compress(data: &[u8], format: &str) -> Vec<u8> {
        use std::io::Write;
        match format {
            "gz" => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(data).expect("gzip");
                encoder.finish().expect("gzip")
            }
            "zst" => zstd::encode_all(data, 1).expect("zstd"),
            "xz" => {
                let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
                encoder.write_all(data).expect("xz");
                encoder.finish().expect("xz")
            }
            _ => {
                let mut encoder =
                    bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                encoder.write_all(data).expect("bzip2");
                encoder.finish().expect("bzip2")
            }
        }
    }

    /// Every kind, plain, compressed or in an archive, stops at its deadline: with one already
    /// passed, each fails with `timeout`; with the default, each completes.
    #[test]
    fn every_kind_of_analysis_stops_at_its_deadline() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("temp dir");
        let csv: Vec<u8> = (0..2000)
            .flat_map(|i| format!("u{i},{i}\n").into_bytes())
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&csv).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let mut zip = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("a.csv", ::zip::write::SimpleFileOptions::default())
            .expect("zip");
        zip.write_all(&csv).expect("zip");
        let zip = zip.finish().expect("zip").into_inner();
        let mut tar = ::tar::Builder::new(Vec::new());
        let mut header = ::tar::Header::new_gnu();
        header.set_size(csv.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "a.csv", csv.as_slice())
            .expect("tar");
        let tar = tar.into_inner().expect("tar");
        let files: [(&str, &[u8]); 8] = [
            ("a.log", &csv),
            ("a.csv", &csv),
            ("a.json", b"{\"a\": [1, 2, 3]}"),
            ("a.csv.gz", &gz),
            (
                "a.log.zst",
                &zstd::encode_all(csv.as_slice(), 1).expect("zstd"),
            ),
            ("a.zip", &zip),
            ("a.tar", &tar),
            ("a.bin", b"\x00\x01\x02"),
        ];
        for (name, bytes) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let passed = AnalysisOptions {
                job_timeout: Duration::from_nanos(1),
                ..AnalysisOptions::default()
            };
            let stopped = analyze(&path, &passed, &Progress::silent());
            let err = stopped.details.expect_err(name);
            assert_eq!(err.kind(), "timeout", "{name}: {err}");
            assert!(err.to_string().contains("--job-timeout 1ns"), "{err}");
            let done = analyze(&path, &AnalysisOptions::default(), &Progress::silent());
            assert!(done.details.is_ok(), "{name}: {:?}", done.details);
        }
    }

    #[test]
    fn a_fifo_or_a_link_is_refused_at_once_not_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("swapped.csv");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        // With no writer, a blocking open would hang here forever.
        let analysis = analyze(&fifo, &AnalysisOptions::default(), &Progress::silent());
        let err = analysis.details.expect_err("a FIFO is not analysed");
        assert_eq!(err.kind(), "not_a_regular_file");

        let target = dir.path().join("real.txt");
        std::fs::write(&target, "x\n").expect("write");
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let analysis = analyze(&link, &AnalysisOptions::default(), &Progress::silent());
        assert_eq!(analysis.details.expect_err("not followed").kind(), "io");
    }

    #[test]
    fn kind_by_extension_is_case_insensitive() {
        let table = [
            ("a.CSV", Some(Kind::Csv)),
            ("a.tsv", Some(Kind::Csv)),
            ("a.log", Some(Kind::Text)),
            ("a.Md", Some(Kind::Text)),
            ("a.jsonl", Some(Kind::Json)),
            ("a.ndjson", Some(Kind::Json)),
            ("a.ods", Some(Kind::Spreadsheet)),
            ("a.XLSM", Some(Kind::Spreadsheet)),
            ("a.pdf", Some(Kind::Document)),
            ("a.docx", Some(Kind::Document)),
            ("a.zip", Some(Kind::Archive)),
            ("a.tar.gz", Some(Kind::Archive)),
            ("a.TGZ", Some(Kind::Archive)),
            ("a.log.gz", None),
            ("a.bin", None),
            ("noext", None),
        ];
        for (name, want) in table {
            assert_eq!(Kind::from_extension(Path::new(name)), want, "{name}");
        }
        // A name that is not UTF-8 still has its extension.
        use std::os::unix::ffi::OsStrExt;
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.json");
        assert_eq!(Kind::from_extension(Path::new(latin1)), Some(Kind::Json));
        assert_eq!(Kind::of_name(Path::new(latin1)), (Some(Kind::Json), None));
    }

    #[test]
    fn hashes_of_known_input() {
        let source = testing::source_with(b"abc");
        let of = |algorithm| hash::digest(&source, algorithm).expect("hash");
        assert_eq!(
            of(hash::HashAlgorithm::Sha256).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        // BLAKE3's own test vector for "abc".
        assert_eq!(
            of(hash::HashAlgorithm::Blake3).as_deref(),
            Some("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85")
        );
        assert_eq!(of(hash::HashAlgorithm::None), None);
    }

    #[test]
    fn unknown_extension_is_text_when_utf8_else_binary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = dir.path().join("notes");
        std::fs::write(&text, "hello world\n").expect("write");
        let binary = dir.path().join("blob.bin");
        std::fs::write(&binary, b"\x00\xff\xfe\x01").expect("write");
        let options = AnalysisOptions::default();
        let text_result = analyze(&text, &options, &Progress::silent());
        assert_eq!(text_result.kind, Kind::Text);
        let binary_result = analyze(&binary, &options, &Progress::silent());
        assert_eq!(binary_result.kind, Kind::Binary);
        assert!(matches!(binary_result.details, Ok(None)));
        assert_eq!(binary_result.size_bytes, 4);
    }
}
