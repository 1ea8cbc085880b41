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

/// Validated documents by their text, so that a client sending the same operation again (the
/// usual case: front-ends send a few fixed documents with different variables) is not parsed
/// and measured again. Only documents that passed validation are kept (a refused one costs its
/// sender a parse each time, and nobody memory), and the cache is bounded by the estimated size
/// of the parsed form, not by entries: past [`PARSED_MAX_BYTES`] it starts over.
#[derive(Default)]
struct ParseCache {
    documents: std::collections::HashMap<String, ExecutableDocument>,
    bytes: usize,
}

fn parsed_cache() -> &'static std::sync::Mutex<ParseCache> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<ParseCache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Most bytes the parse cache holds, by estimate ([`Parsed::bytes`]).
pub const PARSED_MAX_BYTES: usize = 32 * 1024 * 1024;
/// The longest text kept (a longer document is parsed each time).
const PARSED_MAX_LEN: usize = 16 * 1024;
/// Heap bytes of one parsed node (a field with its name, position, arguments, directives and
/// selection set), from the attack that found the unbounded cache: a document of 8,187
/// one-letter fields (16 KiB of text) took about 1.8 MB parsed, 220 bytes a node.
const NODE_BYTES: usize = 256;

/// A document parsed for this request and not cached yet: kept once it passes validation.
pub(super) struct Parsed {
    text: String,
    document: ExecutableDocument,
}

impl Parsed {
    /// The parsed form's size, estimated from its nodes.
    fn bytes(&self) -> usize {
        let nodes = super::cost::written_nodes(&self.document) as usize;
        self.text.len() * 2 + nodes.saturating_mul(NODE_BYTES)
    }

    /// Keeps the (validated) document for the next request with the same text.
    pub(super) fn keep(self) {
        let bytes = self.bytes();
        if bytes > PARSED_MAX_BYTES / 16 {
            return;
        }
        let mut cache = parsed_cache().lock().expect("parse cache lock");
        if cache.bytes + bytes > PARSED_MAX_BYTES {
            *cache = ParseCache::default();
        }
        if cache.documents.insert(self.text, self.document).is_none() {
            cache.bytes += bytes;
        }
    }
}

/// Text length past which parsing and measuring a document is taken off the runtime's worker
/// (`block_in_place`): a long document takes milliseconds of CPU, during which the tasks
/// queued on that worker (returning database connections, answering other requests) would
/// otherwise wait.
const HEAVY_TEXT: usize = 4 * 1024;

/// Runs `work` where it does not hold up the runtime's other tasks when the document is long
/// and the runtime has other workers to hand them to.
pub(super) fn off_the_runtime<T>(text_len: usize, work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if text_len > HEAVY_TEXT && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Gives the request its parsed document: from the cache when the same text was validated
/// before, else parsed now; returns it then, to keep once it passes validation.
fn parse_cached(request: &mut Request) -> ServerResult<Option<Parsed>> {
    let cached = parsed_cache()
        .lock()
        .expect("parse cache lock")
        .documents
        .get(&request.query)
        .cloned();
    if let Some(doc) = cached {
        request.set_parsed_query(doc);
        return Ok(None);
    }
    let document = off_the_runtime(request.query.len(), || {
        request
            .parsed_query()
            .cloned()
            .map_err(|e| tag(e, "VALIDATION"))
    })?;
    Ok((request.query.len() <= PARSED_MAX_LEN).then(|| Parsed {
        text: request.query.clone(),
        document,
    }))
}

/// Parses the document once (async-graphql reuses the parse), refuses it when its expanded size
/// is over `max_nodes`, and checks that the operation to run is named unambiguously. Returns
/// the operation's name, and the document parsed now (to keep once validated).
pub(super) fn check_document(
    request: &mut Request,
    max_nodes: u64,
) -> ServerResult<(Option<String>, Option<Parsed>)> {
    let operation_name = request.operation_name.clone();
    let parsed = parse_cached(request)?;
    let name = pick_operation(request, operation_name, max_nodes)?;
    Ok((name, parsed))
}

fn pick_operation(
    request: &mut Request,
    operation_name: Option<String>,
    max_nodes: u64,
) -> ServerResult<Option<String>> {
    let text_len = request.query.len();
    let doc = request.parsed_query().map_err(|e| tag(e, "VALIDATION"))?;
    let expanded = off_the_runtime(text_len, || super::cost::expanded_nodes(doc));
    match expanded {
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
        Ok(_) if super::cost::schema_introspections(doc) > 1 => {
            return Err(refusal(
                "an operation may introspect the schema (__schema) once",
                Some("introspection"),
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

/// Returns the operation's kind (`None` when no operation is picked: validation reports it).
/// Refuses, before anything runs, an operation its method cannot carry ([`QueriesOnly`]) and
/// one that lacks a required variable (async-graphql would report that as an error of the first
/// field that uses it, after execution began).
pub(super) fn check_operation(
    request: &mut Request,
    name: Option<&str>,
) -> ServerResult<Option<async_graphql::parser::types::OperationType>> {
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
            None => return Ok(None),
        },
        (DocumentOperations::Multiple(_), None) => return Ok(None),
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
    Ok(Some(kind))
}
