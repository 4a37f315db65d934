//! The content hash of a file (`--hash`): SHA-256 by default, BLAKE3 (spread over the rayon
//! pool), or none; and how a report writes it, under the algorithm's own name.

use serde::ser::{Serialize, SerializeMap, Serializer};
use sha2::{Digest, Sha256};

use super::segments::{self, Segment};
use super::{AnalysisError, Source};

/// `--hash`: which hash the report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum HashAlgorithm {
    /// SHA-256, in the report's `sha256` field
    #[default]
    Sha256,
    /// BLAKE3, in a `blake3` field instead: several times faster, on all cores
    Blake3,
    /// no hash: for when the disk is faster than hashing
    None,
}

impl HashAlgorithm {
    /// The report field the hash is written under, if any.
    pub fn field(self) -> Option<&'static str> {
        match self {
            HashAlgorithm::Sha256 => Some("sha256"),
            HashAlgorithm::Blake3 => Some("blake3"),
            HashAlgorithm::None => None,
        }
    }
}

/// A file's hash as the report writes it: `"sha256": "…"` (or `"blake3"`), `null` when it
/// could not be computed (the file failed), and no field at all with `--hash none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHash {
    pub algorithm: HashAlgorithm,
    /// Lower-case hex.
    pub hex: Option<String>,
}

impl ContentHash {
    /// No hash (yet) of the given algorithm.
    pub fn missing(algorithm: HashAlgorithm) -> Self {
        ContentHash {
            algorithm,
            hex: None,
        }
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(field) = self.algorithm.field() {
            map.serialize_entry(field, &self.hex)?;
        }
        map.end()
    }
}

/// Bytes per read when hashing: BLAKE3 splits each read over the rayon pool, which pays from
/// about 128 KiB on.
const READ_BYTES: usize = 4 << 20;

/// The hash of the whole file, read with `pread` so that it can run beside the analyzers on
/// the same file handle; `None` with `--hash none`.
pub fn digest(source: &Source, algorithm: HashAlgorithm) -> Result<Option<String>, AnalysisError> {
    let whole = Segment {
        start: 0,
        end: source.len,
    };
    match algorithm {
        HashAlgorithm::None => Ok(None),
        HashAlgorithm::Sha256 => {
            let mut hasher = Sha256::new();
            segments::for_each_buffer(source, whole, 1 << 20, |buf| {
                hasher.update(buf);
                Ok(())
            })?;
            Ok(Some(hex(&hasher.finalize())))
        }
        HashAlgorithm::Blake3 => {
            let mut hasher = blake3::Hasher::new();
            segments::for_each_buffer(source, whole, READ_BYTES, |buf| {
                hasher.update_rayon(buf);
                Ok(())
            })?;
            Ok(Some(hasher.finalize().to_hex().to_string()))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_named_by_the_algorithm_and_absent_with_none() {
        let of = |algorithm, hex: Option<&str>| {
            serde_json::to_string(&ContentHash {
                algorithm,
                hex: hex.map(str::to_string),
            })
            .expect("json")
        };
        assert_eq!(of(HashAlgorithm::Sha256, Some("ab")), r#"{"sha256":"ab"}"#);
        assert_eq!(of(HashAlgorithm::Sha256, None), r#"{"sha256":null}"#);
        assert_eq!(of(HashAlgorithm::Blake3, Some("cd")), r#"{"blake3":"cd"}"#);
        assert_eq!(of(HashAlgorithm::None, Some("ef")), "{}");
    }
}
