use std::{collections::HashSet, time::Duration};

use prost_types::FieldMask;
use shared_proto::v1;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_created_user_becomes_readable_by_get_and_list() {
    let mut system = spawn_system(&[]).await;
    let created = system.create("Ada", "GB").await;

    let seen = system.query.wait_for(&created.id, Some(1)).await.unwrap();
    assert_eq!(seen, created);

    let page = system
        .query
        .client
        .list_users(v1::ListUsersRequest {
            filter: Some(v1::UserFilter {
                countries: vec!["GB".into()],
                updated_after: None,
                query: String::new(),
            }),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.users, [created]);
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn updates_and_deletes_flow_through_to_the_read_side() {
    let mut system = spawn_system(&[]).await;
    let created = system.create("Ada", "GB").await;
    system.query.wait_for(&created.id, Some(1)).await;

    let updated = system
        .commands
        .update_user(v1::UpdateUserRequest {
            user: Some(v1::User {
                id: created.id.clone(),
                first_name: "Augusta".into(),
                ..v1::User::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["first_name".into()],
            }),
            password: String::new(),
            expected_version: None,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let seen = system.query.wait_for(&created.id, Some(2)).await.unwrap();
    assert_eq!(seen, updated);

    system
        .commands
        .delete_user(v1::DeleteUserRequest {
            id: created.id.clone(),
            expected_version: Some(2),
            request_id: String::new(),
        })
        .await
        .unwrap();
    system.query.wait_for(&created.id, None).await;
    let listed = system
        .query
        .client
        .list_users(v1::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.users.is_empty(), "a deleted user is not listed");
}

#[tokio::test]
async fn min_version_waits_for_the_write_it_names() {
    let mut system = spawn_system(&[]).await;
    let created = system.create("Ada", "GB").await;

    // Asked straight after the write: answered once the read side has it, never older.
    let read = system
        .query
        .client
        .get_user(v1::GetUserRequest {
            id: created.id.clone(),
            min_version: Some(1),
        })
        .await
        .expect("read-your-writes")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(read, created);
}

#[tokio::test]
async fn a_version_the_read_model_never_reaches_is_unavailable_after_the_timeout() {
    let mut system = spawn_system(&["--min-version-timeout=300ms"]).await;
    let created = system.create("Ada", "GB").await;
    system.query.wait_for(&created.id, Some(1)).await;

    let status = system
        .query
        .client
        .get_user(v1::GetUserRequest {
            id: created.id.clone(),
            min_version: Some(5),
        })
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("not caught up"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_naming_the_field() {
    let mut app = spawn_query().await;
    let bad_id = app
        .client
        .get_user(v1::GetUserRequest {
            id: "nope".into(),
            min_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (bad_id.code(), violations(&bad_id)[0].0.as_str()),
        (Code::InvalidArgument, "id")
    );

    let cases = [
        (
            v1::ListUsersRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            v1::ListUsersRequest {
                filter: Some(v1::UserFilter {
                    countries: vec!["XX".into()],
                    updated_after: None,
                    query: String::new(),
                }),
                ..Default::default()
            },
            "filter.countries",
        ),
        (
            v1::ListUsersRequest {
                page_token: "forged".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ];
    for (request, field) in cases {
        let status = app.client.list_users(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violations(&status)[0].0, field);
    }
}

#[tokio::test]
async fn unknown_users_are_not_found_and_writes_belong_to_command_service() {
    let mut app = spawn_query().await;
    let missing = app.get(&Uuid::now_v7().to_string()).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let create = app
        .client
        .create_user(v1::CreateUserRequest::default())
        .await
        .unwrap_err();
    let delete = app
        .client
        .delete_user(v1::DeleteUserRequest::default())
        .await
        .unwrap_err();
    for status in [create, delete] {
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(status.message().contains("command-service"));
    }
}

#[tokio::test]
async fn pages_walk_a_filtered_set_without_duplicates_or_gaps_while_writes_go_on() {
    let mut app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let mut british = Vec::new();
    for n in 0..23 {
        let id = Uuid::now_v7();
        let country = if n % 3 == 0 { "FR" } else { "GB" };
        publish(
            &writer,
            &app.topics,
            "created",
            &user(id, 1, "Ada", country),
        )
        .await;
        if country == "GB" {
            british.push(id.to_string());
        }
    }
    let last = british.last().unwrap().clone();
    app.wait_for(&last, Some(1)).await;
    // Wait for every one of them, not only the last: partitions are projected independently.
    for id in &british {
        app.wait_for(id, Some(1)).await;
    }

    // Writes keep landing while the pages are read: new users, and updates of listed ones.
    let topics = app.topics.clone();
    let updates = british.clone();
    let background = tokio::spawn(async move {
        let writer = EventWriter::new(&testkit::broker::brokers());
        for (n, id) in updates.iter().enumerate() {
            let id = Uuid::parse_str(id).unwrap();
            publish(&writer, &topics, "updated", &user(id, 2, "Augusta", "GB")).await;
            publish(
                &writer,
                &topics,
                "created",
                &user(Uuid::now_v7(), 1, &format!("New {n}"), "GB"),
            )
            .await;
        }
    });

    let filter = v1::UserFilter {
        countries: vec!["GB".into()],
        updated_after: None,
        query: String::new(),
    };
    let pages = app.list_pages(filter, 4, Duration::from_millis(20)).await;
    background.await.unwrap();
    for page in &pages {
        assert!(page.len() <= 4);
        assert!(page.iter().all(|u| u.country == "GB"));
    }
    let seen: Vec<String> = pages.into_iter().flatten().map(|u| u.id).collect();

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no user appears twice");
    for id in &british {
        assert!(unique.contains(id), "user {id} was skipped");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "pages follow one stable order");
}

#[tokio::test]
async fn a_page_token_only_works_with_the_filter_it_was_issued_for() {
    let mut app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let mut last = String::new();
    for _ in 0..3 {
        let id = Uuid::now_v7();
        publish(&writer, &app.topics, "created", &user(id, 1, "Ada", "GB")).await;
        last = id.to_string();
    }
    app.wait_for(&last, Some(1)).await;
    let first = app
        .client
        .list_users(v1::ListUsersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());

    let status = app
        .client
        .list_users(v1::ListUsersRequest {
            filter: Some(v1::UserFilter {
                countries: vec!["GB".into()],
                updated_after: None,
                query: String::new(),
            }),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("another filter"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_filter_of_several_countries_pages_through_them_in_id_order() {
    let mut app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let mut expected = Vec::new();
    for n in 0..12 {
        let id = Uuid::now_v7();
        let country = ["GB", "FR", "DE"][n % 3];
        publish(
            &writer,
            &app.topics,
            "created",
            &user(id, 1, "Ada", country),
        )
        .await;
        if country != "DE" {
            expected.push(id.to_string());
        }
        app.wait_for(&id.to_string(), Some(1)).await;
    }

    let filter = v1::UserFilter {
        countries: vec!["GB".into(), "FR".into()],
        updated_after: None,
        query: String::new(),
    };
    let pages = app.list_pages(filter, 3, Duration::ZERO).await;
    let seen: Vec<String> = pages.into_iter().flatten().map(|u| u.id).collect();
    assert_eq!(seen, expected);
}
