//! Database connections that go silent (no answer, no FIN, no RST: a failover that moved an
//! address, a partition) cost the service a bounded wait, never its projector or its reads.

use std::{sync::Arc, time::Duration};

use shared_proto::v1;

use testkit::{broker, test_proxy::FreezingProxy};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn the_projector_and_the_reads_heal_when_every_open_database_connection_goes_silent() {
    let db = Arc::new(TestDatabase::create().await);
    let proxy = FreezingProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = format!("--database-url={}", proxy.postgres_url(&db.url));
    let mut app = start_query(
        db,
        &new_prefix(),
        &format!("group-{}", Uuid::new_v4()),
        &[
            &url,
            "--database-pool-size=3",
            "--database-statement-timeout=1s",
        ],
    )
    .await;
    let writer = EventWriter::new(&broker::brokers());
    let before = Uuid::now_v7();
    publish(
        &writer,
        &app.topics,
        "created",
        &user(before, 1, "Ada", "GB"),
    )
    .await;
    app.wait_for(&before.to_string(), Some(1)).await;
    list(app.client.clone())
        .await
        .expect("ListUsers before the freeze");

    let frozen = proxy.freeze_open_connections();
    assert!(frozen > 0, "the service had connections to freeze");
    let after = Uuid::now_v7();
    publish(
        &writer,
        &app.topics,
        "created",
        &user(after, 1, "Grace", "US"),
    )
    .await;

    // Projected, through a connection opened after the freeze.
    app.wait_for(&after.to_string(), Some(1)).await;
    eventually("ListUsers to answer again", Duration::from_secs(30), || {
        list(app.client.clone())
    })
    .await;
    assert!(
        proxy.opened() > frozen,
        "the service opened new connections past the silent ones"
    );
}

async fn list(
    mut client: v1::user_service_client::UserServiceClient<tonic::transport::Channel>,
) -> Option<usize> {
    client
        .list_users(v1::ListUsersRequest {
            filter: None,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .ok()
        .map(|page| page.into_inner().users.len())
}
