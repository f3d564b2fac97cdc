//! A three-broker cluster secured between its own nodes (issue "Security"):
//! brokers replicate over an SSL inter-broker listener that requires
//! client certificates, the quorum port is mutual TLS
//! (`controller.listener.names` naming an SSL listener), and a plaintext
//! connection to the quorum port gets no answer. Clients still use the
//! PLAINTEXT listener, so the history check runs as elsewhere.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weir_e2e::history::{HistoryWriter, check_history, create_topic, full_isr, read_all};
use weir_e2e::{ClusterProcesses, wait_until};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and one keystore (chain, then key) for 127.0.0.1 that every node
/// presents, as a server and as a client.
fn certificates(dir: &Path) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cluster-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/CN=weir-node",
        ],
    );
    std::fs::write(
        dir.join("node.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "node.crt",
            "-days",
            "2",
            "-extfile",
            "node.ext",
        ],
    );
    let keystore = dir.join("node.keystore.pem");
    let mut pem = std::fs::read(dir.join("node.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("node.key")).unwrap());
    std::fs::write(&keystore, pem).unwrap();
    (dir.join("ca.pem"), keystore)
}

/// Starts three brokers with `settings` and checks that acks=all writes
/// to a topic replicated three times come back whole and that the replicas
/// end identical: followers fetched from the leader through whatever the
/// settings make the inter-broker listener.
async fn replicating_cluster(settings: &[String]) -> ClusterProcesses {
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let cluster = ClusterProcesses::start(3, &settings);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "secured", 1, 3, "2").await;
    wait_until(Duration::from_secs(30), "a full ISR", || {
        full_isr(&bootstrap, "secured")
    });
    let writer = HistoryWriter::start(&bootstrap, "secured");
    writer
        .wait_for_progress(200, Duration::from_secs(60), "acks=all writes")
        .await;
    let acked = writer.finish().await;
    check_history(&acked, &read_all(&bootstrap, "secured", acked.len()));
    cluster.wait_replicas_identical("secured");
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_log_in_to_each_other_over_sasl_ssl() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, keystore) = certificates(certs.path());
    // With the authorizer on, a follower's fetch needs ClusterAction: only
    // the brokers' own user (and the test's plaintext clients) may.
    replicating_cluster(&[
        "listeners=PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:0".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL".into(),
        "inter.broker.listener.name=INTERNAL".into(),
        "listener.name.internal.sasl.enabled.mechanisms=PLAIN".into(),
        "sasl.mechanism.inter.broker.protocol=PLAIN".into(),
        "listener.name.internal.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"broker-secret\" user_broker=\"broker-secret\";".into(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        "super.users=User:broker;User:ANONYMOUS".into(),
        format!("ssl.keystore.location={}", keystore.display()),
        format!("ssl.truststore.location={}", ca.display()),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_replicate_over_mutual_tls_and_the_quorum_port_refuses_plaintext() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, keystore) = certificates(certs.path());
    let settings = [
        "listeners=PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:0".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SSL,CONTROLLER:SSL".into(),
        "inter.broker.listener.name=INTERNAL".into(),
        "listener.name.internal.ssl.client.auth=required".into(),
        "controller.listener.names=CONTROLLER".into(),
        format!("ssl.keystore.location={}", keystore.display()),
        format!("ssl.truststore.location={}", ca.display()),
    ];
    // Followers can only fetch over the SSL listener, with their
    // certificate.
    let mut cluster = replicating_cluster(&settings).await;
    let bootstrap = cluster.bootstrap();

    // The quorum port answers nothing in plain text: a well-formed frame
    // is met with the connection closing (after at most a TLS alert), not
    // a response.
    let port = cluster.broker(1).quorum_port().expect("a quorum member");
    let mut raw = TcpStream::connect(("127.0.0.1", port)).expect("connect to the quorum port");
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = br#"{"Controller":{"DeleteTopics":{"names":["secured"]}}}"#;
    raw.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    let _ = raw.write_all(body);
    let mut answer = Vec::new();
    let read = raw.read_to_end(&mut answer);
    let shown = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok() && !shown.contains("Controller") && !shown.contains("Refused"),
        "the quorum port answered a plaintext peer: {read:?}, {shown:?}"
    );
    // And nothing was deleted.
    assert!(full_isr(&bootstrap, "secured"));
}
