//! Byte classes as bit masks, 64 bytes at a time: bit `i` of a mask says whether byte `i` is
//! of that class. On x86-64 a block is classified sixteen bytes per instruction with SSE2
//! (part of every x86-64 processor); elsewhere, and for a block's last bytes, one byte at a
//! time. Each vector version is tested against the bytewise one.

/// What the text analyzer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    pub newline: u64,
    /// ASCII whitespace as Python's `bytes.split()` sees it: space and `\t \n \v \f \r`.
    pub space: u64,
    /// UTF-8 continuation bytes (`10xxxxxx`): every other byte starts a character.
    pub continuation: u64,
}

/// What the CSV analyzer's fast path looks for (`csv::parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csv {
    pub newline: u64,
    pub delimiter: u64,
    /// `"` and `\r`: a record holding either goes to `csv-core`, unless it is the `\r` of a
    /// `\r\n`.
    pub special: u64,
}

/// What the log-level search steps over at a line's start (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Blanks: whitespace other than `\n`.
    pub blank: u32,
    /// Bytes of a timestamp: digits and `+ , - . / : T Z`.
    pub stamp: u32,
    /// ASCII letters.
    pub alpha: u32,
}

#[inline(always)]
pub const fn is_space(b: u8) -> bool {
    b == b' ' || b.wrapping_sub(b'\t') < 5
}

#[inline(always)]
pub const fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b.wrapping_sub(0x0b) < 3
}

#[inline(always)]
pub const fn is_stamp(b: u8) -> bool {
    b.wrapping_sub(b'+') <= b':' - b'+' || b == b'T' || b == b'Z'
}

#[inline(always)]
pub const fn is_joined(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
}

/// [`Text`] of up to 64 bytes, one at a time.
pub fn text_bytes(bytes: &[u8]) -> Text {
    let mut masks = Text {
        newline: 0,
        space: 0,
        continuation: 0,
    };
    for (i, &b) in bytes.iter().enumerate().take(64) {
        masks.newline |= u64::from(b == b'\n') << i;
        masks.space |= u64::from(is_space(b)) << i;
        masks.continuation |= u64::from((b as i8) < -0x40) << i;
    }
    masks
}

/// [`Csv`] of up to 64 bytes, one at a time.
pub fn csv_bytes(bytes: &[u8], delimiter: u8) -> Csv {
    let mut masks = Csv {
        newline: 0,
        delimiter: 0,
        special: 0,
    };
    for (i, &b) in bytes.iter().enumerate().take(64) {
        masks.newline |= u64::from(b == b'\n') << i;
        masks.delimiter |= u64::from(b == delimiter) << i;
        masks.special |= u64::from(b == b'"' || b == b'\r') << i;
    }
    masks
}

/// [`Head`] of up to 32 bytes, one at a time.
pub fn head_bytes(bytes: &[u8]) -> Head {
    let mut masks = Head {
        blank: 0,
        stamp: 0,
        alpha: 0,
    };
    for (i, &b) in bytes.iter().enumerate().take(32) {
        masks.blank |= u32::from(is_blank(b)) << i;
        masks.stamp |= u32::from(is_stamp(b)) << i;
        masks.alpha |= u32::from(b.is_ascii_alphabetic()) << i;
    }
    masks
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub use sse2::{csv_block, head32, text_block};

/// [`Text`] of a whole block.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub fn text_block(block: &[u8; 64]) -> Text {
    text_bytes(block)
}

/// [`Csv`] of a whole block.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub fn csv_block(block: &[u8; 64], delimiter: u8) -> Csv {
    csv_bytes(block, delimiter)
}

/// [`Head`] of a line's first 32 bytes.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub fn head32(bytes: &[u8; 32]) -> Head {
    head_bytes(bytes)
}

/// Compiled only where the whole build has SSE2 (every x86-64 target does: it is part of the
/// baseline), so these functions inline into their callers. The intrinsics' only safety
/// requirement is that the processor has SSE2, which the `cfg` guarantees; none of them
/// touches memory (blocks are loaded as integers).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::*;

    use super::{Csv, Head, Text};

    /// The 16-byte lanes of a block (two 8-byte loads each; the compiler makes them one).
    #[inline(always)]
    fn lanes<const N: usize>(bytes: &[[u8; 8]]) -> [__m128i; N] {
        std::array::from_fn(|i| {
            let (high, low) = (
                i64::from_le_bytes(bytes[2 * i + 1]),
                i64::from_le_bytes(bytes[2 * i]),
            );
            // SAFETY: SSE2 is enabled for the whole build (see the module).
            unsafe { _mm_set_epi64x(high, low) }
        })
    }

    /// One bit per byte of four lanes of 0x00 / 0xFF.
    #[inline(always)]
    fn mask<const N: usize>(lanes: [__m128i; N]) -> u64 {
        let mut mask = 0u64;
        for (i, lane) in lanes.into_iter().enumerate() {
            // SAFETY: as in `lanes`.
            let bits = unsafe { _mm_movemask_epi8(lane) };
            mask |= u64::from(bits as u16) << (16 * i);
        }
        mask
    }

    /// Bytes in `lo..=hi`: `b - lo` is at most `hi - lo`, unsigned.
    #[inline(always)]
    fn in_range(v: __m128i, lo: u8, hi: u8) -> __m128i {
        // SAFETY: as in `lanes`.
        unsafe {
            let shifted = _mm_sub_epi8(v, splat(lo));
            _mm_cmpeq_epi8(_mm_min_epu8(shifted, splat(hi - lo)), shifted)
        }
    }

    #[inline(always)]
    fn splat(b: u8) -> __m128i {
        // SAFETY: as in `lanes`.
        unsafe { _mm_set1_epi8(b as i8) }
    }

    #[inline(always)]
    fn eq(v: __m128i, b: u8) -> __m128i {
        // SAFETY: as in `lanes`.
        unsafe { _mm_cmpeq_epi8(v, splat(b)) }
    }

    #[inline(always)]
    fn or(a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: as in `lanes`.
        unsafe { _mm_or_si128(a, b) }
    }

    /// Signed `b < -0x40`: the bytes `0x80..=0xBF`.
    #[inline(always)]
    fn continuation(v: __m128i) -> __m128i {
        // SAFETY: as in `lanes`.
        unsafe { _mm_cmplt_epi8(v, splat(0xc0)) }
    }

    /// [`Text`] of a whole block.
    #[inline(always)]
    pub fn text_block(block: &[u8; 64]) -> Text {
        let lanes = lanes::<4>(block.as_chunks::<8>().0);
        Text {
            newline: mask(lanes.map(|v| eq(v, b'\n'))),
            space: mask(lanes.map(|v| or(eq(v, b' '), in_range(v, b'\t', b'\r')))),
            continuation: mask(lanes.map(continuation)),
        }
    }

    /// [`Csv`] of a whole block.
    #[inline(always)]
    pub fn csv_block(block: &[u8; 64], delimiter: u8) -> Csv {
        let lanes = lanes::<4>(block.as_chunks::<8>().0);
        Csv {
            newline: mask(lanes.map(|v| eq(v, b'\n'))),
            delimiter: mask(lanes.map(|v| eq(v, delimiter))),
            special: mask(lanes.map(|v| or(eq(v, b'"'), eq(v, b'\r')))),
        }
    }

    /// [`Head`] of a line's first 32 bytes.
    #[inline(always)]
    pub fn head32(bytes: &[u8; 32]) -> Head {
        let lanes = lanes::<2>(bytes.as_chunks::<8>().0);
        let blank = |v| or(or(eq(v, b' '), eq(v, b'\t')), in_range(v, 0x0b, b'\r'));
        let stamp = |v| or(in_range(v, b'+', b':'), or(eq(v, b'T'), eq(v, b'Z')));
        // Setting bit 5 makes upper-case letters lower-case and maps no other byte into `a..=z`.
        let alpha = |v| in_range(or(v, splat(0x20)), b'a', b'z');
        Head {
            blank: mask(lanes.map(blank)) as u32,
            stamp: mask(lanes.map(stamp)) as u32,
            alpha: mask(lanes.map(alpha)) as u32,
        }
    }
}

/// [`Text`] with AVX2, for processors that have it (checked at run time by the caller).
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use super::Text;

    /// [`Text`] of a whole block, 32 bytes per instruction.
    ///
    /// # Safety
    ///
    /// The processor must have AVX2 (`is_x86_feature_detected!("avx2")`).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn text_block(block: &[u8; 64]) -> Text {
        let (words, _) = block.as_chunks::<8>();
        let word = |i: usize| i64::from_le_bytes(words[i]);
        let lanes = [
            _mm256_set_epi64x(word(3), word(2), word(1), word(0)),
            _mm256_set_epi64x(word(7), word(6), word(5), word(4)),
        ];
        let mut masks = Text {
            newline: 0,
            space: 0,
            continuation: 0,
        };
        for (i, v) in lanes.into_iter().enumerate() {
            let shift = 32 * i;
            let newline = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\n' as i8));
            // `\t \n \v \f \r` are 9..=13: `b - 9` is at most 4, unsigned.
            let shifted = _mm256_sub_epi8(v, _mm256_set1_epi8(9));
            let control = _mm256_cmpeq_epi8(_mm256_min_epu8(shifted, _mm256_set1_epi8(4)), shifted);
            let space =
                _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b' ' as i8)), control);
            // Signed `b < -0x40`: the bytes `0x80..=0xBF`.
            let continuation = _mm256_cmpgt_epi8(_mm256_set1_epi8(-0x40), v);
            masks.newline |= u64::from(_mm256_movemask_epi8(newline) as u32) << shift;
            masks.space |= u64::from(_mm256_movemask_epi8(space) as u32) << shift;
            masks.continuation |= u64::from(_mm256_movemask_epi8(continuation) as u32) << shift;
        }
        masks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(a: [u8; 32], b: [u8; 32]) -> [u8; 64] {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&a);
        block[32..].copy_from_slice(&b);
        block
    }

    #[test]
    fn every_byte_value_is_classified_alike() {
        for start in (0..256).step_by(64) {
            let block: [u8; 64] = std::array::from_fn(|i| (start + i) as u8);
            assert_eq!(text_block(&block), text_bytes(&block), "from {start}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above).
                assert_eq!(unsafe { avx2::text_block(&block) }, text_bytes(&block));
            }
            for delimiter in [b',', b';', b'\t', b'|'] {
                assert_eq!(csv_block(&block, delimiter), csv_bytes(&block, delimiter));
            }
            let first: &[u8; 32] = block.first_chunk().expect("32 bytes");
            assert_eq!(head32(first), head_bytes(first), "from {start}");
        }
    }

    proptest! {
        #[test]
        fn vector_classes_are_the_bytewise_ones(a in prop::array::uniform32(any::<u8>()), b in prop::array::uniform32(any::<u8>()), delimiter in any::<u8>()) {
            let block = block(a, b);
            prop_assert_eq!(csv_block(&block, delimiter), csv_bytes(&block, delimiter));
            prop_assert_eq!(text_block(&block), text_bytes(&block));
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above).
                prop_assert_eq!(unsafe { avx2::text_block(&block) }, text_bytes(&block));
            }
            prop_assert_eq!(head32(&a), head_bytes(&a));
        }
    }
}
