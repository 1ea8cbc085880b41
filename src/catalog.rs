//! The element catalog (docs/DESIGN.md section 2): categories, their items and the selection rules.

/// A selectable item of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementItem {
    /// Splitter de atendimento: the splitters customers are bound to. Always selected.
    Service,
    /// Splitter de distribuição.
    Distribution,
    /// Caixa de terminação óptica.
    Cto,
    /// Caixa de emenda óptica.
    Ceo,
    /// Point of presence / station.
    Pop,
    /// Pole.
    Pole,
}

/// A category of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// Splitters.
    Splitter,
    /// Optical boxes (Caixa Óptica).
    Box,
    /// Points of presence.
    Pop,
    /// Poles.
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

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == text)
    }

    /// The category the item belongs to.
    pub fn category(self) -> Category {
        match self {
            ElementItem::Service | ElementItem::Distribution => Category::Splitter,
            ElementItem::Cto | ElementItem::Ceo => Category::Box,
            ElementItem::Pop => Category::Pop,
            ElementItem::Pole => Category::Pole,
        }
    }

    /// True for items stored as elements (boxes and points), false for splitters.
    pub fn is_element(self) -> bool {
        self.category() != Category::Splitter
    }
}
