use std::time::Duration;

use shared_proto::v1::{self, UserCreatedEvent};
use shared_proto::{event_headers, topics};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn create_user_returns_the_user_at_version_1_with_a_v7_id() {
    let mut app = spawn_app().await;
    let email = unique_email();

    let user = app.create_user(&email).await;

    let id = uuid::Uuid::parse_str(&user.id).expect("a UUID id");
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(user.version, 1);
    assert_eq!(user.email, email);
    assert_eq!(
        (user.first_name.as_str(), user.country.as_str()),
        ("Ada", "GB")
    );
    assert!(user.created_at.is_some() && user.created_at == user.updated_at);
}

#[tokio::test]
async fn the_password_is_stored_only_as_an_argon2id_hash() {
    let mut app = spawn_app().await;
    let user = app.create_user(&unique_email()).await;

    let client = app.db.client().await;
    let hash: String = client
        .query_one(
            "SELECT password_hash FROM users WHERE id = $1::text::uuid",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}

#[tokio::test]
async fn create_user_publishes_the_whole_user_on_user_created() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let user = app.create_user(&unique_email()).await;

    let records = events.read(1, Duration::from_secs(20)).await;
    let record = &records[0];

    assert_eq!(rdkafka::Message::topic(record), app.topics.created);
    assert!(app.topics.created.ends_with(topics::USER_CREATED));
    assert_eq!(key(record), user.id);
    let event: UserCreatedEvent = decode(record);
    assert_eq!(event.user.as_ref(), Some(&user));
    assert_eq!(
        header(record, event_headers::EVENT_TYPE),
        Some(event_headers::USER_CREATED)
    );
    assert_eq!(header(record, event_headers::VERSION), Some("1"));
    let traceparent = header(record, event_headers::TRACEPARENT).expect("a traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[1].len()),
        (4, "00", 32),
        "{traceparent}"
    );
    let event_id = header(record, event_headers::EVENT_ID).expect("an event id");
    assert!(uuid::Uuid::parse_str(event_id).is_ok());
    let occurred_at = header(record, event_headers::OCCURRED_AT).expect("occurred-at");
    assert!(
        time::OffsetDateTime::parse(occurred_at, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    let payload = rdkafka::Message::payload(record).unwrap();
    assert!(
        !payload
            .windows(b"correct horse".len())
            .any(|w| w == b"correct horse"),
        "the password must never be published"
    );
    assert_eq!(app.outbox_len().await, 0, "published rows are cleaned up");
}

#[tokio::test]
async fn an_email_taken_in_another_case_is_already_exists() {
    let mut app = spawn_app().await;
    let email = unique_email();
    app.create_user(&email).await;

    let status = app
        .client
        .create_user(create_request(&email.to_uppercase()))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().starts_with("email:"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn bad_fields_are_invalid_argument_with_a_violation_each() {
    let mut app = spawn_app().await;
    let mut request = create_request("not-an-address");
    let user = request.user.as_mut().unwrap();
    user.first_name = "   ".into();
    user.country = "XX".into();
    request.password = "short".into();

    let status = app.client.create_user(request).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = violations(&status)
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(fields, ["password", "first_name", "email", "country"]);
    assert!(
        status.message().contains("email: must be a valid address"),
        "{}",
        status.message()
    );
    assert_eq!(
        app.outbox_len().await,
        0,
        "a refused request writes nothing"
    );
}

#[tokio::test]
async fn reads_are_unimplemented_here_and_name_query_service() {
    let mut app = spawn_app().await;

    let get = app
        .client
        .get_user(v1::GetUserRequest {
            id: uuid::Uuid::now_v7().to_string(),
            min_version: None,
        })
        .await
        .unwrap_err();
    let list = app
        .client
        .list_users(v1::ListUsersRequest::default())
        .await
        .unwrap_err();
    let batch = app
        .client
        .batch_get_users(v1::BatchGetUsersRequest::default())
        .await
        .unwrap_err();
    let by_email = app
        .client
        .get_user_by_email(v1::GetUserByEmailRequest::default())
        .await
        .unwrap_err();

    for status in [get, list, batch, by_email] {
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(
            status.message().contains("query-service"),
            "{}",
            status.message()
        );
    }
}

#[tokio::test]
async fn an_undecodable_request_is_invalid_argument_naming_the_field() {
    use prost::Message as _;

    let app = spawn_app().await;
    let mut bytes = create_request("ada@example.com").encode_to_vec();
    let at = bytes.iter().position(|&b| b == b'@').unwrap();
    bytes[at] = 0xff;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, v1::CreateUserResponse, _>(
            tonic::Request::new(bytes),
            http::uri::PathAndQuery::from_static("/user.v1.UserService/CreateUser"),
            raw::BytesCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violations(&status)[0].0, "user.email");
}

/// Sends bytes as they are, as a client with another idea of the schema might.
mod raw {
    use std::marker::PhantomData;

    use bytes::BufMut;
    use tonic::{
        Status,
        codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    };

    #[derive(Default)]
    pub struct BytesCodec<U>(PhantomData<U>);

    pub struct BytesEncoder;
    pub struct MessageDecoder<U>(PhantomData<U>);

    impl<U: prost::Message + Default + Send + 'static> Codec for BytesCodec<U> {
        type Encode = Vec<u8>;
        type Decode = U;
        type Encoder = BytesEncoder;
        type Decoder = MessageDecoder<U>;

        fn encoder(&mut self) -> BytesEncoder {
            BytesEncoder
        }

        fn decoder(&mut self) -> MessageDecoder<U> {
            MessageDecoder(PhantomData)
        }
    }

    impl Encoder for BytesEncoder {
        type Item = Vec<u8>;
        type Error = Status;

        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl<U: prost::Message + Default> Decoder for MessageDecoder<U> {
        type Item = U;
        type Error = Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
            U::decode(src)
                .map(Some)
                .map_err(|error| Status::internal(error.to_string()))
        }
    }
}
