//! mapping-gateway: a GraphQL gateway between an ISP's management system and FTTH
//! network-mapping platforms (Geosite first).
//!
//! Layers point one way (docs/ARCHITECTURE.md): start-up ([`server`]) → HTTP ([`http`]) →
//! the API ([`graphql`]) → the shared state ([`state`]) → the domain ([`integrations`],
//! [`access`], [`sync`], ...) → reads of the local copy ([`store`]), entities and the platform
//! trait ([`platform`]), which [`geosite`] implements. The domain never imports the API, HTTP,
//! start-up, the simulator or the Geosite client; the API writes no SQL; there is no cycle.

pub mod access;
pub mod bindings;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod events;
pub mod gateways;
pub mod geo;
pub mod geosite;
pub mod graphql;
pub mod history;
pub mod http;
pub mod ids;
pub mod in_flight;
pub mod integrations;
pub mod master_key;
pub mod memory;
pub mod metrics;
pub mod outbound;
pub mod ozmap;
pub mod platform;
pub mod projects;
pub mod schedule;
pub mod selection;
pub mod server;
pub mod simulator;
pub mod state;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod text;
pub mod transport;

pub use error::{Error, Result};
