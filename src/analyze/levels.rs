//! Log levels: which words name a level, and where in a line a level word counts.
//!
//! A level counts only where logs put one (README "text" has the rule with examples):
//! - standing alone at the line's start, or right after its timestamp (and at most two
//!   bracketed fields such as `[main]`), followed by a blank, `:` or the line's end;
//! - in brackets anywhere: `[error]`, `<warn>`, `[INFO ]`, or between lone dashes:
//!   `- myapp - DEBUG - ...`;
//! - followed by `:` and a blank anywhere: `sshd[42]: error: ...` (at the header, `:` alone is
//!   enough: Python's `WARNING:root:`);
//! - as the value of `level=`, `lvl=`, `severity=` or of a JSON `"level"` / `"severity"` field;
//! - klog's leading letter: `E1123 08:00:00.000000 ...`.
//!
//! A level word is never part of a longer token: a token is a run of letters, digits, `_`,
//! `-`, `.` and `/`, so `shared-mime-info:amd64` and `libgpg-error-l10n` name no level. It is
//! written all upper case, all lower case or capitalised. A line counts once, for its first
//! level word that starts within its first [`LEVEL_WINDOW`] bytes.
//!
//! The search reads a line's first [`WINDOW_CAP`] bytes at most. The common shape (timestamp,
//! then the level) is recognised from bit masks of the first 32 bytes; other lines are read
//! with one table lookup per byte, and only a line whose level is not right after its header
//! is walked token by token.

use super::classes;

/// A level word must start within a line's first bytes: loggers put it near the start, and a
/// bound keeps a 10 GB line from costing anything extra.
pub const LEVEL_WINDOW: usize = 256;

/// Canonical level names, in report order.
pub const LEVELS: [&str; 8] = [
    "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRITICAL", "FATAL",
];

/// The longest level word.
const LONGEST: usize = 8;

/// Blanks allowed inside brackets around a level word (`[INFO ]` from logback's `%-5level`).
const PADDING: usize = 3;

/// The bytes of a line the search may read: a level word starting at the window's last byte,
/// then the padding and the closing bracket after it.
pub const WINDOW_CAP: usize = LEVEL_WINDOW + LONGEST + PADDING + 1;

/// Level words (lower case) and the index in [`LEVELS`] each counts as. syslog's `err`,
/// `crit`, `alert`, `emerg` and logrus' `panic` are included.
const WORDS: [(&[u8], usize); 14] = [
    (b"trace", 0),
    (b"debug", 1),
    (b"info", 2),
    (b"notice", 3),
    (b"warn", 4),
    (b"warning", 4),
    (b"err", 5),
    (b"error", 5),
    (b"crit", 6),
    (b"critical", 6),
    (b"alert", 6),
    (b"fatal", 7),
    (b"emerg", 7),
    (b"panic", 7),
];

/// The level words packed little-endian into a `u64` each (every word is at most 8 bytes).
const PACKED: [(u64, usize); WORDS.len()] = {
    let mut packed = [(0u64, 0usize); WORDS.len()];
    let mut i = 0;
    while i < WORDS.len() {
        packed[i] = (pack(WORDS[i].0), WORDS[i].1);
        i += 1;
    }
    packed
};

/// A multiplier that sends every packed level word to its own slot of [`SLOTS`] (the top five
/// bits of the product): found when compiling, by trying pseudo-random odd multipliers in turn.
const SLOT_KEY: u64 = {
    let mut key = 0x9E37_79B9_7F4A_7C15u64;
    'search: loop {
        let mut taken = 0u32;
        let mut i = 0;
        while i < PACKED.len() {
            let slot = PACKED[i].0.wrapping_mul(key) >> 59;
            if taken & (1 << slot) != 0 {
                // The next candidate from a 64-bit LCG (odd, so that no bit is lost).
                key = key
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407)
                    | 1;
                continue 'search;
            }
            taken |= 1 << slot;
            i += 1;
        }
        break key;
    }
};

/// The level words by slot: `(packed word, level)`, `(0, 0)` where no word goes (no word
/// packs to 0).
const SLOTS: [(u64, usize); 32] = {
    let mut slots = [(0u64, 0usize); 32];
    let mut i = 0;
    while i < PACKED.len() {
        slots[(PACKED[i].0.wrapping_mul(SLOT_KEY) >> 59) as usize] = PACKED[i];
        i += 1;
    }
    slots
};

const fn pack(bytes: &[u8]) -> u64 {
    let mut value = 0u64;
    let mut i = 0;
    while i < bytes.len() && i < 8 {
        value |= (bytes[i] as u64) << (8 * i);
        i += 1;
    }
    value
}

/// Byte classes, one table lookup per byte.
const JOINED: u8 = 1; // part of a token: letters, digits, `_ - . /`
const STAMP: u8 = 2; // may appear in a timestamp: digits and `+ , - . / : T Z`
const BLANK: u8 = 4; // space, tab, `\r`, `\v`, `\f`

static CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        class[b] = if classes::is_joined(c) { JOINED } else { 0 }
            | if classes::is_stamp(c) { STAMP } else { 0 }
            | if classes::is_blank(c) { BLANK } else { 0 };
        b += 1;
    }
    class
};

#[inline(always)]
fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// The end of the run of bytes of `class` that starts at `at` (`at` itself when the byte there
/// is not of it).
#[inline(always)]
fn run_end(w: &[u8], class: u8, mut at: usize) -> usize {
    while at < w.len() && is(w[at], class) {
        at += 1;
    }
    at
}

/// The level of a line, given its first bytes (`window`: the whole line when it is shorter
/// than [`WINDOW_CAP`], without its `\n`); `None` when no level word counts.
pub fn level_of_line(window: &[u8]) -> Option<usize> {
    let window = &window[..window.len().min(WINDOW_CAP)];
    common_header(window).or_else(|| full_rule(window))
}

/// The rule for any line (`level_of_line` tries the common shape first).
fn full_rule(window: &[u8]) -> Option<usize> {
    if let Some(level) = klog(window) {
        return Some(level);
    }
    let (header, skipped_brackets) = header_end(window);
    if !skipped_brackets && header < LEVEL_WINDOW {
        // Before the header there are only timestamps and separators, which hold no level
        // word: a level here is the line's first.
        let end = run_end(window, JOINED, header);
        if let Some(level) = level_word(window, header, end)
            && ends_header_word(window, end)
        {
            return Some(level);
        }
    }
    walk(window, header)
}

/// The most common shape, found with bit masks of the line's first 32 bytes: timestamp words
/// and blanks, then a level word followed by a blank, `:` or the line's end
/// (`2026-11-23T08:00:00.000Z INFO ...`). `None` when the line has another shape: the full
/// rule then decides, and for a line of this shape it reaches the same answer.
#[inline]
fn common_header(w: &[u8]) -> Option<usize> {
    let block = w.first_chunk::<32>()?;
    let masks = classes::head32(block);
    let mut at = (!masks.blank).trailing_zeros() as usize;
    for _ in 0..4 {
        if at >= 32 || !w[at].is_ascii_digit() {
            break;
        }
        let end = at + (!(masks.stamp >> at)).trailing_zeros() as usize;
        if end >= 32 || masks.blank >> end & 1 == 0 {
            return None;
        }
        at = end + (!(masks.blank >> end)).trailing_zeros() as usize;
    }
    // The word's length from the letter mask when the mask covers a longest word and the byte
    // after it; else byte by byte.
    let len = if at + LONGEST < 32 {
        ((!(masks.alpha >> at)).trailing_zeros() as usize).min(LONGEST + 1)
    } else {
        w.get(at..)?
            .iter()
            .take(LONGEST + 1)
            .take_while(|b| b.is_ascii_alphabetic())
            .count()
    };
    let level = level_word(w, at, at + len)?;
    ends_header_word(w, at + len).then_some(level)
}

/// klog (Kubernetes, glog): `Lmmdd hh:mm:ss.uuuuuu ...` with `L` one of `I W E F`.
fn klog(w: &[u8]) -> Option<usize> {
    if w.len() < 6 || w[5] != b' ' || !w[1..5].iter().all(u8::is_ascii_digit) {
        return None;
    }
    match w[0] {
        b'I' => Some(2),
        b'W' => Some(4),
        b'E' => Some(5),
        b'F' => Some(7),
        _ => None,
    }
}

/// Where the line's header ends: blanks, timestamp words (a digit, then digits and
/// `+ , - . / : T Z`; a `[` before one and a `]` after it), month and weekday names, lone `-`
/// or `|` separators, and at most two bracketed fields are stepped over. Also says whether a
/// bracketed field was stepped over (it could hold a level of its own).
fn header_end(w: &[u8]) -> (usize, bool) {
    let mut at = 0;
    let mut brackets = 0;
    loop {
        at = run_end(w, BLANK, at);
        if at >= w.len() || at >= LEVEL_WINDOW {
            return (at, brackets > 0);
        }
        if w[at] == b'[' {
            if stamp_word_end(w, at + 1).is_some() {
                at += 1;
                continue;
            }
            if brackets < 2
                && let Some(close) = memchr::memchr(b']', &w[at..])
            {
                at += close + 1;
                brackets += 1;
                continue;
            }
            return (at, brackets > 0);
        }
        if let Some(end) = stamp_word_end(w, at) {
            at = end + usize::from(w.get(end) == Some(&b']'));
            continue;
        }
        if matches!(w[at], b'-' | b'|') && w.get(at + 1).is_none_or(|&b| is(b, BLANK)) {
            at += 1;
            continue;
        }
        if let Some(end) = calendar_word(w, at) {
            at = end;
            continue;
        }
        return (at, brackets > 0);
    }
}

/// A timestamp word at `at` (a digit, then bytes of a timestamp, then a blank, `]` or the
/// end): where it ends.
fn stamp_word_end(w: &[u8], at: usize) -> Option<usize> {
    if !w.get(at)?.is_ascii_digit() {
        return None;
    }
    let end = run_end(w, STAMP, at);
    (end == w.len() || w[end] == b']' || is(w[end], BLANK)).then_some(end)
}

/// A month or weekday name (`Nov`, `Mon,`) at `at`, followed by a blank or the end: where it
/// ends.
fn calendar_word(w: &[u8], at: usize) -> Option<usize> {
    const NAMES: [&[u8; 3]; 19] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun",
    ];
    let name = w.get(at..at + 3)?;
    let mut end = at + 3;
    if w.get(end) == Some(&b',') {
        end += 1;
    }
    let ends = end == w.len() || is(w[end], BLANK);
    (ends && NAMES.iter().any(|n| n.as_slice() == name)).then_some(end)
}

/// A word at the header counts when a blank, `:` or the line's end follows it.
fn ends_header_word(w: &[u8], end: usize) -> bool {
    end == w.len() || w[end] == b':' || is(w[end], BLANK)
}

/// Every token starting within the window, in order: the first level word in a place where
/// levels go.
fn walk(w: &[u8], header: usize) -> Option<usize> {
    let starts_before = w.len().min(LEVEL_WINDOW);
    let mut at = 0;
    while at < starts_before {
        if !is(w[at], JOINED) {
            at += 1;
            continue;
        }
        let start = at;
        at = run_end(w, JOINED, at);
        // A token cut by the window's end is longer than any level word: the window reaches
        // past the last start it searches by more than the longest word.
        if let Some(level) = level_word(w, start, at)
            && ((start == header && ends_header_word(w, at))
                || before_colon(w, at)
                || between_dashes(w, start, at)
                || bracketed(w, start, at)
                || is_value(w, start, at))
        {
            return Some(level);
        }
    }
    None
}

/// `error: ...`: a `:` right after the word, then a blank or the line's end (`info:amd64`, a
/// Debian package name, is not a level).
fn before_colon(w: &[u8], end: usize) -> bool {
    w.get(end) == Some(&b':') && w.get(end + 1).is_none_or(|&b| is(b, BLANK))
}

/// ` - word - `: a field between lone dashes (Python's `%(asctime)s - %(name)s -
/// %(levelname)s - %(message)s`).
fn between_dashes(w: &[u8], start: usize, end: usize) -> bool {
    let before =
        start >= 2 && &w[start - 2..start] == b"- " && (start == 2 || is(w[start - 3], BLANK));
    let after = w[end..].starts_with(b" -") && w.get(end + 2).is_none_or(|&b| is(b, BLANK));
    before && after
}

/// `[word]`, `<word>`, with up to [`PADDING`] blanks inside the brackets.
fn bracketed(w: &[u8], start: usize, end: usize) -> bool {
    let mut open = start;
    while open > 0 && start - open < PADDING && classes::is_blank(w[open - 1]) {
        open -= 1;
    }
    let mut close = end;
    while close < w.len() && close - end < PADDING && classes::is_blank(w[close]) {
        close += 1;
    }
    let (Some(&before), Some(&after)) = (open.checked_sub(1).map(|i| &w[i]), w.get(close)) else {
        return false;
    };
    (before == b'[' && after == b']') || (before == b'<' && after == b'>')
}

/// The value of a level key: `level=word`, `level="word"`, `"level": "word"` (keys `level`,
/// `lvl`, `severity`, any case).
fn is_value(w: &[u8], start: usize, end: usize) -> bool {
    let before = |i: usize| i.checked_sub(1).map(|j| w[j]);
    let blank = |b: Option<u8>| b.is_some_and(classes::is_blank);
    match before(start) {
        Some(b'=') => is_key(w, start - 1, false),
        Some(b'"') if w.get(end) == Some(&b'"') => {
            let quote = start - 1;
            if before(quote) == Some(b'=') {
                return is_key(w, quote - 1, false);
            }
            // JSON: `"key"` blanks `:` blanks `"word"`.
            let mut i = quote;
            while blank(before(i)) {
                i -= 1;
            }
            if before(i) != Some(b':') {
                return false;
            }
            i -= 1;
            while blank(before(i)) {
                i -= 1;
            }
            before(i) == Some(b'"') && is_key(w, i - 1, true)
        }
        _ => false,
    }
}

/// Whether the bytes ending at `end` are a level key standing alone (after a non-token byte
/// or the line's start; after a `"` when `quoted`).
fn is_key(w: &[u8], end: usize, quoted: bool) -> bool {
    [&b"level"[..], b"lvl", b"severity"].iter().any(|key| {
        let Some(start) = end.checked_sub(key.len()) else {
            return false;
        };
        if !w[start..end].eq_ignore_ascii_case(key) {
            return false;
        }
        match start.checked_sub(1).map(|i| w[i]) {
            None => !quoted,
            Some(b) if quoted => b == b'"',
            Some(b) => !classes::is_joined(b),
        }
    })
}

/// The level the token `w[start..end]` names: a level word written all upper case, all lower
/// case or capitalised.
#[inline]
fn level_word(w: &[u8], start: usize, end: usize) -> Option<usize> {
    let len = end - start;
    if !(3..=LONGEST).contains(&len) {
        return None;
    }
    // The token as an integer: eight bytes loaded at once where the line has them (a byte
    // copy through memory would stall the load).
    let keep = u64::MAX >> (8 * (8 - len));
    let word = match w[start..].first_chunk::<8>() {
        Some(&eight) => u64::from_le_bytes(eight) & keep,
        None => w[start..end]
            .iter()
            .rev()
            .fold(0u64, |value, &b| value << 8 | u64::from(b)),
    };
    // Bit 5 of each byte of the token: letters differ in case there only.
    let case = 0x2020_2020_2020_2020u64 & keep;
    let lower = word | case;
    // One slot to look at instead of a search through the words.
    let (packed, level) = SLOTS[(lower.wrapping_mul(SLOT_KEY) >> 59) as usize];
    if packed != lower {
        return None;
    }
    let upper = word & !case;
    let capitalised = lower & !0x20;
    (word == lower || word == upper || word == capitalised).then_some(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The fast path for the common shape never disagrees with the full rule.
        #[test]
        fn the_common_shape_reads_as_the_full_rule_does(
            pieces in prop::collection::vec(prop_oneof![
                Just("2026-11-23T08:00:00.123Z"), Just("2026-11-23"), Just("08:00:05,1"),
                Just(" "), Just("\t"), Just("INFO"), Just("error"), Just("Warning"), Just("WARN:"),
                Just("[main]"), Just("["), Just("]"), Just("-"), Just("|"), Just("Nov"),
                Just("x"), Just(":"), Just("level="), Just("T"), Just("Z"), Just("9"),
                Just("E1123"), Just("crit"), Just("Errors"), Just("é"),
            ], 0..12),
        ) {
            let line = pieces.concat();
            let w = line.as_bytes();
            if let Some(level) = common_header(w) {
                prop_assert_eq!(Some(level), full_rule(w), "{}", line);
            }
        }
    }

    /// `level_word` against a plain search of the word list: every level word in its three
    /// spellings, every one-letter change of each, and each cut short or grown by a letter.
    #[test]
    fn level_words_are_found_by_their_slot() {
        let reference = |token: &[u8]| -> Option<usize> {
            let lower = token.to_ascii_lowercase();
            let &(_, level) = WORDS.iter().find(|(word, _)| *word == lower.as_slice())?;
            let upper = token.to_ascii_uppercase();
            let mut capitalised = lower.clone();
            capitalised[0] = capitalised[0].to_ascii_uppercase();
            (token == lower.as_slice()
                || token == upper.as_slice()
                || token == capitalised.as_slice())
            .then_some(level)
        };
        let check = |token: &[u8]| {
            // Both ways of loading the token: with eight bytes after its start, and at the end.
            let mut padded = token.to_vec();
            padded.extend_from_slice(b" padding");
            assert_eq!(
                level_word(&padded, 0, token.len()),
                reference(token),
                "{token:?}"
            );
            assert_eq!(
                level_word(token, 0, token.len()),
                reference(token),
                "{token:?}"
            );
        };
        for &(word, _) in &WORDS {
            let upper = word.to_ascii_uppercase();
            let mut capitalised = word.to_vec();
            capitalised[0] = capitalised[0].to_ascii_uppercase();
            for spelling in [word.to_vec(), upper, capitalised] {
                check(&spelling);
                for at in 0..spelling.len() {
                    for letter in (b'a'..=b'z').chain(b'A'..=b'Z') {
                        let mut changed = spelling.clone();
                        changed[at] = letter;
                        check(&changed);
                    }
                }
                check(&spelling[..spelling.len() - 1]);
                check(&[spelling.as_slice(), b"s"].concat());
            }
        }
    }

    fn level(line: &str) -> Option<&'static str> {
        level_of_line(line.as_bytes()).map(|i| LEVELS[i])
    }

    /// Lines written by other programs (copied from their documentation and from this
    /// machine's own logs), and the level a person reads in each.
    #[test]
    fn real_formats() {
        let cases: &[(&str, Option<&str>)] = &[
            // dpkg.log: package names hold level words joined by `-` and `:`.
            (
                "2026-11-20 10:23:45 status installed shared-mime-info:amd64 2.4-5",
                None,
            ),
            (
                "2026-11-20 10:23:45 configure libgpg-error-l10n:all 1.47-1 <none>",
                None,
            ),
            (
                "2026-11-20 10:23:46 status half-configured distro-info-data:all 0.58",
                None,
            ),
            ("2026-11-20 10:23:47 install info:amd64 <none> 7.1-3", None),
            // apt's history.log.
            ("Start-Date: 2026-11-20  10:23:40", None),
            ("Commandline: apt-get install -y libgpg-error0", None),
            (
                "Error: Sub-process /usr/bin/dpkg returned an error code (1)",
                Some("ERROR"),
            ),
            // nginx error log.
            (
                "2026/11/20 10:23:45 [error] 1234#1234: *1 open() \"/usr/share/nginx/html/x\" failed",
                Some("ERROR"),
            ),
            (
                "2026/11/20 10:23:45 [warn] 1234#1234: conflicting server name",
                Some("WARN"),
            ),
            (
                "2026/11/20 10:23:45 [crit] 1234#1234: *5 SSL_do_handshake() failed",
                Some("CRITICAL"),
            ),
            (
                "2026/11/20 10:23:45 [emerg] 1234#1234: bind() failed",
                Some("FATAL"),
            ),
            // syslog.
            (
                "Nov 20 10:23:45 host sshd[4242]: error: PAM: Authentication failure for root",
                Some("ERROR"),
            ),
            (
                "Nov 20 10:23:45 host CRON[77]: (root) CMD (run-parts /etc/cron.hourly)",
                None,
            ),
            ("<11>Nov 20 10:23:45 host app: message", None),
            // logfmt and JSON lines.
            (
                "time=2026-11-20T10:23:45Z level=warn msg=\"disk almost full\"",
                Some("WARN"),
            ),
            (
                "ts=1732098225 lvl=ERROR caller=main.go:42 msg=boom",
                Some("ERROR"),
            ),
            (
                "time=\"2026-11-20\" level=\"info\" msg=started",
                Some("INFO"),
            ),
            (
                "{\"time\":\"2026-11-20T10:23:45Z\",\"level\":\"error\",\"msg\":\"x\"}",
                Some("ERROR"),
            ),
            (
                "{\"severity\": \"WARNING\", \"message\": \"slow\"}",
                Some("WARN"),
            ),
            ("{\"loglevel\":\"error\"}", None),
            ("{\"msg\":\"error\"}", None),
            // Python logging.
            ("WARNING:root:watch out", Some("WARN")),
            ("2026-11-20 10:23:45,123 INFO myapp: started", Some("INFO")),
            ("2026-11-20 10:23:45,123 - WARNING - low disk", Some("WARN")),
            (
                "2026-11-20 10:23:45,124 - myapp - DEBUG - details",
                Some("DEBUG"),
            ),
            ("a - error-prone - b", None),
            // Java (logback's default pattern pads the level).
            (
                "10:23:45.123 [main] INFO  com.example.App - started",
                Some("INFO"),
            ),
            (
                "2026-11-20 10:23:45.123 [pool-1-thread-2] [WARN ] c.e.Job - slow",
                Some("WARN"),
            ),
            // klog.
            (
                "E1120 10:23:45.123456   12345 server.go:42] connection refused",
                Some("ERROR"),
            ),
            (
                "I1120 10:23:45.123456   12345 server.go:42] started",
                Some("INFO"),
            ),
            // This project's own logs (env_logger) and the benchmark log.
            ("[2026-11-20 10:23:45] [main] ERROR x", Some("ERROR")),
            (
                "[2026-11-20T10:23:45Z INFO  file_processor::daemon] watching",
                Some("INFO"),
            ),
            (
                "2026-11-01T00:00:00.000Z DEBUG [worker-14] session request",
                Some("DEBUG"),
            ),
            // Words in a sentence are not levels.
            ("the job failed with an error and a warning", None),
            ("Error rates are down", Some("ERROR")),
            ("ERROR_CODE=5 x.error y/info", None),
            ("INFORMATION is not a level", None),
            ("eRRor is not a level", None),
            ("INFO then ERROR: counts once as INFO", Some("INFO")),
        ];
        for &(line, want) in cases {
            assert_eq!(level(line), want, "{line}");
        }
    }

    #[test]
    fn only_the_window_is_searched() {
        let far = format!("{} [error]", "x".repeat(LEVEL_WINDOW));
        assert_eq!(level(&far), None);
        let near = format!("{} [error]", "x".repeat(LEVEL_WINDOW - 3));
        assert_eq!(level(&near), Some("ERROR"));
        let padded = format!("{}[ERROR   ]", "x ".repeat(LEVEL_WINDOW / 2 - 1));
        assert_eq!(level(&padded), Some("ERROR"));
    }
}
