//! Every hand-written SQL statement, and the DataLoaders that batch the API's reads: element
//! pages and nearest free ports ([`lookup`]), keyset paging ([`paging`]), the tree levels an
//! element page prefetches ([`tree`]), writes of the synced copy ([`plant`]), what syncs do to bindings ([`bindings`]), the per-request
//! loaders ([`loaders`]), large levels read as JSON ([`rows`]) and PostgreSQL's `LISTEN/NOTIFY` ([`notify`]).

pub mod bindings;
pub mod health;
pub mod loaders;
pub mod lookup;
pub mod notify;
pub mod paging;
pub mod plant;
pub mod point;
pub mod rows;
pub mod tree;
