//! `detected` (SPEC §4): what a file's first bytes say it is, by its content signature, with
//! the `file-format` crate (which also looks inside zip containers to tell a docx or an xlsx
//! from a plain zip). Names are the common short ones (`zip`, `gzip`, `pdf`, `png`, `elf`,
//! ...); `text` when no signature matches and the start is text, `unknown` otherwise.
//!
//! It reads at most a few tens of KiB through positioned reads (the zip reader looks at the end
//! of the file and at most 1,024 central-directory entries): never the whole file.

use std::io::{self, Read, Seek, SeekFrom};

use file_format::FileFormat;

use super::{Kind, Source};

/// What a file's first bytes are, as far as a content signature tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// `None` when the signature could not be read (the file is not readable).
    format: Option<FileFormat>,
    /// The bytes start as a zip does: any zip-based format (docx, xlsx, ods, jar, ...), which
    /// the signature names by what it found inside, or a plain zip.
    zip_container: bool,
}

impl Signature {
    /// The short name reported as `detected`.
    pub fn name(&self) -> String {
        match self.format {
            Some(format) => name_of(format),
            None => "unknown".to_string(),
        }
    }

    /// The kind the bytes themselves are (SPEC §4.4): an archive or compressed stream is
    /// `archive`, a workbook `spreadsheet`, a word-processing file or PDF `document`,
    /// executables, images, media and every other binary format `binary`. `None` when no
    /// signature matched, or the format is text (HTML, XML, JSON): then the bytes say nothing
    /// the name has to explain.
    pub fn kind(&self) -> Option<Kind> {
        use file_format::Kind as Family;
        let format = self.format?;
        if matches!(
            format,
            FileFormat::Empty | FileFormat::ArbitraryBinaryData | FileFormat::PlainText
        ) || is_text_format(format)
        {
            return None;
        }
        Some(match format.kind() {
            Family::Archive | Family::Compressed | Family::Package => Kind::Archive,
            Family::Spreadsheet => Kind::Spreadsheet,
            Family::Document => Kind::Document,
            _ if self.zip_container => Kind::Archive,
            _ => Kind::Binary,
        })
    }

    /// The bytes are empty.
    pub fn is_empty(&self) -> bool {
        self.format == Some(FileFormat::Empty)
    }

    /// The bytes are a zip, or a format built on one.
    pub fn is_zip(&self) -> bool {
        self.zip_container
    }

    /// The bytes are this format.
    pub fn is(&self, format: FileFormat) -> bool {
        self.format == Some(format)
    }

    /// The bytes are an OLE compound file (what `.xls` and `.doc` are).
    pub fn is_compound_file(&self) -> bool {
        self.format.is_some_and(|format| {
            format == FileFormat::CompoundFileBinary
                || format.media_type().starts_with("application/vnd.ms-")
                || format.media_type() == "application/msword"
        })
    }
}

/// A format written as text (markup, data): a text name explains it.
fn is_text_format(format: FileFormat) -> bool {
    let media = format.media_type();
    media.starts_with("text/") || media.ends_with("xml") || media.ends_with("json")
}

/// What the first bytes of `source` say it is.
pub fn detect(source: &Source) -> Signature {
    let mut head = [0u8; 4];
    let zip_container = source.read_exact_at(&mut head, 0).is_ok()
        && (head == *b"PK\x03\x04" || head == *b"PK\x05\x06");
    let reader = PositionedReader::new(source);
    let format = match FileFormat::from_reader(reader) {
        Ok(format) => Some(format),
        Err(err) => {
            log::debug!(
                "{}: no content signature read: {err}",
                source.path.display()
            );
            None
        }
    };
    Signature {
        format,
        zip_container,
    }
}

/// The short name of a format: its usual extension, but for the few whose extension is not
/// what people call them.
fn name_of(format: FileFormat) -> String {
    match format {
        FileFormat::Empty => "empty".to_string(),
        FileFormat::ArbitraryBinaryData => "unknown".to_string(),
        FileFormat::PlainText => "text".to_string(),
        FileFormat::Gzip => "gzip".to_string(),
        FileFormat::Bzip2 => "bzip2".to_string(),
        FileFormat::Zstandard => "zstd".to_string(),
        FileFormat::ExecutableAndLinkableFormat => "elf".to_string(),
        other => other.extension().to_string(),
    }
}

/// `Read + Seek` over the open file with positioned reads, so that a reader neither moves the
/// file's shared offset nor depends on it; cloning it gives another independent handle.
#[derive(Clone)]
pub struct PositionedReader<'a> {
    source: &'a Source,
    position: u64,
}

impl<'a> PositionedReader<'a> {
    pub fn new(source: &'a Source) -> Self {
        PositionedReader {
            source,
            position: 0,
        }
    }
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.source.len {
            return Ok(0);
        }
        self.source.deadline.check_io()?;
        let want = buf.len().min((self.source.len - self.position) as usize);
        let n = self.source.read_at(&mut buf[..want], self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for PositionedReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.source.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testing::source_with;

    #[test]
    fn signatures_name_the_format_and_text_is_text() {
        let table: [(&[u8], &str); 6] = [
            (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "gzip"),
            (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
            (
                b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                "elf",
            ),
            (b"id,name\n1,a\n", "text"),
            (b"\x00\x01\x02\x03\xff\xfe\x00\x00", "unknown"),
        ];
        for (bytes, want) in table {
            assert_eq!(detect(&source_with(bytes)).name(), want, "{bytes:?}");
        }
    }
}
