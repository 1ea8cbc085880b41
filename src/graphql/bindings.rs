//! Binding mutations: bind a customer to a port, confirm (push), release, cancel, retry.

use async_graphql::{Context, InputObject, Object, ID};

use crate::access::Role;
use crate::bindings::{self as domain, Change, CustomerInput};
use crate::graphql::binding::Binding;
use crate::graphql::guard::{actor, RoleGuard};
use crate::graphql::ids::{self, BINDING, PORT};
use crate::graphql::state;

/// The customer of a new binding.
#[derive(InputObject)]
pub struct BindingCustomerInput {
    /// CPF (11 digits) or CNPJ (14), digits or formatted; stored as digits.
    pub document: String,
    /// The ISP's contract (`id_cliente_servico`); one active binding per contract.
    pub contract: String,
    /// Customer name.
    pub name: String,
    /// Service address.
    pub address: Option<String>,
    /// Plan.
    pub plan: Option<String>,
}

/// Binding mutations.
#[derive(Default)]
pub struct BindingMutation;

/// Binding mutations.
#[Object]
impl BindingMutation {
    /// Binds a customer to a FREE port of a SERVICE splitter (OPERATOR): a PENDING binding,
    /// which takes the port out of `freePorts` at once. Nothing is written on the platform
    /// until `confirmBinding`.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn bind_port(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the port.")] port_id: ID,
        #[graphql(desc = "The customer: CPF or CNPJ, contrato and name.")]
        customer: BindingCustomerInput,
    ) -> async_graphql::Result<Binding> {
        let port = ids::decode(PORT, &port_id)?;
        let input = CustomerInput {
            document: customer.document,
            contract: customer.contract,
            name: customer.name,
            address: customer.address,
            plan: customer.plan,
        };
        Ok(Binding::from(
            domain::bind(state(ctx)?, actor(ctx)?, port, input).await?,
        ))
    }

    /// Confirms a PENDING binding (OPERATOR); its push to the platform is queued in the same
    /// transaction and delivered by the outbox (follow `pushStatus`).
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn confirm_binding(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the binding.")] id: ID,
    ) -> async_graphql::Result<Binding> {
        change(ctx, &id, Change::Confirm).await
    }

    /// Releases a CONFIRMED or ORPHANED binding (OPERATOR); the port's removal on the platform
    /// is queued when the port still exists.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn release_binding(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the binding.")] id: ID,
    ) -> async_graphql::Result<Binding> {
        change(ctx, &id, Change::Release).await
    }

    /// Cancels a PENDING binding (OPERATOR); nothing was pushed, the port is free again.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn cancel_binding(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the binding.")] id: ID,
    ) -> async_graphql::Result<Binding> {
        change(ctx, &id, Change::Cancel).await
    }

    /// Moves a CONFIRMED or ORPHANED binding to another port (OPERATOR): the old port is freed on
    /// the platform when it still exists, and the customer pushed to the new one.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn rebind_binding(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the binding.")] id: ID,
        #[graphql(desc = "Id of the new port.")] port_id: ID,
    ) -> async_graphql::Result<Binding> {
        let id = ids::decode(BINDING, &id)?;
        let port = ids::decode(PORT, &port_id)?;
        Ok(Binding::from(
            domain::rebind(state(ctx)?, actor(ctx)?, id, port).await?,
        ))
    }

    /// Queues a binding's FAILED delivery again (OPERATOR).
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn retry_push(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the binding.")] binding_id: ID,
    ) -> async_graphql::Result<Binding> {
        let id = ids::decode(BINDING, &binding_id)?;
        Ok(Binding::from(
            domain::retry_push(state(ctx)?, actor(ctx)?, id).await?,
        ))
    }
}

async fn change(ctx: &Context<'_>, id: &ID, what: Change) -> async_graphql::Result<Binding> {
    let id = ids::decode(BINDING, id)?;
    Ok(Binding::from(
        domain::change(state(ctx)?, actor(ctx)?, id, what).await?,
    ))
}

/// A binding's state after a change of its status or of its delivery.
pub struct BindingEvent(crate::events::BindingEvent);

/// A binding's state after a change of its status or of its delivery.
#[Object]
impl BindingEvent {
    /// The binding.
    async fn binding_id(&self) -> ID {
        ids::encode(BINDING, self.0.binding_id)
    }
    /// Its integration.
    async fn integration_id(&self) -> ID {
        ids::encode(ids::INTEGRATION, self.0.integration_id)
    }
    /// Its status.
    async fn status(&self) -> crate::graphql::binding::BindingStatus {
        self.0.status
    }
    /// Its latest delivery's status; null before any was queued.
    async fn push_status(&self) -> Option<crate::graphql::binding::PushStatus> {
        self.0.push_status
    }
    /// Attempts of that delivery.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// Why its last attempt failed (documents in it masked for a key without
    /// `personalData`).
    async fn last_error(&self, ctx: &Context<'_>) -> Option<String> {
        self.0
            .last_error
            .as_deref()
            .map(|e| crate::graphql::binding::shown(ctx, e, crate::access::personal::text))
    }
    /// When this state was read.
    async fn at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.at
    }
}

/// Binding subscriptions.
#[derive(Default)]
pub struct BindingSubscription;

/// Binding subscriptions.
#[async_graphql::Subscription]
impl BindingSubscription {
    /// Every change of a binding of the integration (VIEWER): its status (created, confirmed,
    /// released, cancelled, moved) and its delivery (attempted, delivered, failed), on this
    /// instance and, on PostgreSQL, on every other.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn binding_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
    ) -> async_graphql::Result<impl futures::Stream<Item = BindingEvent>> {
        use futures::StreamExt;
        let id = ids::decode(ids::INTEGRATION, &integration_id)?;
        let app = state(ctx)?;
        crate::integrations::find(&app.db, id).await?;
        Ok(crate::events::binding_events(app.events.clone(), id).map(BindingEvent))
    }
}
