//! Tar archives, plain or compressed: one stream, read member after member (a tar cannot be
//! read out of order), each member streamed through `analyze_member`.

use std::io::Read;

use super::{ArchiveReport, Context, MAX_LISTED_MEMBERS, Member, MemberStatus};
use super::{add_totals, analyze_member, shown_name};
use crate::analyze::AnalysisError;
use crate::analyze::compressed::Compression;

/// The archive format a name ends in, if it is one read here.
pub(super) fn tar_format(name: &str) -> Option<(&'static str, Option<Compression>)> {
    let lower = name.to_ascii_lowercase();
    let table: [(&str, &str, Option<Compression>); 9] = [
        (".tar", "tar", None),
        (".tar.gz", "tar.gz", Some(Compression::Gzip)),
        (".tgz", "tar.gz", Some(Compression::Gzip)),
        (".tar.zst", "tar.zst", Some(Compression::Zstd)),
        (".tzst", "tar.zst", Some(Compression::Zstd)),
        (".tar.xz", "tar.xz", Some(Compression::Xz)),
        (".txz", "tar.xz", Some(Compression::Xz)),
        (".tar.bz2", "tar.bz2", Some(Compression::Bzip2)),
        (".tbz2", "tar.bz2", Some(Compression::Bzip2)),
    ];
    table
        .into_iter()
        .find(|(suffix, ..)| lower.ends_with(suffix))
        .map(|(_, format, compression)| (format, compression))
}

/// Reads a tar stream at `depth` (1: the file itself) and analyses its members.
pub(super) fn read_tar(
    stream: &mut dyn Read,
    format: &str,
    depth: u32,
    context: &Context,
) -> Result<ArchiveReport, AnalysisError> {
    let mut report = ArchiveReport::empty(format);
    let mut archive = ::tar::Archive::new(stream);
    let entries = archive.entries().map_err(AnalysisError::read)?;
    for entry in entries {
        context.budget.check_deadline()?;
        let mut entry = entry.map_err(AnalysisError::read)?;
        report.entries += 1;
        if report.entries > context.max_entries {
            return Err(AnalysisError::LimitExceeded(format!(
                "the archive has more than {} members, over the --max-entries limit",
                context.max_entries
            )));
        }
        let raw_name = entry.path_bytes().into_owned();
        let name = shown_name(&raw_name);
        let entry_type = entry.header().entry_type();
        let size = entry.size();
        let member = if entry_type.is_file() {
            report.files += 1;
            let member = analyze_member(&name, size, &mut entry, depth, context)?;
            report.unpacked_bytes += member.size_bytes;
            *report.kinds.entry(member.kind.clone()).or_default() += 1;
            add_totals(&mut report.totals, &member);
            member
        } else {
            let kind = if entry_type.is_dir() {
                "folder"
            } else if entry_type.is_symlink() {
                "symlink"
            } else if entry_type.is_hard_link() {
                "link"
            } else {
                "other"
            };
            Member {
                name,
                size_bytes: 0,
                kind: kind.to_string(),
                status: MemberStatus::Skipped,
                reason: (kind != "folder").then(|| format!("a {kind} is listed, never followed")),
                compression: None,
                details: None,
                error: None,
            }
        };
        if report.members.len() < MAX_LISTED_MEMBERS {
            report.members.push(member);
        } else {
            report.members_truncated = true;
        }
    }
    Ok(report)
}
