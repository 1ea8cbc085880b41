//! OZmap, the second mapping platform (contract: `docs/OZMAP-API.md`, observed vs assumed on
//! every line). Every rule the contract tags *assumed* is in [`assumed`], named for what it
//! decides, so that a live installation can correct it in one place.
//!
//! Built so far: those rules, the reading of OZmap's records ([`wire`]) and their conversion to
//! the platform trait's records, ports derived from splitters and properties ([`convert`]), and
//! what each listing request asks for: route, page, filters and sort ([`listing`]). Still
//! to come (issue 25): the client implementing
//! `platform::Platform` (login or API key, the list envelope, filters in the body, `Date` as
//! the platform clock, the Geosite retry policy), the simulator, and the registry line and
//! `OZMAP` gateway kind that make it selectable; until then no integration can name it.

pub mod assumed;
pub mod convert;
pub mod listing;
pub mod wire;
