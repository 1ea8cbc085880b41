//! The domain error: one enum for every failure a caller can see, each with a stable code.
//!
//! The GraphQL layer maps it once to `extensions.code` (see `graphql::error`). Internal causes
//! keep their chain for the log and are never shown to the caller.
//!
//! The enum deliberately does not implement `Display`: async-graphql converts every `Display`
//! type into an error without a code, so without it the compiler makes sure each domain error
//! goes through the one mapping that sets `extensions.code`. [`Error::message`] is the text.

use sea_orm::{DbErr, SqlErr};

/// Result of a domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a way a caller must hear about.
#[derive(Debug)]
pub enum Error {
    /// The thing asked for does not exist (or is not visible).
    NotFound(String),
    /// An id that no object of this API ever had: not the opaque form ids take. Answered as
    /// `NOT_FOUND`, with a message that says the id is malformed.
    MalformedId {
        /// The kind of object asked for (`Binding`).
        kind: &'static str,
        /// The id as given, shortened and without control characters.
        id: String,
    },
    /// The input breaks a rule; the message names it.
    Validation {
        /// What is wrong, for a person.
        message: String,
        /// The input field at fault, when there is one.
        field: Option<String>,
    },
    /// An argument is over one of the API's limits (a page size, a search radius): like
    /// `Validation`, and it also says which limit and its value.
    OverLimit {
        /// What is wrong, for a person.
        message: String,
        /// The argument at fault.
        field: String,
        /// The limit's name in `extensions.limit` (`pageSize`, `radius`).
        limit: &'static str,
        /// The largest value allowed.
        max: f64,
    },
    /// The element selection breaks a catalog rule; the message names the rule.
    InvalidSelection(String),
    /// The change clashes with the current state (a duplicate name, a project already linked).
    Conflict(String),
    /// Another run of the integration is queued or running.
    SyncAlreadyRunning {
        /// The database id of the running run.
        run_id: i64,
    },
    /// The integration is deactivated: it is never synced or pushed.
    InactiveIntegration,
    /// The platform could not be reached or kept failing.
    PlatformUnavailable(String),
    /// The platform refused the credentials.
    PlatformAuth(String),
    /// No API key, or one that is unknown or revoked.
    Unauthenticated,
    /// The key's role does not allow this.
    Forbidden {
        /// The caller's role.
        role: String,
        /// The least role that may.
        needed: String,
    },
    /// A stored secret (a platform password) does not open with this `MASTER_KEY`: the
    /// gateway runs with another key than the one it was stored with.
    MasterKeyMismatch,
    /// A fault of the gateway itself; the cause goes to the log only.
    Internal(anyhow::Error),
}

impl Error {
    /// The stable SHOUTY_SNAKE code of this error, as clients see it in `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) | Error::MalformedId { .. } => "NOT_FOUND",
            Error::Validation { .. } | Error::OverLimit { .. } => "VALIDATION",
            Error::InvalidSelection(_) => "INVALID_SELECTION",
            Error::Conflict(_) => "CONFLICT",
            Error::SyncAlreadyRunning { .. } => "SYNC_ALREADY_RUNNING",
            Error::InactiveIntegration => "INACTIVE_INTEGRATION",
            Error::PlatformUnavailable(_) => "PLATFORM_UNAVAILABLE",
            Error::PlatformAuth(_) => "PLATFORM_AUTH",
            Error::Unauthenticated => "UNAUTHENTICATED",
            Error::Forbidden { .. } => "FORBIDDEN",
            Error::MasterKeyMismatch => "MASTER_KEY_MISMATCH",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// The message a caller sees. Internal causes are not part of it.
    pub fn message(&self) -> String {
        match self {
            Error::NotFound(what) => format!("{what} not found"),
            Error::MalformedId { kind, id } => {
                format!("{kind} with id \"{id}\" not found: the id is malformed (ids are the opaque strings the API gives)")
            }
            Error::Validation { message, .. } | Error::OverLimit { message, .. } => message.clone(),
            Error::InvalidSelection(message) | Error::Conflict(message) => message.clone(),
            Error::SyncAlreadyRunning { run_id } => {
                format!(
                    "a sync is already running for this integration (run {})",
                    crate::ids::run(*run_id)
                )
            }
            Error::InactiveIntegration => "the integration is inactive".into(),
            Error::PlatformUnavailable(why) => format!("the platform is unavailable: {why}"),
            Error::PlatformAuth(why) => format!("the platform refused the credentials: {why}"),
            Error::Unauthenticated => {
                "a valid API key is required (Authorization: Bearer <key>)".into()
            }
            Error::Forbidden { role, needed } => {
                format!("the {role} role may not do this; it needs {needed}")
            }
            Error::MasterKeyMismatch => {
                "the integration's stored password does not open with this \
                                          MASTER_KEY: start the gateway with the key it was stored \
                                          with (docs/OPERATIONS.md, \"The master key\")"
                    .into()
            }
            Error::Internal(_) => "internal error".into(),
        }
    }

    /// What a log line says about this error: the message, or for an internal error its whole
    /// chain of causes (the database's own words, never "internal error"). For the log only.
    pub fn for_log(&self) -> String {
        match self {
            Error::Internal(cause) => crate::text::without_source_lines(&format!("{cause:#}")),
            other => other.message(),
        }
    }

    /// For command-line paths that report through `anyhow`: the message, or the whole cause
    /// chain of an internal error.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            Error::Internal(cause) => cause,
            other => anyhow::anyhow!(other.message()),
        }
    }

    /// A validation error on one input field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Error::Validation {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// `field` is over the limit named `limit`, whose value is `max`.
    pub fn over_limit(
        field: &str,
        limit: &'static str,
        max: f64,
        message: impl Into<String>,
    ) -> Self {
        Error::OverLimit {
            message: message.into(),
            field: field.to_owned(),
            limit,
            max,
        }
    }

    /// Wraps any unexpected failure.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Error::Internal(err.into())
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Error::Internal(err.into())
    }
}

/// True when a database error is a unique-key violation, so callers can turn it into a
/// `CONFLICT` naming what clashed.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
