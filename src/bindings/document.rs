//! CPF and CNPJ: check digits by the `cpf` and `cnpj` crates; the rules they leave out (repeated
//! digits, which pass the check-digit arithmetic) here.

use crate::{Error, Result};

/// The document as digits: a CPF (11 digits) or a CNPJ (14), formatted (`123.456.789-09`,
/// `12.345.678/0001-95`) or not, with valid check digits and not one digit repeated.
pub fn digits(text: &str) -> Result<String> {
    let digits: String = crate::text::visible(text)
        .chars()
        .filter(|c| !matches!(c, '.' | '-' | '/' | ' '))
        .collect();
    let refuse = |why: &str| {
        Err(Error::validation(
            "document",
            format!("document must be a valid CPF (11 digits) or CNPJ (14 digits): {why}"),
        ))
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return refuse("only digits and the separators . - / are accepted");
    }
    let repeated = digits.bytes().all(|b| b == digits.as_bytes()[0]);
    match digits.len() {
        11 | 14 if repeated => refuse("one digit repeated is not a document"),
        11 if cpf::valid(&digits) => Ok(digits),
        14 if cnpj::valid(&digits) => Ok(digits),
        11 => refuse("the CPF check digits do not match"),
        14 => refuse("the CNPJ check digits do not match"),
        n => refuse(&format!("{n} digits")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpf_and_cnpj_are_checked() {
        assert_eq!(digits("385.211.390-39").unwrap(), "38521139039");
        assert_eq!(digits("38521139039").unwrap(), "38521139039");
        assert_eq!(digits("11.222.333/0001-81").unwrap(), "11222333000181");
        for bad in [
            "385.211.390-38",
            "111.111.111-11",
            "00000000000",
            "11.222.333/0001-80",
            "11111111111111",
            "1234567890",
            "123456789012",
            "abc.def.ghi-jk",
            "",
            "385 211 390 39 1",
        ] {
            assert_eq!(digits(bad).unwrap_err().code(), "VALIDATION", "{bad}");
        }
    }
}
