//! BatchGetUsers, GetUserByEmail and ListUsers' updated_after and query filters, on users
//! projected from events.

use std::time::Duration;

use prost_types::Timestamp;
use shared_proto::v1;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::*;

/// A user with the given names and address, changed at `changed` seconds past a base time.
fn person(
    first: &str,
    last: &str,
    nickname: &str,
    email: &str,
    country: &str,
    changed: i64,
) -> v1::User {
    v1::User {
        first_name: first.into(),
        last_name: last.into(),
        nickname: nickname.into(),
        email: email.into(),
        country: country.into(),
        updated_at: Some(at(changed)),
        ..user(Uuid::now_v7(), 1, first, country)
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp {
        seconds: 1_700_000_000 + seconds,
        nanos: 0,
    }
}

async fn project(app: &mut QueryApp, users: &[v1::User]) {
    let writer = EventWriter::new(&testkit::broker::brokers());
    for user in users {
        publish(&writer, &app.topics, "created", user).await;
    }
    for user in users {
        app.wait_for(&user.id, Some(1)).await;
    }
}

fn fields(status: &tonic::Status) -> Vec<String> {
    testkit::grpc::field_violations(status)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

fn batch(ids: &[&str], allow_missing: bool) -> v1::BatchGetUsersRequest {
    v1::BatchGetUsersRequest {
        ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        allow_missing,
    }
}

#[tokio::test]
async fn a_batch_answers_in_the_order_asked_and_fails_on_a_missing_id_unless_allowed() {
    let mut app = spawn_query().await;
    let users: Vec<_> = ["Ada", "Grace", "Edsger"]
        .iter()
        .map(|name| person(name, "X", "", &format!("{name}@example.com"), "GB", 1))
        .collect();
    project(&mut app, &users).await;
    let deleted = users[2].clone();
    let writer = EventWriter::new(&testkit::broker::brokers());
    let gone = v1::User {
        version: 2,
        ..deleted.clone()
    };
    publish(&writer, &app.topics, "deleted", &gone).await;
    app.wait_for(&deleted.id, None).await;

    let (a, b) = (users[0].id.as_str(), users[1].id.as_str());
    let answer = app
        .client
        .batch_get_users(batch(&[b, a, b], false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.users,
        [users[1].clone(), users[0].clone(), users[1].clone()]
    );
    assert!(answer.missing_ids.is_empty());

    let unknown = Uuid::now_v7().to_string();
    let asked = [a, deleted.id.as_str(), unknown.as_str()];
    let missing = app
        .client
        .batch_get_users(batch(&asked, false))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().contains(&deleted.id) && missing.message().contains(&unknown),
        "{}",
        missing.message()
    );

    let allowed = app
        .client
        .batch_get_users(batch(&asked, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allowed.users, [users[0].clone()]);
    assert_eq!(allowed.missing_ids, [deleted.id.clone(), unknown]);
}

#[tokio::test]
async fn a_batch_is_served_from_the_cache_and_caches_what_it_reads() {
    let mut app = spawn_query().await;
    let users: Vec<_> = (0..5)
        .map(|n| person("Ada", "X", "", &format!("ada{n}@example.com"), "GB", 1))
        .collect();
    project(&mut app, &users).await;
    let ids: Vec<&str> = users.iter().map(|user| user.id.as_str()).collect();
    let hits = async |app: &QueryApp| {
        let (_, text) = testkit::http::get(app.http_addr, "/metrics").await;
        let samples = testkit::metrics::parse_metrics(&text);
        testkit::metrics::sum(&samples, "query_cache_requests_total", &[("result", "hit")])
    };
    // wait_for's GetUser calls cached them: the batch is all hits.
    let before = hits(&app).await;
    let answer = app
        .client
        .batch_get_users(batch(&ids, false))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().users, users);
    assert_eq!(hits(&app).await - before, ids.len() as f64);

    // A row the projector did not write (so never cached) is read with the misses, then kept.
    let unseen = Uuid::now_v7();
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO user_views (id, first_name, last_name, nickname, email, country, \
                                     created_at, updated_at, version) \
             VALUES ($1, 'Unseen', 'X', '', 'unseen@example.com', 'GB', now(), now(), 1)",
            &[&unseen],
        )
        .await
        .unwrap();
    let unseen = unseen.to_string();
    let asked = [ids[0], unseen.as_str()];
    let before = hits(&app).await;
    let first = app
        .client
        .batch_get_users(batch(&asked, false))
        .await
        .unwrap();
    assert_eq!(first.into_inner().users[1].first_name, "Unseen");
    assert_eq!(hits(&app).await - before, 1.0, "the unseen row was a miss");
    app.client
        .batch_get_users(batch(&asked, false))
        .await
        .unwrap();
    assert_eq!(hits(&app).await - before, 3.0, "then both were hits");
}

#[tokio::test]
async fn a_batch_of_more_than_a_thousand_or_with_a_malformed_id_is_invalid_argument() {
    let mut app = spawn_query().await;
    let many: Vec<String> = (0..1001).map(|_| Uuid::now_v7().to_string()).collect();
    let too_many = app
        .client
        .batch_get_users(v1::BatchGetUsersRequest {
            ids: many,
            allow_missing: true,
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert_eq!(fields(&too_many), ["ids"]);

    let good = Uuid::now_v7().to_string();
    let malformed = app
        .client
        .batch_get_users(batch(&[&good, &good, "nope"], true))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert_eq!(fields(&malformed), ["ids[2]"]);
}

#[tokio::test]
async fn an_email_finds_its_live_user_whatever_the_case_and_only_whole() {
    let mut app = spawn_query().await;
    let ada = person("Ada", "Lovelace", "", "Ada.Lovelace@Example.com", "GB", 1);
    project(&mut app, std::slice::from_ref(&ada)).await;
    let by_email = async |app: &mut QueryApp, email: &str| {
        app.client
            .get_user_by_email(v1::GetUserByEmailRequest {
                email: email.to_owned(),
            })
            .await
            .map(|answer| answer.into_inner().user.unwrap())
    };
    assert_eq!(
        by_email(&mut app, "ada.lovelace@example.COM")
            .await
            .unwrap(),
        ada
    );
    for other in ["ada.lovelace@example.co", "ada@example.com"] {
        let status = by_email(&mut app, other).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{other}");
    }
    let invalid = by_email(&mut app, "not an address").await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(fields(&invalid), ["email"]);

    // Deleted, the address names nobody; taken by another user, it names that one.
    let writer = EventWriter::new(&testkit::broker::brokers());
    let gone = v1::User {
        version: 2,
        updated_at: Some(at(2)),
        ..ada.clone()
    };
    publish(&writer, &app.topics, "deleted", &gone).await;
    app.wait_for(&ada.id, None).await;
    let deleted = by_email(&mut app, "ada.lovelace@example.com")
        .await
        .unwrap_err();
    assert_eq!(deleted.code(), Code::NotFound);
    let next = person("Augusta", "King", "", "ada.lovelace@example.com", "GB", 3);
    project(&mut app, std::slice::from_ref(&next)).await;
    assert_eq!(
        by_email(&mut app, "ADA.LOVELACE@example.com")
            .await
            .unwrap(),
        next
    );
}

fn filter(countries: &[&str], updated_after: Option<Timestamp>, query: &str) -> v1::UserFilter {
    v1::UserFilter {
        countries: countries.iter().map(|code| (*code).to_owned()).collect(),
        updated_after,
        query: query.to_owned(),
    }
}

fn names(pages: &[Vec<v1::User>]) -> Vec<String> {
    pages
        .iter()
        .flatten()
        .map(|user| user.first_name.clone())
        .collect()
}

#[tokio::test]
async fn list_filters_by_prefix_and_change_time_alone_and_combined_across_pages() {
    let mut app = spawn_query().await;
    // Created in this order, so ids (and listings) follow it.
    let users = [
        person("Ada", "Lovelace", "", "countess@example.com", "GB", 10),
        person("Grace", "Adams", "", "grace@example.com", "US", 20),
        person("Alan", "Turing", "Adder", "alan@example.com", "GB", 30),
        person("Edsger", "Dijkstra", "", "adjacent@example.nl", "NL", 40),
        person("Barbara", "Liskov", "", "barbara@example.com", "US", 50),
        person("Ádám", "Kovács", "", "adam@example.hu", "HU", 60),
    ];
    project(&mut app, &users).await;

    let everything = Duration::ZERO;
    let by_prefix = app.list_pages(filter(&[], None, "ad"), 2, everything).await;
    assert_eq!(
        names(&by_prefix),
        ["Ada", "Grace", "Alan", "Edsger", "Ádám"]
    );
    assert!(by_prefix.iter().all(|page| page.len() <= 2));
    let upper = app
        .list_pages(filter(&[], None, " AD "), 50, everything)
        .await;
    assert_eq!(
        names(&upper),
        names(&by_prefix),
        "case and spaces do not matter"
    );
    let accented = app
        .list_pages(filter(&[], None, "ÁD"), 50, everything)
        .await;
    assert_eq!(names(&accented), ["Ádám"]);

    let later = app
        .list_pages(filter(&[], Some(at(30)), ""), 2, everything)
        .await;
    assert_eq!(
        names(&later),
        ["Edsger", "Barbara", "Ádám"],
        "strictly later"
    );

    let combined = app
        .list_pages(filter(&["GB", "US"], Some(at(10)), "ad"), 1, everything)
        .await;
    assert_eq!(names(&combined), ["Grace", "Alan"]);
    let gb = app
        .list_pages(filter(&["GB"], None, "ad"), 1, everything)
        .await;
    assert_eq!(names(&gb), ["Ada", "Alan"]);
}

#[tokio::test]
async fn a_page_token_is_bound_to_the_filters_and_bad_filters_are_invalid_argument() {
    let mut app = spawn_query().await;
    let users: Vec<_> = (0..3)
        .map(|n| person("Ada", "X", "", &format!("ada{n}@example.com"), "GB", n))
        .collect();
    project(&mut app, &users).await;
    let first = app
        .client
        .list_users(v1::ListUsersRequest {
            filter: Some(filter(&[], None, "ada")),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for other in [filter(&[], None, "ad"), filter(&[], Some(at(0)), "ada")] {
        let status = app
            .client
            .list_users(v1::ListUsersRequest {
                filter: Some(other),
                page_size: 1,
                page_token: first.next_page_token.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(fields(&status), ["page_token"]);
    }

    let bad = app
        .client
        .list_users(v1::ListUsersRequest {
            filter: Some(filter(
                &[],
                Some(Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                "a",
            )),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(fields(&bad), ["filter.updated_after", "filter.query"]);
}
