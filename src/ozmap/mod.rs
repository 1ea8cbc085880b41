//! OZmap, the second mapping platform (contract: `docs/OZMAP-API.md`, observed vs assumed on
//! every line). Every rule the contract tags *assumed* is in [`assumed`], named for what it
//! decides, so that a live installation can correct it in one place.
//!
//! Built so far: those rules, and the reading of list envelopes and splitters ([`wire`]). Still
//! to come (issue 25): the rest of the records, the client implementing
//! `platform::Platform` (login or API key, the list envelope, filters in the body, `Date` as
//! the platform clock, the Geosite retry policy), the simulator, and the registry line and
//! `OZMAP` gateway kind that make it selectable; until then no integration can name it.

pub mod assumed;
pub mod wire;
