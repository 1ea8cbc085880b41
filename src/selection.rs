//! The element selection of an integration and the catalog's rules (docs/DESIGN.md section 2).

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde_json::json;

use entity::element_selection;

use crate::access::{Actor, Role};
use crate::catalog::{Category, ElementItem};
use crate::{history, Error, Result};

/// One category of the catalog with its items.
#[derive(Clone, Debug)]
pub struct CategoryInfo {
    /// Which category.
    pub category: Category,
    /// Its label, in the users' language.
    pub label: &'static str,
    /// True when at least one of its items must be selected.
    pub required: bool,
    /// Its items.
    pub items: Vec<ItemInfo>,
}

/// One item of the catalog.
#[derive(Clone, Debug)]
pub struct ItemInfo {
    /// Which item.
    pub item: ElementItem,
    /// Its label, in the users' language.
    pub label: &'static str,
    /// True when it cannot be deselected.
    pub locked: bool,
    /// True when a new integration selects it.
    pub default: bool,
}

/// The whole catalog.
pub fn catalog() -> Vec<CategoryInfo> {
    let item = |item, label, locked, default| ItemInfo {
        item,
        label,
        locked,
        default,
    };
    vec![
        CategoryInfo {
            category: Category::Splitter,
            label: "Splitter",
            required: true,
            items: vec![
                item(ElementItem::Service, "Atendimento", true, true),
                item(ElementItem::Distribution, "Distribuição", false, false),
            ],
        },
        CategoryInfo {
            category: Category::Box,
            label: "Caixa Óptica",
            required: true,
            items: vec![
                item(ElementItem::Cto, "CTO", false, true),
                item(ElementItem::Ceo, "CEO", false, false),
            ],
        },
        CategoryInfo {
            category: Category::Pop,
            label: "POP",
            required: false,
            items: vec![item(ElementItem::Pop, "POP", false, false)],
        },
        CategoryInfo {
            category: Category::Pole,
            label: "Poste",
            required: false,
            items: vec![item(ElementItem::Pole, "Poste", false, false)],
        },
    ]
}

/// Checks a selection against the rules; the error names the rule broken.
pub fn validate(items: &[ElementItem]) -> Result<()> {
    for category in catalog() {
        for info in &category.items {
            if info.locked && !items.contains(&info.item) {
                return Err(Error::InvalidSelection(format!(
                    "{} is locked on: service splitters are always synced",
                    info.item.as_str()
                )));
            }
        }
        if category.required && !category.items.iter().any(|i| items.contains(&i.item)) {
            let names: Vec<&str> = category.items.iter().map(|i| i.item.as_str()).collect();
            return Err(Error::InvalidSelection(format!(
                "select at least one item of {} ({})",
                category.label,
                names.join(" or ")
            )));
        }
    }
    Ok(())
}

/// The selected items of an integration with their cursors, in catalog order.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
) -> Result<Vec<element_selection::Model>> {
    let mut rows = element_selection::Entity::find()
        .filter(element_selection::Column::IntegrationId.eq(integration_id))
        .all(db)
        .await?;
    rows.sort_by_key(|r| r.item);
    Ok(rows)
}

/// The selected items.
pub fn items(rows: &[element_selection::Model]) -> Vec<ElementItem> {
    rows.iter().map(|r| r.item).collect()
}

/// Replaces the selection. Kept items keep their cursors; new items are listed in full by the
/// next run; records of removed items are deleted by the next run.
pub async fn set(
    db: &DatabaseConnection,
    actor: &Actor,
    integration_id: i64,
    items: &[ElementItem],
) -> Result<Vec<ElementItem>> {
    actor.require(Role::Admin)?;
    let mut wanted: Vec<ElementItem> = items.to_vec();
    wanted.sort();
    wanted.dedup();
    validate(&wanted)?;
    let txn = crate::db::write_txn(db).await?;
    crate::integrations::find(&txn, integration_id).await?;
    let before = self::items(&get(&txn, integration_id).await?);
    let removed: Vec<&str> = before
        .iter()
        .filter(|i| !wanted.contains(i))
        .map(|i| i.as_str())
        .collect();
    let added: Vec<ElementItem> = wanted
        .iter()
        .filter(|i| !before.contains(i))
        .copied()
        .collect();
    if !removed.is_empty() {
        element_selection::Entity::delete_many()
            .filter(element_selection::Column::IntegrationId.eq(integration_id))
            .filter(element_selection::Column::Item.is_in(removed.clone()))
            .exec(&txn)
            .await?;
    }
    if !added.is_empty() {
        element_selection::Entity::insert_many(added.iter().map(|i| {
            element_selection::ActiveModel {
                integration_id: Set(integration_id),
                item: Set(*i),
                cursor: Set(None),
            }
        }))
        .exec(&txn)
        .await?;
    }
    if !removed.is_empty() || !added.is_empty() {
        let names = |v: &[ElementItem]| v.iter().map(|i| i.as_str()).collect::<Vec<_>>();
        history::record(
            &txn,
            Some(integration_id),
            actor,
            crate::history::Action::SelectionChanged,
            format!("selection is now {}", names(&wanted).join(", ")),
            Some(json!({ "items": names(&before) })),
            Some(json!({ "items": names(&wanted) })),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ElementItem::*;

    #[test]
    fn rules() {
        assert!(validate(&[Service, Cto]).is_ok());
        assert!(validate(&[Service, Distribution, Ceo, Pop, Pole]).is_ok());
        let locked = validate(&[Distribution, Cto]).unwrap_err();
        assert_eq!(locked.code(), "INVALID_SELECTION");
        assert!(locked.message().contains("SERVICE is locked on"));
        let no_box = validate(&[Service, Pop]).unwrap_err();
        assert!(no_box.message().contains("Caixa Óptica"));
    }
}
