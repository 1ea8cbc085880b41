//! The element catalog (docs/DESIGN.md section 2): categories, their items and the selection rules.

pub use entity::element_item::ElementItem;

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

/// The category an item belongs to.
pub fn category_of(item: ElementItem) -> Category {
    match item {
        ElementItem::Service | ElementItem::Distribution => Category::Splitter,
        ElementItem::Cto | ElementItem::Ceo => Category::Box,
        ElementItem::Pop => Category::Pop,
        ElementItem::Pole => Category::Pole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_the_items_outside_the_splitter_category() {
        for item in ElementItem::ALL {
            assert_eq!(
                item.is_element(),
                category_of(item) != Category::Splitter,
                "{item}"
            );
        }
    }
}
