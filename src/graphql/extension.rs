//! The schema's one extension: every error gets a code, and a panic becomes an error.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextResolve, NextValidation, ResolveInfo,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};
use futures::FutureExt;

/// Factory of [`SafetyExtension`].
pub struct Safety {
    /// Most selections an operation may have with its fragments expanded.
    pub max_nodes: u64,
    /// Highest cost (async-graphql's complexity) an operation may have.
    pub max_cost: usize,
}

impl ExtensionFactory for Safety {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SafetyExtension {
            max_nodes: self.max_nodes,
            max_cost: self.max_cost,
            cost: std::sync::OnceLock::new(),
            parsed: std::sync::Mutex::new(None),
            subscription: std::sync::Mutex::new(None),
            shape: Arc::new(super::shape::Shape::default()),
        })
    }
}

/// Gives each operation its DataLoaders; measures the document before async-graphql validates
/// it and picks the operation to run, refusing with `VALIDATION` what is too large or ambiguous;
/// tags parse and validation failures (including the depth and complexity limits) with
/// `VALIDATION`; and catches panics of resolvers as `INTERNAL` errors.
///
/// It also enforces the cost limit itself (instead of async-graphql's `limit_complexity`, whose
/// refusal says neither the cost nor the limit) and reports every operation's cost in the
/// response's `extensions.cost`, like GitHub's rate-limit cost. An instance serves one request.
pub struct SafetyExtension {
    max_nodes: u64,
    max_cost: usize,
    cost: std::sync::OnceLock<usize>,
    /// The document parsed for this request, kept in the parse cache once it is validated.
    parsed: std::sync::Mutex<Option<super::document::Parsed>>,
    /// A subscription's weight, held while it lives (the extension lives as long as its
    /// stream).
    subscription: std::sync::Mutex<Option<super::live_cost::Reservation>>,
    /// The answer's shape as the spec gives it: field errors and key order.
    shape: Arc<super::shape::Shape>,
}

/// What the HTTP layer learns of an operation: whether it passed every check and began to
/// execute (request errors, refused before, answer 400), and its metrics label (the first root
/// field it runs).
#[derive(Default)]
pub struct Executed {
    began: std::sync::atomic::AtomicBool,
    operation: std::sync::OnceLock<String>,
    name: std::sync::OnceLock<String>,
}

impl Executed {
    /// True once execution began.
    pub fn get(&self) -> bool {
        self.began.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// The operation's metrics label, once known.
    pub fn operation(&self) -> Option<&str> {
        self.operation.get().map(String::as_str)
    }
    /// The operation's name as the client wrote it (at most 100 characters), once known.
    pub fn name(&self) -> Option<&str> {
        self.name.get().map(String::as_str)
    }
}

use super::document::{check_document, check_operation};
pub use super::document::{QueriesOnly, METHOD_NOT_ALLOWED};

/// A request-level error with this `extensions.code`.
pub(super) fn coded(message: impl Into<String>, code: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    err
}

/// A request-level refusal, code `VALIDATION` (and the limit, when one was hit).
pub(super) fn refusal(message: impl Into<String>, limit: Option<&str>) -> ServerError {
    let mut err = coded(message, "VALIDATION");
    if let Some(limit) = limit {
        err.extensions
            .get_or_insert_with(Default::default)
            .set("limit", limit);
    }
    err
}

/// The metrics label of an operation: its first root field, when the schema has that field
/// (`introspection` for `__schema`/`__type`), else `other`. Clients choose operation names
/// freely; root fields come from the schema, so labels stay few and cannot be squatted.
fn root_label(
    request: &mut Request,
    operation: Option<&str>,
    registry: &async_graphql::registry::Registry,
) -> String {
    use async_graphql::parser::types::{OperationType, Selection};
    let Ok(doc) = request.parsed_query() else {
        return "other".into();
    };
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return "other".into(),
        },
        (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
            Some(op) => op,
            None => return "other".into(),
        },
    };
    let root = match op.node.ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    let first = op
        .node
        .selection_set
        .node
        .items
        .iter()
        .find_map(|s| match &s.node {
            Selection::Field(f) => Some(f.node.name.node.as_str()),
            _ => None,
        });
    match (root.and_then(|r| registry.types.get(r)), first) {
        (_, Some("__schema" | "__type")) => "introspection".into(),
        (Some(ty), Some(field)) if ty.field_by_name(field).is_some() => field.to_owned(),
        _ => "other".into(),
    }
}

/// Distinct errors an answer lists, and the longest message kept.
const ERRORS_KEPT: usize = 20;
const MESSAGE_MAX: usize = 1024;

/// Keeps an answer's errors to a few KB whatever the document: an error repeated (the same
/// message) is listed once with `extensions.repeated`, at most [`ERRORS_KEPT`] distinct ones are
/// listed and one more says how many were left out, and messages are cut at [`MESSAGE_MAX`]
/// bytes.
fn fold_errors(errors: Vec<ServerError>) -> Vec<ServerError> {
    if errors.len() <= 1 && errors.iter().all(|e| e.message.len() <= MESSAGE_MAX) {
        return errors;
    }
    let mut kept: Vec<(ServerError, u64)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut left_out = 0u64;
    for mut error in errors {
        if error.message.len() > MESSAGE_MAX {
            let mut end = MESSAGE_MAX;
            while !error.message.is_char_boundary(end) {
                end -= 1;
            }
            error.message.truncate(end);
            error.message.push('…');
        }
        if let Some(&i) = index.get(&error.message) {
            kept[i].1 += 1;
        } else if kept.len() < ERRORS_KEPT {
            index.insert(error.message.clone(), kept.len());
            kept.push((error, 1));
        } else {
            left_out += 1;
        }
    }
    let code = kept
        .first()
        .and_then(|(e, _)| e.extensions.as_ref())
        .and_then(|ext| ext.get("code"))
        .and_then(|code| match code {
            async_graphql::Value::String(code) => Some(code.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "VALIDATION".to_owned());
    let mut out: Vec<ServerError> = kept
        .into_iter()
        .map(|(mut error, n)| {
            if n > 1 {
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("repeated", n);
            }
            error
        })
        .collect();
    if left_out > 0 {
        out.push(coded(
            format!("{left_out} more errors of other kinds were left out"),
            &code,
        ));
    }
    out
}

/// The argument an async-graphql validation message names (`input.name` in `Invalid value for
/// argument "input.name", ...`).
fn argument_named(message: &str) -> Option<&str> {
    let rest = ["Invalid value for argument \"", "Unknown argument \""]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .or_else(|| {
            let (_, tail) = message.split_once("\" argument \"")?;
            message.starts_with("Field \"").then_some(tail)
        })?;
    rest.split_once('"').map(|(name, _)| name)
}

/// Adds `code` (and `limit`, for the operation limits) to an error that has none, and the
/// argument at fault as `field` when async-graphql's message names one.
pub(super) fn tag(mut err: ServerError, code: &str) -> ServerError {
    let limit = match err.message.as_str() {
        "Query is nested too deep." => Some("depth"),
        _ => None,
    };
    // async-graphql's words for a @oneOf input given none or several fields.
    const ONEOF: &str = "Oneof input objects requires have exactly one field";
    if err.message.contains(ONEOF) {
        err.message = err.message.replace(
            ONEOF,
            "give exactly one of its fields (the input is @oneOf)",
        );
    }
    let field = argument_named(&err.message).map(str::to_owned);
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
    if let (Some(field), None) = (field, ext.get("field")) {
        ext.set("field", field);
    }
    if let Some(limit) = limit {
        ext.set("limit", limit);
    }
    err
}

#[async_trait::async_trait]
impl Extension for SafetyExtension {
    /// Gives every operation (over HTTP or WebSocket) fresh DataLoaders, so their caches never
    /// outlive it.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let mut request = match ctx.data_opt::<crate::state::AppState>() {
            Some(app) => request.data(crate::store::loaders::RequestLoaders::new(&app.db)),
            None => request,
        };
        // The key: in the request over HTTP, in the connection's data over a WebSocket.
        let key = request
            .data
            .get(&std::any::TypeId::of::<crate::access::Actor>())
            .or_else(|| {
                ctx.session_data
                    .get(&std::any::TypeId::of::<crate::access::Actor>())
            })
            .and_then(|a| a.downcast_ref::<crate::access::Actor>())
            .and_then(|a| a.key_id);
        super::persisted::resolve(&mut request, key)?;
        let (operation, parsed) = check_document(&mut request, self.max_nodes)?;
        *self.parsed.lock().expect("parsed document") = parsed;
        let kind = check_operation(&mut request, operation.as_deref())?;
        if kind == Some(async_graphql::parser::types::OperationType::Subscription) {
            let doc = request.parsed_query().map_err(|e| tag(e, "VALIDATION"))?;
            let nodes = super::cost::expanded_nodes(doc).unwrap_or(u64::MAX);
            let held = super::live_cost::reserve(key, nodes).map_err(|refused| match refused {
                super::live_cost::Refused::TooLarge(n) => refusal(
                    format!(
                        "the subscription selects {n} fields, each executed on every event; the \
                         limit is {}",
                        super::live_cost::MAX_SUBSCRIPTION_NODES
                    ),
                    Some("subscription"),
                ),
                super::live_cost::Refused::KeyFull(live) => coded(
                    format!(
                        "this API key's live subscriptions select {live} fields in all; a new one \
                         would pass {}: end some first",
                        super::live_cost::MAX_LIVE_NODES_PER_KEY
                    ),
                    "RATE_LIMITED",
                ),
            })?;
            *self.subscription.lock().expect("subscription weight") = Some(held);
        }
        if let Some(name) = &operation {
            tracing::Span::current().record("operation", name.as_str());
        }
        if let Ok(doc) = request.parsed_query() {
            self.shape.prepare(doc, operation.as_deref());
        }
        let label = root_label(&mut request, operation.as_deref(), &ctx.schema_env.registry);
        if let Some(executed) = request.data.get(&std::any::TypeId::of::<Arc<Executed>>()) {
            if let Some(executed) = executed.downcast_ref::<Arc<Executed>>() {
                let _ = executed.operation.set(label);
                if let Some(name) = &operation {
                    // A GraphQL name: letters, digits and `_` only; bounded for the log.
                    let _ = executed.name.set(name.chars().take(100).collect());
                }
            }
        }
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| tag(e, "VALIDATION"))
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        response.errors = fold_errors(std::mem::take(&mut response.errors));
        if let Some(cost) = self.cost.get() {
            response
                .extensions
                .insert("cost".to_owned(), async_graphql::Value::from(*cost as u64));
        }
        response
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            fold_errors(errors.into_iter().map(|e| tag(e, "VALIDATION")).collect())
        })?;
        let _ = self.cost.set(result.complexity);
        if result.complexity > self.max_cost {
            let mut err = refusal(
                format!(
                    "the operation costs {}, over the limit of {} (MAX_QUERY_COMPLEXITY): ask for \
                     smaller pages or fewer nested lists",
                    result.complexity, self.max_cost
                ),
                Some("complexity"),
            );
            let ext = err.extensions.get_or_insert_with(Default::default);
            ext.set("cost", result.complexity as u64);
            ext.set("maxCost", self.max_cost as u64);
            return Err(vec![err]);
        }
        if let Some(parsed) = self.parsed.lock().expect("parsed document").take() {
            parsed.keep();
        }
        Ok(result)
    }

    /// Shapes each field's answer as the spec says (see `shape`).
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<async_graphql::Value>> {
        if info.is_for_introspection && info.parent_type == "__Schema" && info.name == "description"
        {
            // async-graphql answers a text of its own; the schema's is ours.
            return Ok(Some(async_graphql::Value::from(super::SCHEMA_DESCRIPTION)));
        }
        let (path, return_type, field) = (info.path_node, info.return_type, info.field);
        let result = next.run(ctx, info).await;
        self.shape
            .field(path, return_type, &field.selection_set.node, result)
    }

    /// Shapes each event of a subscription as a whole answer is.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: futures::stream::BoxStream<'s, Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures::stream::BoxStream<'s, Response> {
        use futures::StreamExt;
        let shape = self.shape.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                shape.finish(&mut response);
                response
            })
            .boxed()
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        // A socket's query or mutation takes its room here (an HTTP request took it before).
        let _permit = match ctx.data_opt::<crate::in_flight::SocketGate>() {
            Some(gate) => match gate.in_flight.acquire(gate.key, 1).await {
                Ok(permit) => Some(permit),
                Err(busy) => {
                    return Response::from_errors(vec![coded(busy.message(), busy.code())])
                }
            },
            None => None,
        };
        if let Some(executed) = ctx.data_opt::<Arc<Executed>>() {
            executed
                .began
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        match AssertUnwindSafe(next.run(ctx, operation_name))
            .catch_unwind()
            .await
        {
            // Errors left without a code come from input coercion inside the executor.
            Ok(mut response) => {
                self.shape.finish(&mut response);
                response.errors = std::mem::take(&mut response.errors)
                    .into_iter()
                    .map(|e| tag(e, "VALIDATION"))
                    .collect();
                response
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "a resolver panicked");
                Response::from_errors(vec![tag(
                    ServerError::new("internal error", None),
                    "INTERNAL",
                )])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    struct Query;

    #[Object]
    impl Query {
        async fn boom(&self) -> i32 {
            if std::hint::black_box(true) {
                panic!("kaboom");
            }
            0
        }
        async fn fine(&self) -> i32 {
            1
        }
    }

    #[tokio::test]
    async fn a_panic_is_an_internal_error() {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(Safety {
                max_nodes: 100,
                max_cost: 10_000,
            })
            .finish();
        let response = schema.execute("{ boom }").await;
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["errors"][0]["extensions"]["code"], "INTERNAL");
        assert_eq!(json["errors"][0]["message"], "internal error");
        // The schema keeps serving after the panic.
        let json = serde_json::to_value(schema.execute("{ fine }").await).unwrap();
        assert_eq!(json["data"]["fine"], 1);
    }
}
