//! The bans the core hands out (`Output::Ban`), as an adapter keeps them: by user name, checked
//! at every token upgrade. With `--store memory` the map is all there is (a restart forgets
//! them); with `--store sqlite` it is loaded from the store at start and every new ban is also
//! written there (by the adapter).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// One ban: when it ends, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// The bans in force, by user name.
pub type Bans = HashMap<String, Ban>;

/// The bans the store gave back at start.
pub fn loaded_bans(bans: Vec<chat_store::Ban>) -> Bans {
    bans.into_iter()
        .map(|b| {
            (
                b.user,
                Ban {
                    until: crate::store_records::timestamp(b.until_ms),
                    reason: b.reason,
                },
            )
        })
        .collect()
}

/// An admin banned `user` (`Output::Ban`): kept in `bans` for the upgrade check, and in the
/// store when messages are durable.
pub fn record(
    bans: &mut Bans,
    store: Option<&chat_store::RunningStore>,
    user: String,
    until: DateTime<Utc>,
    reason: String,
) {
    log::info!("{user:?} banned until {until}");
    if let Some(store) = store {
        store.ban(chat_store::Ban {
            user: user.clone(),
            until_ms: until.timestamp_millis(),
            reason: reason.clone(),
        });
    }
    bans.insert(user, Ban { until, reason });
}

/// Why `user` may not connect at `now` (the body of a 403), if a ban holds; an ended ban is
/// forgotten here.
pub fn refusal(bans: &mut Bans, user: &str, now: DateTime<Utc>) -> Option<String> {
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
