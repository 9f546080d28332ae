use shared::grpc_error::FieldViolations;
use shared_proto::v1::{CreateUserRequest, CreateUserResponse};
use uuid::Uuid;

use super::Commands;
use crate::{
    domain::{self, Email, Nickname, Password, PersonName},
    error::CommandError,
    events,
    events::Origin,
    outbox,
    request_ids::{self, Marked},
    store::{self, NewUser},
};

pub(super) async fn handle(
    commands: &Commands,
    request: CreateUserRequest,
    origin: Origin,
) -> Result<CreateUserResponse, CommandError> {
    let (user, password, marked) = validate(&request)?;
    let marked = marked.map(|marked| marked.by(&origin.caller));
    let requests = &commands.request_ids;
    if let Some(marked) = &marked
        && let Some(answer) = requests.answered(&commands.pool, marked).await?
    {
        return Ok(answer);
    }
    let password_hash = commands.hasher.hash(password).await?;

    let (response, created) = commands
        .pool
        .run(async |client| {
            let tx = client.transaction().await?;
            if let Some(marked) = &marked
                && let Some(answer) = requests.claim(&tx, marked).await?
            {
                return Ok((answer, false));
            }
            let created = store::insert(&tx, &user, &password_hash).await?;
            outbox::enqueue(
                &tx,
                &events::user_created(&created, origin.clone()),
                commands.notify_relays,
            )
            .await?;
            let response = CreateUserResponse {
                user: Some(created.to_proto()),
            };
            if let Some(marked) = &marked {
                requests.answer(&tx, marked, &response).await?;
            }
            tx.commit().await?;
            Ok::<_, CommandError>((response, true))
        })
        .await?;
    if created {
        commands.relay_wake.notify_one();
        tracing::debug!(user_id = %user.id, caller = ?origin.caller.id, "user created");
    }
    Ok(response)
}

fn validate(
    request: &CreateUserRequest,
) -> Result<(NewUser, Password, Option<Marked>), FieldViolations> {
    let mut violations = FieldViolations::new();
    let request_id = violations.check("request_id", request_ids::parse(&request.request_id));
    let password = violations.check("password", Password::parse(&request.password));
    let Some(user) = &request.user else {
        violations.add("user", "is required");
        return Err(violations);
    };
    let first_name = violations.check("first_name", PersonName::parse(&user.first_name));
    let last_name = violations.check("last_name", PersonName::parse(&user.last_name));
    let nickname = violations.check("nickname", Nickname::parse(&user.nickname));
    let email = violations.check("email", Email::parse(&user.email));
    let country = violations.check("country", domain::optional_country(&user.country));
    match (
        first_name, last_name, nickname, email, country, password, request_id,
    ) {
        (
            Some(first_name),
            Some(last_name),
            Some(nickname),
            Some(email),
            Some(country),
            Some(password),
            Some(request_id),
        ) => {
            let marked = request_id.map(|id| {
                let unmarked = CreateUserRequest {
                    password: String::new(),
                    request_id: String::new(),
                    ..request.clone()
                };
                Marked::new(id, "CreateUser", &unmarked)
            });
            let user = NewUser {
                id: Uuid::now_v7(),
                first_name,
                last_name,
                nickname,
                email,
                country,
            };
            Ok((user, password, marked))
        }
        _ => Err(violations),
    }
}

#[cfg(test)]
mod tests {
    use shared_proto::v1::User;

    use super::*;

    fn request() -> CreateUserRequest {
        CreateUserRequest {
            user: Some(User {
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                nickname: "ada".into(),
                email: "ada@example.com".into(),
                country: "GB".into(),
                ..User::default()
            }),
            password: "correct horse battery".into(),
            request_id: String::new(),
        }
    }

    #[test]
    fn a_complete_request_is_valid() {
        let (user, _, _) = validate(&request()).unwrap();
        assert_eq!(user.email.as_str(), "ada@example.com");
        assert_eq!(user.id.get_version_num(), 7);
    }

    #[test]
    fn nickname_and_country_may_be_left_out() {
        let mut request = request();
        let user = request.user.as_mut().unwrap();
        user.nickname.clear();
        user.country.clear();
        let (user, _, _) = validate(&request).unwrap();
        assert_eq!(user.country, None);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let mut request = request();
        let user = request.user.as_mut().unwrap();
        user.first_name = " ".into();
        user.email = "not-an-address".into();
        user.country = "XX".into();
        request.password = "short".into();
        let violations = validate(&request).unwrap_err();
        let fields: Vec<_> = violations.iter().map(|(field, _)| field).collect();
        assert_eq!(fields, ["password", "first_name", "email", "country"]);
    }

    #[test]
    fn a_request_without_a_user_is_refused() {
        let violations = validate(&CreateUserRequest::default()).unwrap_err();
        assert!(
            violations
                .iter()
                .any(|(field, reason)| field == "user" && reason == "is required")
        );
    }
}
