//! Every write a client saw acknowledged: the versions each OK named, and the version of each
//! acknowledged deletion. What the services must never lose.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use shared_proto::v1;
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Acks {
    pub(crate) versions: BTreeSet<u64>,
    pub(crate) deleted_at: Option<u64>,
}

impl Acks {
    /// Every acknowledged version, the deletion's included.
    pub(crate) fn all(&self) -> impl Iterator<Item = u64> + '_ {
        self.versions.iter().copied().chain(self.deleted_at)
    }

    pub(crate) fn newest(&self) -> u64 {
        self.all().max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    users: Arc<Mutex<BTreeMap<Uuid, Acks>>>,
}

impl Ledger {
    fn with<T>(&self, change: impl FnOnce(&mut BTreeMap<Uuid, Acks>) -> T) -> T {
        change(&mut self.users.lock().expect("ledger lock poisoned"))
    }

    /// A user as a CreateUser or UpdateUser response carried it.
    pub(crate) fn ack(&self, user: &v1::User) {
        let id = Uuid::parse_str(&user.id).expect("the service answers with UUIDs");
        self.with(|users| users.entry(id).or_default().versions.insert(user.version));
    }

    pub(crate) fn ack_delete(&self, id: Uuid, version: u64) {
        self.with(|users| users.entry(id).or_default().deleted_at = Some(version));
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<Uuid, Acks> {
        self.with(|users| users.clone())
    }

    /// Acknowledged writes so far, deletions included.
    pub(crate) fn writes(&self) -> u64 {
        self.with(|users| users.values().map(|acks| acks.all().count() as u64).sum())
    }

    pub(crate) fn newest(&self, id: Uuid) -> u64 {
        self.with(|users| users.get(&id).map_or(0, Acks::newest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_versions_and_deletions_are_counted() {
        let ledger = Ledger::default();
        let id = Uuid::now_v7();
        for version in [1, 2, 3] {
            ledger.ack(&v1::User {
                id: id.to_string(),
                version,
                ..v1::User::default()
            });
        }
        ledger.ack_delete(id, 4);
        assert_eq!(ledger.writes(), 4);
        assert_eq!(ledger.newest(id), 4);
    }
}
