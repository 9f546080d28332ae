//! The services' gRPC API as a client sees it: channels that reconnect by themselves after a
//! service restarts, and the requests the scenarios send.

use std::{net::SocketAddr, time::Duration};

use shared_proto::v1::{self, user_service_client::UserServiceClient};
use testkit::grpc::nickname_update;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

pub(crate) type UserClient = UserServiceClient<Channel>;

pub(crate) const PASSWORD: &str = "correct horse battery";
/// Every call is bounded: a call that hangs is a finding, not a stuck suite.
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// Connects on first use and again after the connection drops.
pub(crate) fn connect(addr: SocketAddr) -> UserClient {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a loopback URI")
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL_LIMIT)
        .connect_lazy();
    UserServiceClient::new(channel)
}

pub(crate) fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", Uuid::new_v4().simple())
}

pub(crate) fn create_request(email: &str) -> v1::CreateUserRequest {
    v1::CreateUserRequest {
        user: Some(v1::User {
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            nickname: "ada".to_owned(),
            email: email.to_owned(),
            country: "GB".to_owned(),
            ..v1::User::default()
        }),
        password: PASSWORD.to_owned(),
        request_id: String::new(),
    }
}

pub(crate) async fn create(
    client: &mut UserClient,
    email: &str,
) -> Result<v1::User, tonic::Status> {
    let response = client.create_user(create_request(email)).await?;
    response
        .into_inner()
        .user
        .ok_or_else(|| tonic::Status::internal("CreateUser answered without a user"))
}

pub(crate) async fn update_nickname(
    client: &mut UserClient,
    id: &str,
    nickname: &str,
) -> Result<v1::User, tonic::Status> {
    let response = client.update_user(nickname_update(id, nickname)).await?;
    response
        .into_inner()
        .user
        .ok_or_else(|| tonic::Status::internal("UpdateUser answered without a user"))
}

pub(crate) async fn delete(
    client: &mut UserClient,
    id: &str,
    expected_version: Option<u64>,
) -> Result<(), tonic::Status> {
    client
        .delete_user(v1::DeleteUserRequest {
            id: id.to_owned(),
            expected_version,
            request_id: String::new(),
        })
        .await
        .map(|_| ())
}

pub(crate) async fn get(
    client: &mut UserClient,
    id: &str,
    min_version: Option<u64>,
) -> Result<v1::User, tonic::Status> {
    let response = client
        .get_user(v1::GetUserRequest {
            id: id.to_owned(),
            min_version,
        })
        .await?;
    response
        .into_inner()
        .user
        .ok_or_else(|| tonic::Status::internal("GetUser answered without a user"))
}

/// Deletes a user whose version the caller knows only as a lower bound (writes that were
/// cut off may have landed): tries `known`, `known + 1`, ... The version of the deletion,
/// or `None` if it was deleted already.
pub(crate) async fn delete_at_known_version(
    client: &mut UserClient,
    id: &str,
    known: u64,
) -> Result<Option<u64>, tonic::Status> {
    let mut expected = known;
    loop {
        match delete(client, id, Some(expected)).await {
            Ok(()) => return Ok(Some(expected + 1)),
            Err(status) if status.code() == tonic::Code::Aborted && expected < known + 50 => {
                expected += 1;
            }
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => return Err(status),
        }
    }
}

/// Retries a call that failed the way a restarting or recovering service fails, for up to
/// `within`; any other status ends it.
pub(crate) async fn with_retries<T, F, Fut>(
    within: Duration,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                ) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => return Err(status),
        }
    }
}
