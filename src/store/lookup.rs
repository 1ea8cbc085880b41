//! Reads of the synced plant for the API: filtered element pages, nearest free ports, bindings.
//! Batch loads by id lists live in the GraphQL loaders; these are the root queries.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement,
};

use entity::{binding, element, port, splitter};

use crate::catalog::ElementItem;
use crate::store::paging::{Page, PageRequest};
use crate::{Error, Result};

/// Binding statuses that hold a port.
pub const ACTIVE_ON_PORT: [entity::binding::BindingStatus; 2] =
    entity::binding::BindingStatus::ACTIVE;

/// `column IN (1,2,3)` with the ids inlined: integers only, so it is safe, and a tree of any size
/// costs one statement without meeting a bind-parameter limit.
pub fn in_ids(column: &str, ids: &[i64]) -> sea_orm::sea_query::SimpleExpr {
    if ids.is_empty() {
        return Expr::cust("1 = 0");
    }
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    Expr::cust(format!("{column} IN ({})", list.join(",")))
}

/// A latitude/longitude rectangle.
#[derive(Clone, Copy, Debug)]
pub struct BBox {
    /// South edge.
    pub min_latitude: f64,
    /// West edge.
    pub min_longitude: f64,
    /// North edge.
    pub max_latitude: f64,
    /// East edge.
    pub max_longitude: f64,
}

/// Filter of [`elements`].
#[derive(Clone, Debug, Default)]
pub struct ElementFilter {
    /// Only these items.
    pub items: Option<Vec<ElementItem>>,
    /// Name contains (case-insensitive), or fid equals.
    pub search: Option<String>,
    /// Inside this rectangle.
    pub bbox: Option<BBox>,
    /// Changed on the platform at or after.
    pub changed_since: Option<DateTime<Utc>>,
    /// With (true) or without (false) a bindable free port.
    pub has_free_ports: Option<bool>,
}

fn check_latitude(field: &str, v: f64) -> Result<()> {
    if !(-90.0..=90.0).contains(&v) || v.is_nan() {
        return Err(Error::validation(
            field,
            format!("{field} must be between -90 and 90"),
        ));
    }
    Ok(())
}

fn check_longitude(field: &str, v: f64) -> Result<()> {
    if !(-180.0..=180.0).contains(&v) || v.is_nan() {
        return Err(Error::validation(
            field,
            format!("{field} must be between -180 and 180"),
        ));
    }
    Ok(())
}

/// `'PENDING', 'CONFIRMED'`: the stored names of the statuses that hold a port, for SQL text.
pub fn active_statuses_sql() -> String {
    use sea_orm::ActiveEnum;
    ACTIVE_ON_PORT
        .iter()
        .map(|s| format!("'{}'", s.to_value()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL that is true when port `p` is FREE with no active binding. The names come from the
/// stored enums.
pub fn free_unbound_sql(p: &str) -> String {
    use sea_orm::ActiveEnum;
    format!(
        "{p}.status = '{}' AND NOT EXISTS (SELECT 1 FROM bindings b \
         WHERE b.port_id = {p}.id AND b.status IN ({}))",
        entity::port::PortStatus::Free.to_value(),
        active_statuses_sql()
    )
}

/// SQL that is true when port `p` of splitter `s` can be bound: a free, unbound port of a
/// SERVICE splitter.
pub fn bindable_sql(s: &str, p: &str) -> String {
    use sea_orm::ActiveEnum;
    format!(
        "{s}.kind = '{}' AND {}",
        entity::splitter::SplitterKind::Service.to_value(),
        free_unbound_sql(p)
    )
}

/// SQL that is true when element `e` has a bindable free port.
fn free_port_exists(element: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM splitters s JOIN ports p ON p.splitter_id = s.id \
         WHERE s.element_id = {element} AND {})",
        bindable_sql("s", "p")
    )
}

/// One page of an integration's elements, by id.
pub async fn elements<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    filter: &ElementFilter,
    request: PageRequest,
    with_total: bool,
) -> Result<Page<element::Model>> {
    let mut select =
        element::Entity::find().filter(element::Column::IntegrationId.eq(integration_id));
    if let Some(items) = &filter.items {
        let items: Vec<_> = items.iter().copied().filter(|i| i.is_element()).collect();
        select = select.filter(element::Column::Item.is_in(items));
    }
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        // A substring test rather than LIKE, with the text as a bound parameter: no wildcard,
        // quote or backslash in it can change its meaning. PostgreSQL text cannot hold NUL, so
        // a search carrying one can match no stored name and is answered as such.
        let (position, placeholder) = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => ("strpos", "$1"),
            _ => ("instr", "?"),
        };
        if search.contains('\0') {
            select = select.filter(Expr::cust("1 = 0"));
        } else {
            select = select.filter(
                Condition::any()
                    .add(Expr::cust_with_values(
                        format!("{position}(name_folded, {placeholder}) > 0"),
                        [crate::text::fold(search)],
                    ))
                    .add(element::Column::Fid.eq(search)),
            );
        }
    }
    if let Some(b) = filter.bbox {
        check_latitude("minLatitude", b.min_latitude)?;
        check_latitude("maxLatitude", b.max_latitude)?;
        check_longitude("minLongitude", b.min_longitude)?;
        check_longitude("maxLongitude", b.max_longitude)?;
        if b.min_latitude > b.max_latitude || b.min_longitude > b.max_longitude {
            return Err(Error::validation(
                "bbox",
                "bbox minimums must not exceed its maximums",
            ));
        }
        select = select
            .filter(element::Column::Latitude.between(b.min_latitude, b.max_latitude))
            .filter(element::Column::Longitude.between(b.min_longitude, b.max_longitude));
    }
    if let Some(since) = filter.changed_since {
        select = select.filter(element::Column::RemoteUpdatedAt.gte(since));
    }
    if let Some(has) = filter.has_free_ports {
        let exists = free_port_exists("elements.id");
        select = select.filter(Expr::cust(if has {
            exists
        } else {
            format!("NOT {exists}")
        }));
    }
    // The count costs a statement of its own: only when the caller asked for it.
    crate::store::paging::keyset(
        db,
        select,
        element::Column::Id,
        request,
        crate::store::paging::Walk::OldestFirst,
        with_total,
    )
    .await
}

/// Great-circle distance in meters (haversine, mean Earth radius).
pub fn distance_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    crate::geo::haversine_m(lat1, lng1, lat2, lng2)
}

/// A free port near a point.
#[derive(Clone, Debug)]
pub struct FreePort {
    /// The port.
    pub port: port::Model,
    /// Its splitter.
    pub splitter: splitter::Model,
    /// The box.
    pub element: element::Model,
    /// Distance from the point to the box, in meters.
    pub distance_m: f64,
}

/// Largest search radius, in meters.
pub const MAX_RADIUS_M: f64 = 5000.0;
/// Largest number of free ports returned.
pub const MAX_FREE_PORTS: u64 = 100;

/// The nearest FREE ports of SERVICE splitters with no active binding, nearest first (then by
/// box, splitter and port number). The indexed latitude/longitude rectangle around the circle
/// pre-filters; the great-circle distance ranks.
pub async fn free_ports<C: ConnectionTrait>(
    db: &C,
    near: Near,
    radius_m: f64,
) -> Result<Vec<FreePort>> {
    let Near {
        latitude,
        longitude,
        first,
        ..
    } = near;
    check_latitude("latitude", latitude)?;
    check_longitude("longitude", longitude)?;
    let radius_message = format!("radiusMeters must be above 0 and at most {MAX_RADIUS_M}");
    // NaN is neither above 0 nor over the limit: a plain refusal.
    if radius_m.is_nan() || radius_m <= 0.0 {
        return Err(Error::validation("radiusMeters", radius_message));
    }
    if radius_m > MAX_RADIUS_M {
        return Err(Error::over_limit(
            "radiusMeters",
            "radius",
            MAX_RADIUS_M,
            radius_message,
        ));
    }
    let first_message = format!("first must be between 1 and {MAX_FREE_PORTS}");
    if first > MAX_FREE_PORTS {
        return Err(Error::over_limit(
            "first",
            "pageSize",
            MAX_FREE_PORTS as f64,
            first_message,
        ));
    }
    if first == 0 {
        return Err(Error::validation("first", first_message));
    }
    // Nearest first within a radius that grows: the `first` nearest within a smaller radius are
    // the nearest overall (anything else is farther), so a search starts at 150 m and doubles
    // until it has them or reaches `radius_m`. Each step reads a quarter of the rows of the
    // next, so a wide radius costs about what the distance to the `first`-th port needs, not
    // the whole circle: 1,000 m measured 17.9 ms (median) reading the whole rectangle.
    let mut r = radius_m.min(START_RADIUS_M);
    loop {
        let hits = within(db, near, r).await?;
        if hits.len() as u64 >= first || r >= radius_m {
            return Ok(hits);
        }
        r = (r * 2.0).min(radius_m);
    }
}

/// What [`free_ports`] looks for: the `first` bindable ports of an integration nearest to a
/// point.
#[derive(Clone, Copy, Debug)]
pub struct Near {
    /// The integration whose plant is searched.
    pub integration_id: i64,
    /// Latitude of the point, -90..90.
    pub latitude: f64,
    /// Longitude of the point, -180..180.
    pub longitude: f64,
    /// How many ports, 1..=100.
    pub first: u64,
}

/// The first radius [`free_ports`] searches, in meters.
const START_RADIUS_M: f64 = 150.0;

/// The `first` nearest bindable ports within `radius_m`, nearest first.
async fn within<C: ConnectionTrait>(db: &C, near: Near, radius_m: f64) -> Result<Vec<FreePort>> {
    let Near {
        integration_id,
        latitude,
        longitude,
        first,
    } = near;
    let dlat = radius_m / 111_320.0;
    let dlng = radius_m / (111_320.0 * latitude.to_radians().cos().abs().max(0.01));
    let backend = db.get_database_backend();
    let p = |n: usize| match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    // One statement: every column of the three rows comes back prefixed, and only the nearest
    // `first` rows are turned into models. Every value is a bound parameter.
    let sql = format!(
        "SELECT {}, {}, {} \
         FROM elements e JOIN splitters s ON s.element_id = e.id JOIN ports p ON p.splitter_id = s.id \
         WHERE e.integration_id = {} \
           AND e.latitude BETWEEN {} AND {} AND e.longitude BETWEEN {} AND {} \
           AND {}",
        prefixed::<element::Entity>("e"),
        prefixed::<splitter::Entity>("s"),
        prefixed::<port::Entity>("p"),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        bindable_sql("s", "p"),
    );
    let values: [sea_orm::Value; 5] = [
        integration_id.into(),
        (latitude - dlat).into(),
        (latitude + dlat).into(),
        (longitude - dlng).into(),
        (longitude + dlng).into(),
    ];
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut hits = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let lat: f64 = row.try_get("", "e_latitude")?;
        let lng: f64 = row.try_get("", "e_longitude")?;
        let d = distance_m(latitude, longitude, lat, lng);
        if d <= radius_m {
            hits.push((
                d,
                row.try_get::<i64>("", "e_id")?,
                row.try_get::<i64>("", "s_id")?,
                row.try_get::<i32>("", "p_number")?,
                i,
            ));
        }
    }
    hits.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    hits.truncate(first as usize);
    hits.into_iter()
        .map(|(d, _, _, _, i)| {
            use sea_orm::FromQueryResult;
            let row = &rows[i];
            Ok(FreePort {
                port: port::Model::from_query_result(row, "p_")?,
                splitter: splitter::Model::from_query_result(row, "s_")?,
                element: element::Model::from_query_result(row, "e_")?,
                distance_m: d,
            })
        })
        .collect()
}

/// `t.col AS t_col, ...` for every column of an entity.
fn prefixed<E: EntityTrait>(alias: &str) -> String {
    use sea_orm::{IdenStatic, Iterable};
    E::Column::iter()
        .map(|c| format!("{alias}.{0} AS {alias}_{0}", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Digits of a CPF/CNPJ given formatted or not.
pub fn digits(document: &str) -> String {
    crate::text::visible(document)
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// Filter of [`bindings`].
#[derive(Clone, Debug, Default)]
pub struct BindingFilter {
    /// Only this integration's.
    pub integration_id: Option<i64>,
    /// CPF/CNPJ, formatted or digits.
    pub document: Option<String>,
    /// The ISP's contract.
    pub contract: Option<String>,
    /// Only these statuses.
    pub status: Option<Vec<entity::binding::BindingStatus>>,
    /// Only those whose latest delivery is in one of these statuses.
    pub push_status: Option<Vec<entity::push_outbox::PushStatus>>,
    /// Only those whose latest delivery is held (true), or none of those (false).
    pub held: Option<bool>,
}

/// One page of bindings, newest first.
pub async fn bindings<C: ConnectionTrait>(
    db: &C,
    filter: &BindingFilter,
    request: PageRequest,
) -> Result<Page<binding::Model>> {
    let mut select = binding::Entity::find();
    if let Some(id) = filter.integration_id {
        select = select.filter(binding::Column::IntegrationId.eq(id));
    }
    if let Some(doc) = &filter.document {
        select = select.filter(binding::Column::Document.eq(digits(doc)));
    }
    if let Some(contract) = &filter.contract {
        select = select.filter(binding::Column::Contract.eq(crate::text::visible(contract).trim()));
    }
    if let Some(status) = &filter.status {
        select = select.filter(binding::Column::Status.is_in(status.clone()));
    }
    if filter.push_status.is_some() || filter.held.is_some() {
        select = select.filter(latest_delivery_is(filter));
    }
    crate::store::paging::newest_first(db, select, binding::Column::Id, request).await
}

/// The push conditions of a binding filter: `bindings.id IN (…)` the bindings whose latest
/// delivery (highest id) is in one of the statuses, and `IN` / `NOT IN` those whose latest
/// delivery is held. The statuses are the enum's own names, written as literals.
fn latest_delivery_is(filter: &BindingFilter) -> sea_orm::sea_query::Condition {
    use sea_orm::sea_query::{Condition, Expr};
    use sea_orm::ActiveEnum;
    let latest = |condition: &str, negated: bool| {
        Expr::cust(format!(
            "bindings.id {} (SELECT o.binding_id FROM push_outbox o WHERE o.id = (SELECT \
             MAX(l.id) FROM push_outbox l WHERE l.binding_id = o.binding_id) AND {condition})",
            if negated { "NOT IN" } else { "IN" }
        ))
    };
    let mut all = Condition::all();
    if let Some(statuses) = &filter.push_status {
        let names: Vec<String> = statuses
            .iter()
            .map(|s| format!("'{}'", s.to_value()))
            .collect();
        all = all.add(if names.is_empty() {
            Expr::cust("1 = 0")
        } else {
            latest(&format!("o.status IN ({})", names.join(", ")), false)
        });
    }
    if let Some(held) = filter.held {
        let condition = format!(
            "o.status = 'PENDING' AND o.last_error LIKE '{}%'",
            crate::store::health::HELD_PREFIX
        );
        all = all.add(latest(&condition, !held));
    }
    all
}

/// An element of an integration by platform fid (any item).
pub async fn element_by_fid<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    fid: &str,
) -> Result<element::Model> {
    element::Entity::find()
        .filter(element::Column::IntegrationId.eq(integration_id))
        .filter(element::Column::Fid.eq(fid.trim()))
        .order_by_asc(element::Column::Id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("element with fid {fid}")))
}
