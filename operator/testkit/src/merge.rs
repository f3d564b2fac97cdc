//! Pure JSON helpers: RFC 7386 merge patch and the field paths that
//! server-side apply tracks per field manager.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A path of object keys from the root of an object to a leaf.
pub type FieldPath = Vec<String>;

/// Applies an RFC 7386 JSON merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Collects the leaf paths of `v`. Lists and scalars are leaves (lists are
/// treated as atomic); an empty object is a leaf too.
pub fn leaf_paths(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(k.clone());
                leaf_paths(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

/// The value at `path`, if every step is an object key that exists.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.as_object()?.get(k))
}

/// Removes the value at `path`, then removes parents left empty by it.
pub fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Value::Object(m) = v else { return };
    if rest.is_empty() {
        m.remove(first);
        return;
    }
    if let Some(child) = m.get_mut(first) {
        remove_path(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            m.remove(first);
        }
    }
}

/// The object without `metadata` and `status`: what a generation tracks.
pub fn spec_part(v: &Value) -> Value {
    let mut out = v.clone();
    if let Value::Object(m) = &mut out {
        m.remove("metadata");
        m.remove("status");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn remove_path_prunes_empty_parents() {
        let mut t = json!({"spec": {"a": {"b": 1}}, "x": 1});
        remove_path(&mut t, &["spec".into(), "a".into(), "b".into()]);
        assert_eq!(t, json!({"x": 1}));
    }

    #[test]
    fn leaf_paths_treat_lists_as_atomic() {
        let mut out = BTreeSet::new();
        leaf_paths(
            &json!({"a": [1, 2], "b": {"c": 1}}),
            &mut Vec::new(),
            &mut out,
        );
        let want: BTreeSet<FieldPath> = [
            vec!["a".to_string()],
            vec!["b".to_string(), "c".to_string()],
        ]
        .into();
        assert_eq!(out, want);
    }
}
