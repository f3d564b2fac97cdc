//! Server-side apply of desired objects with one field manager, and pruning
//! of children that are labelled as a Cluster's but no longer desired.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;
use crate::desired::DesiredObject;

/// The one field manager for everything the operator writes, spec and status.
pub const FIELD_MANAGER: &str = "weir-operator";

/// Apply params: ours wins over any other manager, since the spec is the
/// source of truth for these fields.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply_one<K>(client: &Client, namespace: &str, object: &K) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(&object.name_any(), &apply_params(), &Patch::Apply(object))
        .await?;
    Ok(())
}

/// Server-side applies one desired object in `namespace`.
pub async fn apply(client: &Client, namespace: &str, object: &DesiredObject) -> Result<()> {
    match object {
        DesiredObject::ServiceAccount(o) => apply_one(client, namespace, o).await,
        DesiredObject::ConfigMap(o) => apply_one(client, namespace, o).await,
        DesiredObject::Service(o) => apply_one(client, namespace, o).await,
        DesiredObject::StatefulSet(o) => apply_one(client, namespace, o).await,
        DesiredObject::PodDisruptionBudget(o) => apply_one(client, namespace, o).await,
        DesiredObject::Deployment(o) => apply_one(client, namespace, o).await,
    }
}

/// Server-side applies `status` to the status subresource of `name`.
pub async fn patch_status<K>(
    api: &Api<K>,
    name: &str,
    kind: &str,
    status: &impl Serialize,
) -> Result<()>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let body = serde_json::json!({
        "apiVersion": crate::crd::API_VERSION,
        "kind": kind,
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// Deletes objects of kind `K` selected by `selector`, owned by `owner_uid`,
/// whose names are not in `keep`; returns what it deleted as `Kind/name`.
async fn prune_kind<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
    owner_uid: &str,
    keep: &BTreeSet<(String, String)>,
) -> Result<Vec<String>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let kind = K::kind(&()).to_string();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut deleted = Vec::new();
    for object in api.list(&ListParams::default().labels(selector)).await? {
        let name = object.name_any();
        // Only what this Cluster owns: a label alone could be copied by hand.
        let ours = object.owner_references().iter().any(|o| o.uid == owner_uid);
        if !ours || keep.contains(&(kind.clone(), name.clone())) {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(format!("{kind}/{name}")),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Deletes every child kind the builders produce that `selector` matches,
/// `owner_uid` owns, and `desired` (or `keep_statefulsets`) no longer names.
pub async fn prune(
    client: &Client,
    namespace: &str,
    selector: &str,
    owner_uid: &str,
    desired: &[DesiredObject],
    keep_statefulsets: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut keep: BTreeSet<(String, String)> = desired
        .iter()
        .map(|o| (o.kind().to_string(), o.name().to_string()))
        .collect();
    keep.extend(
        keep_statefulsets
            .iter()
            .map(|n| ("StatefulSet".to_string(), n.clone())),
    );
    let mut deleted = Vec::new();
    deleted.extend(prune_kind::<StatefulSet>(client, namespace, selector, owner_uid, &keep).await?);
    deleted.extend(prune_kind::<Deployment>(client, namespace, selector, owner_uid, &keep).await?);
    deleted.extend(
        prune_kind::<PodDisruptionBudget>(client, namespace, selector, owner_uid, &keep).await?,
    );
    deleted.extend(prune_kind::<Service>(client, namespace, selector, owner_uid, &keep).await?);
    deleted.extend(prune_kind::<ConfigMap>(client, namespace, selector, owner_uid, &keep).await?);
    deleted
        .extend(prune_kind::<ServiceAccount>(client, namespace, selector, owner_uid, &keep).await?);
    Ok(deleted)
}
