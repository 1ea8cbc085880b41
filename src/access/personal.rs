//! Personal data (Brazil's LGPD) as a key without `personal_data` sees it: a CPF or CNPJ with
//! only its middle digits (`***.982.247-**`, `**.222.333/0001-**`), a name reduced to its
//! initials (`M. S.`), an address hidden. Contracts are the ISP's own codes and stay readable.

use serde_json::Value;

/// A CPF/CNPJ as a key without personal data sees it. Digits only or formatted in; anything
/// that is neither 11 nor 14 digits shows as `***`.
pub fn document(text: &str) -> String {
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    let d = |range: std::ops::Range<usize>| digits[range].iter().collect::<String>();
    match digits.len() {
        11 => format!("***.{}.{}-**", d(3..6), d(6..9)),
        14 => format!("**.{}.{}/{}-**", d(2..5), d(5..8), d(8..12)),
        _ => "***".to_owned(),
    }
}

/// Words of a name that are not initialled (Portuguese particles).
const PARTICLES: [&str; 7] = ["da", "de", "do", "das", "dos", "e", "d'"];

/// A name reduced to its initials: `Maria da Silva` → `M. S.`.
pub fn name(text: &str) -> String {
    let initials: Vec<String> = text
        .split_whitespace()
        .filter(|w| !PARTICLES.contains(&w.to_lowercase().as_str()))
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .map(|c| format!("{}.", c.to_uppercase()))
        .collect();
    if initials.is_empty() {
        "***".to_owned()
    } else {
        initials.join(" ")
    }
}

/// An address as a key without personal data sees it.
pub fn address(_text: &str) -> String {
    "***".to_owned()
}

/// A free text that may quote a document after the word `document` (delivery errors, "the
/// platform port carries document 52998224725"): each such document masked.
pub fn text(text: &str) -> String {
    const WORD: &str = "document ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(WORD) {
        let (before, after) = rest.split_at(at + WORD.len());
        out.push_str(before);
        let end = after
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '/')))
            .unwrap_or(after.len());
        let (quoted, tail) = after.split_at(end);
        if quoted.chars().any(|c| c.is_ascii_digit()) {
            out.push_str(&document(quoted));
        } else {
            out.push_str(quoted);
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A binding's snapshot as a history entry keeps it (`document`, `name`, `address`), masked.
pub fn snapshot(value: &mut Value) {
    if let Value::Object(map) = value {
        for (key, v) in map.iter_mut() {
            let Value::String(s) = v else {
                if v.is_object() {
                    snapshot(v);
                }
                continue;
            };
            match key.as_str() {
                "document" | "platformDocument" => *s = document(s),
                "name" => *s = name(s),
                "address" => *s = address(s),
                "lastError" => *s = text(s),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_only_their_middle_digits() {
        assert_eq!(document("52998224725"), "***.982.247-**");
        assert_eq!(document("529.982.247-25"), "***.982.247-**");
        assert_eq!(document("11222333000181"), "**.222.333/0001-**");
        assert_eq!(document("11.222.333/0001-81"), "**.222.333/0001-**");
        assert_eq!(document("123"), "***");
    }

    #[test]
    fn names_become_initials() {
        assert_eq!(name("Maria da Silva"), "M. S.");
        assert_eq!(name("  joão DOS santos e souza "), "J. S. S.");
        assert_eq!(name("Ítalo"), "Í.");
        assert_eq!(name(""), "***");
    }

    #[test]
    fn texts_mask_each_quoted_document() {
        assert_eq!(
            text("held: the platform port carries document 52998224725, not ours"),
            "held: the platform port carries document ***.982.247-**, not ours"
        );
        assert_eq!(
            text("contract 123 (document 11.222.333/0001-81)"),
            "contract 123 (document **.222.333/0001-**)"
        );
        assert_eq!(text("no document here"), "no document here");
    }

    #[test]
    fn snapshots_mask_documents_names_and_addresses() {
        let mut v = serde_json::json!({
            "contract": "C-1", "document": "52998224725", "name": "Maria da Silva",
            "address": "Rua A, 1", "status": "CONFIRMED"
        });
        snapshot(&mut v);
        assert_eq!(v["document"], "***.982.247-**");
        assert_eq!(v["name"], "M. S.");
        assert_eq!(v["address"], "***");
        assert_eq!(v["contract"], "C-1");
    }
}
