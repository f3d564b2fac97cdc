//! SCRAM users, as `kafka-configs.sh --entity-type users` manages them
//! (AlterUserScramCredentials / DescribeUserScramCredentials, KIP-554).
//! The password never leaves the client: it sends a fresh salt and the
//! salted password.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};

use super::Admin;
use crate::error::{Error, Result, check};
use crate::sasl::Mechanism;
use crate::sasl::scram;
use crate::util::sb;

/// A user's SCRAM credentials: mechanism and iteration count of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUser {
    pub user: String,
    pub credentials: Vec<(Mechanism, i32)>,
}

fn scram_mechanism(m: Mechanism) -> Result<scram::ScramHash> {
    m.scram()
        .ok_or_else(|| Error::Config(format!("{m} is not a SCRAM mechanism")))
}

impl Admin {
    /// Sets `user`'s credential for a SCRAM mechanism (creating the user).
    pub async fn upsert_scram_credential(
        &self,
        user: &str,
        mechanism: Mechanism,
        password: &str,
        iterations: i32,
    ) -> Result<()> {
        let hash = scram_mechanism(mechanism)?;
        let salt = scram::salt();
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
        let upsertion = ScramCredentialUpsertion::default()
            .with_name(sb(user))
            .with_mechanism(mechanism.scram_code())
            .with_iterations(iterations)
            .with_salt(salt.into())
            .with_salted_password(salted.into());
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
        self.alter_scram(req, user, "set the SCRAM credential of")
            .await
    }

    /// Removes `user`'s credential for a SCRAM mechanism.
    pub async fn delete_scram_credential(&self, user: &str, mechanism: Mechanism) -> Result<()> {
        scram_mechanism(mechanism)?;
        let deletion = ScramCredentialDeletion::default()
            .with_name(sb(user))
            .with_mechanism(mechanism.scram_code());
        let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
        self.alter_scram(req, user, "delete the SCRAM credential of")
            .await
    }

    async fn alter_scram(
        &self,
        req: AlterUserScramCredentialsRequest,
        user: &str,
        what: &str,
    ) -> Result<()> {
        let resp = self.cluster.controller().await?.send(&req).await?;
        for r in &resp.results {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("{what} user {:?}", r.user.as_str())
            })?;
        }
        if resp.results.is_empty() {
            return Err(Error::Other(format!("no answer for user {user:?}")));
        }
        Ok(())
    }

    /// The SCRAM credentials of `users`, or of every user that has one.
    pub async fn describe_scram_users(&self, users: Option<&[String]>) -> Result<Vec<ScramUser>> {
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.iter()
                .map(|n| UserName::default().with_name(sb(n)))
                .collect()
        }));
        let resp = self.cluster.any().await?.send(&req).await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            "describe SCRAM users".to_string()
        })?;
        let mut out = Vec::with_capacity(resp.results.len());
        for r in resp.results {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("describe user {:?}", r.user.as_str())
            })?;
            out.push(ScramUser {
                user: r.user.to_string(),
                credentials: r
                    .credential_infos
                    .iter()
                    .filter_map(|c| {
                        Mechanism::from_scram_code(c.mechanism).map(|m| (m, c.iterations))
                    })
                    .collect(),
            });
        }
        out.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(out)
    }
}
