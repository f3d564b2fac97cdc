use super::*;
use weir_client::sasl::plain_token;
use weir_client::sasl::scram::ScramClient;

struct Store;

impl CredentialStore for Store {
    fn scram(&self, user: &str, hash: ScramHash) -> Option<StoredCredential> {
        let password = match user {
            "alice" => "alice-secret",
            "bob" => "bob-secret",
            _ => return None,
        };
        Some(StoredCredential::from_password(
            hash, password, b"salt", 4096,
        ))
    }
}

fn listener(plain_users: Option<&[(&str, &str)]>, reauth: Option<u64>) -> Arc<ListenerSasl> {
    Arc::new(ListenerSasl {
        mechanisms: Mechanism::ALL.to_vec(),
        plain_users: plain_users.map(|u| {
            u.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        }),
        max_reauth: reauth.map(Duration::from_millis),
        max_receive: 1000,
        secret: b"broker".to_vec(),
    })
}

fn handshake(s: &mut Session, mechanism: &'static str) -> (SaslHandshakeResponse, After) {
    s.handshake(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
    )
}

fn token(s: &mut Session, bytes: Vec<u8>, now: Instant) -> (SaslAuthenticateResponse, After) {
    s.authenticate(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
        &Store,
        now,
    )
}

fn scram_login(
    s: &mut Session,
    mechanism: Mechanism,
    user: &str,
    password: &str,
    now: Instant,
) -> (SaslAuthenticateResponse, After) {
    assert_eq!(handshake(s, mechanism.name()).1, After::Continue);
    let mut client = ScramClient::new(mechanism.scram().unwrap(), user, password);
    let (first, after) = token(s, client.first().into_bytes(), now);
    assert_eq!((first.error_code, after), (0, After::Continue));
    let last = client
        .answer(std::str::from_utf8(&first.auth_bytes).unwrap())
        .unwrap();
    let (done, after) = token(s, last.into_bytes(), now);
    if done.error_code == 0 {
        client
            .verify(std::str::from_utf8(&done.auth_bytes).unwrap())
            .unwrap();
    }
    (done, after)
}

#[test]
fn only_api_versions_and_sasl_come_before_login() {
    let now = Instant::now();
    let mut s = Session::new(listener(None, None));
    assert!(s.admit(ApiKey::ApiVersions, now).is_ok());
    assert!(
        s.admit(ApiKey::Metadata, now)
            .unwrap_err()
            .contains("before SASL authentication")
    );
    assert!(s.admit(ApiKey::SaslAuthenticate, now).is_err());
    assert_eq!(s.max_frame(1 << 20), 1000);
    assert!(s.admit(ApiKey::SaslHandshake, now).is_ok());
    handshake(&mut s, "PLAIN");
    assert!(s.admit(ApiKey::SaslHandshake, now).is_err());
    assert!(s.admit(ApiKey::Produce, now).is_err());
    let (r, after) = token(&mut s, plain_token("alice", "alice-secret"), now);
    assert_eq!(
        (r.error_code, after, r.session_lifetime_ms),
        (0, After::Continue, 0)
    );
    assert_eq!(s.principal(), Some("User:alice"));
    assert!(s.admit(ApiKey::Produce, now).is_ok());
    assert_eq!(s.max_frame(1 << 20), 1 << 20);
}

#[test]
fn an_unoffered_mechanism_is_refused_listing_the_offered_ones() {
    let mut s = Session::new(Arc::new(ListenerSasl {
        mechanisms: vec![Mechanism::ScramSha512],
        ..(*listener(None, None)).clone()
    }));
    for asked in ["PLAIN", "GSSAPI"] {
        let (r, after) = handshake(&mut s, asked);
        assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
        assert_eq!(after, After::Close);
        assert_eq!(
            r.mechanisms,
            vec![StrBytes::from_static_str("SCRAM-SHA-512")]
        );
    }
}

#[test]
fn plain_checks_jaas_users_or_else_scram_credentials() {
    let now = Instant::now();
    let jaas = listener(Some(&[("carol", "carol-secret")]), None);
    let login = |l: &Arc<ListenerSasl>, user, password| {
        let mut s = Session::new(Arc::clone(l));
        handshake(&mut s, "PLAIN");
        let (r, after) = token(&mut s, plain_token(user, password), now);
        (r.error_code, after, s.principal().map(str::to_owned))
    };
    assert_eq!(
        login(&jaas, "carol", "carol-secret"),
        (0, After::Continue, Some("User:carol".into()))
    );
    let failed = ResponseError::SaslAuthenticationFailed.code();
    assert_eq!(login(&jaas, "carol", "nope"), (failed, After::Close, None));
    // With JAAS users, SCRAM credentials do not count for PLAIN.
    assert_eq!(login(&jaas, "alice", "alice-secret").0, failed);
    let scram = listener(None, None);
    assert_eq!(login(&scram, "bob", "bob-secret").0, 0);
    assert_eq!(login(&scram, "bob", "alice-secret").0, failed);
    assert_eq!(login(&scram, "nobody", "x").0, failed);
}

#[test]
fn scram_logs_in_with_the_right_password_only() {
    let now = Instant::now();
    for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut s = Session::new(listener(None, None));
        let (r, after) = scram_login(&mut s, m, "alice", "alice-secret", now);
        assert_eq!((r.error_code, after), (0, After::Continue));
        assert_eq!(s.principal(), Some("User:alice"));
        let mut s = Session::new(listener(None, None));
        let (r, after) = scram_login(&mut s, m, "alice", "wrong", now);
        assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
        assert_eq!(after, After::Close);
        let message = r.error_message.unwrap();
        assert!(
            message.contains("invalid credentials") && !message.contains("wrong"),
            "{message}"
        );
        assert_eq!(s.principal(), None);
    }
}

#[test]
fn a_session_expires_unless_the_same_principal_logs_in_again() {
    let start = Instant::now();
    let l = listener(None, Some(60_000));
    let mut s = Session::new(Arc::clone(&l));
    let (r, _) = scram_login(
        &mut s,
        Mechanism::ScramSha512,
        "alice",
        "alice-secret",
        start,
    );
    assert_eq!(r.session_lifetime_ms, 60_000);
    let later = start + Duration::from_secs(61);
    assert!(
        s.admit(ApiKey::Fetch, later)
            .unwrap_err()
            .contains("expired")
    );
    // Re-authenticating (KIP-368) renews the session.
    assert!(s.admit(ApiKey::SaslHandshake, later).is_ok());
    let (r, _) = scram_login(
        &mut s,
        Mechanism::ScramSha512,
        "alice",
        "alice-secret",
        later,
    );
    assert_eq!(r.error_code, 0);
    assert!(s.admit(ApiKey::Fetch, later).is_ok());
    // ... but not as someone else, nor with another mechanism.
    let (r, after) = scram_login(&mut s, Mechanism::ScramSha512, "bob", "bob-secret", later);
    assert_eq!(
        (r.error_code, after),
        (ResponseError::SaslAuthenticationFailed.code(), After::Close)
    );
    let mut s = Session::new(l);
    scram_login(
        &mut s,
        Mechanism::ScramSha512,
        "alice",
        "alice-secret",
        start,
    );
    let (r, after) = handshake(&mut s, "SCRAM-SHA-256");
    assert_eq!(
        (r.error_code, after),
        (ResponseError::IllegalSaslState.code(), After::Close)
    );
}
