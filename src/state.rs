//! The state every request and background task shares. It holds the domain's services only (the
//! database, the master key, the settings, this instance's runs, the platform registry, the event
//! bus), so the domain can take it without knowing about HTTP, GraphQL or start-up.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::crypto::MasterKey;
use crate::outbound::NetworkPolicy;
use crate::platform::{Platform, Registry};
use crate::sync::runner::Runner;
use crate::sync::settings::SyncSettings;

/// The state shared by every request and background task.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: DatabaseConnection,
    /// Reads by id on the caller's thread (SQLite files only).
    pub points: Option<Arc<crate::store::point::PointReads>>,
    /// Encrypts and decrypts platform passwords.
    pub master: MasterKey,
    /// Tunables of syncs and where platforms may be.
    pub settings: Arc<Settings>,
    /// The sync runs this instance executes.
    pub runner: Arc<Runner>,
    /// Builds platform clients, one connector per gateway kind.
    pub platforms: Arc<Registry>,
    /// Run events, for subscribers on this instance (and relayed to others on PostgreSQL).
    pub events: Arc<crate::events::Bus>,
    /// API keys held by open WebSockets, checked again every few seconds.
    pub keys: Arc<crate::access::KeyWatch>,
    /// Wakes the delivery worker of the push outbox.
    pub outbox: Arc<crate::bindings::wake::Outbox>,
}

/// What the domain is tuned by.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Overlap, mass-deletion share, heartbeats, schedule defaults.
    pub sync: SyncSettings,
    /// Where platform URLs may point (checked when saved; clients check again on connect).
    pub network: Arc<NetworkPolicy>,
    /// Lease and give-up horizon of the push outbox.
    pub delivery: crate::bindings::wake::Delivery,
    /// This instance's clock; what instances compare runs on the database's.
    pub clock: crate::clock::LocalClock,
}

impl AppState {
    /// The platform client of an integration: the one way the domain reaches a platform.
    pub fn platform(&self, row: &entity::integration::Model) -> crate::Result<Arc<dyn Platform>> {
        self.platforms.connect(&self.master, row)
    }
}
