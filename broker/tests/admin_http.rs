//! The admin HTTP port answers health, readiness and Prometheus metrics,
//! and the metrics move with the traffic.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_broker::{Broker, BrokerConfig};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(1, dir.path(), "127.0.0.1:0");
    config.admin_listen = Some("127.0.0.1:0".into());
    let broker = Broker::start(config).await.unwrap();
    let admin = broker.admin_addr().expect("admin port");
    broker
        .state()
        .create_topic("a", 2, 1, Default::default())
        .await
        .unwrap();

    assert_eq!(get(admin, "/healthz").await.0, 200);
    assert_eq!(get(admin, "/ready").await.0, 200);
    assert_eq!(get(admin, "/nope").await.0, 404);

    // One Kafka request (ApiVersions v0: key 18, version 0, correlation 7, no client id).
    let mut kafka = TcpStream::connect(broker.local_addr()).await.unwrap();
    kafka
        .write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff])
        .await
        .unwrap();
    let size = kafka.read_i32().await.unwrap();
    let mut body = vec![0; size as usize];
    kafka.read_exact(&mut body).await.unwrap();

    let (status, metrics) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("weir_broker_requests_total{api=\"ApiVersions\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_broker_partitions 2"),
        "the two of topic a (__consumer_offsets comes with the first group):\n{metrics}"
    );
    assert!(
        metrics.contains("weir_broker_under_replicated_partitions 0"),
        "{metrics}"
    );
    assert!(metrics.contains("weir_broker_connections 1"), "{metrics}");
    assert!(
        metrics.contains("# TYPE weir_broker_bytes_in_total counter"),
        "{metrics}"
    );
    broker.shutdown().await.unwrap();
}
