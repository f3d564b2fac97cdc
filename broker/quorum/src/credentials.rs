//! SCRAM credential changes as the controller decides them (Kafka's
//! AlterUserScramCredentials, KIP-554): a pure function of the image.
//!
//! Results are per user, in order of first mention, and a user's changes
//! apply all or none: naming one user's credential twice, deleting one that
//! does not exist, or an iteration count outside Kafka's bounds fails every
//! change of that user and no other.

use std::collections::BTreeSet;

use crate::image::MetadataImage;
use crate::records::{MetadataRecord, ScramCredentialRecord, ScramMechanism};
use crate::rpc::ControllerError;

/// Kafka's bounds on a credential's iteration count.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// The records to propose, and each user's outcome.
pub fn alter_scram_credentials(
    image: &MetadataImage,
    deletions: &[(String, ScramMechanism)],
    upsertions: &[ScramCredentialRecord],
) -> (
    Vec<MetadataRecord>,
    Vec<(String, Result<(), ControllerError>)>,
) {
    let mut users: Vec<&str> = Vec::new();
    for user in deletions
        .iter()
        .map(|(u, _)| u.as_str())
        .chain(upsertions.iter().map(|u| u.user.as_str()))
    {
        if !users.contains(&user) {
            users.push(user);
        }
    }
    let mut records = Vec::new();
    let mut results = Vec::new();
    for user in users {
        let deleted: Vec<ScramMechanism> = deletions
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, m)| *m)
            .collect();
        let upserted: Vec<&ScramCredentialRecord> =
            upsertions.iter().filter(|u| u.user == user).collect();
        let result = check_user(image, user, &deleted, &upserted);
        if result.is_ok() {
            records.extend(deleted.iter().map(|&mechanism| {
                MetadataRecord::RemoveScramCredential {
                    user: user.to_owned(),
                    mechanism,
                }
            }));
            records.extend(
                upserted
                    .iter()
                    .map(|&u| MetadataRecord::ScramCredential(u.clone())),
            );
        }
        results.push((user.to_owned(), result));
    }
    (records, results)
}

fn check_user(
    image: &MetadataImage,
    user: &str,
    deleted: &[ScramMechanism],
    upserted: &[&ScramCredentialRecord],
) -> Result<(), ControllerError> {
    if user.is_empty() {
        return Err(ControllerError::UnacceptableCredential(
            "Username must not be empty".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for mechanism in deleted.iter().chain(upserted.iter().map(|u| &u.mechanism)) {
        if !seen.insert(*mechanism) {
            return Err(ControllerError::DuplicateResource(format!(
                "A user credential cannot be altered twice in the same request ({user}, {})",
                mechanism_name(*mechanism)
            )));
        }
    }
    if let Some(&missing) = deleted
        .iter()
        .find(|m| image.scram_credential(user, **m).is_none())
    {
        return Err(ControllerError::ResourceNotFound(format!(
            "Attempt to delete a user credential that does not exist ({user}, {})",
            mechanism_name(missing)
        )));
    }
    for u in upserted {
        let i = u.credential.iterations;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&i) {
            return Err(ControllerError::UnacceptableCredential(format!(
                "{} iterations {i} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}",
                mechanism_name(u.mechanism)
            )));
        }
    }
    Ok(())
}

/// Kafka's name for a mechanism.
pub fn mechanism_name(m: ScramMechanism) -> &'static str {
    match m {
        ScramMechanism::Sha256 => "SCRAM-SHA-256",
        ScramMechanism::Sha512 => "SCRAM-SHA-512",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ScramCredential;

    fn upsert(user: &str, mechanism: ScramMechanism, iterations: i32) -> ScramCredentialRecord {
        ScramCredentialRecord {
            user: user.into(),
            mechanism,
            credential: ScramCredential {
                salt: vec![1],
                stored_key: vec![2],
                server_key: vec![3],
                iterations,
            },
        }
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        image.apply_batch(records).unwrap();
    }

    #[test]
    fn each_user_is_all_or_nothing_and_others_go_on() {
        use ScramMechanism::*;
        let mut image = MetadataImage::default();
        let (records, results) = alter_scram_credentials(
            &image,
            &[("carol".into(), Sha256)],
            &[
                upsert("alice", Sha512, 4096),
                upsert("alice", Sha256, 8192),
                upsert("bob", Sha512, 4096),
                upsert("bob", Sha512, 4096),
                upsert("carol", Sha512, 4096),
                upsert("dave", Sha256, 100),
                upsert("", Sha256, 4096),
            ],
        );
        let outcome: Vec<(&str, Option<&ControllerError>)> = results
            .iter()
            .map(|(u, r)| (u.as_str(), r.as_ref().err()))
            .collect();
        assert_eq!(
            outcome.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
            ["carol", "alice", "bob", "dave", ""]
        );
        assert!(matches!(
            outcome[0].1,
            Some(ControllerError::ResourceNotFound(_))
        ));
        assert_eq!(outcome[1].1, None);
        assert!(matches!(
            outcome[2].1,
            Some(ControllerError::DuplicateResource(_))
        ));
        assert!(matches!(
            outcome[3].1,
            Some(ControllerError::UnacceptableCredential(_))
        ));
        assert!(matches!(
            outcome[4].1,
            Some(ControllerError::UnacceptableCredential(_))
        ));
        apply(&mut image, &records);
        assert!(image.scram_credential("alice", Sha512).is_some());
        assert!(image.scram_credential("alice", Sha256).is_some());
        assert!(
            image.scram_credential("carol", Sha512).is_none(),
            "carol's upsert went with her failed delete"
        );
        assert_eq!(image.scram_users().len(), 1);

        // Replacing one and deleting the other leaves one, with the new count.
        let (records, results) = alter_scram_credentials(
            &image,
            &[("alice".into(), Sha256)],
            &[upsert("alice", Sha512, 16384)],
        );
        assert!(results[0].1.is_ok());
        apply(&mut image, &records);
        let alice = &image.scram_users()["alice"];
        assert_eq!(alice.len(), 1);
        assert_eq!(alice[&Sha512].iterations, 16384);
        // The last credential gone, the user is gone.
        let (records, _) = alter_scram_credentials(&image, &[("alice".into(), Sha512)], &[]);
        apply(&mut image, &records);
        assert!(image.scram_users().is_empty());
    }

    #[test]
    fn credentials_survive_a_snapshot_and_keys_stay_out_of_debug_output() {
        let mut image = MetadataImage::default();
        apply(
            &mut image,
            &[MetadataRecord::ScramCredential(upsert(
                "alice",
                ScramMechanism::Sha256,
                4096,
            ))],
        );
        let json = serde_json::to_string(&image).unwrap();
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
        let shown = format!("{:?}", upsert("x", ScramMechanism::Sha256, 4096));
        assert!(
            !shown.contains("stored_key") && !shown.contains("server_key"),
            "{shown}"
        );
    }
}
