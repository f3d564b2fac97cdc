//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's
//! KIP-84 use them): the key derivations both sides share, the message
//! attributes, and the client's half of the exchange. The broker's half
//! (`weir-broker`'s `sasl` module) is built on the same derivations.
//!
//! As in Kafka, passwords are used as their UTF-8 bytes (no SASLprep) and
//! channel binding is not offered (`n,,`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2};

/// Kafka's bounds on a credential's iteration count
/// (AlterUserScramCredentials refuses others).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// The hash a SCRAM mechanism is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }

    /// The hash's output length in bytes.
    pub fn len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    /// `Hi(password, salt, i)`: PBKDF2 with HMAC over this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.len()];
        let rounds = std::num::NonZeroU32::new(iterations.max(1)).expect("at least one");
        pbkdf2::derive(self.pbkdf2(), rounds, salt, password, &mut out);
        out
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac_algorithm(), key), data)
            .as_ref()
            .to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }
}

/// What a server stores of a password (never the password itself).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys let anyone who has them log in as the user against
        // this server: they stay out of logs.
        f.debug_struct("StoredCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl StoredCredential {
    /// From `SaltedPassword`, as AlterUserScramCredentials carries it.
    pub fn from_salted_password(
        hash: ScramHash,
        salted_password: &[u8],
        salt: &[u8],
        iterations: i32,
    ) -> Self {
        let client_key = hash.hmac(salted_password, b"Client Key");
        StoredCredential {
            salt: salt.to_vec(),
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    pub fn from_password(hash: ScramHash, password: &str, salt: &[u8], iterations: i32) -> Self {
        let salted = hash.salted_password(password.as_bytes(), salt, iterations.max(1) as u32);
        Self::from_salted_password(hash, &salted, salt, iterations)
    }
}

/// A fresh nonce: random bytes as base64 (printable, never ',').
pub fn nonce() -> String {
    let bytes: [u8; 24] = rand::random();
    BASE64.encode(bytes)
}

/// Random salt for a new credential.
pub fn salt() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

pub fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// A user name as a SCRAM `saslname`: ',' and '=' escaped.
pub fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The inverse of [`escape_name`]; `None` for a lone '=' (RFC 5802 §5.1).
pub fn unescape_name(saslname: &str) -> Option<String> {
    let mut out = String::with_capacity(saslname.len());
    let mut rest = saslname;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at..at + 3)?;
        out.push(match code {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The `k=v` attributes of a SCRAM message, in order.
pub fn attributes(message: &str) -> Result<Vec<(char, &str)>, String> {
    message
        .split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &part[2..])),
                _ => Err(format!("{part:?} is not a SCRAM attribute (k=value)")),
            }
        })
        .collect()
}

/// `ClientKey XOR ClientSignature` and the like.
pub fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Equality in time independent of where the inputs differ.
pub fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's half of one SCRAM exchange.
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    nonce: String,
    first_bare: String,
    /// Set once the server's first message was answered.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(hash: ScramHash, user: &str, password: &str) -> Self {
        Self::with_nonce(hash, user, password, nonce())
    }

    pub fn with_nonce(hash: ScramHash, user: &str, password: &str, nonce: String) -> Self {
        ScramClient {
            hash,
            password: password.to_owned(),
            first_bare: format!("n={},r={nonce}", escape_name(user)),
            nonce,
            server_signature: None,
        }
    }

    /// `client-first-message`.
    pub fn first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// Answers `server-first-message` with `client-final-message`.
    pub fn answer(&mut self, server_first: &str) -> Result<String, String> {
        let attrs = attributes(server_first)?;
        let get = |k| attrs.iter().find(|(a, _)| *a == k).map(|(_, v)| *v);
        if let Some(e) = get('e') {
            return Err(format!("the server refused: {e}"));
        }
        let nonce = get('r').ok_or("the server's first message has no nonce")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = get('s')
            .and_then(unb64)
            .ok_or("the server's first message has no valid salt")?;
        let iterations: u32 = get('i')
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or("the server's first message has no valid iteration count")?;
        let salted = self
            .hash
            .salted_password(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.hash(&client_key);
        let signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &signature);
        let server_key = self.hash.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", b64(&proof)))
    }

    /// Checks `server-final-message`: the server proves it knew the key.
    pub fn verify(&self, server_final: &str) -> Result<(), String> {
        let attrs = attributes(server_final)?;
        if let Some((_, e)) = attrs.iter().find(|(k, _)| *k == 'e') {
            return Err(format!("the server refused: {e}"));
        }
        let expected = self
            .server_signature
            .as_ref()
            .ok_or("the server finished before the exchange did")?;
        let got = attrs
            .iter()
            .find(|(k, _)| *k == 'v')
            .and_then(|(_, v)| unb64(v))
            .ok_or("the server's final message has no signature")?;
        if equal_in_constant_time(&got, expected) {
            Ok(())
        } else {
            Err("the server's signature is wrong: it does not hold this user's key".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example exchange (user "user", password "pencil").
    #[test]
    fn the_rfc_7677_exchange_is_reproduced() {
        let mut client = ScramClient::with_nonce(
            ScramHash::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(client.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = client.answer(server_first).unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(
            client
                .verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .is_err()
        );
    }

    #[test]
    fn names_escape_and_unescape() {
        assert_eq!(escape_name("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_name("a=b"), None);
        assert_eq!(unescape_name("a="), None);
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_is_refused() {
        let mut client = ScramClient::with_nonce(ScramHash::Sha512, "u", "p", "abc".into());
        assert!(client.answer("r=xyz123,s=AAAA,i=4096").is_err());
        assert!(client.answer("r=abc,s=AAAA,i=4096").is_err());
        assert!(client.answer("r=abcd,s=AAAA,i=0").is_err());
        assert!(
            client
                .answer("e=other-error")
                .unwrap_err()
                .contains("other-error")
        );
    }
}
