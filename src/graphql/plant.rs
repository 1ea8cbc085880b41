//! The synced plant over GraphQL: element trees, nearest free ports, bindings.
//! Every nested field goes through a per-request DataLoader.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use entity::{binding, element, port, splitter};

use crate::access::Role;
use crate::graphql::guard::RoleGuard;
use crate::graphql::ids::{self, BINDING, ELEMENT, INTEGRATION, PORT, SPLITTER};
use crate::graphql::loaders::{loader_error, loaders};
use crate::graphql::paging;
use crate::graphql::projects::{ElementItemKey, Project};
use crate::graphql::state;
use crate::store::lookup::{self, BBox, BindingFilter, ElementFilter};

pub use entity::binding::BindingStatus;
pub use entity::port::PortStatus;
pub use entity::splitter::SplitterKind;

/// A synced box or point.
pub struct Element(pub element::Model);

/// A synced box or point (CTO, CEO, POP, POLE).
#[Object]
impl Element {
    /// Opaque id.
    async fn id(&self) -> ID {
        ids::encode(ELEMENT, self.0.id)
    }
    /// The platform's id.
    async fn fid(&self) -> &str {
        &self.0.fid
    }
    /// Which catalog item it is.
    async fn item(&self) -> async_graphql::Result<Option<ElementItemKey>> {
        let item = crate::catalog::ElementItem::parse(&self.0.item).ok_or_else(|| {
            crate::Error::internal(anyhow::anyhow!(
                "element {} has an unknown item {:?} stored",
                self.0.id,
                self.0.item
            ))
        })?;
        Ok(Some(item.into()))
    }
    /// Name on the platform.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Latitude (WGS 84).
    async fn latitude(&self) -> Option<f64> {
        self.0.latitude
    }
    /// Longitude (WGS 84).
    async fn longitude(&self) -> Option<f64> {
        self.0.longitude
    }
    /// When it last changed on the platform.
    async fn remote_updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.remote_updated_at
    }
    /// When the gateway last wrote it.
    async fn synced_at(&self) -> DateTime<Utc> {
        self.0.synced_at
    }
    /// The project it belongs to.
    async fn project(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Project>> {
        Ok(loaders(ctx)?
            .plant
            .project
            .load_one(self.0.project_id)
            .await
            .map_err(loader_error)?
            .flatten()
            .map(Project))
    }
    /// The splitters it houses, by fid.
    #[graphql(complexity = "4 * child_complexity + 1")]
    async fn splitters(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Splitter>> {
        Ok(loaders(ctx)?
            .plant
            .splitters_of_element
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .unwrap_or_default()
            .into_iter()
            .map(Splitter)
            .collect())
    }
    /// Bindable ports: FREE ports of its service splitters with no active binding.
    async fn free_port_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(loaders(ctx)?
            .plant
            .free_ports_of_element
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .unwrap_or(0))
    }
}

/// A synced splitter.
pub struct Splitter(pub splitter::Model);

/// A synced splitter.
#[Object]
impl Splitter {
    /// Opaque id.
    async fn id(&self) -> ID {
        ids::encode(SPLITTER, self.0.id)
    }
    /// The platform's id.
    async fn fid(&self) -> &str {
        &self.0.fid
    }
    /// Name on the platform.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// SERVICE (Atendimento) or DISTRIBUTION.
    async fn kind(&self) -> SplitterKind {
        self.0.kind
    }
    /// Ratio as the platform gives it, e.g. `1:16`.
    async fn ratio(&self) -> &str {
        &self.0.ratio
    }
    /// Output ports the ratio implies.
    async fn port_count(&self) -> i32 {
        self.0.port_count
    }
    /// FREE ports with no active binding.
    async fn free_port_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(loaders(ctx)?
            .plant
            .free_ports_of_splitter
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .unwrap_or(0))
    }
    /// The box that houses it; null when that box is not synced (not selected).
    #[graphql(name = "box")]
    async fn housing(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Element>> {
        let Some(id) = self.0.element_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .plant
            .element
            .load_one(id)
            .await
            .map_err(loader_error)?
            .flatten()
            .map(Element))
    }
    /// The platform fid of the housing box, always there even when `box` is null.
    async fn box_fid(&self) -> Option<&str> {
        self.0.box_fid.as_deref()
    }
    /// Its output ports, by number.
    #[graphql(complexity = "16 * child_complexity + 1")]
    async fn ports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Port>> {
        Ok(loaders(ctx)?
            .plant
            .ports_of_splitter
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .unwrap_or_default()
            .into_iter()
            .map(Port)
            .collect())
    }
}

/// The customer the platform has on a port.
#[derive(SimpleObject)]
pub struct PlatformCustomer {
    /// The ISP's contract (`id_cliente_servico`).
    pub contract: Option<String>,
    /// CPF or CNPJ as the platform has it.
    pub document: Option<String>,
    /// Customer name.
    pub name: Option<String>,
}

/// A splitter output port.
pub struct Port(pub port::Model);

/// A splitter output port.
#[Object]
impl Port {
    /// Opaque id.
    async fn id(&self) -> ID {
        ids::encode(PORT, self.0.id)
    }
    /// The platform's id.
    async fn fid(&self) -> &str {
        &self.0.fid
    }
    /// 1-based port number.
    async fn number(&self) -> i32 {
        self.0.number
    }
    /// State on the platform.
    async fn status(&self) -> PortStatus {
        self.0.status
    }
    /// The customer the platform has on it; null when none.
    async fn platform_customer(&self) -> Option<PlatformCustomer> {
        let p = &self.0;
        (p.customer_contract.is_some()
            || p.customer_document.is_some()
            || p.customer_name.is_some())
        .then(|| PlatformCustomer {
            contract: p.customer_contract.clone(),
            document: p.customer_document.clone(),
            name: p.customer_name.clone(),
        })
    }
    /// The active (PENDING or CONFIRMED) binding on it, if any.
    async fn binding(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Binding>> {
        Ok(loaders(ctx)?
            .plant
            .active_binding_of_port
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .flatten()
            .map(Binding))
    }
    /// Its splitter.
    async fn splitter(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Splitter>> {
        Ok(loaders(ctx)?
            .plant
            .splitter
            .load_one(self.0.splitter_id)
            .await
            .map_err(loader_error)?
            .flatten()
            .map(Splitter))
    }
}

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

crate::connection_type!(ElementConnection, ElementEdge, Element, "elements");
crate::connection_type!(BindingConnection, BindingEdge, Binding, "bindings");

/// A latitude/longitude rectangle.
#[derive(InputObject)]
pub struct BBoxInput {
    /// South edge, -90..90.
    pub min_latitude: f64,
    /// West edge, -180..180.
    pub min_longitude: f64,
    /// North edge, -90..90.
    pub max_latitude: f64,
    /// East edge, -180..180.
    pub max_longitude: f64,
}

/// Filter of `elements`; conditions combine with AND.
#[derive(InputObject, Default)]
pub struct ElementFilterInput {
    /// Only these items (CTO, CEO, POP, POLE).
    pub items: Option<Vec<ElementItemKey>>,
    /// Name contains this (case-insensitive), or fid equals it.
    pub search: Option<String>,
    /// Inside this rectangle.
    pub bbox: Option<BBoxInput>,
    /// Changed on the platform at or after this time.
    pub changed_since: Option<DateTime<Utc>>,
    /// Only boxes with (true) or without (false) a bindable free port.
    pub has_free_ports: Option<bool>,
}

/// Filter of `bindings`; conditions combine with AND.
#[derive(InputObject, Default)]
pub struct BindingFilterInput {
    /// Only this integration's bindings.
    pub integration_id: Option<ID>,
    /// Customer CPF/CNPJ, formatted or digits only.
    pub document: Option<String>,
    /// The ISP's contract.
    pub contract: Option<String>,
    /// Only these statuses.
    pub status: Option<Vec<BindingStatus>>,
}

/// A free port near a point.
pub struct FreePort(pub lookup::FreePort);

/// A bindable port near a point, with its splitter and box.
#[Object]
impl FreePort {
    /// The port (FREE, of a service splitter, with no active binding).
    async fn port(&self) -> Port {
        Port(self.0.port.clone())
    }
    /// Its splitter.
    async fn splitter(&self) -> Splitter {
        Splitter(self.0.splitter.clone())
    }
    /// The box.
    async fn element(&self) -> Element {
        Element(self.0.element.clone())
    }
    /// Great-circle distance from the point to the box, in meters.
    async fn distance_meters(&self) -> f64 {
        (self.0.distance_m * 10.0).round() / 10.0
    }
}

/// Which levels of the tree under a page the selection reaches.
fn wanted_levels(ctx: &Context<'_>) -> crate::store::tree::Want {
    let node = ctx.look_ahead().field("edges").field("node");
    let splitters = node.field("splitters");
    let ports = splitters.field("ports");
    crate::store::tree::Want {
        element_free_ports: node.field("freePortCount").exists(),
        splitters: splitters.exists(),
        splitter_free_ports: splitters.field("freePortCount").exists(),
        ports: ports.exists(),
        bindings: ports.field("binding").exists(),
    }
}

/// Plant queries.
#[derive(Default)]
pub struct PlantQuery;

/// Plant queries.
#[Object]
impl PlantQuery {
    /// The synced elements of an integration, by id.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::complexity(first, child_complexity)"
    )]
    async fn elements(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "What to keep.")] filter: Option<ElementFilterInput>,
        #[graphql(desc = "Page size, at most 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<ElementConnection> {
        let request = paging::request("elements", first, after)?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let db = &state(ctx)?.db;
        crate::integrations::find(db, id).await?;
        let f = filter.unwrap_or_default();
        let filter = ElementFilter {
            items: f.items.map(|v| v.into_iter().map(Into::into).collect()),
            search: f.search,
            bbox: f.bbox.map(|b| BBox {
                min_latitude: b.min_latitude,
                min_longitude: b.min_longitude,
                max_latitude: b.max_latitude,
                max_longitude: b.max_longitude,
            }),
            changed_since: f.changed_since,
            has_free_ports: f.has_free_ports,
        };
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let page = lookup::elements(db, id, &filter, request, with_total).await?;
        crate::store::tree::prefetch(db, &loaders(ctx)?.plant, &page.items, wanted_levels(ctx))
            .await?;
        Ok(paging::connection("elements", page, |e| e.id, Element))
    }

    /// One element by id.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn element(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the element.")] id: ID,
    ) -> async_graphql::Result<Element> {
        let id = ids::decode(ELEMENT, &id)?;
        Ok(Element(
            lookup::by_id::<element::Entity, _>(&state(ctx)?.db, "element", id).await?,
        ))
    }

    /// One element of an integration by its platform fid.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn element_by_fid(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "Platform fid of the element.")] fid: String,
    ) -> async_graphql::Result<Element> {
        let id = ids::decode(INTEGRATION, &integration_id)?;
        Ok(Element(
            lookup::element_by_fid(&state(ctx)?.db, id, &fid).await?,
        ))
    }

    /// One splitter by id.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn splitter(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the splitter.")] id: ID,
    ) -> async_graphql::Result<Splitter> {
        let id = ids::decode(SPLITTER, &id)?;
        Ok(Splitter(
            lookup::by_id::<splitter::Entity, _>(&state(ctx)?.db, "splitter", id).await?,
        ))
    }

    /// One port by id.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn port(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the port.")] id: ID,
    ) -> async_graphql::Result<Port> {
        let id = ids::decode(PORT, &id)?;
        Ok(Port(
            lookup::by_id::<port::Entity, _>(&state(ctx)?.db, "port", id).await?,
        ))
    }

    /// The nearest bindable ports to a point: FREE ports of SERVICE splitters with no active
    /// binding, nearest first (ties by box, splitter, port number).
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "first.unwrap_or(10).clamp(1, 100) as usize * child_complexity + 1"
    )]
    async fn free_ports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "Latitude of the point, -90..90.")] latitude: f64,
        #[graphql(desc = "Longitude of the point, -180..180.")] longitude: f64,
        #[graphql(desc = "Search radius in meters, at most 5000.", default = 200.0)]
        radius_meters: f64,
        #[graphql(desc = "How many ports, at most 100.", default = 10)] first: Option<i32>,
    ) -> async_graphql::Result<Vec<FreePort>> {
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let db = &state(ctx)?.db;
        crate::integrations::find(db, id).await?;
        let first = first.unwrap_or(10);
        if first < 1 {
            return Err(
                crate::Error::validation("first", "first must be between 1 and 100").into(),
            );
        }
        let hits =
            lookup::free_ports(db, id, latitude, longitude, radius_meters, first as u64).await?;
        Ok(hits.into_iter().map(FreePort).collect())
    }

    /// Bindings, newest first.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::complexity(first, child_complexity)"
    )]
    async fn bindings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to keep.")] filter: Option<BindingFilterInput>,
        #[graphql(desc = "Page size, at most 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<BindingConnection> {
        let request = paging::request("bindings", first, after)?;
        let f = filter.unwrap_or_default();
        let filter = BindingFilter {
            integration_id: f
                .integration_id
                .map(|i| ids::decode(INTEGRATION, &i))
                .transpose()?,
            document: f.document,
            contract: f.contract,
            status: f.status,
        };
        let page = lookup::bindings(&state(ctx)?.db, &filter, request).await?;
        Ok(paging::connection("bindings", page, |b| b.id, Binding))
    }
}
