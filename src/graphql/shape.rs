//! The answer's shape as the GraphQL spec gives it, where async-graphql 7 departs from it:
//!
//! - **Field errors** ("Handling Field Errors"): a field that fails is null with its error, and a
//!   non-null one makes its nearest nullable parent null (up to `data` itself). async-graphql
//!   leaves a failed field out of its object instead, and answers an object left empty as null.
//! - **Field order** ("Serialization Format"): an object's keys follow the query's order
//!   (CollectFields, fragments expanded). async-graphql resolves the fields of an object at once
//!   and writes them as they finish.
//!
//! [`Shape`] is driven by the schema's extension: [`Shape::field`] around every field's
//! resolution, [`Shape::finish`] on the whole answer (and on each event of a subscription).
//! Answers without errors cost an order check per object, which allocates nothing when the
//! object is already in order (the usual case).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet,
};
use async_graphql::{Name, Pos, Positioned, QueryPathNode, ServerError, ServerResult, Value};

/// The code of the stand-in error a non-null field answers when a child's error made it null
/// (its container leaves it out, and its parent nulls in turn); never shown to a client.
const PROPAGATED: &str = "NULL_PROPAGATED";

type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

/// One operation's answer being shaped (the extension lives as long as the operation, or the
/// subscription).
#[derive(Default)]
pub struct Shape {
    /// The document's fragments, when it has any.
    fragments: OnceLock<Option<Arc<Fragments>>>,
    /// The operation's root selection.
    root: OnceLock<Positioned<SelectionSet>>,
    /// Errors of nullable fields, answered null: they join the answer's errors.
    nulled: Mutex<Vec<ServerError>>,
    /// Paths of non-null fields that failed, waiting for their parent to null an object.
    broken: Mutex<Vec<Vec<Step>>>,
    /// How many paths `broken` holds (read without the lock on every field).
    broken_count: AtomicUsize,
}

/// One step of a path: an object's key or a list's index.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

impl Shape {
    /// Takes what shaping needs from the request's document: its fragments and the root
    /// selection of the operation that runs.
    pub fn prepare(&self, doc: &ExecutableDocument, operation: Option<&str>) {
        let fragments = (!doc.fragments.is_empty()).then(|| Arc::new(doc.fragments.clone()));
        let _ = self.fragments.set(fragments);
        if let Some(op) = pick(doc, operation) {
            let set = &op.node.selection_set;
            let _ = self.root.set(Positioned::new(
                SelectionSet {
                    items: set.node.items.clone(),
                },
                set.pos,
            ));
        }
    }

    fn fragments(&self) -> Option<&Fragments> {
        self.fragments.get().and_then(|f| f.as_deref())
    }

    /// Around one field's resolution: a nullable field's error becomes its null; a non-null
    /// field's error goes up; a child's error that must null an object here does; the objects
    /// of the value take the query's key order.
    pub fn field(
        &self,
        path: &QueryPathNode<'_>,
        return_type: &str,
        selection: &SelectionSet,
        result: ServerResult<Option<Value>>,
    ) -> ServerResult<Option<Value>> {
        if matches!(path.segment, async_graphql::QueryPathSegment::Index(_)) {
            // An item of a list: its field shapes it, knowing the list's type.
            return result;
        }
        let nullable = !return_type.ends_with('!');
        let mut value = match result {
            Ok(Some(value)) => value,
            Ok(None) => return Ok(None),
            Err(err) if is_propagated(&err) => return Err(err),
            Err(err) if nullable => {
                self.nulled.lock().expect("nulled errors").push(err);
                return Ok(Some(Value::Null));
            }
            Err(err) => {
                self.break_at(path_of(path));
                return Err(err);
            }
        };
        if self.broken_count.load(Ordering::Relaxed) > 0 {
            let here = path_of(path);
            if self.null_children(&here, &mut value, return_type) {
                if nullable {
                    return Ok(Some(Value::Null));
                }
                self.break_at(here);
                return Err(propagated());
            }
        }
        order(&mut value, selection, self.fragments());
        Ok(Some(value))
    }

    /// The whole answer (or one event of a subscription): the root's key order, the errors of
    /// nullable fields, `data` null when a non-null root field failed, no stand-in errors.
    pub fn finish(&self, response: &mut async_graphql::Response) {
        let nulled = std::mem::take(&mut *self.nulled.lock().expect("nulled errors"));
        response.errors.extend(nulled);
        response.errors.retain(|e| !is_propagated(e));
        let broken = std::mem::take(&mut *self.broken.lock().expect("broken paths"));
        self.broken_count.store(0, Ordering::Relaxed);
        let Some(root) = self.root.get() else {
            return;
        };
        let fragments = self.fragments();
        let Value::Object(data) = &mut response.data else {
            return;
        };
        for path in &broken {
            match path.as_slice() {
                // A non-null root field failed: its null reaches `data`.
                [Step::Key(_)] => {
                    response.data = Value::Null;
                    return;
                }
                // A subscription's event: its root object lost a non-null field.
                [Step::Key(key), Step::Key(_)] if data.contains_key(key.as_str()) => {
                    response.data = Value::Null;
                    return;
                }
                _ => {}
            }
        }
        // The root of a subscription's event is resolved without the field hook: its object
        // takes its order here.
        for (key, value) in data.iter_mut() {
            if let Some(set) = selection_of(&root.node, key, fragments) {
                order(value, set, fragments);
            }
        }
        let mut root_value = std::mem::take(&mut response.data);
        order(&mut root_value, &root.node, fragments);
        response.data = root_value;
    }

    fn break_at(&self, path: Vec<Step>) {
        self.broken.lock().expect("broken paths").push(path);
        self.broken_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Nulls the objects of `value` (the field at `here`, of type `ty`) that lost a non-null
    /// field, and returns true when the null reaches the field itself.
    fn null_children(&self, here: &[Step], value: &mut Value, ty: &str) -> bool {
        let mine: Vec<Vec<Step>> = {
            let mut broken = self.broken.lock().expect("broken paths");
            let (mine, rest): (Vec<_>, Vec<_>) = broken
                .drain(..)
                .partition(|path| is_child_field(here, path));
            *broken = rest;
            self.broken_count.store(broken.len(), Ordering::Relaxed);
            mine
        };
        let levels = nullability(ty);
        let mut whole = false;
        for path in mine {
            let indices: Vec<usize> = path[here.len()..path.len() - 1]
                .iter()
                .filter_map(|s| match s {
                    Step::Index(i) => Some(*i),
                    Step::Key(_) => None,
                })
                .collect();
            // The object at depth `indices.len()` is null, or the nearest nullable list item
            // or list above it; past them all, the field itself.
            match (0..=indices.len())
                .rev()
                .find(|&depth| depth > 0 && levels.get(depth).copied().unwrap_or(true))
            {
                Some(depth) => set_null(value, &indices[..depth]),
                None => whole = true,
            }
        }
        whole
    }
}

/// The operation of `doc` that runs.
fn pick<'a>(
    doc: &'a ExecutableDocument,
    operation: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) => ops.values().next(),
    }
}

fn is_propagated(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .is_some_and(|c| matches!(c, Value::String(c) if c == PROPAGATED))
}

fn propagated() -> ServerError {
    let mut err = ServerError::new("null propagated", Some(Pos::default()));
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", PROPAGATED);
    err
}

/// The path of the field being resolved, from the root.
fn path_of(node: &QueryPathNode<'_>) -> Vec<Step> {
    let mut steps: Vec<Step> = std::iter::once(node)
        .chain(node.parents())
        .map(|node| match node.segment {
            async_graphql::QueryPathSegment::Index(i) => Step::Index(i),
            async_graphql::QueryPathSegment::Name(n) => Step::Key(n.to_owned()),
        })
        .collect();
    steps.reverse();
    steps
}

/// True when `path` is a field of an object that is `here`'s value (or an item of it).
fn is_child_field(here: &[Step], path: &[Step]) -> bool {
    path.len() > here.len()
        && path.starts_with(here)
        && matches!(path.last(), Some(Step::Key(_)))
        && path[here.len()..path.len() - 1]
            .iter()
            .all(|s| matches!(s, Step::Index(_)))
}

/// Whether a type and each of its list levels may be null: `[[A!]]!` → `[false, true, false]`.
fn nullability(ty: &str) -> Vec<bool> {
    let mut levels = Vec::new();
    let mut t = ty;
    loop {
        let non_null = t.ends_with('!');
        let inner = t.trim_end_matches('!');
        levels.push(!non_null);
        match inner.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(item) => t = item,
            None => return levels,
        }
    }
}

fn set_null(value: &mut Value, indices: &[usize]) {
    let mut at = value;
    for &i in indices {
        match at {
            Value::List(items) if i < items.len() => at = &mut items[i],
            _ => return,
        }
    }
    *at = Value::Null;
}

/// Calls `visit` with each response key of `set` in the query's order, fragments expanded,
/// until it returns false.
fn each_key(
    set: &SelectionSet,
    fragments: Option<&Fragments>,
    visit: &mut dyn FnMut(&Name) -> bool,
) -> bool {
    for item in &set.items {
        let go_on = match &item.node {
            Selection::Field(f) => visit(&f.node.response_key().node),
            Selection::InlineFragment(f) => each_key(&f.node.selection_set.node, fragments, visit),
            Selection::FragmentSpread(s) => {
                match fragments.and_then(|f| f.get(&s.node.fragment_name.node)) {
                    Some(def) => each_key(&def.node.selection_set.node, fragments, visit),
                    None => true,
                }
            }
        };
        if !go_on {
            return false;
        }
    }
    true
}

/// The selection under the first field of `set` answered as `key`.
fn selection_of<'a>(
    set: &'a SelectionSet,
    key: &str,
    fragments: Option<&'a Fragments>,
) -> Option<&'a SelectionSet> {
    set.items.iter().find_map(|item| match &item.node {
        Selection::Field(f) if f.node.response_key().node == key => {
            Some(&f.node.selection_set.node)
        }
        Selection::Field(_) => None,
        Selection::InlineFragment(f) => selection_of(&f.node.selection_set.node, key, fragments),
        Selection::FragmentSpread(s) => fragments
            .and_then(|f| f.get(&s.node.fragment_name.node))
            .and_then(|def| selection_of(&def.node.selection_set.node, key, fragments)),
    })
}

/// Puts the keys of every object of `value` (through lists) in the order of `set`.
fn order(value: &mut Value, set: &SelectionSet, fragments: Option<&Fragments>) {
    match value {
        Value::Object(map) if map.len() > 1 && !in_order(map, set, fragments) => {
            let mut keys: Vec<Name> = Vec::new();
            each_key(set, fragments, &mut |k| {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
                true
            });
            let at = |k: &Name| keys.iter().position(|x| x == k).unwrap_or(usize::MAX);
            map.sort_by(|a, _, b, _| at(a).cmp(&at(b)));
        }
        Value::List(items) => {
            for item in items {
                order(item, set, fragments);
            }
        }
        _ => {}
    }
}

/// True when the keys of `map` come in the order `set` names them.
fn in_order(
    map: &async_graphql::indexmap::IndexMap<Name, Value>,
    set: &SelectionSet,
    fragments: Option<&Fragments>,
) -> bool {
    let mut keys = map.keys().peekable();
    each_key(set, fragments, &mut |k| {
        if keys.peek() == Some(&k) {
            keys.next();
        }
        keys.peek().is_some()
    });
    keys.peek().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
    use serde_json::json;

    struct Query;
    struct Item(i32);

    #[Object]
    impl Item {
        async fn n(&self) -> i32 {
            self.0
        }
        /// Fails for item 2: non-null, so item 2 is null in a list of nullable items, and the
        /// whole list in a list of non-null ones.
        async fn strict(&self) -> async_graphql::Result<i32> {
            if self.0 == 2 {
                Err("strict failed".into())
            } else {
                Ok(self.0)
            }
        }
        /// Fails for item 2, nullable: null there, nothing else.
        async fn loose(&self) -> async_graphql::Result<Option<i32>> {
            if self.0 == 2 {
                Err("loose failed".into())
            } else {
                Ok(Some(self.0))
            }
        }
        /// Answers after a pause: finishes after the fields written after it.
        async fn slow(&self) -> i32 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.0
        }
    }

    #[Object]
    impl Query {
        async fn items(&self) -> Vec<Item> {
            (1..=3).map(Item).collect()
        }
        async fn maybe_items(&self) -> Vec<Option<Item>> {
            (1..=3).map(|n| Some(Item(n))).collect()
        }
        async fn one(&self) -> Option<Item> {
            Some(Item(2))
        }
        async fn sure(&self) -> Item {
            Item(2)
        }
        async fn fine(&self) -> i32 {
            1
        }
    }

    /// The answer as its text (keys in the order written) and as a value.
    async fn answer(query: &str) -> (String, serde_json::Value) {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(super::super::extension::Safety {
                max_nodes: 1_000,
                max_cost: 100_000,
            })
            .finish();
        let text = serde_json::to_string(&schema.execute(query).await).unwrap();
        let value = serde_json::from_str(&text).unwrap();
        (text, value)
    }

    async fn run(query: &str) -> serde_json::Value {
        answer(query).await.1
    }

    #[tokio::test]
    async fn a_failed_field_is_null_and_a_non_null_one_nulls_its_nearest_nullable_parent() {
        // Nullable field: null in place, the rest kept.
        let out = run("{ maybeItems { n loose } }").await;
        assert_eq!(out["data"]["maybeItems"][1], json!({"n": 2, "loose": null}));
        assert_eq!(out["errors"][0]["path"], json!(["maybeItems", 1, "loose"]));
        // Non-null field in a nullable item: the item is null.
        let out = run("{ maybeItems { n strict } fine }").await;
        assert_eq!(
            out["data"]["maybeItems"],
            json!([{"n": 1, "strict": 1}, null, {"n": 3, "strict": 3}])
        );
        assert_eq!(out["data"]["fine"], 1);
        assert_eq!(out["errors"].as_array().unwrap().len(), 1, "{out}");
        assert_eq!(out["errors"][0]["path"], json!(["maybeItems", 1, "strict"]));
        // Non-null item of a non-null list of a non-null root field: `data` is null.
        let out = run("{ items { n strict } fine }").await;
        assert_eq!(out["data"], serde_json::Value::Null, "{out}");
        assert_eq!(out["errors"].as_array().unwrap().len(), 1, "{out}");
        // A nullable root object: only it is null.
        let out = run("{ one { strict } fine }").await;
        assert_eq!(out["data"], json!({"one": null, "fine": 1}));
        let out = run("{ fine sure { n strict } }").await;
        assert_eq!(out["data"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn keys_follow_the_query_order_fragments_and_aliases_included() {
        let (text, _) = answer(
            "{ fine items { slow n ...F } one { b: slow a: n } } fragment F on Item { loose }",
        )
        .await;
        assert!(
            text.starts_with(r#"{"data":{"fine":1,"items":[{"slow":1,"n":1,"loose":1}"#),
            "{text}"
        );
        assert!(text.contains(r#""one":{"b":2,"a":2}"#), "{text}");
    }

    #[test]
    fn list_levels_say_where_null_may_go() {
        assert_eq!(nullability("Binding"), vec![true]);
        assert_eq!(nullability("Binding!"), vec![false]);
        assert_eq!(nullability("[Binding!]!"), vec![false, false]);
        assert_eq!(nullability("[[A!]]!"), vec![false, true, false]);
    }

    #[test]
    fn a_child_field_is_one_key_past_indices() {
        let here = vec![Step::Key("a".into())];
        let child = |tail: Vec<Step>| [here.clone(), tail].concat();
        assert!(is_child_field(&here, &child(vec![Step::Key("b".into())])));
        assert!(is_child_field(
            &here,
            &child(vec![Step::Index(2), Step::Key("b".into())])
        ));
        assert!(!is_child_field(
            &here,
            &child(vec![Step::Key("b".into()), Step::Key("c".into())])
        ));
        assert!(!is_child_field(&here, &here));
    }
}
