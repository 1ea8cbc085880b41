//! The one place where domain errors become GraphQL errors with `extensions.code`.

use async_graphql::ErrorExtensions;

use crate::Error;

impl From<Error> for async_graphql::Error {
    fn from(err: Error) -> Self {
        if let Error::Internal(cause) = &err {
            // `{:#}` prints the whole chain of causes; the caller only sees "internal error".
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let code = err.code();
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code);
            match &err {
                Error::SyncAlreadyRunning { run_id } => {
                    ext.set("runId", super::ids::encode(super::ids::SYNC_RUN, *run_id));
                }
                Error::Validation {
                    field: Some(field), ..
                } => ext.set("field", field.as_str()),
                Error::OverLimit {
                    field, limit, max, ..
                } => {
                    ext.set("field", field.as_str());
                    ext.set("limit", *limit);
                    // A whole limit is answered as an integer (`500`, not `500.0`).
                    if max.fract() == 0.0 && max.abs() < 9.0e15 {
                        ext.set("max", *max as i64);
                    } else {
                        ext.set("max", *max);
                    }
                }
                _ => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Value;

    fn code_of(err: Error) -> (String, async_graphql::Error) {
        let gql: async_graphql::Error = err.into();
        let code = match gql.extensions.as_ref().and_then(|e| e.get("code")) {
            Some(Value::String(s)) => s.clone(),
            other => panic!("no code: {other:?}"),
        };
        (code, gql)
    }

    #[test]
    fn every_variant_maps_to_its_code() {
        let cases = [
            (Error::NotFound("x".into()), "NOT_FOUND"),
            (Error::validation("name", "bad"), "VALIDATION"),
            (Error::InvalidSelection("rule".into()), "INVALID_SELECTION"),
            (Error::Conflict("dup".into()), "CONFLICT"),
            (
                Error::SyncAlreadyRunning { run_id: 3 },
                "SYNC_ALREADY_RUNNING",
            ),
            (Error::InactiveIntegration, "INACTIVE_INTEGRATION"),
            (
                Error::PlatformUnavailable("down".into()),
                "PLATFORM_UNAVAILABLE",
            ),
            (Error::PlatformAuth("401".into()), "PLATFORM_AUTH"),
            (Error::Unauthenticated, "UNAUTHENTICATED"),
            (
                Error::Forbidden {
                    role: "VIEWER".into(),
                    needed: "ADMIN".into(),
                },
                "FORBIDDEN",
            ),
            (Error::MasterKeyMismatch, "MASTER_KEY_MISMATCH"),
            (Error::internal(anyhow::anyhow!("db exploded")), "INTERNAL"),
        ];
        for (err, expected) in cases {
            assert_eq!(code_of(err).0, expected);
        }
    }

    #[test]
    fn internal_causes_are_not_shown() {
        let (_, gql) = code_of(Error::internal(anyhow::anyhow!("password=hunter2 leaked")));
        assert_eq!(gql.message, "internal error");
    }

    #[test]
    fn running_sync_carries_the_run_id_and_validation_the_field() {
        let (_, gql) = code_of(Error::SyncAlreadyRunning { run_id: 42 });
        let ext = gql.extensions.unwrap();
        assert_eq!(
            ext.get("runId"),
            Some(&Value::String(
                crate::graphql::ids::encode(crate::graphql::ids::SYNC_RUN, 42).to_string()
            ))
        );
        let (_, gql) = code_of(Error::validation("apiUrl", "bad"));
        assert_eq!(
            gql.extensions.unwrap().get("field"),
            Some(&Value::String("apiUrl".into()))
        );
    }
}
