//! The items of the element catalog as they are stored: an element's `item` (`CTO`, `CEO`,
//! `POP`, `POLE`) and a selection's `item` (those and the splitter kinds). Declared once, here;
//! a stored value that is none of these fails the read instead of being mapped to something.

use sea_orm::entity::prelude::*;

/// A selectable item of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ElementItem {
    /// Splitter de atendimento: the splitters customers are bound to. Always selected.
    #[sea_orm(string_value = "SERVICE")]
    Service,
    /// Splitter de distribuição.
    #[sea_orm(string_value = "DISTRIBUTION")]
    Distribution,
    /// Caixa de terminação óptica.
    #[sea_orm(string_value = "CTO")]
    Cto,
    /// Caixa de emenda óptica.
    #[sea_orm(string_value = "CEO")]
    Ceo,
    /// Point of presence / station.
    #[sea_orm(string_value = "POP")]
    Pop,
    /// Pole.
    #[sea_orm(string_value = "POLE")]
    Pole,
}

impl ElementItem {
    /// Every item, in catalog order.
    pub const ALL: [ElementItem; 6] = [
        ElementItem::Service,
        ElementItem::Distribution,
        ElementItem::Cto,
        ElementItem::Ceo,
        ElementItem::Pop,
        ElementItem::Pole,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ElementItem::Service => "SERVICE",
            ElementItem::Distribution => "DISTRIBUTION",
            ElementItem::Cto => "CTO",
            ElementItem::Ceo => "CEO",
            ElementItem::Pop => "POP",
            ElementItem::Pole => "POLE",
        }
    }

    /// True for items stored as elements (boxes and points), false for splitter kinds.
    pub fn is_element(self) -> bool {
        !matches!(self, ElementItem::Service | ElementItem::Distribution)
    }
}

impl std::fmt::Display for ElementItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_stored_values() {
        for item in ElementItem::ALL {
            assert_eq!(sea_orm::ActiveEnum::to_value(&item), item.as_str());
        }
    }
}
