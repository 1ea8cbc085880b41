//! The `gateways` query: supported platforms and what a form needs to set one up.

use async_graphql::{Object, SimpleObject};

use crate::access::Role;
use crate::gateways::{self as domain, GatewayInfo};
use crate::graphql::guard::RoleGuard;
use crate::graphql::integrations::GatewayEnum;

/// One parameter of an integration with a platform, with hints for a form.
#[derive(SimpleObject)]
pub struct GatewayParameter {
    /// The input field that carries it (`apiUrl`, `username`, `password`, `key`).
    pub field: &'static str,
    /// A label for a form, in the users' language.
    pub label: &'static str,
    /// True when the caller must supply it on creation.
    pub required: bool,
    /// True when the gateway generates it.
    pub generated: bool,
    /// True when it is write-only: stored encrypted and never returned.
    pub secret: bool,
    /// Where to get it and what it looks like.
    pub hint: &'static str,
    /// An example value, when one helps.
    pub example: Option<&'static str>,
}

/// A supported mapping platform.
#[derive(SimpleObject)]
pub struct Gateway {
    /// The value to pass as `gateway` when creating an integration.
    pub kind: GatewayEnum,
    /// Display name.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// What an integration with it needs.
    pub parameters: Vec<GatewayParameter>,
}

impl From<GatewayInfo> for Gateway {
    fn from(info: GatewayInfo) -> Self {
        Gateway {
            kind: info.kind.into(),
            name: info.name,
            description: info.description,
            parameters: info
                .parameters
                .into_iter()
                .map(|p| GatewayParameter {
                    field: p.field,
                    label: p.label,
                    required: p.required,
                    generated: p.generated,
                    secret: p.secret,
                    hint: p.hint,
                    example: p.example,
                })
                .collect(),
        }
    }
}

/// Gateway queries.
#[derive(Default)]
pub struct GatewayQuery;

#[Object]
impl GatewayQuery {
    /// The supported platforms, their parameters and fill-in hints.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn gateways(&self) -> Vec<Gateway> {
        domain::catalog().into_iter().map(Into::into).collect()
    }
}
