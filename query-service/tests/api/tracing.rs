use shared_proto::v1;
use testkit::spans::finished_spans;
use tonic::Request;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn one_trace_runs_from_the_grpc_call_through_kafka_to_the_projection() {
    let mut system = spawn_system(&[]).await;
    let trace_id = Uuid::new_v4().simple().to_string();
    let mut request = Request::new(v1::CreateUserRequest {
        user: Some(v1::User {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: format!("{}@example.com", Uuid::new_v4().simple()),
            ..v1::User::default()
        }),
        password: "correct horse battery staple".into(),
        request_id: String::new(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let created = system
        .commands
        .create_user(request)
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    system.query.wait_for(&created.id, Some(1)).await;

    // The projector ends its span just after committing the row that wait_for saw.
    let spans = eventually(
        "the projection's span",
        std::time::Duration::from_secs(10),
        || async {
            let spans: Vec<_> = finished_spans()
                .into_iter()
                .filter(|span| span.span_context.trace_id().to_string() == trace_id)
                .collect();
            spans
                .iter()
                .any(|span| span.name == "projector.apply")
                .then_some(spans)
        },
    )
    .await;
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_ref()).collect();
    assert!(
        names.contains(&"user.v1.UserService/CreateUser"),
        "the call's span continues the caller's trace: {names:?}"
    );
    assert!(
        names.contains(&"projector.apply"),
        "the projection's span is in the same trace: {names:?}"
    );
}
