//! The throughput floor for `make bench`: the least work a hot-folder processor must do per
//! file — rename in, read, write a report, rename out — on every core, with nothing else (no
//! watcher, no analysis, no hash, no crash safety). The daemon's burst rate is quoted as a
//! fraction of this loop's rate, measured in the same run.
//!
//! Usage: floor DIR  (processes every file in DIR/unprocessed/; prints files/s)

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: floor DIR"))?,
    );
    let (unprocessed, underprocess, processed) = (
        root.join("unprocessed"),
        root.join("underprocess"),
        root.join("processed"),
    );
    let start = Instant::now();
    let names: Vec<_> = fs::read_dir(&unprocessed)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names
        .par_iter()
        .try_for_each(|name| -> anyhow::Result<()> {
            let claimed = underprocess.join(name);
            fs::rename(unprocessed.join(name), &claimed)?;
            let bytes = fs::read(&claimed)?;
            let mut report_name = name.clone();
            report_name.push(".report.json");
            let mut report = fs::File::create(processed.join(report_name))?;
            writeln!(report, "{{\"size_bytes\": {}}}", bytes.len())?;
            fs::rename(&claimed, processed.join(name))?;
            Ok(())
        })?;
    let seconds = start.elapsed().as_secs_f64();
    println!("{} {seconds:.6}", names.len());
    Ok(())
}
