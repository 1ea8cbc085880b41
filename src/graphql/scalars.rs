//! The schema's own scalars, and the enums of codes that the domain stores as text.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::Utc;

/// A point in time (see the scalar's description).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// A point in time: an RFC 3339 string with an offset (`2026-12-04T07:30:42.123+00:00`).
/// Answers are always in UTC; inputs may carry any offset.
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => {
                text.parse::<chrono::DateTime<Utc>>()
                    .map(DateTime)
                    .map_err(|_| {
                        InputValueError::custom(format!(
                            "{text:?} is not an RFC 3339 date-time (e.g. 2026-12-04T07:30:00Z)"
                        ))
                    })
            }
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339())
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(value: chrono::DateTime<Utc>) -> Self {
        DateTime(value)
    }
}

/// The value of a GraphQL enum named `name` (as the schema spells it).
pub fn enum_named<T: async_graphql::resolver_utils::EnumType + Copy>(name: &str) -> Option<T> {
    T::items().iter().find(|i| i.name == name).map(|i| i.value)
}

/// A stable error code: the `extensions.code` of GraphQL errors, and the code of a failed run
/// or connection test.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Nothing with that id (or name).
    NotFound,
    /// The input is not acceptable, or a limit was exceeded (`extensions.limit`).
    Validation,
    /// An element selection that the catalog does not allow.
    InvalidSelection,
    /// Someone else got there first, or the platform disagrees.
    Conflict,
    /// Another run of the integration is going.
    SyncAlreadyRunning,
    /// The integration is deactivated.
    InactiveIntegration,
    /// The platform could not be reached, or failed.
    PlatformUnavailable,
    /// The platform refused the credentials.
    PlatformAuth,
    /// No valid API key.
    Unauthenticated,
    /// The key's role may not do this.
    Forbidden,
    /// A stored platform password does not open with the gateway's `MASTER_KEY`.
    MasterKeyMismatch,
    /// A fault of the gateway.
    Internal,
    /// A sync stopped before deleting more than `MASS_DELETION_SHARE` of a level.
    MassDeletionGuard,
    /// The instance running a sync stopped proving alive.
    InstanceLost,
    /// The run was cancelled.
    Cancelled,
    /// Too many operations at once on a WebSocket or for a key.
    RateLimited,
    /// An automatic persisted query's hash is not known: send its text.
    PersistedQueryNotFound,
    /// A mutation or subscription sent with GET.
    MethodNotAllowed,
}

impl ErrorCode {
    /// The code stored as text; `INTERNAL` for one this version does not know.
    pub fn parse(code: &str) -> ErrorCode {
        enum_named(code).unwrap_or(ErrorCode::Internal)
    }
}
