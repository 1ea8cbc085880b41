//! Every rule of the OZmap adapter that the contract (`docs/OZMAP-API.md`) tags **assumed**:
//! how OZmap's records map onto the gateway's concepts where no source showed it. They live here,
//! each behind a name that says what it decides, so that a live installation can correct one
//! in one place. The contract's open questions that each rule answers are cited by number.

use crate::catalog::ElementItem;
use crate::platform::{PortStatus, SplitterKind};

/// The item of a box (open question 1): its box type's `code` (else `prefix`),
/// case-insensitive, starting `CTO` → CTO, `CEO` or `CE` → CEO; else the name the project's
/// `hierarchyLevels.box` gives the box's `hierarchyLevel`, read the same way; else none (the
/// box is in no item and is not synced).
pub fn box_item(box_type_code: Option<&str>, level_name: Option<&str>) -> Option<ElementItem> {
    let by_name = |name: &str| {
        let name = name.trim().to_ascii_uppercase();
        if name.starts_with("CTO") {
            Some(ElementItem::Cto)
        } else if name.starts_with("CEO") || name.starts_with("CE") {
            Some(ElementItem::Ceo)
        } else {
            None
        }
    };
    box_type_code
        .and_then(by_name)
        .or_else(|| level_name.and_then(by_name))
}

/// Service or distribution (open question 2): `isDrop` marks the splitter whose outputs feed
/// customers' drop cables, Geosite's "Atendimento".
pub fn splitter_kind(is_drop: bool) -> SplitterKind {
    if is_drop {
        SplitterKind::Service
    } else {
        SplitterKind::Distribution
    }
}

/// The ratio as the gateway writes it: `"{input}:{output}"` from `ratio`, else `1:{outputs}`;
/// and the port count, which is the number of outputs (`connectables.output`).
pub fn ratio(ratio: Option<(u32, u32)>, outputs: usize) -> (String, i32) {
    let text = match ratio {
        Some((input, output)) if input > 0 && output > 0 => format!("{input}:{output}"),
        _ => format!("1:{outputs}"),
    };
    (text, i32::try_from(outputs).unwrap_or(i32::MAX))
}

/// A port's status (open question 10): something plugged into its output → OCCUPIED; nothing
/// plugged and `ports[N-1].blocked` → RESERVED; else FREE. Nothing maps to DAMAGED.
pub fn port_status(plugged: bool, blocked: bool) -> PortStatus {
    match (plugged, blocked) {
        (true, _) => PortStatus::Occupied,
        (false, true) => PortStatus::Reserved,
        (false, false) => PortStatus::Free,
    }
}

/// The gateway's id of port `number` (1-based) of a splitter: OZmap's ports have no route of
/// their own and `ports[].id` is optional.
pub fn port_fid(splitter_id: &str, number: i32) -> String {
    format!("{splitter_id}:{number}")
}

/// The splitter and number of a port id written by [`port_fid`].
pub fn parse_port_fid(fid: &str) -> Option<(&str, i32)> {
    let (splitter, number) = fid.rsplit_once(':')?;
    let number: i32 = number.parse().ok()?;
    (!splitter.is_empty() && number > 0 && port_fid(splitter, number) == fid)
        .then_some((splitter, number))
}

/// The CPF or CNPJ of a customer (open question 5: OZmap's FTTH client has no such field): the
/// first run of exactly 11 or 14 digits in the client's `observation`, once `.`, `-`, `/` and
/// spaces are taken out, whose check digits are valid.
pub fn customer_document(observation: &str) -> Option<String> {
    let compact: String = observation
        .chars()
        .filter(|c| !matches!(c, '.' | '-' | '/' | ' '))
        .collect();
    compact
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 11 || run.len() == 14)
        .find_map(|run| crate::bindings::document::digits(run).ok())
}

/// What the gateway writes in a client's `observation` so that [`customer_document`] reads the
/// document back.
pub fn observation_of(document: &str) -> String {
    format!("CPF/CNPJ {document}")
}

/// A client's `observation` with its CPF/CNPJ set to `document`, the rest of the text as it
/// was: the run of digits and separators ([`customer_document`]'s) that holds a valid document
/// is replaced; without one, `CPF/CNPJ <document>` goes in front of the text. A person's notes
/// (telephone, directions, due day) are never lost.
pub fn with_document(observation: &str, document: &str) -> String {
    let separator = |c: char| c.is_ascii_digit() || matches!(c, '.' | '-' | '/' | ' ');
    let mut rest = observation;
    let mut offset = 0;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let run = &rest[start..];
        let len = run.find(|c: char| !separator(c)).unwrap_or(run.len());
        let span = run[..len].trim_end_matches(|c: char| !c.is_ascii_digit());
        let digits: String = span.chars().filter(char::is_ascii_digit).collect();
        if (digits.len() == 11 || digits.len() == 14)
            && crate::bindings::document::digits(&digits).is_ok()
        {
            let at = offset + start;
            return format!(
                "{}{document}{}",
                &observation[..at],
                &observation[at + span.len()..]
            );
        }
        offset += start + len.max(1);
        rest = &observation[offset..];
    }
    match observation.trim() {
        "" => observation_of(document),
        text => format!("{} | {text}", observation_of(document)),
    }
}

/// The `external_id` of a property the gateway creates: release deletes only a property whose
/// `external_id` starts with the integration's key and `:`.
pub fn external_id(integration_key: &str, contract: &str) -> String {
    format!("{integration_key}:{contract}")
}

/// Whether the gateway of this integration created a property (so release may delete it,
/// rather than only detach its client).
pub fn created_by(integration_key: &str, external_id: Option<&str>) -> bool {
    external_id.is_some_and(|id| {
        id.strip_prefix(integration_key)
            .is_some_and(|rest| rest.starts_with(':'))
    })
}

/// Login or API key (the contract's proposal): a username of `apikey` (any case) means the
/// password field holds an API key, sent as is on every call; anything else logs in.
pub fn uses_api_key(username: &str) -> bool {
    username.trim().eq_ignore_ascii_case("apikey")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_cto_or_ceo_by_type_code_then_level_name() {
        assert_eq!(box_item(Some("CTO-16"), None), Some(ElementItem::Cto));
        assert_eq!(box_item(Some("cto"), Some("CE")), Some(ElementItem::Cto));
        assert_eq!(box_item(Some("CEO 24F"), None), Some(ElementItem::Ceo));
        assert_eq!(box_item(Some("ce"), None), Some(ElementItem::Ceo));
        // A type code that says neither: the hierarchy level's name decides.
        assert_eq!(box_item(Some("CTX"), Some("CTO")), Some(ElementItem::Cto));
        assert_eq!(box_item(None, Some(" ce ")), Some(ElementItem::Ceo));
        assert_eq!(box_item(Some("CTX"), Some("POP")), None);
        assert_eq!(box_item(None, None), None);
    }

    #[test]
    fn splitters_ratios_and_ports() {
        assert_eq!(splitter_kind(true), SplitterKind::Service);
        assert_eq!(splitter_kind(false), SplitterKind::Distribution);
        assert_eq!(ratio(Some((1, 8)), 8), ("1:8".into(), 8));
        assert_eq!(ratio(None, 16), ("1:16".into(), 16));
        assert_eq!(ratio(Some((0, 8)), 4), ("1:4".into(), 4));
        assert_eq!(port_status(true, true), PortStatus::Occupied);
        assert_eq!(port_status(false, true), PortStatus::Reserved);
        assert_eq!(port_status(false, false), PortStatus::Free);
        let fid = port_fid("65a1f0c2e4b0a1b2c3d4e5f6", 3);
        assert_eq!(parse_port_fid(&fid), Some(("65a1f0c2e4b0a1b2c3d4e5f6", 3)));
        for bad in ["abc", "abc:0", "abc:-1", ":3", "abc:03", "abc:x"] {
            assert_eq!(parse_port_fid(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_document_is_the_first_valid_run_of_the_observation() {
        assert_eq!(
            customer_document("CPF/CNPJ 529.982.247-25").as_deref(),
            Some("52998224725")
        );
        assert_eq!(
            customer_document(&observation_of("11222333000181")).as_deref(),
            Some("11222333000181")
        );
        // A phone number first, then a CPF whose check digits fail, then a valid CNPJ.
        assert_eq!(
            customer_document("tel (85) 98877-6655; cpf 529.982.247-24; cnpj 11.222.333/0001-81")
                .as_deref(),
            Some("11222333000181")
        );
        assert_eq!(customer_document("111.111.111-11"), None, "repeated digits");
        assert_eq!(customer_document("cliente antigo"), None);
    }

    #[test]
    fn a_document_is_changed_in_place_and_the_notes_kept() {
        let notes =
            "CPF/CNPJ 529.982.247-25 | tel (85) 98877-6655 | portao azul | vencimento dia 10";
        assert_eq!(
            with_document(notes, "11222333000181"),
            "CPF/CNPJ 11222333000181 | tel (85) 98877-6655 | portao azul | vencimento dia 10"
        );
        assert_eq!(
            customer_document(&with_document(notes, "11222333000181")).as_deref(),
            Some("11222333000181")
        );
        // A number that is no document stays; the document goes in front.
        assert_eq!(
            with_document("tel 85 98877-6655, casa 2", "52998224725"),
            "CPF/CNPJ 52998224725 | tel 85 98877-6655, casa 2"
        );
        assert_eq!(with_document("  ", "52998224725"), "CPF/CNPJ 52998224725");
        // Multi-byte text before the document.
        assert_eq!(
            with_document("João: cnpj 11.222.333/0001-81.", "52998224725"),
            "João: cnpj 52998224725."
        );
        assert_eq!(customer_document(""), None);
    }

    #[test]
    fn properties_of_the_gateway_are_told_by_their_external_id() {
        let id = external_id("geo-norte", "990001");
        assert_eq!(id, "geo-norte:990001");
        assert!(created_by("geo-norte", Some(&id)));
        assert!(!created_by("geo", Some(&id)), "a prefix of another key");
        assert!(!created_by("geo-norte", Some("geo-norte")));
        assert!(!created_by("geo-norte", None));
        assert!(uses_api_key(" ApiKey "));
        assert!(!uses_api_key("integracao"));
    }
}
