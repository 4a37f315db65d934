//! BLAKE3 of a file computed from the reads its analysis makes anyway, so that the file is
//! read once instead of twice (`--hash blake3` with the text analyzer).
//!
//! BLAKE3 is a tree over 1 KiB chunks, and any aligned power-of-two run of chunks is a
//! subtree whose chaining value can be computed on its own (`blake3::hazmat`). Each segment
//! of the analysis hashes the whole subtrees that lie inside it as its buffers go by; the
//! chunks that straddle two segments (at most one per cut) are read again at the end, and the
//! chaining values are merged up to the root, which is the same hash `b3sum` prints.

use std::collections::BTreeMap;
use std::sync::Mutex;

use blake3::hazmat::{self, ChainingValue, HasherExt, Mode};

use super::segments::Segment;
use super::{AnalysisError, Source};

const CHUNK: u64 = blake3::CHUNK_LEN as u64;
/// The largest subtree a segment hashes as one piece: 1 MiB, about a thousand chaining
/// values per GiB to merge.
const MAX_PIECE_CHUNKS: u64 = 1024;

/// The chaining values the segments found, gathered for `finish`.
pub struct TreeHash {
    len: u64,
    found: Mutex<Found>,
}

#[derive(Default)]
struct Found {
    /// Subtree start → (length in bytes, chaining value).
    pieces: BTreeMap<u64, (u64, ChainingValue)>,
    /// The root, when one segment was the whole file.
    root: Option<blake3::Hash>,
}

impl TreeHash {
    /// For a file of `len` bytes.
    pub fn new(len: u64) -> Self {
        TreeHash {
            len,
            found: Mutex::new(Found::default()),
        }
    }

    /// A hasher for `segment`, to be fed its bytes in order from its start.
    pub fn segment(&self, segment: Segment) -> SegmentHasher<'_> {
        let whole = (segment.start == 0 && segment.end == self.len).then(blake3::Hasher::new);
        SegmentHasher {
            tree: self,
            pos: segment.start,
            plan: if whole.is_some() {
                Vec::new()
            } else {
                plan(segment, self.len)
            },
            next: 0,
            current: None,
            whole,
            done: Vec::new(),
        }
    }

    /// The hash in lower-case hex: the segments' pieces merged up to the root, with the
    /// chunks no segment held whole read from `source`.
    pub fn finish(self, source: &Source) -> Result<String, AnalysisError> {
        let found = self.found.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(root) = found.root {
            return Ok(root.to_hex().to_string());
        }
        let len = self.len;
        if len <= CHUNK {
            let mut bytes = vec![0u8; len as usize];
            source.read_exact_at(&mut bytes, 0)?;
            return Ok(blake3::hash(&bytes).to_hex().to_string());
        }
        let left = hazmat::left_subtree_len(len);
        let root = hazmat::merge_subtrees_root(
            &node(&found.pieces, source, 0, left)?,
            &node(&found.pieces, source, left, len - left)?,
            Mode::Hash,
        );
        Ok(root.to_hex().to_string())
    }
}

/// The chaining value of the subtree `[start, start + len)`: a piece a segment hashed, a
/// chunk read now, or its two children merged.
fn node(
    pieces: &BTreeMap<u64, (u64, ChainingValue)>,
    source: &Source,
    start: u64,
    len: u64,
) -> Result<ChainingValue, AnalysisError> {
    if let Some(&(piece_len, cv)) = pieces.get(&start)
        && piece_len == len
    {
        return Ok(cv);
    }
    if len <= CHUNK {
        source.deadline.check()?;
        let mut bytes = vec![0u8; len as usize];
        source.read_exact_at(&mut bytes, start)?;
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(start);
        hasher.update(&bytes);
        return Ok(hasher.finalize_non_root());
    }
    let left = hazmat::left_subtree_len(len);
    Ok(hazmat::merge_subtrees_non_root(
        &node(pieces, source, start, left)?,
        &node(pieces, source, start + left, len - left)?,
        Mode::Hash,
    ))
}

/// The largest power of two at most `x` (`x` ≥ 1).
fn floor_power_of_two(x: u64) -> u64 {
    1 << (63 - x.leading_zeros())
}

/// The subtrees that lie whole inside `segment` of a file of `len` bytes, in order: from its
/// first chunk boundary, each as large as its alignment, the rest of the segment and
/// `MAX_PIECE_CHUNKS` allow, and always smaller than the whole tree (the root is merged, never
/// hashed as a piece). Each is a node of the file's tree: an aligned power-of-two run of
/// chunks, cut short only at the end of the file.
fn plan(segment: Segment, len: u64) -> Vec<(u64, u64)> {
    let chunks = len.div_ceil(CHUNK);
    if chunks < 2 {
        return Vec::new();
    }
    let cap = MAX_PIECE_CHUNKS.min(floor_power_of_two(chunks - 1));
    let stop = if segment.end >= len {
        len
    } else {
        segment.end / CHUNK * CHUNK
    };
    let mut pieces = Vec::new();
    let mut at = segment.start.next_multiple_of(CHUNK);
    while at < stop {
        let chunk = at / CHUNK;
        let aligned = if chunk == 0 {
            u64::MAX
        } else {
            1 << chunk.trailing_zeros()
        };
        let fits = floor_power_of_two((stop - at).div_ceil(CHUNK));
        let size = cap.min(aligned).min(fits);
        let end = (at + size * CHUNK).min(stop);
        pieces.push((at, end));
        at = end;
    }
    pieces
}

/// Hashes the pieces of one segment as its bytes go by.
pub struct SegmentHasher<'a> {
    tree: &'a TreeHash,
    /// File offset of the next byte to be fed.
    pos: u64,
    plan: Vec<(u64, u64)>,
    next: usize,
    current: Option<blake3::Hasher>,
    /// The segment is the whole file: one plain hasher.
    whole: Option<blake3::Hasher>,
    done: Vec<(u64, u64, ChainingValue)>,
}

impl SegmentHasher<'_> {
    /// The segment's next bytes.
    pub fn feed(&mut self, buf: &[u8]) {
        let start = self.pos;
        let end = start + buf.len() as u64;
        self.pos = end;
        if let Some(whole) = &mut self.whole {
            whole.update(buf);
            return;
        }
        while let Some(&(piece_start, piece_end)) = self.plan.get(self.next) {
            if piece_start >= end {
                break;
            }
            let from = start.max(piece_start);
            let to = end.min(piece_end);
            if from < to {
                let hasher = self.current.get_or_insert_with(|| {
                    let mut hasher = blake3::Hasher::new();
                    hasher.set_input_offset(piece_start);
                    hasher
                });
                hasher.update(&buf[(from - start) as usize..(to - start) as usize]);
            }
            if to < piece_end {
                break;
            }
            if let Some(hasher) = self.current.take() {
                self.done.push((
                    piece_start,
                    piece_end - piece_start,
                    hasher.finalize_non_root(),
                ));
            }
            self.next += 1;
        }
    }

    /// Hands what the segment hashed to the tree (pieces not fed whole are left out: their
    /// chunks are read at the end).
    pub fn done(self) {
        let mut found = self.tree.found.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(whole) = self.whole {
            if self.pos == self.tree.len {
                found.root = Some(whole.finalize());
            }
            return;
        }
        for (start, len, cv) in self.done {
            found.pieces.insert(start, (len, cv));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hashes `data` as the analysis would: cut at `cuts`, each segment fed in buffers of
    /// `buffer` bytes, segments in any order.
    fn tree_hash(data: &[u8], cuts: &[u64], buffer: usize, reverse: bool) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data.log");
        std::fs::write(&path, data).expect("write");
        let source = Source::open(&path).expect("open");
        let len = data.len() as u64;
        let mut bounds: Vec<u64> = cuts.iter().map(|&c| c.min(len)).collect();
        bounds.push(0);
        bounds.push(len);
        bounds.sort_unstable();
        bounds.dedup();
        let mut segments: Vec<Segment> = bounds
            .windows(2)
            .map(|w| Segment {
                start: w[0],
                end: w[1],
            })
            .collect();
        if segments.is_empty() {
            segments.push(Segment { start: 0, end: 0 });
        }
        if reverse {
            segments.reverse();
        }
        let tree = TreeHash::new(len);
        for segment in segments {
            let mut hasher = tree.segment(segment);
            for piece in data[segment.start as usize..segment.end as usize].chunks(buffer.max(1)) {
                hasher.feed(piece);
            }
            hasher.done();
        }
        tree.finish(&source).expect("finish")
    }

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    proptest! {
        #[test]
        fn any_cuts_give_the_plain_hash(
            len in 0usize..40_000,
            cuts in proptest::collection::vec(0u64..40_000, 0..8),
            buffer in 1usize..5000,
            reverse: bool,
        ) {
            let data = bytes(len);
            prop_assert_eq!(
                tree_hash(&data, &cuts, buffer, reverse),
                blake3::hash(&data).to_hex().to_string()
            );
        }
    }

    #[test]
    fn sizes_around_powers_of_two_and_large_files_give_the_plain_hash() {
        for len in [
            1023,
            1024,
            1025,
            2048,
            2049,
            4096 + 17,
            1 << 20,
            (1 << 20) + 1,
        ] {
            let data = bytes(len);
            let want = blake3::hash(&data).to_hex().to_string();
            for cuts in [
                vec![],
                vec![1024],
                vec![len as u64 / 2],
                vec![1, 1025, 3000],
            ] {
                assert_eq!(tree_hash(&data, &cuts, 4096, false), want, "{len} {cuts:?}");
            }
        }
        // Several MiB pieces, a cut in a chunk's middle, the last chunk short.
        let data = bytes((5 << 20) + 333);
        let want = blake3::hash(&data).to_hex().to_string();
        let cuts = [(1 << 20) + 100, 3 << 20, (4 << 20) + 4095];
        assert_eq!(tree_hash(&data, &cuts, 256 << 10, true), want);
    }

    #[test]
    fn pieces_are_aligned_whole_and_never_the_root() {
        let len = (3 << 20) + 5;
        let pieces = plan(
            Segment {
                start: 1500,
                end: len,
            },
            len,
        );
        assert_eq!(pieces.first().map(|p| p.0), Some(2048));
        assert_eq!(pieces.last().map(|p| p.1), Some(len));
        for (start, end) in pieces {
            let chunks = (end - start).div_ceil(CHUNK);
            assert!(chunks <= MAX_PIECE_CHUNKS && chunks.is_power_of_two());
            assert_eq!(start % (chunks * CHUNK), 0, "{start} {end}");
        }
        // Two chunks: each is a piece, the root is merged from them.
        assert_eq!(
            plan(
                Segment {
                    start: 0,
                    end: 2048
                },
                2048
            ),
            vec![(0, 1024), (1024, 2048)]
        );
    }
}
