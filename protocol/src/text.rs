//! Text a peer sent, made safe to log, store and show: bounded in length and printable.
//!
//! Names, versions and descriptions come from the other side of the wire. Left as sent, a
//! name could be a megabyte long, forge log lines with newlines, recolour a terminal with
//! ANSI escapes, or reorder what a reader sees with bidirectional overrides.

/// What replaces a character that must not be printed.
const REPLACEMENT: char = '\u{FFFD}';

/// What marks text cut short.
const ELLIPSIS: char = '…';

/// `text` in at most `max_chars` characters (cut short, it ends in "…"), line breaks and
/// tabs as spaces, and every other control character, and the bidirectional controls, as
/// U+FFFD.
///
/// ```
/// use dipla_protocol::text::printable;
/// assert_eq!(printable("a\nb\u{1b}[31m", 64), "a b\u{FFFD}[31m");
/// assert_eq!(printable("abcdef", 4), "abc…");
/// assert_eq!(printable("abcd", 4), "abcd");
/// ```
pub fn printable(text: &str, max_chars: usize) -> String {
    let long = text.chars().nth(max_chars).is_some();
    let keep = if long {
        max_chars.saturating_sub(1)
    } else {
        max_chars
    };
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    for c in text.chars().take(keep) {
        out.push(match c {
            '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}' => ' ',
            c if unprintable(c) => REPLACEMENT,
            c => c,
        });
    }
    if long && max_chars > 0 {
        out.push(ELLIPSIS);
    }
    out
}

/// A task's log made safe to show: at most `max_bytes` bytes (cut short at a character
/// boundary, it ends in "…"), its line breaks kept as `\n` (`\r\n` and a lone `\r`
/// become `\n`, so a line cannot overwrite another on a terminal), tabs kept, and every
/// other control character, and the bidirectional controls, as U+FFFD.
///
/// ```
/// use dipla_protocol::text::printable_log;
/// assert_eq!(printable_log("a\r\nb\t\u{1b}[31m", 64), "a\nb\t\u{FFFD}[31m");
/// assert_eq!(printable_log("abcdef", 6), "abcdef");
/// assert_eq!(printable_log("abcdefg", 6), "abc…");
/// ```
pub fn printable_log(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => '\n',
            '\t' => '\t',
            c if unprintable(c) => REPLACEMENT,
            c => c,
        };
        if out.len() + c.len_utf8() > max_bytes {
            while out.len() + ELLIPSIS.len_utf8() > max_bytes {
                if out.pop().is_none() {
                    return out;
                }
            }
            out.push(ELLIPSIS);
            return out;
        }
        out.push(c);
    }
    out
}

/// Control characters (C0, DEL, C1) and the invisible characters that change the order or
/// direction in which text is shown.
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept_as_it_is() {
        assert_eq!(
            printable("worker-7 (Zoë's laptop)", 64),
            "worker-7 (Zoë's laptop)"
        );
        assert_eq!(printable("", 64), "");
    }

    #[test]
    fn line_breaks_cannot_forge_log_lines() {
        assert_eq!(
            printable("a\nINFO worker joined\r\n\tb", 64),
            "a INFO worker joined  \u{20}b"
        );
    }

    #[test]
    fn escapes_and_other_controls_are_replaced() {
        assert_eq!(
            printable("\u{1b}[2J\u{7}x\u{7f}\u{85}", 64),
            "\u{FFFD}[2J\u{FFFD}x\u{FFFD}\u{FFFD}"
        );
    }

    #[test]
    fn bidirectional_controls_are_replaced() {
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(printable(&format!("a{c}b"), 64), "a\u{FFFD}b", "{:?}", c);
        }
    }

    #[test]
    fn logs_keep_their_lines_and_lose_their_escapes() {
        assert_eq!(
            printable_log("one\ntwo\r\nthree\rfour\u{2028}five\n", 64),
            "one\ntwo\nthree\nfour\nfive\n"
        );
        assert_eq!(
            printable_log("\u{1b}[2J\u{7}x\u{202E}y\tz", 64),
            "\u{FFFD}[2J\u{FFFD}x\u{FFFD}y\tz"
        );
    }

    #[test]
    fn logs_are_cut_at_a_byte_count_on_a_character_boundary() {
        assert_eq!(printable_log("abc", 3), "abc");
        assert_eq!(printable_log("abcd", 3), "…");
        assert_eq!(printable_log("abcd", 2), "");
        // "é" is 2 bytes, "…" 3: 4 + 3 fits in 8, a third "é" would not leave room.
        assert_eq!(printable_log("éééééé", 8), "éé…");
        let long = printable_log(&"x".repeat(1 << 20), 8192);
        assert_eq!(long.len(), 8192);
        assert!(long.ends_with('…'));
        assert_eq!(printable_log("", 0), "");
    }

    #[test]
    fn long_text_is_cut_at_a_character_count_with_an_ellipsis() {
        assert_eq!(printable("abcdef", 6), "abcdef");
        assert_eq!(printable("abcdefg", 6), "abcde…");
        assert_eq!(printable("ééééé", 2), "é…");
        assert_eq!(printable(&"x".repeat(1 << 20), 64).chars().count(), 64);
        assert_eq!(printable("abc", 0), "");
    }
}
