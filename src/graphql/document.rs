//! What is checked of a request's document before anything runs: parsed once (and cached by
//! text), its size with fragments expanded, which operation runs, whether its HTTP method may
//! carry it, and that its required variables are given.

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{Request, ServerResult};

use super::extension::{coded, refusal, tag};

/// Marks a request that may only read (it came over `GET`): a mutation or subscription in it
/// is refused with [`METHOD_NOT_ALLOWED`] before it runs.
#[derive(Clone, Copy, Debug)]
pub struct QueriesOnly;

/// The `extensions.code` of an operation that its HTTP method cannot carry (HTTP 405).
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";

/// Parses the document once (async-graphql reuses the parse), refuses it when its expanded size
/// is over `max_nodes`, and checks that the operation to run is named unambiguously.
/// Parsed documents by their text, so that a client sending the same operation again (the
/// usual case: front-ends send a few fixed documents with different variables) is not parsed
/// again. Bounded: past [`PARSED_KEPT`] documents it starts over.
fn parsed_cache() -> &'static std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>
{
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>,
    > = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Documents the parse cache keeps, and the longest it keeps (so it holds at most 16 MiB of
/// text, whatever `MAX_BODY_BYTES` allows).
const PARSED_KEPT: usize = 1_000;
const PARSED_MAX_LEN: usize = 16 * 1024;

/// Gives the request its parsed document: from the cache when the same text was parsed
/// before, else parsed now (and kept when it parsed).
fn parse_cached(request: &mut Request) -> ServerResult<()> {
    let cached = parsed_cache()
        .lock()
        .expect("parse cache lock")
        .get(&request.query)
        .cloned();
    match cached {
        Some(doc) => request.set_parsed_query(doc),
        None => {
            let doc = request
                .parsed_query()
                .map_err(|e| tag(e, "VALIDATION"))?
                .clone();
            if request.query.len() > PARSED_MAX_LEN {
                return Ok(());
            }
            let mut cache = parsed_cache().lock().expect("parse cache lock");
            if cache.len() >= PARSED_KEPT {
                cache.clear();
            }
            cache.insert(request.query.clone(), doc);
        }
    }
    Ok(())
}

pub(super) fn check_document(
    request: &mut Request,
    max_nodes: u64,
) -> ServerResult<Option<String>> {
    let operation_name = request.operation_name.clone();
    parse_cached(request)?;
    let doc = request.parsed_query().map_err(|e| tag(e, "VALIDATION"))?;
    match super::cost::expanded_nodes(doc) {
        Ok(n) if n > max_nodes => {
            return Err(refusal(
                format!(
                    "the operation has {} selections with its fragments expanded; the limit is \
                     {max_nodes}",
                    if n == u64::MAX {
                        "too many".to_owned()
                    } else {
                        n.to_string()
                    }
                ),
                Some("nodes"),
            ))
        }
        Ok(_) => {}
        Err(super::cost::CostError::FragmentCycle(name)) => {
            return Err(refusal(format!("fragment {name} spreads itself"), None))
        }
    }
    match (&doc.operations, operation_name) {
        (DocumentOperations::Multiple(ops), Some(name)) if ops.contains_key(name.as_str()) => {
            Ok(Some(name))
        }
        (DocumentOperations::Multiple(_), Some(name)) => Err(refusal(
            format!("the document has no operation named {name:?}"),
            None,
        )),
        (DocumentOperations::Single(_), Some(name)) => Err(refusal(
            format!("the document has no operation named {name:?}"),
            None,
        )),
        (DocumentOperations::Multiple(ops), None) if ops.len() > 1 => Err(refusal(
            "the document has several operations: say which to run with operationName",
            None,
        )),
        (DocumentOperations::Multiple(ops), None) => Ok(ops.keys().next().map(|n| n.to_string())),
        (DocumentOperations::Single(_), None) => Ok(None),
    }
}

/// Refuses, before anything runs, an operation its method cannot carry ([`QueriesOnly`]) and
/// one that lacks a required variable (async-graphql would report that as an error of the first
/// field that uses it, after execution began).
pub(super) fn check_operation(request: &mut Request, name: Option<&str>) -> ServerResult<()> {
    use async_graphql::parser::types::OperationType;
    let queries_only = request
        .data
        .get(&std::any::TypeId::of::<QueriesOnly>())
        .is_some();
    let variables = request.variables.clone();
    let doc = request.parsed_query().map_err(|e| tag(e, "VALIDATION"))?;
    let operation = match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return Ok(()),
        },
        (DocumentOperations::Multiple(_), None) => return Ok(()),
    };
    let kind = operation.node.ty;
    if queries_only && kind != OperationType::Query {
        return Err(coded(
            format!("a {kind} cannot be sent with GET: send it with POST (or over the WebSocket)"),
            METHOD_NOT_ALLOWED,
        ));
    }
    for definition in &operation.node.variable_definitions {
        let definition = &definition.node;
        let name = definition.name.node.as_str();
        let given = variables
            .get(name)
            .is_some_and(|v| *v != async_graphql::Value::Null);
        let required = !definition.var_type.node.nullable && definition.default_value.is_none();
        if required && !given {
            return Err(refusal(
                format!(
                    "variable ${name} of type {} was not given a value",
                    definition.var_type.node
                ),
                None,
            ));
        }
    }
    Ok(())
}
