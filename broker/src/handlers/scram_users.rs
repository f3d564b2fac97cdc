//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554),
//! as `kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[…]'
//! --entity-type users` and `weir user` send them.
//!
//! The client sends the salt and the salted password; the broker derives
//! the stored and server keys (so the controller never sees the salted
//! password) and forwards the change to the active controller. Describe is
//! answered from this broker's image: mechanisms and iteration counts only.

use weir_client::acl::Operation;

use crate::authorizer::Access;
use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use weir_client::sasl::Mechanism;
use weir_client::sasl::scram::StoredCredential;
use weir_quorum::MetadataImage;
use weir_quorum::records::{ScramCredential, ScramCredentialRecord, ScramMechanism};

use super::str_bytes;
use super::topics::refusal_of_controller;
use crate::broker::BrokerState;
use crate::sasl::hash_of;

fn stored_mechanism(code: i8) -> Option<ScramMechanism> {
    match Mechanism::from_scram_code(code)? {
        Mechanism::ScramSha256 => Some(ScramMechanism::Sha256),
        Mechanism::ScramSha512 => Some(ScramMechanism::Sha512),
        Mechanism::Plain => None,
    }
}

fn code_of(m: ScramMechanism) -> i8 {
    match m {
        ScramMechanism::Sha256 => Mechanism::ScramSha256.scram_code(),
        ScramMechanism::Sha512 => Mechanism::ScramSha512.scram_code(),
    }
}

pub async fn alter(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if !access.cluster(Operation::Alter) {
        let mut response = AlterUserScramCredentialsResponse::default();
        let mut users: Vec<&str> = Vec::new();
        for user in req
            .deletions
            .iter()
            .map(|d| d.name.as_str())
            .chain(req.upsertions.iter().map(|u| u.name.as_str()))
        {
            if !users.contains(&user) {
                users.push(user);
            }
        }
        for user in users {
            response.results.push(
                AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(user.to_owned()))
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes(
                        "Alter on the cluster is needed to change credentials",
                    ))),
            );
        }
        return response;
    }
    // Refusals the broker can make alone: an unknown mechanism or an empty
    // salted password fails every change of that user.
    let mut refused: Vec<(String, ResponseError, String)> = Vec::new();
    let mut refuse = |user: &str, code, why: String| {
        if !refused.iter().any(|(u, _, _)| u == user) {
            refused.push((user.to_owned(), code, why));
        }
    };
    let mut deletions = Vec::new();
    for d in &req.deletions {
        match stored_mechanism(d.mechanism) {
            Some(m) => deletions.push((d.name.to_string(), m)),
            None => refuse(
                &d.name,
                ResponseError::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism {}", d.mechanism),
            ),
        }
    }
    let mut upsertions = Vec::new();
    for u in &req.upsertions {
        let Some(mechanism) = stored_mechanism(u.mechanism) else {
            refuse(
                &u.name,
                ResponseError::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism {}", u.mechanism),
            );
            continue;
        };
        if u.salted_password.is_empty() || u.salt.is_empty() {
            refuse(
                &u.name,
                ResponseError::UnacceptableCredential,
                "the salt and the salted password must not be empty".into(),
            );
            continue;
        }
        let derived = StoredCredential::from_salted_password(
            hash_of(mechanism),
            &u.salted_password,
            &u.salt,
            u.iterations,
        );
        upsertions.push(ScramCredentialRecord {
            user: u.name.to_string(),
            mechanism,
            credential: ScramCredential {
                salt: derived.salt,
                stored_key: derived.stored_key,
                server_key: derived.server_key,
                iterations: u.iterations,
            },
        });
    }
    let refused_users: BTreeSet<String> = refused.iter().map(|(u, _, _)| u.clone()).collect();
    deletions.retain(|(u, _)| !refused_users.contains(u));
    upsertions.retain(|r| !refused_users.contains(&r.user));
    let decided = if deletions.is_empty() && upsertions.is_empty() {
        Ok(Vec::new())
    } else {
        state
            .cluster
            .alter_scram_credentials(deletions, upsertions)
            .await
    };
    let mut response = AlterUserScramCredentialsResponse::default();
    let mut result_of = |user: &str, outcome: Result<(), (ResponseError, String)>| {
        let mut r = AlterUserScramCredentialsResult::default();
        r.user = str_bytes(user.to_owned());
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        response.results.push(r);
    };
    for (user, code, why) in refused {
        result_of(&user, Err((code, why)));
    }
    match decided {
        Ok(results) => {
            for (user, result) in results {
                result_of(&user, result.map_err(|e| refusal_of_controller(&e)));
            }
        }
        Err(e) => {
            // The controller could not be asked: every user it would have
            // decided gets the reason.
            let (code, message) = refusal_of_controller(&e);
            let users = req
                .deletions
                .iter()
                .map(|d| d.name.to_string())
                .chain(req.upsertions.iter().map(|u| u.name.to_string()));
            let mut done: BTreeSet<String> = refused_users;
            for user in users {
                if done.insert(user.clone()) {
                    result_of(&user, Err((code, message.clone())));
                }
            }
        }
    }
    response
}

pub fn describe(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !access.cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "Describe on the cluster is needed to list credentials",
            )));
    }
    describe_in(&state.cluster.image(), req)
}

fn describe_in(
    image: &MetadataImage,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let mut response = DescribeUserScramCredentialsResponse::default();
    let users = image.scram_users();
    let asked: Vec<String> = match &req.users {
        // Null or empty: every user with a credential.
        None => users.keys().cloned().collect(),
        Some(list) if list.is_empty() => users.keys().cloned().collect(),
        Some(list) => list.iter().map(|u| u.name.to_string()).collect(),
    };
    for (i, user) in asked.iter().enumerate() {
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = str_bytes(user.clone());
        if asked[..i].contains(user) {
            continue;
        }
        if asked[i + 1..].contains(user) {
            r.error_code = ResponseError::DuplicateResource.code();
            r.error_message = Some(str_bytes(format!(
                "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
            )));
        } else {
            match users.get(user) {
                Some(credentials) => {
                    r.credential_infos = credentials
                        .iter()
                        .map(|(m, c)| {
                            let mut info = CredentialInfo::default();
                            info.mechanism = code_of(*m);
                            info.iterations = c.iterations;
                            info
                        })
                        .collect();
                }
                None => {
                    r.error_code = ResponseError::ResourceNotFound.code();
                    r.error_message = Some(str_bytes(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )));
                }
            }
        }
        response.results.push(r);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use weir_quorum::records::MetadataRecord;

    #[test]
    fn describe_lists_mechanisms_and_iterations_never_keys() {
        let mut image = MetadataImage::default();
        let credential = ScramCredential {
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations: 8192,
        };
        image
            .apply(&MetadataRecord::ScramCredential(ScramCredentialRecord {
                user: "alice".into(),
                mechanism: ScramMechanism::Sha512,
                credential,
            }))
            .unwrap();
        let all = describe_in(&image, DescribeUserScramCredentialsRequest::default());
        assert_eq!(all.results.len(), 1);
        let info = &all.results[0].credential_infos[0];
        assert_eq!((info.mechanism, info.iterations), (2, 8192));
        let name = |n: &str| UserName::default().with_name(str_bytes(n.to_owned()));
        let some = describe_in(
            &image,
            DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                name("bob"),
                name("alice"),
                name("alice"),
            ])),
        );
        let codes: Vec<(String, i16)> = some
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                ("bob".to_string(), ResponseError::ResourceNotFound.code()),
                ("alice".to_string(), ResponseError::DuplicateResource.code())
            ]
        );
    }
}
