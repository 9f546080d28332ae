//! Connections do not live for ever: past GRPC_MAX_CONNECTION_AGE the server asks the client
//! to reconnect, so callers of a ClusterIP Service spread over the replicas a scale-out adds.

use std::time::Duration;

use shared_proto::v1::{self, user_service_client::UserServiceClient};
use testkit::{broker, test_proxy::FreezingProxy};

use crate::helpers::*;

#[tokio::test]
async fn a_client_is_asked_to_reconnect_once_its_connection_is_past_its_age() {
    let app = spawn_app_with(
        &broker::brokers(),
        &[
            "--grpc-max-connection-age=1s",
            "--grpc-max-connection-age-grace=1s",
        ],
    )
    .await;
    // Counts the connections the client opens.
    let counter = FreezingProxy::start(app.grpc_addr).await;
    let mut client = UserServiceClient::connect(format!("http://{}", counter.addr()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        // command-service answers reads UNIMPLEMENTED: a call, whatever its answer.
        let _ = client
            .get_user(v1::GetUserRequest {
                id: uuid::Uuid::now_v7().to_string(),
                min_version: None,
            })
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        counter.opened() >= 2,
        "one connection for 5 s of calls: {}",
        counter.opened()
    );
}
