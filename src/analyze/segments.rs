//! Splits a file into line-aligned segments for parallel analysis and reads byte ranges of it.
//!
//! A segment always starts at the beginning of the file, or right after a `\n`: the analyzers
//! rely on that (a UTF-8 character or a text line never starts in one segment and ends in the
//! next; a CSV record might, and the CSV analyzer verifies every boundary). Reads go through
//! `Source::read_at` (`pread`, or the bytes of a small file read whole when it was opened) into
//! small reusable buffers: nothing here holds a whole file, and nothing maps it (a file
//! truncated under a mapping would kill the process with SIGBUS).

use std::fs::File;
use std::os::unix::fs::FileExt;

use memchr::memchr;
use rayon::prelude::*;

use super::{AnalysisError, Deadline, Source};

/// At most this many segments per file, whatever `--segment-bytes` says: the plan itself must
/// stay small.
pub const MAX_SEGMENTS: u64 = 1 << 16;

/// A half-open byte range `[start, end)` of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
}

/// Plans the segments of `[data_start, len)`: nominal cut points every `target` bytes, each
/// moved forward to just after the next `\n`. A cut with no `\n` before the next nominal cut
/// point is dropped, so a very long line simply makes a longer segment.
pub fn plan(
    source: &Source,
    data_start: u64,
    len: u64,
    target: u64,
) -> Result<Vec<Segment>, AnalysisError> {
    let target = target
        .max(len.saturating_sub(data_start).div_ceil(MAX_SEGMENTS))
        .max(1);
    if data_start >= len {
        return Ok(vec![Segment {
            start: data_start,
            end: data_start.max(len),
        }]);
    }
    let nominal: Vec<u64> = (1..)
        .map(|k| data_start + k * target)
        .take_while(|&cut| cut < len)
        .collect();
    let cuts: Vec<Option<u64>> = nominal
        .par_iter()
        .map(|&cut| {
            let window_end = (cut + target).min(len);
            first_newline(source, cut, window_end).map(|found| found.map(|pos| pos + 1))
        })
        .collect::<Result<_, _>>()?;
    let mut starts = vec![data_start];
    starts.extend(cuts.into_iter().flatten().filter(|&start| start < len));
    let mut segments = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(len);
        segments.push(Segment { start, end });
    }
    Ok(segments)
}

/// Position of the first `\n` in `[from, to)`, if any (a search that stops at the deadline).
fn first_newline(source: &Source, from: u64, to: u64) -> Result<Option<u64>, AnalysisError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = from;
    while pos < to {
        source.deadline.check()?;
        let want = ((to - pos) as usize).min(buf.len());
        let got = source.read_exact_at(&mut buf[..want], pos)?;
        if let Some(i) = memchr(b'\n', &buf[..got]) {
            return Ok(Some(pos + i as u64));
        }
        pos += got as u64;
    }
    Ok(None)
}

/// Reads `buf.len()` bytes at `offset`; a file that got shorter since it was measured is an
/// error (it changed under us), never a silent short count.
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> Result<usize, AnalysisError> {
    fill(buf, |buf, at| file.read_at(buf, offset + at))
}

impl Source {
    /// [`read_exact_at`] through [`Source::read_at`] (from the held bytes of a small file).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, AnalysisError> {
        fill(buf, |buf, at| self.read_at(buf, offset + at))
    }
}

/// Fills `buf` by calls of `read(rest, filled)` until it is full; 0 from `read` is truncation.
fn fill(
    buf: &mut [u8],
    mut read: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> Result<usize, AnalysisError> {
    let mut filled = 0;
    while filled < buf.len() {
        match read(&mut buf[filled..], filled as u64) {
            Ok(0) => return Err(AnalysisError::Truncated),
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(AnalysisError::read(err)),
        }
    }
    Ok(filled)
}

/// Feeds `[segment.start, segment.end)` to `consume` in buffers of at most `buffer_bytes`,
/// stopping at the file's deadline.
pub fn for_each_buffer(
    source: &Source,
    segment: Segment,
    buffer_bytes: usize,
    mut consume: impl FnMut(&[u8]) -> Result<(), AnalysisError>,
) -> Result<(), AnalysisError> {
    let buffer_bytes = buffer_bytes.max(1);
    let mut buf = vec![
        0u8;
        buffer_bytes
            .min((segment.end - segment.start) as usize)
            .max(1)
    ];
    let mut pos = segment.start;
    while pos < segment.end {
        source.deadline.check()?;
        let want = ((segment.end - pos) as usize).min(buf.len());
        source.read_exact_at(&mut buf[..want], pos)?;
        consume(&buf[..want])?;
        pos += want as u64;
    }
    Ok(())
}

/// `Read` over `[pos, end)` of a file with `pread`: independent of the descriptor's offset, so
/// it can run beside other readers of the same handle.
pub struct RangeReader<'f> {
    source: &'f Source,
    deadline: Deadline,
    pos: u64,
    end: u64,
}

impl<'f> RangeReader<'f> {
    /// Reads `[start, end)` of the source, until its deadline.
    pub fn new(source: &'f Source, start: u64, end: u64) -> Self {
        RangeReader {
            source,
            deadline: source.deadline,
            pos: start,
            end,
        }
    }
}

impl std::io::Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = ((self.end - self.pos) as usize).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        self.deadline.check_io()?;
        let got = self.source.read_at(&mut buf[..want], self.pos)?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                AnalysisError::Truncated.to_string(),
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testing::source_with as file_with;

    fn check_invariants(data: &[u8], segments: &[Segment], data_start: u64) {
        assert_eq!(segments[0].start, data_start);
        assert_eq!(segments.last().map(|s| s.end), Some(data.len() as u64));
        for pair in segments.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
            assert!(pair[0].start < pair[0].end);
            assert_eq!(data[pair[1].start as usize - 1], b'\n');
        }
    }

    #[test]
    fn cuts_land_after_newlines() {
        let data = b"aaaa\nbb\ncccccccccccc\nd\n\n\neeeeeeeeeeeeeeeeeeeeeeee";
        let f = file_with(data);
        for target in 1..12 {
            let segs = plan(&f, 0, data.len() as u64, target).expect("plan");
            check_invariants(data, &segs, 0);
        }
    }

    #[test]
    fn a_file_without_newlines_is_one_segment() {
        let data = vec![b'x'; 10_000];
        let f = file_with(&data);
        let segs = plan(&f, 0, data.len() as u64, 64).expect("plan");
        assert_eq!(
            segs,
            vec![Segment {
                start: 0,
                end: 10_000
            }]
        );
    }

    #[test]
    fn the_number_of_segments_is_bounded() {
        let data = b"x\n".repeat(100_000);
        let f = file_with(&data);
        let segs = plan(&f, 0, data.len() as u64, 1).expect("plan");
        assert!(segs.len() as u64 <= MAX_SEGMENTS, "{} segments", segs.len());
        check_invariants(&data, &segs, 0);
    }

    #[test]
    fn empty_range_is_one_empty_segment() {
        let f = file_with(b"");
        let segs = plan(&f, 0, 0, 64).expect("plan");
        assert_eq!(segs, vec![Segment { start: 0, end: 0 }]);
    }

    #[test]
    fn reading_past_a_truncated_end_is_an_error() {
        let f = file_with(b"abc");
        let mut buf = [0u8; 8];
        assert!(matches!(
            read_exact_at(&f.file, &mut buf, 0),
            Err(AnalysisError::Truncated)
        ));
    }
}
