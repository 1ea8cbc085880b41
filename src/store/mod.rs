//! Every SQL statement over the local copy that the API reads, and the DataLoaders that batch
//! them: element pages and nearest free ports ([`lookup`]), keyset paging ([`paging`]), the
//! tree levels an element page prefetches ([`tree`]), shared writes of the synced copy
//! ([`plant`]) and the per-request loaders ([`loaders`]).

pub mod loaders;
pub mod lookup;
pub mod paging;
pub mod plant;
pub mod tree;
