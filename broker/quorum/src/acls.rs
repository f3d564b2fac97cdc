//! ACL changes as the controller decides them (Kafka's CreateAcls and
//! DeleteAcls): pure functions of the image returning the records to
//! propose.
//!
//! Creating an ACL that exists already succeeds without a record, as in
//! Kafka; each filter of a deletion reports the ACLs it matched, and an ACL
//! matched by several filters is removed once.

use std::collections::BTreeSet;

use weir_client::acl::{AclBinding, AclFilter};

use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use crate::rpc::ControllerError;

/// The records to propose, and each creation's outcome in request order.
pub fn create_acls(
    image: &MetadataImage,
    creations: &[AclBinding],
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut added = BTreeSet::new();
    let mut records = Vec::new();
    let results = creations
        .iter()
        .map(|acl| {
            acl.validate().map_err(ControllerError::InvalidRequest)?;
            if !image.acls().contains(acl) && added.insert(acl) {
                records.push(MetadataRecord::Acl(acl.clone()));
            }
            Ok(())
        })
        .collect();
    (records, results)
}

/// The records to propose, and per filter (in request order) the ACLs it
/// matched.
pub fn delete_acls(
    image: &MetadataImage,
    filters: &[AclFilter],
) -> (Vec<MetadataRecord>, Vec<Vec<AclBinding>>) {
    let mut removed = BTreeSet::new();
    let matched: Vec<Vec<AclBinding>> = filters
        .iter()
        .map(|f| {
            image
                .acls()
                .iter()
                .filter(|a| f.matches(a))
                .cloned()
                .collect()
        })
        .collect();
    let records = matched
        .iter()
        .flatten()
        .filter(|a| removed.insert(*a))
        .map(|a| MetadataRecord::RemoveAcl(a.clone()))
        .collect();
    (records, matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::acl::{Operation, PatternFilter, Permission, ResourcePattern, ResourceType};

    fn acl(name: &str, principal: &str, permission: Permission) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern::literal(ResourceType::Topic, name),
            principal: principal.into(),
            host: "*".into(),
            operation: Operation::Read,
            permission,
        }
    }

    #[test]
    fn creations_are_idempotent_and_invalid_ones_refused_alone() {
        let mut image = MetadataImage::default();
        let a = acl("t", "User:alice", Permission::Allow);
        let bad = acl("t", "alice", Permission::Allow);
        let (records, results) = create_acls(&image, &[a.clone(), bad, a.clone()]);
        assert_eq!(records, vec![MetadataRecord::Acl(a.clone())]);
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(
            matches!(&results[1], Err(ControllerError::InvalidRequest(m)) if m.contains("Invalid principal"))
        );
        image.apply_batch(&records).unwrap();
        let (records, results) = create_acls(&image, &[a.clone()]);
        assert!(records.is_empty(), "already there");
        assert!(results[0].is_ok());
        assert_eq!(image.acls().len(), 1);
    }

    #[test]
    fn each_filter_reports_its_matches_and_each_acl_goes_once() {
        let mut image = MetadataImage::default();
        let alice = acl("orders", "User:alice", Permission::Allow);
        let bob = acl("orders", "User:bob", Permission::Deny);
        let other = acl("payments", "User:alice", Permission::Allow);
        let (records, _) = create_acls(&image, &[alice.clone(), bob.clone(), other.clone()]);
        image.apply_batch(&records).unwrap();

        let mut on_orders = AclFilter::any();
        on_orders.name = Some("orders".into());
        on_orders.pattern = PatternFilter::Match;
        let mut alices = AclFilter::any();
        alices.principal = Some("User:alice".into());
        let mut nothing = AclFilter::any();
        nothing.name = Some("none".into());
        let (records, matched) = delete_acls(&image, &[on_orders, alices, nothing]);
        assert_eq!(matched[0], vec![alice.clone(), bob.clone()]);
        assert_eq!(matched[1], vec![alice.clone(), other.clone()]);
        assert!(matched[2].is_empty());
        assert_eq!(records.len(), 3, "alice's ACL removed once: {records:?}");
        image.apply_batch(&records).unwrap();
        assert!(image.acls().is_empty());
    }

    #[test]
    fn acls_survive_a_snapshot() {
        let mut image = MetadataImage::default();
        let (records, _) = create_acls(&image, &[acl("t", "User:a", Permission::Deny)]);
        image.apply_batch(&records).unwrap();
        let json = serde_json::to_string(&image).unwrap();
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
        assert_eq!(back.acls().len(), 1);
    }
}
