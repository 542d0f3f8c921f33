//! Moderation that outlives a connection: the bans the core hands out (`Output::Ban`), kept in
//! memory and (durable) in the store, checked at every token upgrade; and deleted messages'
//! text, removed from the store (`Output::DeleteStored`). Kicks and the closes of a ban are
//! plain close outputs (`core_bridge.rs`).

use std::collections::HashMap;

use chat_protocol::RoomName;
use chrono::{DateTime, Utc};

use super::EventLoop;

/// One ban: when it ends, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// The bans in force, by user name. With `--store memory` this map is all there is (a restart
/// forgets them); with `--store sqlite` it is loaded from the store at start and every new ban
/// is also written there.
pub type Bans = HashMap<String, Ban>;

/// The bans the store gave back at start.
pub fn loaded_bans(bans: Vec<chat_store::Ban>) -> Bans {
    bans.into_iter()
        .map(|b| {
            (
                b.user,
                Ban {
                    until: chat_adapter::store_records::timestamp(b.until_ms),
                    reason: b.reason,
                },
            )
        })
        .collect()
}

impl EventLoop {
    /// An admin banned `user`: kept here for the upgrade check, and in the store if durable.
    pub(super) fn ban(&mut self, user: String, until: DateTime<Utc>, reason: String) {
        log::info!("{user:?} banned until {until}");
        if let Some(store) = &self.store {
            store.ban(chat_store::Ban {
                user: user.clone(),
                until_ms: until.timestamp_millis(),
                reason: reason.clone(),
            });
        }
        self.bans.insert(user, Ban { until, reason });
    }

    /// An admin deleted a message: its text goes from the store too.
    pub(super) fn delete_stored(&mut self, room: RoomName, id: u64) {
        log::info!("message {id} of {room} deleted by an admin");
        if let Some(store) = &self.store {
            store.delete_text(room.as_str().to_owned(), id);
        }
    }

    /// Why `user` may not connect now (the body of a 403), if banned.
    pub(super) fn banned(&mut self, user: &str) -> Option<String> {
        refusal(&mut self.bans, user, self.now.wall)
    }
}

/// Why `user` may not connect at `now`, if a ban holds; an ended ban is forgotten here.
fn refusal(bans: &mut Bans, user: &str, now: DateTime<Utc>) -> Option<String> {
    let ban = bans.get(user)?;
    if ban.until <= now {
        bans.remove(user);
        return None;
    }
    let until = ban.until.format("%Y-%m-%dT%H:%M:%SZ");
    Some(if ban.reason.is_empty() {
        format!("{user:?} is banned until {until}\n")
    } else {
        format!("{user:?} is banned until {until}: {}\n", ban.reason)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_ban_refuses_until_it_ends_then_is_forgotten() {
        let start = DateTime::<Utc>::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut bans = Bans::new();
        bans.insert(
            "bob".into(),
            Ban {
                until: start + Duration::from_secs(60),
                reason: "spam".into(),
            },
        );
        assert_eq!(refusal(&mut bans, "alice", start), None);
        assert_eq!(
            refusal(&mut bans, "bob", start + Duration::from_secs(59)).as_deref(),
            Some("\"bob\" is banned until 2027-01-15T08:01:00Z: spam\n")
        );
        assert_eq!(
            refusal(&mut bans, "bob", start + Duration::from_secs(60)),
            None
        );
        assert!(bans.is_empty(), "an ended ban is dropped");
    }
}
