//! The topic names: the three event topics of the contract and the projector's dead letters.

pub const USER_CREATED: &str = "user-created_v1";
pub const USER_UPDATED: &str = "user-updated_v1";
pub const USER_DELETED: &str = "user-deleted_v1";
pub const DEAD_LETTER: &str = "user-events-dlq_v1";

/// Topic names with the configured prefix applied (tests give each run its own prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub created: String,
    pub updated: String,
    pub deleted: String,
    pub dead_letter: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            created: format!("{prefix}{USER_CREATED}"),
            updated: format!("{prefix}{USER_UPDATED}"),
            deleted: format!("{prefix}{USER_DELETED}"),
            dead_letter: format!("{prefix}{DEAD_LETTER}"),
        }
    }

    /// The three topics that carry user events.
    pub fn events(&self) -> [&str; 3] {
        [&self.created, &self.updated, &self.deleted]
    }
}
