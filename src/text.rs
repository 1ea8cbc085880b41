//! Checks for short texts people type (names, usernames, cron lines): they end up in logs,
//! history entries and other people's screens, so control characters and bidirectional overrides
//! (which split log lines, colour terminals or reverse what a reader sees) are refused, and
//! lengths are bounded.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::{Error, Result};

/// Trimmed, without accents, lowercased as Unicode: how platform labels are compared and what
/// name searches match against ("SÃO" and "são" both fold to "sao"), the same on every engine.
pub fn fold(text: &str) -> String {
    text.trim()
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// NFKC, without format characters (U+200B, U+2060, U+00AD, U+FEFF and the rest of category
/// Cf): what a person reads. Fullwidth digits become ASCII ones; invisible marks go.
pub fn visible(text: &str) -> String {
    text.nfkc()
        .filter(|c| c.general_category() != GeneralCategory::Format)
        .collect()
}

/// Longest element search text.
pub const MAX_SEARCH_CHARS: usize = 100;

/// Longest platform fid accepted as an argument.
pub const MAX_FID_CHARS: usize = 64;

/// An identifier people type or paste (a contract, a platform fid): [`visible`], trimmed, and
/// then only ASCII letters, digits and `- _ . /`, at most `max_chars`; else `VALIDATION` on
/// `field`. One spelling per identifier, so uniqueness and lookups hold on what a person reads.
pub fn identifier(field: &str, value: &str, max_chars: usize) -> Result<String> {
    let value = visible(value);
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max_chars {
        return Err(Error::validation(
            field,
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(Error::validation(
            field,
            format!("{field} may hold only letters, digits and - _ . /"),
        ));
    }
    Ok(value.to_owned())
}

/// Bidirectional formatting characters and line separators that change how a text reads.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}' | '\u{FEFF}'
    )
}

/// A platform's text as the gateway keeps, answers and logs it: each control character
/// (escapes, newlines, NUL) and bidirectional override replaced by U+FFFD, so it can neither
/// split a log line, colour a terminal, reorder what a reader sees, nor pass for another text
/// (a contract with a bell after it stays another contract).
pub fn plain(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_deceptive(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() || is_deceptive(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// [`plain`] in place.
pub fn make_plain(text: &mut String) {
    if let std::borrow::Cow::Owned(clean) = plain(text) {
        *text = clean;
    }
}

/// The trimmed text, or `VALIDATION` on `field` when it is empty, longer than `max_chars` or
/// carries control characters or bidirectional overrides.
pub fn clean_line(field: &str, value: &str, max_chars: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max_chars {
        return Err(Error::validation(
            field,
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control() || is_deceptive(c)) {
        return Err(Error::validation(
            field,
            format!("{field} must not contain control characters or bidirectional overrides"),
        ));
    }
    Ok(value.to_owned())
}

/// A driver's message without the source positions some drivers append (PostgreSQL's server
/// reports the line of its own C file: "password authentication failed … at line 334"): they
/// mean nothing to an operator.
pub fn without_source_lines(text: &str) -> String {
    const MARK: &str = " at line ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..at]);
        if digits == 0 {
            out.push_str(MARK);
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_lines_are_dropped() {
        assert_eq!(
            without_source_lines(
                "password authentication failed for user \"mgw\" at line 334; retry"
            ),
            "password authentication failed for user \"mgw\"; retry"
        );
        assert_eq!(without_source_lines("look at line two"), "look at line two");
    }

    #[test]
    fn platform_text_is_plain() {
        assert_eq!(plain("Rua das Flores"), "Rua das Flores");
        assert_eq!(
            plain("\u{1b}[31mFAKE\nERROR password=x\u{202E}"),
            "\u{FFFD}[31mFAKE\u{FFFD}ERROR password=x\u{FFFD}"
        );
        assert_ne!(plain("530001\u{7}"), "530001");
    }

    #[test]
    fn identifiers_have_one_spelling() {
        for spelling in [
            "9983103",
            " 9983103 ",
            "\u{200B}9983103",
            "9983103\u{200B}",
            "99\u{2060}83103",
            "998\u{00AD}3103",
            "\u{FEFF}9983103",
            "９983103",
            "99831０3",
        ] {
            assert_eq!(
                identifier("contract", spelling, 200).unwrap(),
                "9983103",
                "{spelling:?}"
            );
        }
        for bad in [
            "",
            "\u{200B}",
            "99 83103",
            "9983103\u{0301}",
            "contrato: 1",
            "a\nb",
            "ﾀ1",
        ] {
            assert_eq!(
                identifier("contract", bad, 200).unwrap_err().code(),
                "VALIDATION",
                "{bad:?}"
            );
        }
        assert_eq!(identifier("fid", "CT-12_a.b/3", 64).unwrap(), "CT-12_a.b/3");
        assert!(identifier("fid", &"1".repeat(65), 64).is_err());
    }

    #[test]
    fn control_and_bidi_characters_are_refused() {
        assert_eq!(
            clean_line("name", "  Provedor Ceará ", 20).unwrap(),
            "Provedor Ceará"
        );
        for bad in [
            "",
            "   ",
            "two\nlines",
            "nul\0",
            "esc \u{1b}[31mred",
            "tab\there",
            "rtl \u{202E}gnp.exe",
            "isolate \u{2067}x",
            "line\u{2028}sep",
            "del\u{7f}",
            "c1\u{85}next",
        ] {
            assert_eq!(
                clean_line("name", bad, 20).unwrap_err().code(),
                "VALIDATION",
                "{bad:?}"
            );
        }
        assert!(clean_line("name", &"x".repeat(21), 20).is_err());
        assert!(clean_line("name", &"ç".repeat(20), 20).is_ok());
    }
}
