//! `Binding`: a customer bound to a port.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Object, SimpleObject, ID};

use crate::access::personal;
use crate::graphql::guard::personal_data;
use crate::graphql::ids::{self, BINDING};
use crate::graphql::loaders::{loader_error, loaders};
use entity::binding;

pub use entity::binding::BindingStatus;
pub use entity::push_outbox::PushStatus;

/// The customer of a binding.
#[derive(SimpleObject)]
pub struct BindingCustomer {
    /// CPF or CNPJ, digits only.
    pub document: String,
    /// The ISP's contract (`id_cliente_servico`).
    pub contract: String,
    /// Customer name.
    pub name: String,
    /// Service address.
    pub address: Option<String>,
    /// Plan.
    pub plan: Option<String>,
}

/// Where an orphaned binding's port was.
#[derive(SimpleObject)]
pub struct OrphanedFrom {
    /// Platform fid of the box.
    pub box_fid: Option<String>,
    /// Name of the box.
    pub box_name: Option<String>,
    /// Platform fid of the splitter.
    pub splitter_fid: Option<String>,
    /// Port number.
    pub port_number: Option<i32>,
}

/// What a sync found on the port that disagrees with the binding; neither side was changed.
#[derive(SimpleObject)]
pub struct BindingConflict {
    /// The contract the platform has on the port.
    pub platform_contract: Option<String>,
    /// The document the platform has on the port.
    pub platform_document: Option<String>,
    /// When a sync saw it.
    pub seen_at: DateTime,
}

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

/// `text` as the caller may read it: itself for a key with `personalData`, else `mask(text)`.
pub(crate) fn shown(ctx: &Context<'_>, text: &str, mask: fn(&str) -> String) -> String {
    if personal_data(ctx) {
        text.to_owned()
    } else {
        mask(text)
    }
}

/// A customer bound to a port.
pub struct Binding(pub std::sync::Arc<binding::Model>);

impl From<binding::Model> for Binding {
    fn from(row: binding::Model) -> Self {
        Binding(std::sync::Arc::new(row))
    }
}

/// A customer bound to a port. Never deleted by a sync: when its port disappears it becomes
/// ORPHANED and keeps a snapshot of where it was.
#[Object]
impl Binding {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(BINDING, self.0.id)
    }
    /// Where it is in its life.
    async fn status(&self) -> BindingStatus {
        self.0.status
    }
    /// Customer CPF or CNPJ, digits only (masked, `***.982.247-**`, for a key without
    /// `personalData`).
    #[graphql(deprecation = "Use `customer { document }`. Removed in schema 2 (docs/SCHEMA.md).")]
    async fn document(&self, ctx: &Context<'_>) -> String {
        shown(ctx, &self.0.document, personal::document)
    }
    /// The ISP's contract (`id_cliente_servico`).
    #[graphql(deprecation = "Use `customer { contract }`. Removed in schema 2 (docs/SCHEMA.md).")]
    async fn contract(&self) -> &str {
        &self.0.contract
    }
    /// Customer name (initials for a key without `personalData`).
    #[graphql(deprecation = "Use `customer { name }`. Removed in schema 2 (docs/SCHEMA.md).")]
    async fn name(&self, ctx: &Context<'_>) -> String {
        shown(ctx, &self.0.name, personal::name)
    }
    /// Service address, when given (`***` for a key without `personalData`).
    #[graphql(deprecation = "Use `customer { address }`. Removed in schema 2 (docs/SCHEMA.md).")]
    async fn address(&self, ctx: &Context<'_>) -> Option<String> {
        self.0
            .address
            .as_deref()
            .map(|a| shown(ctx, a, personal::address))
    }
    /// Plan, when given.
    #[graphql(deprecation = "Use `customer { plan }`. Removed in schema 2 (docs/SCHEMA.md).")]
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
    /// The customer (document, name and address masked for a key without `personalData`).
    async fn customer(&self, ctx: &Context<'_>) -> BindingCustomer {
        BindingCustomer {
            document: shown(ctx, &self.0.document, personal::document),
            contract: self.0.contract.clone(),
            name: shown(ctx, &self.0.name, personal::name),
            address: self
                .0
                .address
                .as_deref()
                .map(|a| shown(ctx, a, personal::address)),
            plan: self.0.plan.clone(),
        }
    }
    /// Where the port was, once orphaned.
    #[graphql(
        deprecation = "Use `snapshot`, which also has the port's fid. Removed in schema 2 (docs/SCHEMA.md)."
    )]
    async fn orphaned_from(&self) -> Option<OrphanedFrom> {
        let b = &self.0;
        (b.status == BindingStatus::Orphaned || b.orphaned_at.is_some()).then(|| OrphanedFrom {
            box_fid: b.snapshot_box_fid.clone(),
            box_name: b.snapshot_box_name.clone(),
            splitter_fid: b.snapshot_splitter_fid.clone(),
            port_number: b.snapshot_port_number,
        })
    }
    /// A disagreement a sync found between the port on the platform and this binding.
    async fn conflict(&self, ctx: &Context<'_>) -> Option<BindingConflict> {
        self.0.conflict_seen_at.map(|seen_at| BindingConflict {
            platform_contract: self.0.conflict_contract.clone(),
            platform_document: self
                .0
                .conflict_document
                .as_deref()
                .map(|d| shown(ctx, d, personal::document)),
            seen_at: seen_at.into(),
        })
    }
    /// Where its latest delivery to the platform is; null before any was queued.
    async fn push_status(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<PushStatus>> {
        Ok(self.latest_delivery(ctx).await?.map(|d| d.status))
    }
    /// Attempts of its latest delivery.
    async fn attempts(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(self.latest_delivery(ctx).await?.map_or(0, |d| d.attempts))
    }
    /// Why its latest delivery attempt failed, if it did.
    async fn last_error(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(self
            .latest_delivery(ctx)
            .await?
            .and_then(|d| d.last_error)
            .map(|e| shown(ctx, &e, personal::text)))
    }
    /// When its latest delivery was written on the platform.
    async fn delivered_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime>> {
        Ok(self
            .latest_delivery(ctx)
            .await?
            .and_then(|d| d.delivered_at)
            .map(DateTime))
    }
    /// When it was confirmed.
    async fn confirmed_at(&self) -> Option<DateTime> {
        self.0.confirmed_at.map(DateTime)
    }
    /// When it was released.
    async fn released_at(&self) -> Option<DateTime> {
        (self.0.status == BindingStatus::Released)
            .then_some(self.0.closed_at)
            .flatten()
            .map(DateTime)
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

impl Binding {
    async fn latest_delivery(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<entity::push_outbox::Model>> {
        Ok(loaders(ctx)?
            .plant
            .deliveries_of_binding
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .and_then(|all| all.last().map(|d| (**d).clone())))
    }
}

crate::connection_type!(BindingConnection, BindingEdge, Binding, "bindings");
