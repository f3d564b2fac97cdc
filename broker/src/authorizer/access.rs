//! The authorizer's shell: the index of the current ACL set, rebuilt when
//! the metadata image carries a different set, and per-request [`Access`]
//! answering handlers' questions and logging denials.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use weir_client::acl::{AclBinding, CLUSTER_NAME, Operation, ResourceType};

use super::{AclIndex, AuthorizerConfig, authorized_operations, decide, decide_any};

/// Denials remembered so each is logged once; past this many the memory
/// starts over, so a scan of many names cannot grow it without bound.
const LOGGED_DENIALS_MAX: usize = 10_000;

type Denial = (String, ResourceType, String, Operation);

pub struct Authorizer {
    config: AuthorizerConfig,
    index: RwLock<Arc<AclIndex>>,
    logged: Mutex<HashSet<Denial>>,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig) -> Self {
        Authorizer {
            config,
            index: RwLock::new(Arc::new(AclIndex::default())),
            logged: Mutex::new(HashSet::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The index of `acls`, built once per ACL set.
    fn index_of(&self, acls: &Arc<BTreeSet<AclBinding>>) -> Arc<AclIndex> {
        let current = self.index.read().unwrap_or_else(|e| e.into_inner()).clone();
        if current.is_of(acls) {
            return current;
        }
        let mut slot = self.index.write().unwrap_or_else(|e| e.into_inner());
        // Requests that met the same new set meanwhile wait here rather
        // than each build it again.
        if !slot.is_of(acls) {
            *slot = Arc::new(AclIndex::build(acls));
        }
        slot.clone()
    }

    /// What `principal` from `host` may do, against `acls` (the current
    /// image's). With authorization off everything is allowed.
    pub fn access<'a>(
        &'a self,
        acls: impl FnOnce() -> Arc<BTreeSet<AclBinding>>,
        principal: &'a str,
        host: IpAddr,
    ) -> Access<'a> {
        let index = self.enabled().then(|| self.index_of(&acls()));
        Access {
            authorizer: self,
            index,
            principal,
            host,
        }
    }

    fn log_denial(
        &self,
        principal: &str,
        host: IpAddr,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let key = (principal.to_owned(), rt, name.to_owned(), op);
        if logged.contains(&key) {
            return;
        }
        if logged.len() >= LOGGED_DENIALS_MAX {
            logged.clear();
        }
        logged.insert(key);
        drop(logged);
        // Kafka's authorizer log line, so existing log alerts keep working.
        tracing::info!(
            "Principal = {principal} is Denied operation = {op} from host = {host} on resource = {rt}:{name} (logged once per principal, operation and resource)"
        );
    }
}

/// One request's view of authorization.
pub struct Access<'a> {
    authorizer: &'a Authorizer,
    /// `None`: authorization is off.
    index: Option<Arc<AclIndex>>,
    principal: &'a str,
    host: IpAddr,
}

impl Access<'_> {
    /// Whether requests are authorized at all (an authorizer is configured).
    pub fn enforced(&self) -> bool {
        self.index.is_some()
    }

    /// Whether the operation is allowed; a denial is logged.
    pub fn allows(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        let allowed = self.quietly_allows(op, rt, name);
        if !allowed {
            self.authorizer
                .log_denial(self.principal, self.host, op, rt, name);
        }
        allowed
    }

    /// Whether the operation is allowed, without logging a denial: for
    /// listings that leave out what the principal may not see (Kafka
    /// does not log those either).
    pub fn quietly_allows(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        match &self.index {
            None => true,
            Some(index) => decide(
                &self.authorizer.config,
                index,
                self.principal,
                self.host,
                op,
                rt,
                name,
            ),
        }
    }

    pub fn topic(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    pub fn group(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    pub fn cluster(&self, op: Operation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn transactional_id(&self, op: Operation, id: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, id)
    }

    /// Whether the operation is allowed on some resource of the type.
    pub fn any_of_type(&self, op: Operation, rt: ResourceType) -> bool {
        match &self.index {
            None => true,
            Some(index) => decide_any(
                &self.authorizer.config,
                index,
                self.principal,
                self.host,
                op,
                rt,
            ),
        }
    }

    /// Kafka's bit field of allowed operations on the resource; with
    /// authorization off, every operation that applies.
    pub fn authorized_operations(&self, rt: ResourceType, name: &str) -> i32 {
        match &self.index {
            None => Operation::applicable_to(rt)
                .iter()
                .fold(0, |bits, op| bits | 1 << op.code()),
            Some(index) => authorized_operations(
                &self.authorizer.config,
                index,
                self.principal,
                self.host,
                rt,
                name,
            ),
        }
    }
}
