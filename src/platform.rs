//! What the domain needs from a mapping platform, in the domain's own terms. The Geosite client
//! implements it; sync and binding code use only this trait, so another platform is a new module.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use entity::integration;

use crate::catalog::ElementItem;
use crate::crypto::MasterKey;
use crate::gateways::GatewayKind;
use crate::{Error, Result};

/// A project (network design) on the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteProject {
    /// The platform's id of the project.
    pub remote_id: String,
    /// Its name.
    pub name: String,
    /// When it last changed on the platform.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A box or point on the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteElement {
    /// Platform id.
    pub fid: String,
    /// Name.
    pub name: String,
    /// Project it belongs to.
    pub project_id: Option<String>,
    /// Latitude, when the platform gave a location.
    pub latitude: Option<f64>,
    /// Longitude, when the platform gave a location.
    pub longitude: Option<f64>,
    /// The platform's last-change time.
    pub updated_at: Option<DateTime<Utc>>,
}

pub use entity::splitter::SplitterKind;

/// A splitter on the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteSplitter {
    /// Platform id.
    pub fid: String,
    /// Name.
    pub name: String,
    /// Project it belongs to.
    pub project_id: Option<String>,
    /// Platform id of the box that houses it.
    pub box_fid: Option<String>,
    /// Service or distribution.
    pub kind: SplitterKind,
    /// Ratio as given, e.g. `1:16`.
    pub ratio: String,
    /// Output ports the ratio implies (16 for `1:16`); 0 when unknown.
    pub port_count: i32,
    /// The platform's last-change time.
    pub updated_at: Option<DateTime<Utc>>,
}

pub use entity::port::PortStatus;

/// The customer the platform has on a port.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RemoteCustomer {
    /// The ISP's contract (`id_cliente_servico`).
    pub contract: Option<String>,
    /// CPF or CNPJ as the platform has it.
    pub document: Option<String>,
    /// Customer name.
    pub name: Option<String>,
}

/// A splitter output port on the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct RemotePort {
    /// Platform id.
    pub fid: String,
    /// Platform id of its splitter.
    pub splitter_fid: String,
    /// Project it belongs to.
    pub project_id: Option<String>,
    /// 1-based port number.
    pub number: i32,
    /// Status.
    pub status: PortStatus,
    /// The customer on it, when the platform has one.
    pub customer: Option<RemoteCustomer>,
    /// The platform's last-change time.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Which records a listing returns. Conditions combine with AND.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only records of this project.
    pub project_id: Option<String>,
    /// Only records changed at or after this time.
    pub changed_since: Option<DateTime<Utc>>,
    /// Only the record with this id.
    pub fid: Option<String>,
    /// Only the records with these ids.
    pub fids: Option<Vec<String>>,
    /// Splitters: only those housed in this box.
    pub box_fid: Option<String>,
    /// Ports: only those of these splitters.
    pub splitter_fids: Option<Vec<String>>,
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct ListPage<T> {
    /// The records of the page.
    pub records: Vec<T>,
    /// How many records the whole listing has (as the platform counted at the first page).
    pub total: u64,
    /// The platform's clock when it answered.
    pub clock: Option<DateTime<Utc>>,
    /// Records of the page the client could not read: reported, never dropped silently, since
    /// a record missing from a listing would be taken for a deleted one.
    pub unreadable: Vec<Unreadable>,
}

/// Most records one listing delivers, whatever its platform announces.
pub const MAX_LISTED_ROWS: u64 = 20_000_000;

/// What a listing may deliver: the `total` its first page announced, with room for records
/// created while it runs (a tenth more, at least 1,000), and never more than
/// [`MAX_LISTED_ROWS`]. A platform whose pages go on past it (an endless `nextUrl` chain) ends
/// the listing with an error instead of filling memory.
#[derive(Debug)]
pub struct RowBudget {
    announced: Option<u64>,
    allowed: u64,
    seen: u64,
}

impl RowBudget {
    pub fn new(announced: Option<u64>) -> Self {
        let allowed = announced
            .map_or(MAX_LISTED_ROWS, |t| t.saturating_add((t / 10).max(1_000)))
            .min(MAX_LISTED_ROWS);
        RowBudget {
            announced,
            allowed,
            seen: 0,
        }
    }

    /// Counts a page's rows; an error once the listing went past its budget.
    pub fn take(&mut self, rows: usize, what: &str) -> crate::Result<()> {
        self.seen = self.seen.saturating_add(rows as u64);
        if self.seen <= self.allowed {
            return Ok(());
        }
        let announced = self
            .announced
            .map_or_else(|| "no total".to_owned(), |t| format!("a total of {t}"));
        Err(crate::Error::PlatformUnavailable(format!(
            "the listing of {what} went on past {} records although its first page announced \
             {announced}; it was stopped",
            self.allowed
        )))
    }
}

/// A listed record the client could not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The platform's name of the feature (`portaSplitter`, `cto`, ...).
    pub feature: &'static str,
    /// The record's id, when that much could be read.
    pub fid: Option<String>,
    /// The field that is missing or cannot be read.
    pub field: &'static str,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fid {
            Some(fid) => write!(f, "{} fid {fid}: unreadable {}", self.feature, self.field),
            None => write!(f, "{} without a readable fid", self.feature),
        }
    }
}

/// A lazy listing: pages are fetched as the stream is polled, never all at once.
pub type Listing<T> = BoxStream<'static, Result<ListPage<T>>>;

/// A customer record to write on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRecord {
    /// The ISP's contract.
    pub contract: String,
    /// CPF or CNPJ, digits only.
    pub document: String,
    /// Customer name.
    pub name: String,
}

/// The outcome of a connection test.
#[derive(Clone, Debug)]
pub struct Check {
    /// How long login and listing projects took.
    pub latency: Duration,
    /// Projects visible to the user.
    pub project_count: u64,
}

/// A mapping platform, seen from the domain.
#[async_trait]
pub trait Platform: Send + Sync {
    /// Logs in and counts projects.
    async fn check(&self) -> Result<Check>;
    /// Every project visible to the user.
    async fn projects(&self) -> Result<Vec<RemoteProject>>;
    /// Creates a project by name.
    async fn create_project(&self, name: &str) -> Result<RemoteProject>;
    /// Lists boxes or points of one item (`CTO`, `CEO`, `POP`, `POLE`).
    fn elements(&self, item: ElementItem, query: ListQuery) -> Listing<RemoteElement>;
    /// Lists splitters.
    fn splitters(&self, query: ListQuery) -> Listing<RemoteSplitter>;
    /// Lists splitter ports.
    fn ports(&self, query: ListQuery) -> Listing<RemotePort>;
    /// Writes a customer on a port, or frees it of ours; idempotent. Never writes over another
    /// customer: a platform that can read the port cheaply first does, and answers
    /// [`PortWrite::Other`] instead of writing.
    async fn set_port_customer(
        &self,
        port_fid: &str,
        change: PortChange<'_>,
        origin: &str,
    ) -> Result<PortWrite>;
}

/// What a delivery asks of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortChange<'a> {
    /// Put this customer on the port (occupied).
    Occupy(&'a CustomerRecord),
    /// Free the port, only when the customer on it is this one (or nobody is).
    Free(&'a CustomerRecord),
}

/// What a port write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortWrite {
    /// The port was written.
    Written,
    /// Nothing to write: the port is gone from the platform, or carries no customer.
    NothingThere,
    /// Not written: the port carries another customer, who is never overwritten.
    Other(RemoteCustomer),
}

/// Whose customer a platform port carries, seen from one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No customer.
    Nobody,
    /// The binding's customer.
    Ours,
    /// Someone else.
    Other,
}

/// Whose customer a port carries: matched by contract first, by document (digits) when the
/// platform has no contract; a customer with a name only is someone else's. The SQL form of the
/// same rule is `store::conflict::other_customer`.
pub fn holder(
    contract: Option<&str>,
    document: Option<&str>,
    name: Option<&str>,
    ours_contract: &str,
    ours_document: &str,
) -> Holder {
    fn present(t: Option<&str>) -> Option<&str> {
        t.map(str::trim).filter(|t| !t.is_empty())
    }
    if let Some(contract) = present(contract) {
        return if contract == ours_contract.trim() {
            Holder::Ours
        } else {
            Holder::Other
        };
    }
    if let Some(document) = present(document) {
        let digits: String = document.chars().filter(char::is_ascii_digit).collect();
        return if digits == ours_document {
            Holder::Ours
        } else {
            Holder::Other
        };
    }
    if present(name).is_some() {
        Holder::Other
    } else {
        Holder::Nobody
    }
}

impl RemotePort {
    /// Whose customer the port carries, seen from a binding with `contract` and `document`; a
    /// port that is not free but names no customer (reserved, damaged) is someone else's.
    pub fn holder(&self, contract: &str, document: &str) -> Holder {
        match &self.customer {
            Some(c) => c.holder(contract, document),
            None if self.status == PortStatus::Free => Holder::Nobody,
            None => Holder::Other,
        }
    }

    /// What the port carries, as a person reads it.
    pub fn describe(&self) -> String {
        match &self.customer {
            Some(c) => c.describe(),
            None => format!("no customer but is {}", self.status),
        }
    }
}

impl RemoteCustomer {
    /// Whose customer this is, seen from a binding with `contract` and `document`.
    pub fn holder(&self, contract: &str, document: &str) -> Holder {
        holder(
            self.contract.as_deref(),
            self.document.as_deref(),
            self.name.as_deref(),
            contract,
            document,
        )
    }

    /// How a person reads it: contract, else document, else name.
    pub fn describe(&self) -> String {
        describe_customer(
            self.contract.as_deref(),
            self.document.as_deref(),
            self.name.as_deref(),
        )
    }
}

/// A platform customer as a person reads it in a message.
pub fn describe_customer(
    contract: Option<&str>,
    document: Option<&str>,
    name: Option<&str>,
) -> String {
    match (contract, document, name) {
        (Some(c), _, _) => format!("contract {c}"),
        (None, Some(d), _) => format!("document {d}"),
        (None, None, Some(n)) => format!("customer {n:?}"),
        (None, None, None) => "no customer".into(),
    }
}

#[cfg(test)]
mod holder_tests {
    use super::{holder, Holder};

    #[test]
    fn contract_first_then_document_then_name() {
        let h = |c, d, n| holder(c, d, n, "9983103", "52998224725");
        assert_eq!(h(None, None, None), Holder::Nobody);
        assert_eq!(h(Some(" "), None, None), Holder::Nobody);
        assert_eq!(h(Some("9983103"), Some("11111111111"), None), Holder::Ours);
        assert_eq!(h(Some("1"), Some("52998224725"), None), Holder::Other);
        assert_eq!(h(None, Some("529.982.247-25"), None), Holder::Ours);
        assert_eq!(h(None, Some("11.222.333/0001-81"), None), Holder::Other);
        assert_eq!(h(None, None, Some("Ana")), Holder::Other);
    }
}

/// Builds clients of one kind of platform from an integration's URL and credentials.
pub trait Connector: Send + Sync {
    /// A client for this platform installation.
    fn connect(&self, api_url: &str, username: &str, password: &str) -> Result<Arc<dyn Platform>>;
}

/// The platforms this gateway can talk to, one [`Connector`] per gateway kind. Start-up fills it
/// (the only place that names an implementation); the domain asks it for clients.
#[derive(Clone, Default)]
pub struct Registry {
    connectors: HashMap<GatewayKind, Arc<dyn Connector>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.connectors.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// Adds (or replaces) the connector of a gateway kind.
    pub fn with(mut self, kind: GatewayKind, connector: Arc<dyn Connector>) -> Self {
        self.connectors.insert(kind, connector);
        self
    }

    /// The platform client of an integration, with its password decrypted for it.
    pub fn connect(
        &self,
        master: &MasterKey,
        row: &integration::Model,
    ) -> Result<Arc<dyn Platform>> {
        let kind = GatewayKind::parse(&row.gateway).ok_or_else(|| {
            Error::internal(anyhow::anyhow!("unknown gateway {:?} stored", row.gateway))
        })?;
        let connector = self.connectors.get(&kind).ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "no connector registered for {}",
                kind.as_str()
            ))
        })?;
        let password = master.open_password(row)?.unwrap_or_default();
        connector.connect(&row.api_url, &row.username, &password)
    }
}
