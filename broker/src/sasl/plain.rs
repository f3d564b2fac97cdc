//! PLAIN (RFC 4616): one token, `[authzid] NUL authcid NUL password`.

use weir_client::sasl::scram::{ScramHash, StoredCredential, equal_in_constant_time};

use super::CredentialStore;

/// The user and password of a PLAIN token. As in Kafka, an authorization
/// id other than the user name is refused. Errors never echo the token.
pub fn parse_plain(token: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(token).map_err(|_| "the PLAIN token is not UTF-8".to_owned())?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the PLAIN token is not authzid NUL user NUL password".into());
    };
    if user.is_empty() || password.is_empty() {
        return Err("the PLAIN token has an empty user name or password".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err("an authorization id other than the user name is not supported".into());
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// Whether `password` is the one behind the user's SCRAM credential
/// (SHA-512's if there is one, else SHA-256's).
pub fn matches_scram(user: &str, password: &str, store: &dyn CredentialStore) -> bool {
    [ScramHash::Sha512, ScramHash::Sha256]
        .into_iter()
        .find_map(|hash| store.scram(user, hash).map(|c| (hash, c)))
        .is_some_and(|(hash, stored)| {
            let derived =
                StoredCredential::from_password(hash, password, &stored.salt, stored.iterations);
            equal_in_constant_time(&derived.stored_key, &stored.stored_key)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_as_rfc_4616_writes_them() {
        assert_eq!(
            parse_plain(b"\0alice\0pw").unwrap(),
            ("alice".into(), "pw".into())
        );
        assert_eq!(parse_plain(b"alice\0alice\0pw").unwrap().0, "alice");
        for bad in [
            &b"alice\0pw"[..],
            b"\0\0pw",
            b"\0a\0",
            b"bob\0alice\0pw",
            b"\0a\0b\0c",
            b"\xff\0a\0b",
        ] {
            let err = parse_plain(bad).unwrap_err();
            assert!(!err.contains("pw"), "{err}");
        }
    }
}
