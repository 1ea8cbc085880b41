//! `Binding`: a customer bound to a port.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::graphql::ids::{self, BINDING};
use crate::graphql::loaders::{loader_error, loaders};
use entity::binding;

pub use entity::binding::BindingStatus;

use super::port::Port;

/// Where an orphaned binding was when its port disappeared.
#[derive(SimpleObject)]
pub struct BindingSnapshot {
    /// Platform fid of the box.
    pub box_fid: Option<String>,
    /// Name of the box.
    pub box_name: Option<String>,
    /// Platform fid of the splitter.
    pub splitter_fid: Option<String>,
    /// Platform fid of the port.
    pub port_fid: Option<String>,
    /// Port number.
    pub port_number: Option<i32>,
}

/// A customer bound to a port.
pub struct Binding(pub binding::Model);

/// A customer bound to a port. Never deleted by a sync: when its port disappears it becomes
/// ORPHANED and keeps a snapshot of where it was.
#[Object]
impl Binding {
    /// Opaque id.
    async fn id(&self) -> ID {
        ids::encode(BINDING, self.0.id)
    }
    /// Where it is in its life.
    async fn status(&self) -> Option<BindingStatus> {
        Some(self.0.status)
    }
    /// Customer CPF or CNPJ, digits only.
    async fn document(&self) -> &str {
        &self.0.document
    }
    /// The ISP's contract (`id_cliente_servico`).
    async fn contract(&self) -> &str {
        &self.0.contract
    }
    /// Customer name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Service address, when given.
    async fn address(&self) -> Option<&str> {
        self.0.address.as_deref()
    }
    /// Plan, when given.
    async fn plan(&self) -> Option<&str> {
        self.0.plan.as_deref()
    }
    /// The port; null once orphaned (see `snapshot`).
    async fn port(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Port>> {
        let Some(id) = self.0.port_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .plant
            .port
            .load_one(id)
            .await
            .map_err(loader_error)?
            .flatten()
            .map(Port))
    }
    /// Where it was when orphaned; null while it has a port.
    async fn snapshot(&self) -> Option<BindingSnapshot> {
        let b = &self.0;
        (b.snapshot_port_fid.is_some() || b.snapshot_splitter_fid.is_some()).then(|| {
            BindingSnapshot {
                box_fid: b.snapshot_box_fid.clone(),
                box_name: b.snapshot_box_name.clone(),
                splitter_fid: b.snapshot_splitter_fid.clone(),
                port_fid: b.snapshot_port_fid.clone(),
                port_number: b.snapshot_port_number,
            }
        })
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

crate::connection_type!(BindingConnection, BindingEdge, Binding, "bindings");
