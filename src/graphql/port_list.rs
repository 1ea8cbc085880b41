//! A splitter's `ports` (`[Port!]!`), answered directly when the selection is plain.
//!
//! A tree of 1,000 boxes is about 16,000 ports, and async-graphql resolves each of them as a
//! container: a boxed future and a task per field, the schema's registry looked up by type and
//! field name, the extension's hook around every field and around the item, an `IndexMap` built
//! as the fields finish. For a port that is all bookkeeping: its fields are columns of a row
//! already in memory. When every field the selection asks of a port is one of `__typename`,
//! `id`, `fid`, `number`, `status` or `binding`, each without directives and under a response
//! key of its own, a port with no active binding is written here, in the selection's order, to
//! the same values the resolvers give. Anything else takes async-graphql's own path: a selection
//! with fragments, directives, `platformCustomer` or `splitter` (the whole list), and a port
//! with an active binding (that item, exactly as `resolve_list` resolves it, hooks and all). Its
//! fields cannot fail, so no error is skipped; the extension's hook leaves list items and
//! scalars unchanged (`shape`), so none of its work is skipped either.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::ResolveInfo;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::{
    registry, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value,
};

use super::ids::{self, PORT};
use super::port::Port;
use entity::port;

/// The ports of one splitter, by number.
pub struct Ports {
    rows: Arc<[Arc<port::Model>]>,
    /// How a port is written here; `None` sends the whole list through async-graphql.
    plan: Option<Plan>,
    /// Ports with an active binding, when the plan asks for `binding`.
    bound: HashSet<i64>,
}

/// A field of `Port` answered from its row.
#[derive(Clone, Copy)]
enum Plain {
    Typename,
    Id,
    Fid,
    Number,
    Status,
    /// Null here: a port with an active binding takes the standard path.
    Binding,
}

/// The response keys and fields of a plain selection of a port, in the selection's order.
pub struct Plan {
    fields: Vec<(Name, Plain)>,
    binding: bool,
}

impl Plan {
    /// The plan of a selection; `None` when it is not a plain one.
    pub fn of(set: &SelectionSet) -> Option<Plan> {
        let mut fields: Vec<(Name, Plain)> = Vec::with_capacity(set.items.len());
        for item in &set.items {
            let Selection::Field(field) = &item.node else {
                return None;
            };
            let field = &field.node;
            if !field.directives.is_empty() || !field.arguments.is_empty() {
                return None;
            }
            let plain = match field.name.node.as_str() {
                "__typename" => Plain::Typename,
                "id" => Plain::Id,
                "fid" => Plain::Fid,
                "number" => Plain::Number,
                "status" => Plain::Status,
                "binding" => Plain::Binding,
                _ => return None,
            };
            let key = field.response_key().node.clone();
            if fields.iter().any(|(k, _)| *k == key) {
                return None;
            }
            fields.push((key, plain));
        }
        let binding = fields.iter().any(|(_, f)| matches!(f, Plain::Binding));
        Some(Plan { fields, binding })
    }

    /// True when the selection asks for `binding` (and so must know which ports have one).
    pub fn asks_binding(&self) -> bool {
        self.binding
    }

    fn answer(&self, row: &port::Model) -> Value {
        let mut map = IndexMap::with_capacity(self.fields.len());
        for (key, field) in &self.fields {
            let value = match field {
                Plain::Typename => Value::String(Port::type_name().into_owned()),
                Plain::Id => Value::String(ids::encode(PORT, row.id).0),
                Plain::Fid => Value::String(row.fid.clone()),
                Plain::Number => Value::from(row.number),
                Plain::Status => async_graphql::resolver_utils::enum_value(row.status),
                Plain::Binding => Value::Null,
            };
            map.insert(key.clone(), value);
        }
        Value::Object(map)
    }
}

impl Ports {
    /// The ports of a splitter, the plan of their selection, and (when the plan asks for
    /// `binding`) those with an active binding.
    pub fn new(rows: Arc<[Arc<port::Model>]>, plan: Option<Plan>, bound: HashSet<i64>) -> Self {
        Ports { rows, plan, bound }
    }
}

/// One item through async-graphql's own path, as `resolve_list` resolves it.
async fn standard(
    ctx: &ContextSelectionSet<'_>,
    field: &Positioned<Field>,
    idx: usize,
    port: Port,
) -> ServerResult<Value> {
    let ctx_idx = ctx.with_index(idx);
    let parent = <Vec<Port> as OutputType>::type_name();
    let returns = Port::qualified_type_name();
    let info = ResolveInfo {
        path_node: ctx_idx.path_node.as_ref().expect("an item has a path"),
        parent_type: &parent,
        return_type: &returns,
        name: field.node.name.node.as_str(),
        alias: field.node.alias.as_ref().map(|a| a.node.as_str()),
        // Ports are never under `__schema` or `__type`.
        is_for_introspection: false,
        field: &field.node,
    };
    let resolve = async {
        OutputType::resolve(&port, &ctx_idx, field)
            .await
            .map(Some)
            .map_err(|err| ctx_idx.set_error_path(err))
    };
    futures::pin_mut!(resolve);
    ctx.query_env
        .extensions
        .resolve(info, &mut resolve)
        .await
        .map(Option::unwrap_or_default)
}

impl OutputType for Ports {
    fn type_name() -> Cow<'static, str> {
        <Vec<Port> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<Port> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut registry::Registry) -> String {
        <Vec<Port> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let rows = &self.rows;
        let Some(plan) = &self.plan else {
            return async_graphql::resolver_utils::resolve_list(
                ctx,
                field,
                rows.iter().map(|row| Port(row.clone())),
                Some(rows.len()),
            )
            .await;
        };
        let mut items = Vec::with_capacity(rows.len());
        let (mut bound, mut others) = (Vec::new(), Vec::new());
        for (idx, row) in rows.iter().enumerate() {
            if plan.binding && self.bound.contains(&row.id) {
                items.push(Value::Null);
                bound.push(idx);
                others.push(standard(ctx, field, idx, Port(row.clone())));
            } else {
                items.push(plan.answer(row));
            }
        }
        if !others.is_empty() {
            let resolved = futures::future::try_join_all(others).await?;
            for (idx, value) in bound.into_iter().zip(resolved) {
                items[idx] = value;
            }
        }
        Ok(Value::List(items))
    }
}
