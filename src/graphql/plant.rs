//! The synced plant over GraphQL: element trees, nearest free ports, bindings.
//! Every nested field goes through a per-request DataLoader.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, InputObject, Object, ID};

use entity::{element, port, splitter};

use crate::access::Role;
use crate::graphql::guard::{actor, RoleGuard};
use crate::graphql::ids::{self, ELEMENT, INTEGRATION, PORT, SPLITTER};
use crate::graphql::loaders::loaders;
use crate::graphql::paging;
use crate::graphql::projects::ElementItemKey;
use crate::graphql::state;
use crate::store::lookup::{self, BBox, BindingFilter, ElementFilter};
use crate::store::point;

pub use super::binding::{Binding, BindingConnection, BindingStatus};
pub use super::element::Element;
pub use super::port::{Port, PortStatus};
pub use super::splitter::{Splitter, SplitterKind};

crate::connection_type!(ElementConnection, ElementEdge, Element, "elements");

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
    pub changed_since: Option<DateTime>,
    /// Only boxes with (true) or without (false) a bindable free port.
    pub has_free_ports: Option<bool>,
}

impl ElementFilterInput {
    /// True when the filter searches by name (a scan of the integration's elements).
    pub fn searches(filter: &Option<Self>) -> bool {
        filter
            .as_ref()
            .and_then(|f| f.search.as_deref())
            .is_some_and(|s| !s.trim().is_empty())
    }
}

/// Filter of `bindings`; conditions combine with AND.
#[derive(InputObject, Default)]
pub struct BindingFilterInput {
    /// Only this integration's bindings.
    pub integration_id: Option<ID>,
    /// Customer CPF/CNPJ, formatted or digits only (FORBIDDEN for a key without
    /// `personalData`).
    pub document: Option<String>,
    /// The ISP's contract.
    pub contract: Option<String>,
    /// Only these statuses.
    pub status: Option<Vec<BindingStatus>>,
    /// Only bindings whose latest delivery is in one of these statuses, e.g. `[FAILED]` for the
    /// pushes to look at (a held push is PENDING: see `held`).
    pub push_status: Option<Vec<crate::graphql::binding::PushStatus>>,
    /// True: only bindings whose latest delivery is held because the platform port carries
    /// another customer; false: none of those.
    pub held: Option<bool>,
}

/// A free port near a point.
pub struct FreePort(pub lookup::FreePort);

/// A bindable port near a point, with its splitter and box.
#[Object]
impl FreePort {
    /// The port (FREE, of a service splitter, with no active binding).
    async fn port(&self) -> Port {
        Port::from(self.0.port.clone())
    }
    /// Its splitter.
    async fn splitter(&self) -> Splitter {
        Splitter::from(self.0.splitter.clone())
    }
    /// The box.
    async fn element(&self) -> Element {
        Element::from(self.0.element.clone())
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

/// A page of an integration's elements, with the levels of the tree the selection asks for
/// prefetched: `elements` and `Project.elements`.
pub(super) async fn element_page(
    ctx: &Context<'_>,
    integration_id: i64,
    filter: Option<ElementFilterInput>,
    args: paging::Args,
) -> async_graphql::Result<ElementConnection> {
    let request = paging::request("elements", args)?;
    let db = &state(ctx)?.db;
    let f = filter.unwrap_or_default();
    if let Some(search) = &f.search {
        let max = crate::text::MAX_SEARCH_CHARS;
        if search.chars().count() > max {
            return Err(crate::Error::over_limit(
                "search",
                "length",
                max as f64,
                format!("search is longer than {max} characters"),
            )
            .into());
        }
    }
    let filter = ElementFilter {
        items: f.items.map(|v| v.into_iter().map(Into::into).collect()),
        search: f.search,
        bbox: f.bbox.map(|b| BBox {
            min_latitude: b.min_latitude,
            min_longitude: b.min_longitude,
            max_latitude: b.max_latitude,
            max_longitude: b.max_longitude,
        }),
        changed_since: f.changed_since.map(|t| t.0),
        has_free_ports: f.has_free_ports,
    };
    let with_total = ctx.look_ahead().field("totalCount").exists();
    let page = lookup::elements(db, integration_id, &filter, request, with_total).await?;
    crate::store::tree::prefetch(db, &loaders(ctx)?.plant, &page.items, wanted_levels(ctx)).await?;
    Ok(paging::connection(
        "elements",
        page,
        |e| e.id,
        Element::from,
    ))
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
        complexity = "paging::connection_cost(paging::Args::size(first, last), child_complexity, ElementFilterInput::searches(&filter))"
    )]
    // A resolver takes its field's arguments: Relay's four paging arguments make them eight.
    #[allow(clippy::too_many_arguments)]
    async fn elements(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "What to keep.")] filter: Option<ElementFilterInput>,
        #[graphql(
            desc = "Page size, at most 500; left out when reading backward with `last`.",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(
            desc = "Page size reading backward: the last edges before `before` (or of \
                          the list), at most 500."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page (with `last`).")]
        before: Option<String>,
    ) -> async_graphql::Result<ElementConnection> {
        let id = ids::decode(INTEGRATION, &integration_id)?;
        crate::integrations::find(&state(ctx)?.db, id).await?;
        element_page(
            ctx,
            id,
            filter,
            paging::Args {
                first,
                after,
                last,
                before,
            },
        )
        .await
    }

    /// One element by id; null with a `NOT_FOUND` error when there is none.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::lookup_cost(child_complexity)"
    )]
    async fn element(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the element.")] id: ID,
    ) -> async_graphql::Result<Option<Element>> {
        let id = ids::decode(ELEMENT, &id)?;
        Ok(Some(Element::from(
            point::by_id::<element::Entity>(&state(ctx)?.db, ELEMENT, id).await?,
        )))
    }

    /// One element of an integration by its platform fid; null with a `NOT_FOUND` error when
    /// there is none.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::lookup_cost(child_complexity)"
    )]
    async fn element_by_fid(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "Platform fid of the element.")] fid: String,
    ) -> async_graphql::Result<Option<Element>> {
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let fid = crate::text::identifier("fid", &fid, crate::text::MAX_FID_CHARS)?;
        Ok(Some(Element::from(
            lookup::element_by_fid(&state(ctx)?.db, id, &fid).await?,
        )))
    }

    /// One splitter by id; null with a `NOT_FOUND` error when there is none.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::lookup_cost(child_complexity)"
    )]
    async fn splitter(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the splitter.")] id: ID,
    ) -> async_graphql::Result<Option<Splitter>> {
        let id = ids::decode(SPLITTER, &id)?;
        Ok(Some(Splitter::from({
            let app = state(ctx)?;
            point::by_id_here::<splitter::Entity>(app.points.as_deref(), &app.db, SPLITTER, id)
                .await?
        })))
    }

    /// One port by id; null with a `NOT_FOUND` error when there is none.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::lookup_cost(child_complexity)"
    )]
    async fn port(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the port.")] id: ID,
    ) -> async_graphql::Result<Option<Port>> {
        let id = ids::decode(PORT, &id)?;
        Ok(Some(Port::from({
            let app = state(ctx)?;
            point::by_id_here::<port::Entity>(app.points.as_deref(), &app.db, PORT, id).await?
        })))
    }

    /// One binding by id; null with a `NOT_FOUND` error when there is none.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::lookup_cost(child_complexity)"
    )]
    async fn binding(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the binding.")] id: ID,
    ) -> async_graphql::Result<Option<Binding>> {
        let id = ids::decode(ids::BINDING, &id)?;
        Ok(Some(Binding::from(
            point::by_id::<entity::binding::Entity>(&state(ctx)?.db, ids::BINDING, id).await?,
        )))
    }

    /// The nearest bindable ports to a point: FREE ports of SERVICE splitters with no active
    /// binding, nearest first (ties by box, splitter, port number).
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::free_ports_cost(radius_meters, first, child_complexity)"
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
        let hits = lookup::free_ports(
            db,
            lookup::Near {
                integration_id: id,
                latitude,
                longitude,
                first: first as u64,
            },
            radius_meters,
        )
        .await?;
        Ok(hits.into_iter().map(FreePort).collect())
    }

    /// Bindings, newest first.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::connection_cost(paging::Args::size(first, last), child_complexity, false)"
    )]
    pub(crate) async fn bindings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to keep.")] filter: Option<BindingFilterInput>,
        #[graphql(
            desc = "Page size, at most 500; left out when reading backward with `last`.",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(
            desc = "Page size reading backward: the last edges before `before` (or of \
                          the list), at most 500."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page (with `last`).")]
        before: Option<String>,
    ) -> async_graphql::Result<BindingConnection> {
        let request = paging::request(
            "bindings",
            paging::Args {
                first,
                after,
                last,
                before,
            },
        )?;
        let f = filter.unwrap_or_default();
        if f.document.is_some() {
            actor(ctx)?.require_personal_data("search by document")?;
        }
        let filter = BindingFilter {
            integration_id: f
                .integration_id
                .map(|i| ids::decode(INTEGRATION, &i))
                .transpose()?,
            document: f.document,
            contract: f.contract,
            status: f.status,
            push_status: f.push_status,
            held: f.held,
        };
        let page = lookup::bindings(&state(ctx)?.db, &filter, request).await?;
        Ok(paging::connection(
            "bindings",
            page,
            |b| b.id,
            Binding::from,
        ))
    }
}
