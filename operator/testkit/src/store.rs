//! The object store behind the fake API server: pure state, no I/O.
//! Every write goes through [`Store::commit`], which bumps the global
//! resourceVersion, keeps `generation` honest and records a watch event.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::merge::{FieldPath, get_path, leaf_paths, merge_patch, remove_path, spec_part};
use crate::selector::{FieldSelector, LabelSelector};

/// Where an object lives: group/version, plural, namespace ("" when
/// cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub gv: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

/// The main resource or its `/status` subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
}

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub gv: String,
    pub plural: String,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
}

/// A failure that becomes a Kubernetes `Status` response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }
    fn not_found(key: &Key) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", key.plural, key.name),
        )
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    fn conflict(key: &Key) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                key.plural, key.name
            ),
        )
    }
}

/// Which objects a list or watch covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    fn matches(
        &self,
        gv: &str,
        plural: &str,
        key_gv: &str,
        key_plural: &str,
        ns: &str,
        obj: &Value,
    ) -> bool {
        gv == key_gv
            && plural == key_plural
            && self.namespace.as_deref().is_none_or(|n| n == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<Key, Value>,
    /// Per object, per field manager (suffixed `/status` for the status
    /// subresource): the leaf paths it last applied.
    managers: BTreeMap<Key, BTreeMap<String, BTreeSet<FieldPath>>>,
    kinds: BTreeMap<(String, String), String>,
    rv: u64,
    events: Vec<Event>,
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(m) = obj else {
        unreachable!("made an object above")
    };
    let entry = m.entry("metadata").or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    match entry {
        Value::Object(md) => md,
        _ => unreachable!("made an object above"),
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)?.get(field)?.as_str()
}

fn has_finalizers(obj: &Value) -> bool {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

fn owner_uids(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// System-owned metadata that clients cannot set.
const SYSTEM_META: [&str; 7] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "managedFields",
];

/// The part of an applied configuration whose fields a manager owns.
fn owned_view(applied: &Value, sub: Sub) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = applied {
        for (k, v) in m {
            match (k.as_str(), sub) {
                ("apiVersion" | "kind", _) => {}
                ("status", Sub::Status) => {
                    out.insert(k.clone(), v.clone());
                }
                (_, Sub::Status) | ("status", Sub::Main) => {}
                ("metadata", Sub::Main) => {
                    let mut md = Map::new();
                    for f in ["labels", "annotations", "finalizers", "ownerReferences"] {
                        if let Some(x) = v.get(f) {
                            md.insert(f.to_string(), x.clone());
                        }
                    }
                    if !md.is_empty() {
                        out.insert(k.clone(), Value::Object(md));
                    }
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// Current time as RFC 3339 in UTC, second precision.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The kind last seen for (group/version, plural), for list and bookmark bodies.
    pub fn kind_of(&self, gv: &str, plural: &str) -> String {
        self.kinds
            .get(&(gv.to_string(), plural.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Watch events after `rv` that the filter selects, plus the newest rv seen.
    pub fn events_after(
        &self,
        rv: u64,
        gv: &str,
        plural: &str,
        filter: &Filter,
    ) -> (Vec<Event>, u64) {
        let start = self.events.partition_point(|e| e.rv <= rv);
        let out = self.events[start..]
            .iter()
            .filter(|e| filter.matches(gv, plural, &e.gv, &e.plural, &e.namespace, &e.object))
            .cloned()
            .collect();
        (out, self.rv.max(rv))
    }

    pub fn get(&self, key: &Key) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))
    }

    /// Objects of (gv, plural) that the filter selects, and the list's resourceVersion.
    pub fn list(&self, gv: &str, plural: &str, filter: &Filter) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .iter()
            .filter(|(k, v)| filter.matches(gv, plural, &k.gv, &k.plural, &k.namespace, v))
            .map(|(_, v)| v.clone())
            .collect();
        (items, self.rv)
    }

    fn push_event(&mut self, key: &Key, kind: &'static str, object: Value) {
        self.events.push(Event {
            rv: self.rv,
            gv: key.gv.clone(),
            plural: key.plural.clone(),
            namespace: key.namespace.clone(),
            kind,
            object,
        });
    }

    /// Stores `new` under `key`; a no-op write changes nothing. Removes the
    /// object when it is being deleted and its last finalizer is gone.
    fn commit(&mut self, key: &Key, old: Option<&Value>, mut new: Value) -> Value {
        meta_mut(&mut new).remove("managedFields");
        if let Some(old) = old {
            if *old == new {
                return new;
            }
            if spec_part(old) != spec_part(&new) {
                let g = meta(old)
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                meta_mut(&mut new).insert("generation".into(), json!(g + 1));
            }
        }
        if let Some(kind) = new.get("kind").and_then(Value::as_str) {
            self.kinds
                .insert((key.gv.clone(), key.plural.clone()), kind.to_string());
        }
        if old.is_some() && meta_str(&new, "deletionTimestamp").is_some() && !has_finalizers(&new) {
            return self.remove(key, new);
        }
        self.rv += 1;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects.insert(key.clone(), new.clone());
        self.push_event(
            key,
            if old.is_some() { "MODIFIED" } else { "ADDED" },
            new.clone(),
        );
        // As Kubernetes' garbage collector does, a dependent whose owners
        // are all gone (e.g. written by a reconcile that raced its owner's
        // deletion) is collected.
        let owners = owner_uids(&new);
        if !owners.is_empty() && !owners.iter().any(|u| self.has_uid(u)) {
            let _ = self.delete(key);
            return self.objects.get(key).cloned().unwrap_or(new);
        }
        new
    }

    fn has_uid(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| meta_str(o, "uid") == Some(uid))
    }

    /// Really removes an object, then collects the dependents it leaves ownerless.
    fn remove(&mut self, key: &Key, mut obj: Value) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects.remove(key);
        self.managers.remove(key);
        self.push_event(key, "DELETED", obj.clone());
        if let Some(uid) = meta_str(&obj, "uid") {
            self.collect_garbage(uid);
        }
        obj
    }

    /// Background propagation: deletes objects that named `gone_uid` as an
    /// owner and have no owner left.
    fn collect_garbage(&mut self, gone_uid: &str) {
        let live: BTreeSet<String> = self
            .objects
            .values()
            .filter_map(|o| meta_str(o, "uid").map(String::from))
            .collect();
        let orphans: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                let owners = owner_uids(o);
                owners.iter().any(|u| u == gone_uid) && !owners.iter().any(|u| live.contains(u))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in orphans {
            // Already gone if an earlier removal in this loop collected it.
            let _ = self.delete(&k);
        }
    }

    fn check_identity(key: &Key, body: &Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad("the request body must be a JSON object"));
        }
        if let Some(name) = meta_str(body, "name")
            && name != key.name
        {
            return Err(ApiError::bad(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        if let Some(ns) = meta_str(body, "namespace")
            && !key.namespace.is_empty()
            && ns != key.namespace
        {
            return Err(ApiError::bad(format!(
                "the namespace of the object ({ns}) does not match the namespace on the URL ({})",
                key.namespace
            )));
        }
        Ok(())
    }

    fn check_precondition(key: &Key, old: &Value, body: &Value) -> Result<(), ApiError> {
        match meta_str(body, "resourceVersion") {
            Some(rv) if !rv.is_empty() && Some(rv) != meta_str(old, "resourceVersion") => {
                Err(ApiError::conflict(key))
            }
            _ => Ok(()),
        }
    }

    fn new_object(key: &Key, mut obj: Value) -> Value {
        if let Value::Object(m) = &mut obj {
            m.remove("status");
        }
        let md = meta_mut(&mut obj);
        for f in SYSTEM_META {
            md.remove(f);
        }
        md.insert("name".into(), json!(key.name));
        if !key.namespace.is_empty() {
            md.insert("namespace".into(), json!(key.namespace));
        }
        md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        md.insert("creationTimestamp".into(), json!(now_rfc3339()));
        md.insert("generation".into(), json!(1));
        obj
    }

    /// POST to a collection.
    pub fn create(
        &mut self,
        gv: &str,
        plural: &str,
        namespace: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad("the request body must be a JSON object"));
        }
        let name = match (meta_str(&body, "name"), meta_str(&body, "generateName")) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(prefix)) => format!("{prefix}{:05x}", (self.rv + 1) & 0xfffff),
            _ => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "metadata.name: Required value",
                ));
            }
        };
        meta_mut(&mut body).insert("name".into(), json!(name));
        let key = Key {
            gv: gv.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name,
        };
        Self::check_identity(&key, &body)?;
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", key.plural, key.name),
            ));
        }
        let obj = Self::new_object(&key, body);
        Ok(self.commit(&key, None, obj))
    }

    /// Builds the object an update of `sub` leads to: the main resource keeps
    /// the old status and system metadata; `/status` changes only `.status`.
    fn updated(old: &Value, new: Value, sub: Sub) -> Value {
        match sub {
            Sub::Status => {
                let mut out = old.clone();
                if let Value::Object(m) = &mut out {
                    match new.get("status") {
                        Some(s) if !s.is_null() => m.insert("status".into(), s.clone()),
                        _ => m.remove("status"),
                    };
                }
                out
            }
            Sub::Main => {
                let mut out = new;
                if let Value::Object(m) = &mut out {
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
                let old_meta = meta(old).cloned().unwrap_or_default();
                let md = meta_mut(&mut out);
                for f in SYSTEM_META.iter().chain(&["name", "namespace"]) {
                    match old_meta.get(*f) {
                        Some(v) => md.insert(f.to_string(), v.clone()),
                        None => md.remove(*f),
                    };
                }
                out
            }
        }
    }

    /// An update (not an apply) that changes a field takes it away from the
    /// appliers, so they no longer remove it when they stop applying it.
    fn release_changed(&mut self, key: &Key, old: &Value, new: &Value, sub: Sub) {
        let Some(managers) = self.managers.get_mut(key) else {
            return;
        };
        let (a, b) = (owned_view(old, sub), owned_view(new, sub));
        let mut paths = BTreeSet::new();
        leaf_paths(&a, &mut Vec::new(), &mut paths);
        leaf_paths(&b, &mut Vec::new(), &mut paths);
        for p in paths.iter().filter(|p| get_path(&a, p) != get_path(&b, p)) {
            for owned in managers.values_mut() {
                owned.remove(p);
            }
        }
    }

    /// PUT.
    pub fn replace(&mut self, key: &Key, body: Value, sub: Sub) -> Result<Value, ApiError> {
        Self::check_identity(key, &body)?;
        let old = self.get(key)?;
        Self::check_precondition(key, &old, &body)?;
        let new = Self::updated(&old, body, sub);
        self.release_changed(key, &old, &new, sub);
        Ok(self.commit(key, Some(&old), new))
    }

    /// PATCH with a JSON merge patch (also used for strategic merge patches).
    pub fn merge(&mut self, key: &Key, patch: Value, sub: Sub) -> Result<Value, ApiError> {
        Self::check_identity(key, &patch)?;
        let old = self.get(key)?;
        Self::check_precondition(key, &old, &patch)?;
        let mut patched = old.clone();
        merge_patch(&mut patched, &patch);
        let new = Self::updated(&old, patched, sub);
        self.release_changed(key, &old, &new, sub);
        Ok(self.commit(key, Some(&old), new))
    }

    /// PATCH with an RFC 6902 JSON patch (what kube-runtime's finalizer helper sends).
    pub fn json_patch(
        &mut self,
        key: &Key,
        ops: &json_patch::Patch,
        sub: Sub,
    ) -> Result<Value, ApiError> {
        let old = self.get(key)?;
        let mut patched = old.clone();
        for op in &ops.0 {
            // As in the real API server, `test` of a missing path against
            // null passes (kube-runtime's finalizer helper relies on it).
            if let json_patch::PatchOperation::Test(t) = op
                && t.value.is_null()
                && patched.pointer(t.path.as_str()).is_none()
            {
                continue;
            }
            json_patch::patch(&mut patched, std::slice::from_ref(op)).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch was not applied: {e}"),
                )
            })?;
        }
        let new = Self::updated(&old, patched, sub);
        self.release_changed(key, &old, &new, sub);
        Ok(self.commit(key, Some(&old), new))
    }

    /// Server-side apply by `manager`; creates the object when absent.
    pub fn apply(
        &mut self,
        key: &Key,
        body: Value,
        manager: &str,
        force: bool,
        sub: Sub,
    ) -> Result<Value, ApiError> {
        Self::check_identity(key, &body)?;
        let old = self.objects.get(key).cloned();
        if old.is_none() && sub == Sub::Status {
            return Err(ApiError::not_found(key));
        }
        if let Some(old) = &old {
            Self::check_precondition(key, old, &body)?;
        }
        let applied = owned_view(&body, sub);
        let mut new_paths = BTreeSet::new();
        leaf_paths(&applied, &mut Vec::new(), &mut new_paths);
        let me = match sub {
            Sub::Main => manager.to_string(),
            Sub::Status => format!("{manager}/status"),
        };
        let mut managers = self.managers.get(key).cloned().unwrap_or_default();
        let base = old.clone().unwrap_or_else(|| {
            json!({
                "apiVersion": body.get("apiVersion").cloned().unwrap_or(Value::Null),
                "kind": body.get("kind").cloned().unwrap_or(Value::Null),
                "metadata": {"name": key.name},
            })
        });

        let mut conflicts = Vec::new();
        for p in &new_paths {
            if get_path(&base, p) == get_path(&applied, p) {
                continue;
            }
            for (other, owned) in &managers {
                if *other != me && owned.contains(p) {
                    conflicts.push((other.clone(), p.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                let list: Vec<String> = conflicts
                    .iter()
                    .map(|(m, p)| format!("conflict with \"{m}\": .{}", p.join(".")))
                    .collect();
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Apply failed with {} conflict(s): {}",
                        conflicts.len(),
                        list.join(", ")
                    ),
                ));
            }
            for (other, p) in &conflicts {
                if let Some(owned) = managers.get_mut(other) {
                    owned.remove(p);
                }
            }
        }

        let mut merged = base.clone();
        let previous = managers.get(&me).cloned().unwrap_or_default();
        for p in previous.difference(&new_paths) {
            let shared = managers
                .iter()
                .any(|(other, owned)| *other != me && owned.contains(p));
            if !shared {
                remove_path(&mut merged, p);
            }
        }
        merge_patch(&mut merged, &applied);
        managers.insert(me, new_paths);
        managers.retain(|_, owned| !owned.is_empty());

        let result = match &old {
            Some(old) => self.commit(key, Some(old), merged),
            None => {
                let obj = Self::new_object(key, merged);
                self.commit(key, None, obj)
            }
        };
        if self.objects.contains_key(key) {
            self.managers.insert(key.clone(), managers);
        }
        Ok(result)
    }

    /// DELETE: marks the object for deletion while finalizers remain,
    /// otherwise removes it.
    pub fn delete(&mut self, key: &Key) -> Result<Value, ApiError> {
        let old = self.get(key)?;
        if !has_finalizers(&old) {
            return Ok(self.remove(key, old));
        }
        if meta_str(&old, "deletionTimestamp").is_some() {
            return Ok(old);
        }
        let mut new = old.clone();
        let md = meta_mut(&mut new);
        md.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        md.insert("deletionGracePeriodSeconds".into(), json!(0));
        Ok(self.commit(key, Some(&old), new))
    }

    /// Paths each manager of `key` owns (for tests and debugging).
    pub fn managed_fields(&self, key: &Key) -> BTreeMap<String, BTreeSet<FieldPath>> {
        self.managers.get(key).cloned().unwrap_or_default()
    }
}
