//! Compressed single streams (SPEC §4.1): `NAME.gz`, `.zst`, `.xz`, `.bz2` are decompressed as
//! a stream and analysed as the kind `NAME` names, with a `compression` section saying the
//! format and both sizes. Concatenated streams (multi-member gzip, as `logrotate` and
//! `cat a.gz b.gz` make; several zstd frames or xz streams) are read whole.
//!
//! Nothing is written to disk and memory does not follow the data: the decoder's window and a
//! buffer. Two limits keep a hostile stream from costing more than the file is worth: the bytes
//! it yields (`--max-unpacked-bytes`) and its ratio to the bytes consumed (at most 1,000:1),
//! both judged on the real bytes as they come. Either fails the file with `limit_exceeded`;
//! data the decoder cannot read fails it with `invalid_archive`; an error of the file itself
//! is `io` (or, for the machine's sake, `Unavailable`), as for any file.

use std::fmt;
use std::io::{self, BufReader, Read};

use serde::{Deserialize, Serialize};

use super::segments::RangeReader;
use super::{
    AnalysisError, AnalysisOptions, Deadline, Details, Kind, Progress, Source, csv, json, text,
};

/// A compression ratio above this fails the file (SPEC §4.1).
pub const MAX_RATIO: u64 = 1_000;

/// The ratio is judged once this much was unpacked (and at the end of the stream).
const RATIO_FROM_BYTES: u64 = 64 << 10;

/// Packed bytes read per step; progress moves once per `PROGRESS_STEP`.
const READ_BYTES: usize = 256 << 10;
const PROGRESS_STEP: u64 = 1 << 20;

/// A single-stream compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl Compression {
    /// The format a name's last suffix names (case-insensitive), and the name without it.
    pub fn of_name(name: &str) -> Option<(Compression, &str)> {
        let lower = name.to_ascii_lowercase();
        [
            (".gz", Compression::Gzip),
            (".zst", Compression::Zstd),
            (".xz", Compression::Xz),
            (".bz2", Compression::Bzip2),
        ]
        .into_iter()
        .find(|(suffix, _)| lower.ends_with(suffix) && lower.len() > suffix.len())
        .map(|(suffix, format)| (format, &name[..name.len() - suffix.len()]))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// A decoder of every stream concatenated in `packed`.
    fn decoder<'a>(self, packed: impl io::BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(packed)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(packed)?),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(packed)),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(packed)),
        })
    }
}

/// The `compression` section of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionReport {
    pub format: Compression,
    /// The file's size as stored.
    pub packed_bytes: u64,
    /// What it decompressed to.
    pub unpacked_bytes: u64,
}

/// Why a stream was stopped: carried through `io::Error` from the limits to the analysis.
#[derive(Debug)]
struct LimitExceeded(String);

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// An error reading the file itself (not the decoder's): kept apart so that it is reported as
/// the file's `io` error, not as corrupt data.
#[derive(Debug)]
struct FileError(io::Error);

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// An error reading the file itself, tagged so that `classify` reports it as the file's `io`
/// error (or, for the machine's sake, `Unavailable`), never as corrupt data.
pub fn file_error(err: io::Error) -> io::Error {
    io::Error::other(FileError(err))
}

/// The packed side: counts what the decoder consumed, moves the progress, tags file errors.
struct Packed<'a> {
    inner: RangeReader<'a>,
    consumed: u64,
    progress: &'a Progress,
    next_step: u64,
}

impl Read for Packed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .map_err(|err| io::Error::other(FileError(err)))?;
        self.consumed += n as u64;
        while self.consumed >= self.next_step {
            self.progress.advance();
            self.next_step += PROGRESS_STEP;
        }
        Ok(n)
    }
}

/// What all the decompression of one file may yield together (every layer: a `.tar.gz`, a
/// `.log.gz` inside it): `--max-unpacked-bytes`.
/// Every unpacked read passes here, so it also stops the analysis at the file's deadline.
pub struct Budget {
    max_bytes: u64,
    used: std::sync::atomic::AtomicU64,
    deadline: Deadline,
}

impl Budget {
    pub fn new(max_bytes: u64, deadline: Deadline) -> Budget {
        Budget {
            max_bytes,
            used: std::sync::atomic::AtomicU64::new(0),
            deadline,
        }
    }

    /// Stops the analysis once the file's deadline has passed.
    pub fn check_deadline(&self) -> Result<(), AnalysisError> {
        self.deadline.check()
    }

    /// Counts `n` more unpacked bytes; an error once over the limit or past the deadline.
    pub fn spend(&self, n: u64) -> io::Result<()> {
        self.deadline.check_io()?;
        let used = self.used.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if used > self.max_bytes {
            return Err(limit_exceeded(format!(
                "the file unpacks to more than {} bytes, over the --max-unpacked-bytes limit",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

impl Budget {
    /// `inner`'s bytes, counted against this budget as they are read (they are unpacked bytes
    /// too: a plain archive member, a document's part).
    pub fn count<R: Read>(&self, inner: R) -> Spent<'_, R> {
        Spent {
            inner,
            budget: self,
        }
    }
}

/// A reader whose bytes are spent from a `Budget` (and stop at its deadline).
pub struct Spent<'a, R> {
    inner: R,
    budget: &'a Budget,
}

impl<R: Read> Read for Spent<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.spend(n as u64)?;
        Ok(n)
    }
}

/// An `io::Error` that `classify` turns into `AnalysisError::LimitExceeded`.
pub fn limit_exceeded(message: String) -> io::Error {
    io::Error::other(LimitExceeded(message))
}

/// The unpacked side: counts what the decoder yields and stops at either limit.
pub struct Unpacked<'a> {
    decoder: Box<dyn Read + 'a>,
    /// Packed bytes consumed so far (shared with `Packed` through the decoder's reads).
    consumed: Box<dyn Fn() -> u64 + 'a>,
    yielded: u64,
    budget: &'a Budget,
    format: Compression,
}

impl Unpacked<'_> {
    /// Bytes yielded so far.
    pub fn yielded(&self) -> u64 {
        self.yielded
    }
}

impl Read for Unpacked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.decoder.read(buf)?;
        self.yielded += n as u64;
        self.budget.spend(n as u64)?;
        // Judged once there is something to judge (a stream's first block may run far ahead
        // of the rest), and always at its end.
        let consumed = (self.consumed)().max(1);
        let judged = self.yielded >= RATIO_FROM_BYTES || n == 0;
        if judged && self.yielded / consumed > MAX_RATIO {
            return Err(limit_exceeded(format!(
                "the {} data unpacks {}:1 (at least {} bytes from {consumed}), over the {MAX_RATIO}:1 limit",
                self.format.as_str(),
                self.yielded / consumed,
                self.yielded
            )));
        }
        Ok(n)
    }
}

/// What a compressed file was analysed as, and what its analysis found.
pub struct Outcome {
    pub kind: Kind,
    pub details: Result<Option<Details>, AnalysisError>,
    pub compression: Option<CompressionReport>,
}

/// The file's bytes as a reader that moves `progress` (one step per MiB; `start` is called
/// here) and tags the file's own read errors.
pub fn file_reader<'a>(source: &'a Source, progress: &'a Progress) -> impl Read + 'a {
    progress.start(source.len.div_ceil(PROGRESS_STEP).max(1));
    Packed {
        inner: RangeReader::new(source, 0, source.len),
        consumed: 0,
        progress,
        next_step: PROGRESS_STEP,
    }
}

/// `packed` decompressed as `format`, under `budget` and the ratio limit.
pub fn unpack<'a>(
    packed: impl Read + 'a,
    format: Compression,
    budget: &'a Budget,
) -> io::Result<Unpacked<'a>> {
    let consumed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = CountedBuf {
        inner: BufReader::with_capacity(READ_BYTES, packed),
        consumed: std::rc::Rc::clone(&consumed),
    };
    let decoder = format.decoder(counted)?;
    Ok(Unpacked {
        decoder,
        consumed: Box::new(move || consumed.get()),
        yielded: 0,
        budget,
        format,
    })
}

/// Decompresses `source` as `format` and analyses the stream as `inner` (the kind the name
/// without its compression suffix names; none: text when the bytes are UTF-8, else binary).
pub fn analyze(
    source: &Source,
    format: Compression,
    inner: Option<Kind>,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Outcome {
    let budget = Budget::new(options.max_unpacked_bytes, source.deadline);
    let mut unpacked = match unpack(file_reader(source, progress), format, &budget) {
        Ok(unpacked) => unpacked,
        Err(err) => {
            return Outcome {
                kind: inner.unwrap_or(Kind::Binary),
                details: Err(classify(err, format.as_str())),
                compression: None,
            };
        }
    };
    let name = source.path.to_string_lossy();
    let inner_name = Compression::of_name(&name).map_or(&*name, |(_, rest)| rest);
    let (kind, details) = analyze_stream(inner, inner_name, &mut unpacked, options);
    let details = details.map_err(|err| fatal(err, format.as_str()));
    let compression = CompressionReport {
        format,
        packed_bytes: source.len,
        unpacked_bytes: unpacked.yielded(),
    };
    progress.advance();
    Outcome {
        kind,
        details,
        compression: Some(compression),
    }
}

/// An analysis error out of a stream: the read errors are the stream's (a limit, the file,
/// or data that cannot be decoded), the others the content's.
pub fn fatal(err: AnalysisError, what: &str) -> AnalysisError {
    match err {
        AnalysisError::Read(io) | AnalysisError::Unavailable { source: io, .. } => {
            classify(io, what)
        }
        other => other,
    }
}

/// `BufRead` over the packed side that records how far the decoder has consumed.
struct CountedBuf<R> {
    inner: BufReader<R>,
    consumed: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for CountedBuf<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

impl<R: Read> io::BufRead for CountedBuf<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.consumed.set(self.consumed.get() + amount as u64);
        self.inner.consume(amount);
    }
}

/// An error out of a stream: the file's own, a limit, or data that cannot be decoded (`what`:
/// the format, for the message).
pub fn classify(err: io::Error, what: &str) -> AnalysisError {
    if let Some(limit) = Deadline::passed_in(&err) {
        return AnalysisError::TimedOut(limit);
    }
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<LimitExceeded>())
    {
        return AnalysisError::LimitExceeded(err.to_string());
    }
    if err.get_ref().is_some_and(|inner| inner.is::<FileError>()) {
        let kind = err.kind();
        let inner = err
            .into_inner()
            .and_then(|inner| inner.downcast::<FileError>().ok())
            .map_or_else(|| io::Error::from(kind), |file| file.0);
        return AnalysisError::read(inner);
    }
    AnalysisError::invalid(
        Kind::Archive,
        format!("corrupt or truncated {what} data: {err}"),
    )
}

/// Runs the analyzer of `inner` over a stream named `inner_name` (a decompressed file, an
/// archive member).
pub fn analyze_stream(
    inner: Option<Kind>,
    inner_name: &str,
    unpacked: &mut dyn Read,
    options: &AnalysisOptions,
) -> (Kind, Result<Option<Details>, AnalysisError>) {
    match inner {
        Some(Kind::Text) => (
            Kind::Text,
            text::analyze_stream(unpacked, options).map(|r| Some(Details::Text(r))),
        ),
        Some(Kind::Csv) => {
            let tsv = inner_name.to_ascii_lowercase().ends_with(".tsv");
            (
                Kind::Csv,
                csv::analyze_stream(unpacked, tsv, std::path::Path::new(inner_name), options)
                    .map(|r| Some(Details::Csv(r))),
            )
        }
        Some(Kind::Json) => {
            let lower = inner_name.to_ascii_lowercase();
            let lines = lower.ends_with(".ndjson") || lower.ends_with(".jsonl");
            (
                Kind::Json,
                json::analyze_stream(unpacked, lines).map(|r| Some(Details::Json(r))),
            )
        }
        // Kinds without a stream analyzer yet: read through (the limits still apply), then
        // size and hash only.
        Some(kind) => (
            kind,
            io::copy(unpacked, &mut io::sink())
                .map(|_| None)
                .map_err(AnalysisError::read),
        ),
        None => match text::analyze_stream(unpacked, options) {
            Ok(report) if text::is_utf8(&report) => (Kind::Text, Ok(Some(Details::Text(report)))),
            Ok(_) => (Kind::Binary, Ok(None)),
            Err(err) => (Kind::Binary, Err(err)),
        },
    }
}
