//! The broker's half of a SCRAM exchange (RFC 5802, as Kafka's KIP-84
//! speaks it): two client messages in, two server messages out, verified
//! against the stored credential. Pure: no sockets, no clock.
//!
//! An unknown user gets a made-up credential (salt derived from the name)
//! and fails at the proof like a wrong password does, so the exchange does
//! not tell who exists.

use weir_client::sasl::scram::{
    ScramHash, StoredCredential, attributes, b64, equal_in_constant_time, unb64, unescape_name, xor,
};

/// Why an exchange failed. `Invalid` is a malformed message (the client
/// is broken); `Credentials` a wrong user or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    Invalid(String),
    Credentials,
}

/// Where an exchange stands.
pub enum ScramServer {
    /// Waiting for `client-first-message`.
    Start {
        hash: ScramHash,
    },
    /// Sent `server-first-message`; waiting for `client-final-message`.
    Challenged {
        hash: ScramHash,
        user: String,
        /// `None`: no such user (a made-up challenge was sent).
        credential: Option<StoredCredential>,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

impl ScramServer {
    pub fn new(hash: ScramHash) -> Self {
        ScramServer::Start { hash }
    }

    /// Takes the client's next message; gives the server's answer and,
    /// on the last one, the authenticated user name.
    /// `lookup` finds a user's credential; `server_nonce` is fresh
    /// randomness; `secret` salts made-up challenges for unknown users.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: &dyn Fn(&str) -> Option<StoredCredential>,
        server_nonce: &str,
        secret: &[u8],
    ) -> Result<(Vec<u8>, Option<String>), ScramError> {
        let message = std::str::from_utf8(message)
            .map_err(|_| ScramError::Invalid("the SCRAM message is not UTF-8".into()))?;
        match std::mem::replace(self, ScramServer::Done) {
            ScramServer::Start { hash } => {
                let first = parse_client_first(message)?;
                let credential = lookup(&first.user);
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (hash.hmac(secret, first.user.as_bytes()), 4096),
                };
                let nonce = format!("{}{server_nonce}", first.nonce);
                let server_first = format!("r={nonce},s={},i={iterations}", b64(&salt));
                *self = ScramServer::Challenged {
                    hash,
                    user: first.user,
                    credential,
                    nonce,
                    client_first_bare: first.bare.to_owned(),
                    server_first: server_first.clone(),
                };
                Ok((server_first.into_bytes(), None))
            }
            ScramServer::Challenged {
                hash,
                user,
                credential,
                nonce,
                client_first_bare,
                server_first,
            } => {
                let last = parse_client_final(message)?;
                if last.nonce != nonce {
                    return Err(ScramError::Invalid(
                        "the final message's nonce is not the exchange's".into(),
                    ));
                }
                if last.channel_binding != "biws" && last.channel_binding != "eSws" {
                    return Err(ScramError::Invalid(
                        "channel binding is not supported (expected c=biws)".into(),
                    ));
                }
                let credential = credential.ok_or(ScramError::Credentials)?;
                let auth_message =
                    format!("{client_first_bare},{server_first},{}", last.without_proof);
                let signature = hash.hmac(&credential.stored_key, auth_message.as_bytes());
                let client_key = xor(&last.proof, &signature);
                if last.proof.len() != signature.len()
                    || !equal_in_constant_time(&hash.hash(&client_key), &credential.stored_key)
                {
                    return Err(ScramError::Credentials);
                }
                let server_signature = hash.hmac(&credential.server_key, auth_message.as_bytes());
                Ok((
                    format!("v={}", b64(&server_signature)).into_bytes(),
                    Some(user),
                ))
            }
            ScramServer::Done => Err(ScramError::Invalid(
                "the SCRAM exchange is already over".into(),
            )),
        }
    }
}

struct ClientFirst<'a> {
    user: String,
    nonce: String,
    bare: &'a str,
}

/// `gs2-header client-first-message-bare`, e.g. `n,,n=user,r=nonce`.
fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    let invalid = |why: &str| ScramError::Invalid(format!("client-first-message: {why}"));
    let mut parts = message.splitn(3, ',');
    let binding = parts.next().unwrap_or_default();
    let authzid = parts.next().ok_or_else(|| invalid("no GS2 header"))?;
    let bare = parts.next().ok_or_else(|| invalid("no user and nonce"))?;
    match binding {
        "n" | "y" => {}
        b if b.starts_with("p=") => return Err(invalid("channel binding is not supported")),
        _ => return Err(invalid("the GS2 header must start with n or y")),
    }
    let attrs = attributes(bare).map_err(|e| invalid(&e))?;
    let (user, nonce) = match attrs.as_slice() {
        [('n', user), ('r', nonce), extensions @ ..] => {
            // Kafka's delegation tokens log in with `tokenauth=true`;
            // there are none here.
            if extensions
                .iter()
                .any(|(k, v)| *k == 't' && v.starts_with("okenauth"))
            {
                return Err(ScramError::Credentials);
            }
            (*user, *nonce)
        }
        [('m', _), ..] => return Err(invalid("mandatory extensions are not supported")),
        _ => return Err(invalid("expected n=<user>,r=<nonce>")),
    };
    let user = unescape_name(user).ok_or_else(|| invalid("the user name is badly escaped"))?;
    if user.is_empty() || nonce.is_empty() {
        return Err(invalid("empty user name or nonce"));
    }
    if !nonce.chars().all(|c| c.is_ascii_graphic() && c != ',') {
        return Err(invalid("the nonce has characters outside printable ASCII"));
    }
    if !authzid.is_empty() {
        let authzid = authzid
            .strip_prefix("a=")
            .and_then(unescape_name)
            .ok_or_else(|| invalid("the authorization id is malformed"))?;
        if authzid != user {
            return Err(invalid(
                "an authorization id other than the user name is not supported",
            ));
        }
    }
    Ok(ClientFirst {
        user,
        nonce: nonce.to_owned(),
        bare,
    })
}

struct ClientFinal<'a> {
    channel_binding: &'a str,
    nonce: &'a str,
    without_proof: &'a str,
    proof: Vec<u8>,
}

/// `c=…,r=…[,extensions],p=…`.
fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, ScramError> {
    let invalid = |why: &str| ScramError::Invalid(format!("client-final-message: {why}"));
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or_else(|| invalid("no proof"))?;
    let attrs = attributes(without_proof).map_err(|e| invalid(&e))?;
    let (channel_binding, nonce) = match attrs.as_slice() {
        [('c', c), ('r', r), ..] => (*c, *r),
        _ => return Err(invalid("expected c=<binding>,r=<nonce>")),
    };
    let proof = unb64(proof).ok_or_else(|| invalid("the proof is not base64"))?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::sasl::scram::ScramClient;

    fn store(hash: ScramHash) -> impl Fn(&str) -> Option<StoredCredential> {
        move |user| {
            (user == "alice")
                .then(|| StoredCredential::from_password(hash, "wonderland", b"salty", 4096))
        }
    }

    fn exchange(hash: ScramHash, user: &str, password: &str) -> Result<String, ScramError> {
        let lookup = store(hash);
        let mut client = ScramClient::new(hash, user, password);
        let mut server = ScramServer::new(hash);
        let (first, done) = server.step(client.first().as_bytes(), &lookup, "SRV", b"k")?;
        assert_eq!(done, None);
        let last = client.answer(std::str::from_utf8(&first).unwrap()).unwrap();
        let (server_final, user) = server.step(last.as_bytes(), &lookup, "unused", b"k")?;
        client
            .verify(std::str::from_utf8(&server_final).unwrap())
            .unwrap();
        Ok(user.unwrap())
    }

    #[test]
    fn the_client_and_server_agree_with_both_hashes() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            assert_eq!(exchange(hash, "alice", "wonderland").unwrap(), "alice");
            assert_eq!(
                exchange(hash, "alice", "wrong"),
                Err(ScramError::Credentials)
            );
            assert_eq!(exchange(hash, "mallory", "x"), Err(ScramError::Credentials));
        }
    }

    #[test]
    fn an_unknown_user_gets_a_challenge_like_a_known_one() {
        let lookup = store(ScramHash::Sha256);
        let mut server = ScramServer::new(ScramHash::Sha256);
        let (first, _) = server
            .step(b"n,,n=mallory,r=abc", &lookup, "SRV", b"secret")
            .unwrap();
        let first = String::from_utf8(first).unwrap();
        assert!(
            first.starts_with("r=abcSRV,s=") && first.ends_with(",i=4096"),
            "{first}"
        );
        // The same name gets the same salt every time.
        let mut again = ScramServer::new(ScramHash::Sha256);
        let (second, _) = again
            .step(b"n,,n=mallory,r=abc", &lookup, "SRV", b"secret")
            .unwrap();
        assert_eq!(first.as_bytes(), second.as_slice());
    }

    #[test]
    fn malformed_messages_are_refused_naming_what_is_wrong() {
        let lookup = store(ScramHash::Sha256);
        for (bad, why) in [
            (&b"\xff"[..], "UTF-8"),
            (b"n,,r=abc", "expected n=<user>"),
            (b"p=tls-unique,,n=a,r=b", "channel binding"),
            (b"x,,n=a,r=b", "GS2 header"),
            (b"n,", "no user"),
            (b"n,,n=a=zz,r=b", "escaped"),
            (b"n,a=bob,n=alice,r=b", "authorization id"),
            (b"n,,m=ext,n=a,r=b", "mandatory"),
            (b"n,,n=,r=b", "empty"),
        ] {
            let mut server = ScramServer::new(ScramHash::Sha256);
            match server.step(bad, &lookup, "S", b"k") {
                Err(ScramError::Invalid(e)) => assert!(e.contains(why), "{bad:?}: {e}"),
                other => panic!("{bad:?}: {:?}", other.map(|_| ())),
            }
        }
        let mut server = ScramServer::new(ScramHash::Sha256);
        server
            .step(b"n,,n=alice,r=abc", &lookup, "S", b"k")
            .unwrap();
        let wrong_nonce = server.step(b"c=biws,r=abcX,p=AAAA", &lookup, "S", b"k");
        assert!(matches!(wrong_nonce, Err(ScramError::Invalid(e)) if e.contains("nonce")));
        assert!(matches!(
            server.step(b"anything", &lookup, "S", b"k"),
            Err(ScramError::Invalid(e)) if e.contains("over")
        ));
    }
}
