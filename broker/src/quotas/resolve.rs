//! Which configured quota applies to a sender, in Kafka's order of
//! precedence, and which senders share the one rate it limits.
//!
//! For a user and a client id, the first entity in this list with the
//! quota set wins:
//! 1. user and client id, 2. user and the default client id, 3. the user,
//! 4. the default user and the client id, 5. the default user and default
//!    client id, 6. the default user, 7. the client id, 8. the default
//!    client id.
//!
//! A default is not one quota shared by everyone it covers: each user (or
//! client id) it applies to gets the quota to itself, so the rate is kept
//! per the parts the matching entity names — user and client id for
//! levels 1, 2, 4 and 5, the user alone for 3 and 6, the client id alone
//! for 7 and 8 (Kafka's quota metric tags).

use weir_client::quota::{EntityName, QuotaEntity, QuotaKey};
use weir_quorum::image::ClientQuotas;

/// The senders that share one rate: a user, a client id, or both
/// (empty where the matching entity did not name that part).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sharers {
    pub user: String,
    pub client_id: String,
}

/// The quota `key` for `user` and `client_id`, if any entity sets it, and
/// who shares it.
pub fn applicable(
    quotas: &ClientQuotas,
    user: &str,
    client_id: &str,
    key: QuotaKey,
) -> Option<(f64, Sharers)> {
    let named = |n: &str| Some(EntityName::Named(n.to_string()));
    let default = || Some(EntityName::Default);
    let levels = [
        (named(user), named(client_id), true, true),
        (named(user), default(), true, true),
        (named(user), None, true, false),
        (default(), named(client_id), true, true),
        (default(), default(), true, true),
        (default(), None, true, false),
        (None, named(client_id), false, true),
        (None, default(), false, true),
    ];
    levels
        .into_iter()
        .find_map(|(u, c, keep_user, keep_client)| {
            let entity = QuotaEntity {
                user: u,
                client_id: c,
                ip: None,
            };
            let value = quotas.get(&entity)?.get(&key)?;
            Some((
                value.0,
                Sharers {
                    user: if keep_user { user } else { "" }.to_string(),
                    client_id: if keep_client { client_id } else { "" }.to_string(),
                },
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use weir_client::quota::QuotaValue;

    const P: QuotaKey = QuotaKey::ProducerByteRate;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        let name = |n: Option<&str>| EntityName::from_wire(n);
        QuotaEntity {
            user: user.map(name),
            client_id: client.map(name),
            ip: None,
        }
    }

    fn set(quotas: &mut ClientQuotas, e: QuotaEntity, value: f64) {
        quotas.entry(e).or_default().insert(P, QuotaValue(value));
    }

    fn sharers(user: &str, client_id: &str) -> Sharers {
        Sharers {
            user: user.into(),
            client_id: client_id.into(),
        }
    }

    #[test]
    fn each_level_wins_over_the_ones_below_it() {
        // Built from the lowest level up: after adding each, it must win.
        let levels: Vec<(QuotaEntity, Sharers)> = vec![
            (entity(None, Some(None)), sharers("", "app")),
            (entity(None, Some(Some("app"))), sharers("", "app")),
            (entity(Some(None), None), sharers("alice", "")),
            (entity(Some(None), Some(None)), sharers("alice", "app")),
            (
                entity(Some(None), Some(Some("app"))),
                sharers("alice", "app"),
            ),
            (entity(Some(Some("alice")), None), sharers("alice", "")),
            (
                entity(Some(Some("alice")), Some(None)),
                sharers("alice", "app"),
            ),
            (
                entity(Some(Some("alice")), Some(Some("app"))),
                sharers("alice", "app"),
            ),
        ];
        let mut quotas = BTreeMap::new();
        for (i, (e, who)) in levels.into_iter().enumerate() {
            let value = 100.0 * (i + 1) as f64;
            set(&mut quotas, e.clone(), value);
            assert_eq!(
                applicable(&quotas, "alice", "app", P),
                Some((value, who)),
                "after adding {e}"
            );
        }
    }

    #[test]
    fn quotas_of_others_and_of_other_keys_do_not_apply() {
        let mut quotas = BTreeMap::new();
        set(&mut quotas, entity(Some(Some("bob")), None), 10.0);
        set(&mut quotas, entity(None, Some(Some("other"))), 10.0);
        assert_eq!(applicable(&quotas, "alice", "app", P), None);
        assert_eq!(
            applicable(&quotas, "alice", "app", QuotaKey::ConsumerByteRate),
            None
        );
        assert_eq!(
            applicable(&quotas, "bob", "app", P),
            Some((10.0, sharers("bob", "")))
        );
    }
}
