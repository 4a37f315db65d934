//! What a file's name promises against what its bytes are: the type rules `--accept` and
//! `--reject` (SPEC §4.4), and the check that an extension promising a binary format (`.xlsx`,
//! `.pdf`) is backed by bytes of that format (else `invalid_<kind>`).
//!
//! Both are judged before any analysis, from the name and the content signature (a few KiB
//! read): a rejected file costs no more than that, and an upload whose name alone decides is
//! refused before its body is stored.

use std::fmt;
use std::path::Path;

use super::compressed::Compression;
use super::detect::Signature;
use super::{ARCHIVE_SUFFIXES, AnalysisError, Kind};

/// One item of a rule list: a kind (`csv`) or the end of a name (`.log.gz`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Kind(Kind),
    /// Lower case, with its leading dot.
    Suffix(String),
}

impl Item {
    fn parse(word: &str) -> Result<Item, String> {
        let word = word.trim().to_ascii_lowercase();
        if let Some(rest) = word.strip_prefix('.') {
            if rest.is_empty() || rest.contains('/') || rest.starts_with('.') {
                return Err(format!("`{word}` is not an extension"));
            }
            return Ok(Item::Suffix(word));
        }
        match Kind::from_name(&word) {
            Some(kind) => Ok(Item::Kind(kind)),
            None => Err(format!(
                "`{word}` is neither a kind (text, csv, json, archive, spreadsheet, document, \
                 binary) nor an extension (starting with a dot, like .log.gz)"
            )),
        }
    }

    fn matches(&self, kind: Kind, name: Option<&str>) -> bool {
        match self {
            Item::Kind(want) => *want == kind,
            Item::Suffix(suffix) => name.is_some_and(|name| name.ends_with(suffix.as_str())),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Kind(kind) => f.write_str(kind.as_str()),
            Item::Suffix(suffix) => f.write_str(suffix),
        }
    }
}

/// `--accept` and `--reject`: a file passes when it matches some accepted item (or there is no
/// `--accept`) and no rejected one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeRules {
    accept: Vec<Item>,
    reject: Vec<Item>,
}

/// Why a file is refused: its kind, extension and signature, and the rule it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TypeRules {
    /// Rules from the words of `--accept` and `--reject` (each already split at commas).
    pub fn parse(accept: &[String], reject: &[String]) -> Result<TypeRules, String> {
        let parse_all = |flag: &str, words: &[String]| {
            words
                .iter()
                .filter(|word| !word.trim().is_empty())
                .map(|word| Item::parse(word).map_err(|err| format!("--{flag}: {err}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let rules = TypeRules {
            accept: parse_all("accept", accept)?,
            reject: parse_all("reject", reject)?,
        };
        if rules.accept.is_empty() && accept.iter().any(|w| w.trim().is_empty()) {
            return Err("--accept is empty: name the kinds or extensions to accept".to_string());
        }
        Ok(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.accept.is_empty() && self.reject.is_empty()
    }

    /// The rule `kind` (and, when given, the lower-cased `name`) fails, if any.
    fn failed_rule(&self, kind: Kind, name: Option<&str>) -> Option<String> {
        if let Some(item) = self.reject.iter().find(|item| item.matches(kind, name)) {
            return Some(format!("it matches --reject {item}"));
        }
        if !self.accept.is_empty() && !self.accept.iter().any(|item| item.matches(kind, name)) {
            return Some(format!("it is not in --accept {}", self.accept_list()));
        }
        None
    }

    fn accept_list(&self) -> String {
        let words: Vec<String> = self.accept.iter().map(Item::to_string).collect();
        words.join(",")
    }

    /// A refusal the name alone decides, whatever the bytes turn out to be: an upload is then
    /// refused before its body is stored. A name without a telling extension could still be
    /// text or binary: it is refused here only when both would be.
    pub fn judge_name(&self, name: &Path) -> Option<Refusal> {
        if self.is_empty() {
            return None;
        }
        let lower = lower_name(name);
        let candidates: &[Kind] = match Kind::of_name(name).0 {
            Some(kind) => &[kind][..],
            None => &[Kind::Text, Kind::Binary][..],
        };
        let mut fails = candidates
            .iter()
            .map(|&kind| (kind, self.failed_rule(kind, Some(&lower))));
        let (kind, rule) = fails.next()?;
        let rule = rule?;
        if fails.any(|(_, rule)| rule.is_none()) {
            return None;
        }
        Some(Refusal(format!(
            "refused by its name: kind {}, extension {}; {rule}",
            kind.as_str(),
            extension_of(name)
        )))
    }

    /// Judges a file by its name and its content signature: the kind its name gives (or, with
    /// no telling extension, text or binary as the signature says) must pass, and so must the
    /// kind of the bytes when the extension does not explain them (an ELF named `.txt`, a zip
    /// named `.csv`).
    pub fn judge(&self, name: &Path, signature: &Signature) -> Result<(), Refusal> {
        if self.is_empty() {
            return Ok(());
        }
        let lower = lower_name(name);
        let by_name = Kind::of_name(name).0;
        let kind = by_name.unwrap_or(match signature.kind() {
            Some(_) => Kind::Binary,
            None => Kind::Text,
        });
        let refuse = |rule: String, judged: &str| {
            Refusal(format!(
                "refused: kind {}, extension {}, detected {}; {judged}{rule}",
                kind.as_str(),
                extension_of(name),
                signature.name(),
            ))
        };
        if let Some(rule) = self.failed_rule(kind, Some(&lower)) {
            return Err(refuse(rule, ""));
        }
        if let Some(content) = unexplained(name, signature)
            && let Some(rule) = self.failed_rule(content, None)
        {
            let judged = format!(
                "its bytes are {}, which its extension does not explain, so it is judged as \
                 kind {} too, and ",
                signature.name(),
                content.as_str()
            );
            return Err(refuse(rule, &judged));
        }
        Ok(())
    }
}

/// The kind of the bytes when the name does not explain them.
fn unexplained(name: &Path, signature: &Signature) -> Option<Kind> {
    let content = signature.kind()?;
    let explained = match promise(name, signature) {
        Some(kept) => kept,
        // A name without a telling extension is binary when its bytes are; a text one
        // (`.txt`, `.csv`, `.json`) explains no binary format.
        None => Kind::of_name(name).0.is_none(),
    };
    (!explained).then_some(content)
}

/// Whether the bytes are the binary format the extension promises (`.xlsx`: a zip, `.pdf`: a
/// PDF, `.gz`: a compressed stream); `None` when it promises none (a text extension, or none).
fn promise(name: &Path, signature: &Signature) -> Option<bool> {
    let extension = extension_of(name);
    let is_compressed = signature.kind() == Some(Kind::Archive) && !signature.is_zip();
    Some(match extension.as_str() {
        ".xlsx" | ".xlsm" | ".xlsb" | ".ods" | ".docx" | ".odt" | ".zip" | ".jar" => {
            signature.is_zip()
        }
        ".xls" => signature.is_compound_file(),
        ".pdf" => signature.is(file_format::FileFormat::PortableDocumentFormat),
        ".rtf" => signature.is(file_format::FileFormat::RichTextFormat),
        // Old tar headers carry no magic: no signature is no broken promise.
        ".tar" => signature.kind().is_none_or(|kind| kind == Kind::Archive),
        _ if Kind::of_name(name).1.is_some() => is_compressed,
        ".tgz" | ".tzst" | ".txz" | ".tbz2" | ".tar.gz" | ".tar.zst" | ".tar.xz" | ".tar.bz2" => {
            is_compressed
        }
        _ => return None,
    })
}

/// Checks that a spreadsheet or document name is backed by bytes of the format it promises
/// (else `invalid_<kind>`). Archives and compressed names are left to their readers, which say
/// more precisely what is wrong.
pub fn promise_kept(name: &Path, signature: &Signature) -> Result<(), AnalysisError> {
    let Some(kind @ (Kind::Spreadsheet | Kind::Document)) = Kind::of_name(name).0 else {
        return Ok(());
    };
    if promise(name, signature) != Some(false) {
        return Ok(());
    }
    let found = if signature.is_empty() {
        "the file is empty".to_string()
    } else {
        format!("its bytes are {}", signature.name())
    };
    Err(AnalysisError::invalid(
        kind,
        format!(
            "the name ends in {} but {found}, not that format",
            extension_of(name)
        ),
    ))
}

fn lower_name(name: &Path) -> String {
    name.file_name()
        .map(|name| name.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The extension a message names: `.csv`, `.log.gz`, `.tar.gz`, or `none`.
pub fn extension_of(name: &Path) -> String {
    let lower = lower_name(name);
    let last_extension = |text: &str| {
        text.rfind('.')
            .filter(|&at| at > 0)
            .map(|at| text[at..].to_string())
    };
    if let Some(suffix) = ARCHIVE_SUFFIXES
        .iter()
        .filter(|suffix| lower.ends_with(*suffix))
        .max_by_key(|suffix| suffix.len())
    {
        return suffix.to_string();
    }
    if let Some((_, inner)) = Compression::of_name(&lower) {
        let outer = &lower[inner.len()..];
        return match last_extension(inner) {
            Some(inner) => format!("{inner}{outer}"),
            None => outer.to_string(),
        };
    }
    last_extension(&lower).unwrap_or_else(|| "none".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::detect::detect;
    use crate::analyze::testing::source_with;

    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01";
    const GZIP: &[u8] =
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    const ZIP: &[u8] =
        b"PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

    fn rules(accept: &str, reject: &str) -> TypeRules {
        let words = |list: &str| -> Vec<String> {
            if list.is_empty() {
                Vec::new()
            } else {
                list.split(',').map(str::to_string).collect()
            }
        };
        TypeRules::parse(&words(accept), &words(reject)).expect("valid rules")
    }

    fn judged(rules: &TypeRules, name: &str, bytes: &[u8]) -> Result<(), String> {
        let signature = detect(&source_with(bytes));
        rules
            .judge(Path::new(name), &signature)
            .map_err(|refusal| refusal.to_string())
    }

    #[test]
    fn words_are_kinds_or_extensions_and_anything_else_is_a_usage_error() {
        assert!(TypeRules::parse(&["CSV".into(), " .Log.GZ ".into()], &[]).is_ok());
        for bad in ["csvs", ".", "..gz", "./x", "exe"] {
            let err = TypeRules::parse(&[bad.to_string()], &[]).expect_err(bad);
            assert!(err.starts_with("--accept: "), "{err}");
        }
        let err = TypeRules::parse(&[], &["bin".to_string()]).expect_err("bin");
        assert!(err.starts_with("--reject: "), "{err}");
        assert!(TypeRules::parse(&[String::new()], &[]).is_err());
        assert!(rules("", "").is_empty());
    }

    #[test]
    fn a_file_passes_when_its_name_and_its_unexplained_bytes_both_pass() {
        let accept = rules("csv,text,.log.gz", "");
        let table: [(&str, &[u8], bool); 11] = [
            ("orders.csv", b"id,name\n1,a\n", true),
            ("notes", b"plain words\n", true),
            ("app.log.gz", GZIP, true),
            ("data.json", b"{}", false),
            // The bytes are a format the extension does not explain: judged as binary too.
            ("tool.txt", ELF, false),
            ("photo.txt", PNG, false),
            // A zip named .csv is an archive as well.
            ("export.csv", ZIP, false),
            // No telling extension: binary by its bytes, and binary is not accepted.
            ("tool", ELF, false),
            ("bundle.zip", ZIP, false),
            // A gzip under an accepted suffix is what the suffix promised.
            ("APP.LOG.GZ", GZIP, true),
            ("data.csv.gz", GZIP, true),
        ];
        for (name, bytes, passes) in table {
            assert_eq!(judged(&accept, name, bytes).is_ok(), passes, "{name}");
        }
        // A text format (HTML, XML) under a text name is what the name says.
        let html: &[u8] = b"<!DOCTYPE html>\n<html><body>hello</body></html>\n";
        assert!(judged(&accept, "page.txt", html).is_ok());
        assert!(judged(&accept, "feed.txt", b"<?xml version=\"1.0\"?>\n<a>b</a>\n").is_ok());
        let reject = rules("", "binary,.exe");
        assert!(judged(&reject, "setup.exe", b"text really\n").is_err());
        assert!(judged(&reject, "tool", ELF).is_err());
        assert!(judged(&reject, "tool.txt", ELF).is_err());
        assert!(judged(&reject, "bundle.zip", ZIP).is_ok());
        assert!(judged(&reject, "notes.txt", b"words\n").is_ok());
        // --reject wins over --accept.
        assert!(judged(&rules("csv", ".csv"), "a.csv", b"a\n").is_err());
    }

    #[test]
    fn a_refusal_names_the_kind_the_extension_the_signature_and_the_rule() {
        let message = judged(&rules("csv,text", ""), "tool.txt", ELF).expect_err("refused");
        for part in [
            "kind text",
            "extension .txt",
            "detected elf",
            "kind binary",
            "--accept csv,text",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
        let message = judged(&rules("", "archive"), "logs.TAR.GZ", GZIP).expect_err("refused");
        assert!(message.contains("extension .tar.gz"), "{message}");
        assert!(message.contains("--reject archive"), "{message}");
    }

    #[test]
    fn the_name_alone_decides_only_when_every_content_would_be_refused() {
        let accept = rules("csv,text", "");
        assert!(accept.judge_name(Path::new("data.json")).is_some());
        assert!(accept.judge_name(Path::new("data.csv")).is_none());
        // No telling extension: text would pass, so the bytes decide.
        assert!(accept.judge_name(Path::new("blob.bin")).is_none());
        let only_json = rules("json", "");
        assert!(only_json.judge_name(Path::new("blob.bin")).is_some());
        assert!(rules("", ".exe").judge_name(Path::new("x.EXE")).is_some());
        assert!(
            TypeRules::default()
                .judge_name(Path::new("x.exe"))
                .is_none()
        );
    }

    #[test]
    fn a_binary_extension_needs_bytes_of_its_format() {
        let kept = |name: &str, bytes: &[u8]| {
            promise_kept(Path::new(name), &detect(&source_with(bytes))).map_err(|err| err.kind())
        };
        assert_eq!(
            kept("book.xlsx", b"id,name\n"),
            Err("invalid_spreadsheet".into())
        );
        assert_eq!(kept("book.xls", ELF), Err("invalid_spreadsheet".into()));
        assert_eq!(kept("paper.pdf", b""), Err("invalid_document".into()));
        assert_eq!(kept("paper.docx", PNG), Err("invalid_document".into()));
        assert_eq!(kept("book.xlsx", ZIP), Ok(()));
        assert_eq!(kept("paper.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), Ok(()));
        assert_eq!(kept("letter.rtf", b"{\\rtf1\\ansi hello}"), Ok(()));
        // Text names promise nothing; archives are left to their readers.
        assert_eq!(kept("tool.txt", ELF), Ok(()));
        assert_eq!(kept("bundle.zip", ELF), Ok(()));
    }

    #[test]
    fn extensions_are_named_as_people_write_them() {
        let table = [
            ("a.csv", ".csv"),
            ("A.Log.GZ", ".log.gz"),
            ("x.tar.gz", ".tar.gz"),
            ("x.TGZ", ".tgz"),
            ("blob.gz", ".gz"),
            ("noext", "none"),
            (".hidden", "none"),
            ("report.2024.csv", ".csv"),
        ];
        for (name, want) in table {
            assert_eq!(extension_of(Path::new(name)), want, "{name}");
        }
    }
}
