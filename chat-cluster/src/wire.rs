//! The events on a room's channel, as JSON. Messages carry their id; presence, typing and
//! direct messages do not (they are not part of the room's history).

use serde::{Deserialize, Serialize};

/// One event on a room's channel, as published (`k` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(crate) enum Wire {
    /// A chat message with its id (built half in Rust, half by the publish script).
    #[serde(rename = "m")]
    Message {
        id: u64,
        /// The epoch the id belongs to.
        e: u64,
        u: String,
        t: String,
        ts: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        c: Option<String>,
        /// The node it came through.
        n: String,
    },
    /// One connection opened (`j`) or closed, on node `n`.
    #[serde(rename = "conn")]
    Connection { u: String, j: bool, n: String },
    /// An admin deleted message `id`.
    #[serde(rename = "del")]
    Deleted { id: u64 },
    #[serde(rename = "join")]
    Join { u: String },
    #[serde(rename = "leave")]
    Leave { u: String },
    #[serde(rename = "typing")]
    Typing { u: String, n: String },
    #[serde(rename = "dm")]
    Direct {
        u: String,
        to: String,
        t: String,
        ts: i64,
        n: String,
    },
}

/// The part of a message event after `{"k":"m","id":N,"e":E` (which the publish script writes,
/// as only it knows the id and the epoch): `,"u":..,"t":..,"ts":..,"c":..,"n":..}`.
pub(crate) fn message_tail(
    user: &str,
    text: &str,
    timestamp_ms: i64,
    client_msg_id: Option<&str>,
    node: &str,
) -> String {
    #[derive(Serialize)]
    struct Tail<'a> {
        u: &'a str,
        t: &'a str,
        ts: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        c: Option<&'a str>,
        n: &'a str,
    }
    let object = serde_json::to_string(&Tail {
        u: user,
        t: text,
        ts: timestamp_ms,
        c: client_msg_id,
        n: node,
    })
    .unwrap_or_else(|_| "{}".to_owned());
    // `{"u":...}` becomes `,"u":...}`.
    format!(",{}", object.strip_prefix('{').unwrap_or(&object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_event_written_in_two_halves_reads_back_whole() {
        let tail = message_tail("al\"ice", "hé \n \\ </script>", 1_700, Some("k1"), "n1");
        let event = format!("{{\"k\":\"m\",\"id\":42,\"e\":7{tail}");
        let parsed: Wire = serde_json::from_str(&event).expect("valid JSON");
        assert_eq!(
            parsed,
            Wire::Message {
                id: 42,
                e: 7,
                u: "al\"ice".into(),
                t: "hé \n \\ </script>".into(),
                ts: 1_700,
                c: Some("k1".into()),
                n: "n1".into(),
            }
        );
        let without = format!(
            "{{\"k\":\"m\",\"id\":1,\"e\":1{}",
            message_tail("a", "b", 0, None, "n")
        );
        assert!(matches!(
            serde_json::from_str::<Wire>(&without),
            Ok(Wire::Message { c: None, .. })
        ));
    }
}
