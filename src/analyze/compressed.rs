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
use super::{AnalysisError, AnalysisOptions, Details, Kind, Progress, Source, csv, json, text};

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

impl std::error::Error for FileError {}

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

/// The unpacked side: counts what the decoder yields and stops at either limit.
struct Unpacked<'a> {
    decoder: Box<dyn Read + 'a>,
    /// Packed bytes consumed so far (shared with `Packed` through the decoder's reads).
    consumed: &'a dyn Fn() -> u64,
    yielded: u64,
    max_bytes: u64,
    format: Compression,
}

impl Read for Unpacked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.decoder.read(buf)?;
        self.yielded += n as u64;
        if self.yielded > self.max_bytes {
            return Err(io::Error::other(LimitExceeded(format!(
                "the {} data unpacks to more than {} bytes, over the --max-unpacked-bytes limit",
                self.format.as_str(),
                self.max_bytes
            ))));
        }
        // Judged once there is something to judge (a stream's first block may run far ahead
        // of the rest), and always at its end.
        let consumed = (self.consumed)().max(1);
        let judged = self.yielded >= RATIO_FROM_BYTES || n == 0;
        if judged && self.yielded / consumed > MAX_RATIO {
            return Err(io::Error::other(LimitExceeded(format!(
                "the {} data unpacks {}:1 (at least {} bytes from {consumed}), over the {MAX_RATIO}:1 limit",
                self.format.as_str(),
                self.yielded / consumed,
                self.yielded
            ))));
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

/// Decompresses `source` as `format` and analyses the stream as `inner` (the kind the name
/// without its compression suffix names; none: text when the bytes are UTF-8, else binary).
pub fn analyze(
    source: &Source,
    format: Compression,
    inner: Option<Kind>,
    options: &AnalysisOptions,
    progress: &Progress,
) -> Outcome {
    progress.start(source.len.div_ceil(PROGRESS_STEP).max(1));
    let consumed = std::cell::Cell::new(0u64);
    let packed = Packed {
        inner: RangeReader::new(&source.file, 0, source.len),
        consumed: 0,
        progress,
        next_step: PROGRESS_STEP,
    };
    // The packed count is read through a cell that the buffered reader's refills update.
    let counted = CountedBuf {
        inner: BufReader::with_capacity(READ_BYTES, packed),
        consumed: &consumed,
    };
    let decoder = match format.decoder(counted) {
        Ok(decoder) => decoder,
        Err(err) => {
            return Outcome {
                kind: inner.unwrap_or(Kind::Binary),
                details: Err(classify(err, format)),
                compression: None,
            };
        }
    };
    let read_consumed = || consumed.get();
    let mut unpacked = Unpacked {
        decoder,
        consumed: &read_consumed,
        yielded: 0,
        max_bytes: options.max_unpacked_bytes,
        format,
    };
    let (kind, details) = analyze_stream(inner, &mut unpacked, source, options);
    let details = details.map_err(|err| match err {
        AnalysisError::Read(io) | AnalysisError::Unavailable { source: io, .. } => {
            classify(io, format)
        }
        other => other,
    });
    let compression = CompressionReport {
        format,
        packed_bytes: source.len,
        unpacked_bytes: unpacked.yielded,
    };
    progress.advance();
    Outcome {
        kind,
        details,
        compression: Some(compression),
    }
}

/// `BufRead` over the packed side that records how far the decoder has consumed.
struct CountedBuf<'a, R> {
    inner: BufReader<R>,
    consumed: &'a std::cell::Cell<u64>,
}

impl<R: Read> Read for CountedBuf<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

impl<R: Read> io::BufRead for CountedBuf<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.consumed.set(self.consumed.get() + amount as u64);
        self.inner.consume(amount);
    }
}

/// An error out of the stream: the file's own, a limit, or data the decoder cannot read.
fn classify(err: io::Error, format: Compression) -> AnalysisError {
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
        format!("corrupt or truncated {} data: {err}", format.as_str()),
    )
}

/// Runs the analyzer of `inner` over the unpacked stream.
fn analyze_stream(
    inner: Option<Kind>,
    unpacked: &mut dyn Read,
    source: &Source,
    options: &AnalysisOptions,
) -> (Kind, Result<Option<Details>, AnalysisError>) {
    let name = source.path.to_string_lossy();
    let inner_name = Compression::of_name(&name).map_or(&*name, |(_, rest)| rest);
    match inner {
        Some(Kind::Text) => (
            Kind::Text,
            text::analyze_stream(unpacked, options).map(|r| Some(Details::Text(r))),
        ),
        Some(Kind::Csv) => {
            let tsv = inner_name.to_ascii_lowercase().ends_with(".tsv");
            (
                Kind::Csv,
                csv::analyze_stream(unpacked, tsv, &source.path, options)
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
