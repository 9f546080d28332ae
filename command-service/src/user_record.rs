//! A user as the write database holds it, without the password hash.

pub use shared::user_state::UserState as UserRecord;
