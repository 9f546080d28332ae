use deadpool_postgres::GenericClient;
use shared::grpc_error::{FieldViolations, parse_id};
use shared_proto::v1::{UpdateUserRequest, UpdateUserResponse, User};
use uuid::Uuid;

use super::{Commands, check_version};
use crate::{
    domain::{self, Email, Nickname, Password, PersonName, UpdatableField, UpdateMask},
    error::CommandError,
    events::{self, Origin},
    request_ids::{self, Marked},
    store::{self, UserValues},
};
use shared_proto::user_state::UserState;

/// A validated update: the new value of every field the mask names.
#[derive(Debug, Default)]
struct Changes {
    first_name: Option<PersonName>,
    last_name: Option<PersonName>,
    nickname: Option<Nickname>,
    email: Option<Email>,
    country: Option<String>,
    password: Option<Password>,
}

pub(super) async fn handle(
    commands: &Commands,
    request: UpdateUserRequest,
    origin: Origin,
) -> Result<UpdateUserResponse, CommandError> {
    let (id, changes, marked) = validate(&request)?;
    let marked = marked.map(|marked| marked.by(&origin.caller));
    let requests = &commands.request_ids;
    let password_hash = match changes.password.clone() {
        Some(password) => {
            // A retry is answered before the hash and the version check (which its first
            // attempt moved past); without a password the claim below answers it first.
            if let Some(marked) = &marked
                && let Some(answer) = requests.answered(&commands.pool, marked).await?
            {
                return Ok(answer);
            }
            // A hash costs tens of milliseconds of CPU and 19 MiB: only for a user that
            // exists, at the version the caller expects.
            commands
                .pool
                .run(async |client| {
                    let (current, _) = store::read(&*client, id).await?;
                    check_version(&current, request.expected_version)
                })
                .await?;
            Some(commands.hasher.hash(password).await?)
        }
        None => None,
    };
    let update = Update {
        id,
        changes: &changes,
        password_hash,
        expected_version: request.expected_version,
        origin: &origin,
        notify_relays: commands.notify_relays,
    };

    let outcome = commands
        .pool
        .run(async |client| {
            let Some(marked) = &marked else {
                return update.write(&*client).await;
            };
            // Marked with a request_id: the update and its answer commit together.
            let tx = client.transaction().await?;
            if let Some(answer) = requests.claim(&tx, marked).await? {
                return Ok(Updated::Answered(answer));
            }
            let outcome = update.write(&tx).await?;
            requests.answer(&tx, marked, &outcome.response()).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await?;
    if let Updated::Changed(updated, changed) = &outcome {
        commands.relay_wake.notify_one();
        tracing::debug!(user_id = %id, version = updated.version, ?changed, caller = ?origin.caller.id, "user updated");
    }
    Ok(outcome.response())
}

/// A validated update, ready to be written.
struct Update<'a> {
    id: Uuid,
    changes: &'a Changes,
    password_hash: Option<String>,
    expected_version: Option<u64>,
    origin: &'a Origin,
    notify_relays: bool,
}

impl Update<'_> {
    /// Read, compute, then write only if the user is still as read: two statements and no
    /// lock held between them. A call that lost a race computes again from what won it.
    async fn write<C: GenericClient>(&self, client: &C) -> Result<Updated, CommandError> {
        let (id, changes, origin) = (self.id, self.changes, self.origin);
        for _ in 0..ATTEMPTS {
            let (current, now) = store::read(client, id).await?;
            check_version(&current, self.expected_version)?;
            let (values, changed) = apply(&current, changes, self.password_hash.clone());
            if changed.is_empty() {
                // Nothing differs: no new version, no event.
                return Ok(Updated::Unchanged(current));
            }
            let updated = UserState {
                id,
                first_name: values.first_name,
                last_name: values.last_name,
                nickname: values.nickname,
                email: values.email,
                country: values.country,
                created_at: current.created_at,
                updated_at: now,
                version: current.version + 1,
            };
            let event = events::user_updated(&updated, &changed, origin.clone());
            let written = store::update_with_event(
                client,
                &updated,
                values.password_hash.as_deref(),
                &event,
                self.notify_relays,
            )
            .await?;
            if written {
                return Ok(Updated::Changed(updated, changed));
            }
        }
        Err(CommandError::Contended(id))
    }
}

/// What an update came to.
enum Updated {
    /// A retry of a request marked with a request_id: what the first attempt answered.
    Answered(UpdateUserResponse),
    /// Nothing differed: no new version, no event.
    Unchanged(UserState),
    /// Written, with the names of the fields that changed.
    Changed(UserState, Vec<UpdatableField>),
}

impl Updated {
    fn response(&self) -> UpdateUserResponse {
        match self {
            Updated::Answered(answer) => answer.clone(),
            Updated::Unchanged(user) | Updated::Changed(user, _) => UpdateUserResponse {
                user: Some(user.to_proto()),
            },
        }
    }
}

/// How many times an update is computed again after other calls changed the user first.
const ATTEMPTS: usize = 3;

fn validate(
    request: &UpdateUserRequest,
) -> Result<(Uuid, Changes, Option<Marked>), FieldViolations> {
    let mut violations = FieldViolations::new();
    let request_id = violations.check("request_id", request_ids::parse(&request.request_id));
    let empty = User::default();
    let user = request.user.as_ref().unwrap_or(&empty);
    let id = violations.check("id", parse_id(&user.id));
    let paths: &[String] = request
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.as_slice())
        .unwrap_or_default();
    let Some(mask) = violations.check("update_mask", UpdateMask::parse(paths)) else {
        return Err(violations);
    };
    let mut changes = Changes::default();
    for field in mask.fields() {
        match field {
            UpdatableField::FirstName => {
                changes.first_name =
                    violations.check("first_name", PersonName::parse(&user.first_name));
            }
            UpdatableField::LastName => {
                changes.last_name =
                    violations.check("last_name", PersonName::parse(&user.last_name));
            }
            UpdatableField::Nickname => {
                changes.nickname = violations.check("nickname", Nickname::parse(&user.nickname));
            }
            UpdatableField::Email => {
                changes.email = violations.check("email", Email::parse(&user.email));
            }
            UpdatableField::Country => {
                changes.country = violations
                    .check("country", domain::optional_country(&user.country))
                    .map(|country| country.map(|c| c.to_string()).unwrap_or_default());
            }
            UpdatableField::Password => {
                changes.password = violations.check("password", Password::parse(&request.password));
            }
        }
    }
    match (id, request_id) {
        (Some(id), Some(request_id)) if violations.is_empty() => {
            let marked = request_id.map(|request_id| {
                let unmarked = UpdateUserRequest {
                    password: String::new(),
                    request_id: String::new(),
                    ..request.clone()
                };
                Marked::new(request_id, "UpdateUser", &unmarked)
            });
            Ok((id, changes, marked))
        }
        _ => Err(violations),
    }
}

/// The values after the update and the fields whose value really changes. A new password
/// always counts as a change: its hash cannot be compared.
fn apply(
    current: &UserState,
    changes: &Changes,
    password_hash: Option<String>,
) -> (UserValues, Vec<UpdatableField>) {
    let mut changed = Vec::new();
    let mut pick = |field: UpdatableField, new: Option<&str>, old: &str| -> String {
        match new {
            Some(new) if new != old => {
                changed.push(field);
                new.to_owned()
            }
            _ => old.to_owned(),
        }
    };
    let values = UserValues {
        first_name: pick(
            UpdatableField::FirstName,
            changes.first_name.as_ref().map(PersonName::as_str),
            &current.first_name,
        ),
        last_name: pick(
            UpdatableField::LastName,
            changes.last_name.as_ref().map(PersonName::as_str),
            &current.last_name,
        ),
        nickname: pick(
            UpdatableField::Nickname,
            changes.nickname.as_ref().map(Nickname::as_str),
            &current.nickname,
        ),
        email: pick(
            UpdatableField::Email,
            changes.email.as_ref().map(Email::as_str),
            &current.email,
        ),
        country: pick(
            UpdatableField::Country,
            changes.country.as_deref(),
            &current.country,
        ),
        password_hash,
    };
    if values.password_hash.is_some() {
        changed.push(UpdatableField::Password);
    }
    (values, changed)
}

#[cfg(test)]
mod tests {
    use prost_types::FieldMask;
    use time::OffsetDateTime;

    use super::*;

    fn current() -> UserState {
        UserState {
            id: Uuid::now_v7(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            nickname: "ada".into(),
            email: "ada@example.com".into(),
            country: "GB".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            version: 3,
        }
    }

    fn request(paths: &[&str], user: User) -> UpdateUserRequest {
        UpdateUserRequest {
            user: Some(User {
                id: Uuid::now_v7().to_string(),
                ..user
            }),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            password: String::new(),
            expected_version: None,
            request_id: String::new(),
        }
    }

    #[test]
    fn only_masked_fields_are_validated_and_changed() {
        let user = User {
            last_name: "Byron".into(),
            email: "not an address".into(),
            ..User::default()
        };
        let (_, changes, _) = validate(&request(&["last_name"], user)).unwrap();
        let (values, changed) = apply(&current(), &changes, None);
        assert_eq!(changed, [UpdatableField::LastName]);
        assert_eq!(values.last_name, "Byron");
        assert_eq!(values.email, "ada@example.com");
        assert_eq!(values.first_name, "Ada");
    }

    #[test]
    fn a_masked_field_with_its_current_value_is_not_a_change() {
        let user = User {
            first_name: "Ada".into(),
            country: "FR".into(),
            ..User::default()
        };
        let (_, changes, _) = validate(&request(&["first_name", "country"], user)).unwrap();
        let (_, changed) = apply(&current(), &changes, None);
        assert_eq!(changed, [UpdatableField::Country]);
    }

    #[test]
    fn clearing_an_optional_field_is_a_change() {
        let (_, changes, _) =
            validate(&request(&["nickname", "country"], User::default())).unwrap();
        let (values, changed) = apply(&current(), &changes, None);
        assert_eq!(changed, [UpdatableField::Nickname, UpdatableField::Country]);
        assert_eq!(
            (values.nickname.as_str(), values.country.as_str()),
            ("", "")
        );
    }

    #[test]
    fn a_new_password_is_always_a_change() {
        let mut request = request(&["password"], User::default());
        request.password = "a new passphrase".into();
        let (_, changes, _) = validate(&request).unwrap();
        let (values, changed) = apply(&current(), &changes, Some("$argon2id$hash".into()));
        assert_eq!(changed, [UpdatableField::Password]);
        assert_eq!(values.password_hash.as_deref(), Some("$argon2id$hash"));
    }

    #[test]
    fn bad_masks_and_masked_values_are_refused_by_field() {
        let missing_mask = UpdateUserRequest {
            update_mask: None,
            ..request(&[], User::default())
        };
        let violations = validate(&missing_mask).unwrap_err();
        assert_eq!(
            violations.iter().next(),
            Some(("update_mask", "must name at least one field"))
        );

        let violations = validate(&request(&["email", "password"], User::default())).unwrap_err();
        let fields: Vec<_> = violations.iter().map(|(field, _)| field).collect();
        assert_eq!(fields, ["email", "password"]);

        let mut bad_id = request(
            &["first_name"],
            User {
                first_name: "Ada".into(),
                ..User::default()
            },
        );
        bad_id.user.as_mut().unwrap().id = "42".into();
        let violations = validate(&bad_id).unwrap_err();
        assert_eq!(violations.iter().next(), Some(("id", "must be a UUID")));
    }
}
