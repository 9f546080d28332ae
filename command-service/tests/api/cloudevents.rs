//! Every event is a CloudEvent in the Kafka binding's binary mode: a consumer written against
//! a CloudEvents SDK reads it, attributes and data (the Python SDK here, through its own
//! Kafka binding, with no parsing of ours).

use std::{path::PathBuf, process::Command, time::Duration};

use prost::Message as _;
use shared_proto::v1::{self, UserCreatedEvent, UserDeletedEvent, UserUpdatedEvent};

use crate::helpers::*;

fn python() -> PathBuf {
    std::env::var_os("CLOUDEVENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/test-venv/bin/python")
        })
}

#[tokio::test]
async fn a_cloudevents_sdk_reads_every_event_type() {
    let mut app = spawn_app().await;
    app.events().await;
    let user = app.create_user(&unique_email()).await;
    app.update(v1::UpdateUserRequest {
        user: Some(v1::User {
            id: user.id.clone(),
            nickname: "countess".into(),
            ..v1::User::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["nickname".into()],
        }),
        password: String::new(),
        expected_version: None,
        request_id: String::new(),
    })
    .await;
    app.client
        .delete_user(v1::DeleteUserRequest {
            id: user.id.clone(),
            expected_version: None,
            request_id: String::new(),
        })
        .await
        .expect("deleted");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.outbox_len().await > 0 {
        assert!(std::time::Instant::now() < deadline, "events not published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let python = python();
    assert!(
        python.exists(),
        "no {}: `make test-deps` installs the CloudEvents SDK there",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cloudevents/read_events.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(&app.brokers)
            .arg("3")
            .args(app.topics.events())
            .output()
    })
    .await
    .unwrap()
    .expect("the reader runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 3);
    for event in &events {
        let event_type = event["type"].as_str().unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], "/users/command-service");
        assert_eq!(event["subject"], user.id.as_str());
        assert_eq!(event["partitionkey"], user.id.as_str());
        assert_eq!(event["datacontenttype"], "application/protobuf");
        assert_eq!(
            event["dataschema"].as_str().unwrap(),
            format!("urn:protobuf:{event_type}")
        );
        assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
        assert!(event["time"].as_str().unwrap().starts_with("20"));
        let data = hex(event["data"].as_str().unwrap());
        let version = match event_type {
            "user.v1.UserCreatedEvent" => UserCreatedEvent::decode(&data[..]).unwrap().user,
            "user.v1.UserUpdatedEvent" => UserUpdatedEvent::decode(&data[..]).unwrap().user,
            "user.v1.UserDeletedEvent" => UserDeletedEvent::decode(&data[..]).unwrap().user,
            other => panic!("unexpected type {other}"),
        }
        .expect("the whole user")
        .version;
        let expected = match event_type {
            "user.v1.UserCreatedEvent" => 1,
            "user.v1.UserUpdatedEvent" => 2,
            _ => 3,
        };
        assert_eq!(version, expected, "{event}");
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}
