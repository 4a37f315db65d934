//! Zip archives (`.zip`, `.jar`; ZIP64 included): the central directory is checked before a
//! byte is decompressed, then the members are analysed in parallel on the rayon pool, each
//! through its own handle on the archive.
//!
//! Before: the records of the central directory are counted (not the names: the `zip` crate
//! folds records that share a name into one entry) against `--max-entries`; members whose
//! bytes overlap (many records pointing at one local entry, the "overlapping" bomb) make the
//! file `invalid_archive`; the declared sizes are summed against `--max-unpacked-bytes` and
//! each member's declared ratio is held to 1,000:1. While reading: every byte a member yields
//! counts against the same budget, its real ratio to its compressed size too, and a member
//! that yields more or less than it declared is corrupt. An encrypted member is counted and
//! skipped; a symlink is listed, never followed; a compression method the `zip` crate cannot
//! read makes the member `skipped` with the reason. A deflated member of at most 4 MiB is
//! inflated whole by libdeflate (`inflated_whole`), with the same checks; larger ones and other
//! methods stream through the `zip` crate.

use std::io::{self, Read, Seek, SeekFrom};

use rayon::prelude::*;

use super::{ArchiveReport, Context, MAX_LISTED_MEMBERS, Member, MemberStatus};
use super::{add_totals, analyze_member, shown_name};
use crate::analyze::compressed::{MAX_RATIO, classify, file_error, limit_exceeded};
use crate::analyze::{AnalysisError, AnalysisOptions, Kind};

/// The zip crate's errors, as an analysis error of the file: a read error of the file stays
/// the file's (`io`), a limit stays a limit, anything else is data that is not a zip.
fn invalid(err: ::zip::result::ZipError) -> AnalysisError {
    match err {
        ::zip::result::ZipError::Io(io) => classify(io, "zip"),
        other => AnalysisError::invalid(
            Kind::Archive,
            format!("not a readable zip archive: {other}"),
        ),
    }
}

/// A handle on the archive whose read errors are tagged as the file's (`file_error`).
#[derive(Clone)]
pub(super) struct FileReads<R>(pub(super) R);

impl<R: Read> Read for FileReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(file_error)
    }
}

impl<R: Seek> Seek for FileReads<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.0.seek(to).map_err(file_error)
    }
}

/// A member's metadata, read before anything is decompressed.
struct Entry {
    index: usize,
    name: String,
    size: u64,
    compressed: u64,
    encrypted: bool,
    is_dir: bool,
    is_symlink: bool,
}

/// Reads the zip at `reader` (a cloneable handle: one per member analysed in parallel).
pub(super) fn read_zip<R>(
    reader: R,
    format: &str,
    depth: u32,
    context: &Context,
) -> Result<ArchiveReport, AnalysisError>
where
    R: Read + Seek + Clone + Send + Sync,
{
    let (archive, entries) = vet(reader, context.max_entries, context.options)?;
    let mut report = ArchiveReport {
        entries: entries.len() as u64,
        members_truncated: entries.len() > MAX_LISTED_MEMBERS,
        ..ArchiveReport::empty(format)
    };
    // In chunks, in parallel within each: only the listed members are kept, so memory does
    // not grow with the number of members.
    for chunk in entries.chunks(MEMBERS_AT_ONCE) {
        let members: Vec<Member> = chunk
            .par_iter()
            .map(|entry| member_of(&archive, entry, depth, context))
            .collect::<Result<_, _>>()?;
        for (entry, member) in chunk.iter().zip(members) {
            if entry.encrypted {
                report.encrypted += 1;
            }
            if !entry.is_dir && !entry.is_symlink {
                report.files += 1;
                report.unpacked_bytes += member.size_bytes;
                *report.kinds.entry(member.kind.clone()).or_default() += 1;
                add_totals(&mut report.totals, &member);
            }
            if report.members.len() < MAX_LISTED_MEMBERS {
                report.members.push(member);
            }
        }
    }
    Ok(report)
}

/// Members analysed (in parallel) before their results are folded into the report.
const MEMBERS_AT_ONCE: usize = 256;

/// The checks every zip passes before anything in it is inflated: its central-directory
/// records against `max_entries`, no two names folded into one, no overlapping members, the
/// declared sizes against `--max-unpacked-bytes` and each member's declared ratio. Returns the
/// opened archive and its members' metadata.
fn vet<R>(
    reader: R,
    max_entries: u64,
    options: &AnalysisOptions,
) -> Result<(::zip::ZipArchive<R>, Vec<Entry>), AnalysisError>
where
    R: Read + Seek + Clone,
{
    let records = central_directory_records(reader.clone()).map_err(|err| classify(err, "zip"))?;
    if records > max_entries {
        return Err(AnalysisError::LimitExceeded(format!(
            "the archive has {records} members, over the --max-entries limit of {}",
            max_entries
        )));
    }
    let mut archive = ::zip::ZipArchive::new(reader).map_err(invalid)?;
    if (archive.len() as u64) < records {
        return Err(AnalysisError::invalid(
            Kind::Archive,
            format!(
                "{records} central-directory records but {} distinct names: members share names",
                archive.len()
            ),
        ));
    }
    if archive.has_overlapping_entries().map_err(invalid)? {
        return Err(AnalysisError::invalid(
            Kind::Archive,
            "members overlap: several members point at the same bytes",
        ));
    }
    let mut entries = Vec::with_capacity(archive.len());
    let mut declared: u64 = 0;
    for index in 0..archive.len() {
        let file = archive.by_index_raw(index).map_err(invalid)?;
        let entry = Entry {
            index,
            name: shown_name(file.name_raw()),
            size: file.size(),
            compressed: file.compressed_size(),
            encrypted: file.encrypted(),
            is_dir: file.is_dir(),
            is_symlink: file.is_symlink(),
        };
        declared = declared.saturating_add(entry.size);
        if declared > options.max_unpacked_bytes {
            return Err(AnalysisError::LimitExceeded(format!(
                "the members declare more than {} bytes, over the --max-unpacked-bytes limit",
                options.max_unpacked_bytes
            )));
        }
        let ratio = entry.size / entry.compressed.max(1);
        if !entry.encrypted && entry.size > RATIO_FROM_BYTES && ratio > MAX_RATIO {
            return Err(AnalysisError::LimitExceeded(format!(
                "member {} would unpack {ratio}:1 ({} bytes from {}), over the {MAX_RATIO}:1 limit",
                entry.name, entry.size, entry.compressed
            )));
        }
        entries.push(entry);
    }
    Ok((archive, entries))
}

/// A zip's members as `open_checked` lists them: name as stored, declared size.
pub(crate) type Parts = Vec<(String, u64)>;

/// The zip at `reader` once it passed the checks of `vet`, with its members: for readers of
/// zip-based formats (workbooks, documents).
pub(crate) fn open_checked<R>(
    reader: R,
    options: &AnalysisOptions,
) -> Result<(::zip::ZipArchive<R>, Parts), AnalysisError>
where
    R: Read + Seek + Clone,
{
    let (archive, entries) = vet(reader, options.max_entries, options)?;
    let parts = entries
        .into_iter()
        .map(|entry| (entry.name, entry.size))
        .collect();
    Ok((archive, parts))
}

/// The ratio is judged once a member is this large (a tiny member's ratio says nothing).
const RATIO_FROM_BYTES: u64 = 64 << 10;

/// One member, through its own handle on the archive.
fn member_of<R>(
    archive: &::zip::ZipArchive<R>,
    entry: &Entry,
    depth: u32,
    context: &Context,
) -> Result<Member, AnalysisError>
where
    R: Read + Seek + Clone + Send + Sync,
{
    context.budget.check_deadline()?;
    let skipped = |kind: &str, reason: String| Member {
        name: entry.name.clone(),
        size_bytes: entry.size,
        kind: kind.to_string(),
        status: MemberStatus::Skipped,
        reason: Some(reason),
        compression: None,
        details: None,
        error: None,
    };
    if entry.is_dir {
        let mut folder = skipped("folder", String::new());
        folder.reason = None;
        return Ok(folder);
    }
    if entry.is_symlink {
        return Ok(skipped(
            "symlink",
            "a symlink is listed, never followed".to_string(),
        ));
    }
    let (kind, _) = Kind::of_name(std::path::Path::new(&entry.name));
    let kind = kind.unwrap_or(Kind::Binary).as_str();
    if entry.encrypted {
        return Ok(skipped(kind, "encrypted: not analysed".to_string()));
    }
    let mut archive = archive.clone();
    if let Some(inflated) = inflated_whole(&mut archive, entry)? {
        let mut data = Checked {
            inner: inflated,
            name: &entry.name,
            declared: entry.size,
            compressed: entry.compressed,
            yielded: 0,
        };
        return analyze_member(&entry.name, entry.size, &mut data, depth, context);
    }
    let file = match archive.by_index(entry.index) {
        Ok(file) => file,
        Err(::zip::result::ZipError::UnsupportedArchive(why)) => {
            return Ok(skipped(kind, format!("cannot be read here: {why}")));
        }
        Err(err) => return Err(invalid(err)),
    };
    let mut data = Checked {
        inner: file,
        name: &entry.name,
        declared: entry.size,
        compressed: entry.compressed,
        yielded: 0,
    };
    analyze_member(&entry.name, entry.size, &mut data, depth, context)
}

/// Deflated members up to this size (declared, and compressed) are inflated whole.
const WHOLE_MEMBER_BYTES: u64 = 4 << 20;

/// A deflated member of at most `WHOLE_MEMBER_BYTES` is inflated in one call by libdeflate
/// (`libdeflater`), which takes the whole input and an output of the declared size: 1.7 times
/// as fast here as the stream inflater for the members of a zipped CSV export. Its bytes are
/// then read from memory (at most twice `WHOLE_MEMBER_BYTES` per member in flight). A member
/// that holds more than it declares, less, bytes that are not deflate data, or bytes that do not
/// match its CRC-32 gives the same errors as through the stream (on the first read, so that
/// they are judged where those are). `None`: another method, or larger; it is streamed.
fn inflated_whole<R: Read + Seek>(
    archive: &mut ::zip::ZipArchive<R>,
    entry: &Entry,
) -> Result<Option<WholeMember>, AnalysisError> {
    if entry.size > WHOLE_MEMBER_BYTES || entry.compressed > WHOLE_MEMBER_BYTES {
        return Ok(None);
    }
    let mut raw_member = archive.by_index_raw(entry.index).map_err(invalid)?;
    if raw_member.compression() != ::zip::CompressionMethod::Deflated {
        return Ok(None);
    }
    let crc = raw_member.crc32();
    let mut raw = Vec::with_capacity(entry.compressed as usize);
    (&mut raw_member)
        .take(entry.compressed)
        .read_to_end(&mut raw)
        .map_err(|err| classify(err, "zip"))?;
    drop(raw_member);
    let mut out = vec![0u8; entry.size as usize];
    let corrupt = |message: String| Err(io::Error::new(io::ErrorKind::InvalidData, message));
    let inflated = match libdeflater::Decompressor::new().deflate_decompress(&raw, &mut out) {
        Ok(len) if len == out.len() && libdeflater::crc32(&out) == crc => Ok(out),
        Ok(len) if len < out.len() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "member {} ends after {len} of its declared {} bytes",
                entry.name, entry.size
            ),
        )),
        Ok(_) => corrupt(format!("member {} does not match its CRC-32", entry.name)),
        Err(libdeflater::DecompressionError::InsufficientSpace) => corrupt(format!(
            "member {} is larger than its declared size ({} bytes)",
            entry.name, entry.size
        )),
        Err(libdeflater::DecompressionError::BadData) => {
            corrupt(format!("member {} is not valid deflate data", entry.name))
        }
    };
    Ok(Some(WholeMember {
        data: inflated.map(io::Cursor::new),
    }))
}

/// A member inflated whole: its bytes, or what was wrong with them (given at the first read).
struct WholeMember {
    data: io::Result<io::Cursor<Vec<u8>>>,
}

impl Read for WholeMember {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.data {
            Ok(bytes) => bytes.read(buf),
            Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
        }
    }
}

/// A member's bytes as they come: never more than declared, never past the ratio.
struct Checked<'a, R: Read> {
    inner: R,
    name: &'a str,
    declared: u64,
    compressed: u64,
    yielded: u64,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.yielded += n as u64;
        if self.yielded > self.declared {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "member {} yields more than the {} bytes it declares",
                    self.name, self.declared
                ),
            ));
        }
        let ratio = self.yielded / self.compressed.max(1);
        if self.yielded > RATIO_FROM_BYTES && ratio > MAX_RATIO {
            return Err(limit_exceeded(format!(
                "member {} unpacks {ratio}:1, over the {MAX_RATIO}:1 limit",
                self.name
            )));
        }
        if n == 0 && !buf.is_empty() && self.yielded < self.declared {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "member {} ends after {} of the {} bytes it declares",
                    self.name, self.yielded, self.declared
                ),
            ));
        }
        Ok(n)
    }
}

/// The number of central-directory records the end record declares (ZIP64's when present):
/// what `--max-entries` counts, whatever the names.
fn central_directory_records<R: Read + Seek>(mut reader: R) -> io::Result<u64> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const LOCATOR: &[u8] = b"PK\x06\x07";
    let len = reader.seek(SeekFrom::End(0))?;
    let window = len.min(22 + 65_535);
    reader.seek(SeekFrom::Start(len - window))?;
    let mut tail = vec![0u8; window as usize];
    reader.read_exact(&mut tail)?;
    let at = tail
        .windows(4)
        .rposition(|w| w == EOCD)
        .filter(|&at| at + 22 <= tail.len())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no end of central directory"))?;
    let records = u64::from(u16::from_le_bytes([tail[at + 10], tail[at + 11]]));
    // ZIP64: the locator right before the end record points at the ZIP64 end record.
    if at >= 20 && &tail[at - 20..at - 16] == LOCATOR {
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&tail[at - 12..at - 4]);
        let zip64_end = u64::from_le_bytes(offset);
        reader.seek(SeekFrom::Start(zip64_end.saturating_add(32)))?;
        let mut count = [0u8; 8];
        reader.read_exact(&mut count)?;
        return Ok(u64::from_le_bytes(count));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::AnalysisOptions;
    use crate::analyze::compressed::Budget;

    /// A file that cannot be read: every read fails with `errno`.
    #[derive(Clone)]
    struct Unreadable(rustix::io::Errno);

    impl Read for Unreadable {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(self.0.raw_os_error()))
        }
    }

    impl Seek for Unreadable {
        fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
            Ok(1 << 20)
        }
    }

    #[test]
    fn a_read_error_of_the_file_is_the_files_not_a_corrupt_archive() {
        let options = AnalysisOptions::default();
        let budget = Budget::new(options.max_unpacked_bytes, crate::analyze::Deadline::none());
        let context = Context {
            options: &options,
            budget: &budget,
            max_entries: options.max_entries,
            max_depth: options.max_depth,
        };
        let err = read_zip(
            FileReads(Unreadable(rustix::io::Errno::IO)),
            "zip",
            1,
            &context,
        )
        .expect_err("unreadable");
        assert_eq!(err.kind(), "io", "{err}");
        let err = read_zip(
            FileReads(Unreadable(rustix::io::Errno::MFILE)),
            "zip",
            1,
            &context,
        )
        .expect_err("unreadable");
        assert!(err.is_transient(), "{err}");
    }
}
