//! Two operator instances with leader election on one API server: only the
//! Lease holder reconciles, and the other takes over when it stops.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use weir_operator::kafka::memory::{InMemoryConnector, InMemoryKafka};
use weir_operator::runtime::leader::LeaseConfig;

fn lease(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "weir-operator".into(),
        namespace: NS.into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(1),
        retry_every: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn only_the_lease_holder_reconciles_and_the_other_takes_over() {
    let (_server, client) = weir_kube_testkit::FakeApiServer::start()
        .await
        .expect("fake API server");
    let connector = InMemoryConnector::default();
    connector.add(&bootstrap("demo"), InMemoryKafka::new("c", &[0]));
    let a = start_operator(
        &client,
        Arc::new(connector.clone()),
        settings(),
        Some(lease("a")),
    );
    let b = start_operator(
        &client,
        Arc::new(connector.clone()),
        settings(),
        Some(lease("b")),
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let holder = || async {
        leases
            .get_opt("weir-operator")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    };
    eventually("a leader", || async { holder().await.is_some() }).await;
    create(&client, &cluster("demo", 1)).await;
    eventually("the leader to reconcile", || async {
        get::<StatefulSet>(&client, "demo-main").await.is_some()
            && a.metrics.reconciles("Cluster") + b.metrics.reconciles("Cluster") > 0
    })
    .await;
    let leader = holder().await.expect("holder");
    let (leading, standing_by) = if leader == "a" { (a, b) } else { (b, a) };
    assert!(leading.metrics.reconciles("Cluster") > 0);
    assert_eq!(
        standing_by.metrics.reconciles("Cluster"),
        0,
        "the standby must not reconcile"
    );
    assert!(leading.metrics.render().contains("weir_operator_leader 1"));
    assert!(
        standing_by
            .metrics
            .render()
            .contains("weir_operator_leader 0")
    );

    // The leader goes away without a word; its Lease expires and the standby takes it.
    drop(leading);
    eventually("the standby to take over and reconcile", || async {
        holder().await.is_some_and(|h| h != leader) && standing_by.metrics.reconciles("Cluster") > 0
    })
    .await;
}
