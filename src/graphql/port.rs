//! `Port`: a splitter output port, with the customer the platform has on it and its binding.

use async_graphql::{Context, Object, SimpleObject, ID};

use crate::graphql::ids::{self, PORT};
use crate::graphql::loaders::{loader_error, loaders, required};
use entity::port;

pub use entity::port::PortStatus;

use super::binding::Binding;
use super::splitter::Splitter;

/// The customer the platform has on a port.
#[derive(SimpleObject)]
pub struct PlatformCustomer {
    /// The ISP's contract (`id_cliente_servico`).
    pub contract: Option<String>,
    /// CPF or CNPJ as the platform has it.
    pub document: Option<String>,
    /// Customer name.
    pub name: Option<String>,
}

/// A splitter output port.
pub struct Port(pub std::sync::Arc<port::Model>);

impl From<port::Model> for Port {
    fn from(row: port::Model) -> Self {
        Port(std::sync::Arc::new(row))
    }
}

/// A splitter output port.
#[Object]
impl Port {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(PORT, self.0.id)
    }
    /// The platform's id.
    async fn fid(&self) -> &str {
        &self.0.fid
    }
    /// 1-based port number.
    async fn number(&self) -> i32 {
        self.0.number
    }
    /// State on the platform.
    async fn status(&self) -> PortStatus {
        self.0.status
    }
    /// The customer the platform has on it; null when none (document and name masked for a
    /// key without `personalData`).
    async fn platform_customer(&self, ctx: &Context<'_>) -> Option<PlatformCustomer> {
        use crate::access::personal;
        use crate::graphql::binding::shown;
        let p = &self.0;
        (p.customer_contract.is_some()
            || p.customer_document.is_some()
            || p.customer_name.is_some())
        .then(|| PlatformCustomer {
            contract: p.customer_contract.clone(),
            document: p
                .customer_document
                .as_deref()
                .map(|d| shown(ctx, d, personal::document)),
            name: p
                .customer_name
                .as_deref()
                .map(|n| shown(ctx, n, personal::name)),
        })
    }
    /// The active (PENDING or CONFIRMED) binding on it, if any.
    async fn binding(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Binding>> {
        Ok(loaders(ctx)?
            .plant
            .active_binding_of_port
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .flatten()
            .map(Binding))
    }
    /// Its splitter.
    async fn splitter(&self, ctx: &Context<'_>) -> async_graphql::Result<Splitter> {
        let splitter = loaders(ctx)?
            .plant
            .splitter
            .load_one(self.0.splitter_id)
            .await
            .map_err(loader_error)?
            .flatten();
        required(splitter, crate::ids::SPLITTER, self.0.splitter_id).map(Splitter)
    }
}
