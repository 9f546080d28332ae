//! Values a user is made of, each a type that can only hold a valid value, and the checks
//! that turn a request into them.

mod name;
mod nickname;
mod password;
mod update_mask;

pub use name::PersonName;
pub use nickname::Nickname;
pub use password::Password;
pub use shared::{country::CountryCode, email::Email};
pub use update_mask::{UpdatableField, UpdateMask};

/// A country that may be left unset (an empty string on the wire).
pub fn optional_country(text: &str) -> Result<Option<CountryCode>, &'static str> {
    if text.is_empty() {
        Ok(None)
    } else {
        CountryCode::parse(text).map(Some)
    }
}
