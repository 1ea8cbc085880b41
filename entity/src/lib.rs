//! SeaORM entities of mapping-gateway, one module per table. These are storage types: the
//! GraphQL layer has its own types, so the API is not the schema.

/// Displays stored enums by their stored names, for messages and logs.
#[macro_export]
macro_rules! display_as_stored {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&sea_orm::ActiveEnum::to_value(self))
            }
        }
    )*};
}

pub mod api_key;
pub mod binding;
pub mod element;
pub mod element_item;
pub mod element_selection;
pub mod history_entry;
pub mod integration;
pub mod port;
pub mod project;
pub mod push_outbox;
pub mod splitter;
pub mod sync_run;
