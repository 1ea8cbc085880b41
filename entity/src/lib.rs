//! SeaORM entities of mapping-gateway, one module per table. These are storage types: the
//! GraphQL layer has its own types, so the API is not the schema.

pub mod api_key;
pub mod binding;
pub mod element;
pub mod element_selection;
pub mod history_entry;
pub mod integration;
pub mod port;
pub mod project;
pub mod push_outbox;
pub mod splitter;
pub mod sync_run;
