//! SeaORM entities of mapping-gateway, one module per table. These are storage types: the
//! GraphQL layer has its own types, so the API is not the schema.

/// Stored enums by their stored names: displayed so (messages and logs), and read so from
/// rows the database hands over as JSON (`store::rows`), through the one `DeriveActiveEnum`
/// declaration; a name that no variant has is an error, never a default.
#[macro_export]
macro_rules! as_stored {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&sea_orm::ActiveEnum::to_value(self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let stored = <String as serde::Deserialize>::deserialize(d)?;
                <$t as sea_orm::ActiveEnum>::try_from_value(&stored).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "unknown stored {} {stored:?}",
                        stringify!($t)
                    ))
                })
            }
        }
    )*};
}

pub mod api_key;
pub mod binding;
pub mod element;
pub mod element_item;
pub mod element_selection;
pub mod gateway_secret;
pub mod history_entry;
pub mod integration;
pub mod port;
pub mod project;
pub mod push_outbox;
pub mod splitter;
pub mod sync_run;
