//! OZmap, the second mapping platform (contract: `docs/OZMAP-API.md`, observed vs assumed on
//! every line). Every rule the contract tags *assumed* is in [`assumed`], named for what it
//! decides, so that a live installation can correct it in one place.
//!
//! - [`client`]: login token (renewed once on a 401) or API key, the list envelope, filters and
//!   sort in the body of the GET, the shared transport's retries and `Date` clock.
//! - [`wire`] reads OZmap's records field by field; [`convert`] turns them into the platform
//!   trait's records (ports derived from splitters and the properties connected to them);
//!   [`listing`] says what each listing request asks for.
//! - `platform` implements `platform::Platform`; `push` writes and clears a port's customer.

pub mod assumed;
mod client;
pub mod convert;
pub mod listing;
mod platform;
mod push;
pub mod wire;

pub use client::{OzmapClient, OzmapConnector};
