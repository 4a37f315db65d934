//! The floor of a report that carries SHA-256, for `make bench`: the file read from start to
//! end in 1 MiB reads and hashed with `sha2` on one core, with nothing else. The text
//! benchmark quotes `wc -lwm` against this too: no SHA-256 report can be faster than it.
//!
//! Usage: sha256_floor FILE  (prints the hash)

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: sha256_floor FILE"))?;
    let mut file = File::open(&path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}  {path}");
    Ok(())
}
