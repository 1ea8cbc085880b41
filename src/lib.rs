//! mapping-gateway: a GraphQL gateway between an ISP's management system and FTTH
//! network-mapping platforms (Geosite first).
//!
//! Layers point one way: [`graphql`] → domain modules ([`integrations`], [`access`],
//! [`history`]) → storage ([`entity`]) and platforms. The domain never imports the GraphQL layer.

pub mod access;
pub mod catalog;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod gateways;
pub mod geo;
pub mod geosite;
pub mod graphql;
pub mod history;
pub mod http;
pub mod integrations;
pub mod outbound;
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

pub use error::{Error, Result};
