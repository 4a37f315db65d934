//! `detected` (SPEC §4): what a file's first bytes say it is, by its content signature, with
//! the `file-format` crate (which also looks inside zip containers to tell a docx or an xlsx
//! from a plain zip). Names are the common short ones (`zip`, `gzip`, `pdf`, `png`, `elf`,
//! ...); `text` when no signature matches and the start is text, `unknown` otherwise.
//!
//! It reads at most a few tens of KiB through positioned reads (the zip reader looks at the end
//! of the file and at most 1,024 central-directory entries): never the whole file.

use std::io::{self, Read, Seek, SeekFrom};

use file_format::FileFormat;

use super::Source;

/// What the first bytes of `source` say it is.
pub fn detect(source: &Source) -> String {
    let reader = PositionedReader::new(source);
    match FileFormat::from_reader(reader) {
        Ok(format) => name_of(format),
        Err(err) => {
            log::debug!(
                "{}: no content signature read: {err}",
                source.path.display()
            );
            "unknown".to_string()
        }
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
        use std::os::unix::fs::FileExt;
        if self.position >= self.source.len {
            return Ok(0);
        }
        let want = buf.len().min((self.source.len - self.position) as usize);
        let n = self.source.file.read_at(&mut buf[..want], self.position)?;
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
            assert_eq!(detect(&source_with(bytes)), want, "{bytes:?}");
        }
    }
}
