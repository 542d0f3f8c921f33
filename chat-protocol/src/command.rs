//! The JSON commands a v2 client sends, and why a malformed one is refused.

use std::borrow::Cow;

use serde::Deserialize;

/// The most characters of a `client_msg_id`.
const MAX_CLIENT_MSG_ID: usize = 64;

/// The page size of a `history_before` that names none.
pub(crate) const DEFAULT_PAGE: usize = 50;

/// The largest page a `history_before` may ask for.
pub(crate) const MAX_PAGE: usize = 100;

/// The most bytes of the explanation in a `bad_command` error frame: the parser's messages
/// quote the client's input, which must not come back at any length.
const MAX_EXPLANATION: usize = 200;

/// A well-formed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// A chat message for the room (a v1 client's text is one too). A v2 message's text was
    /// unescaped out of the JSON into a `String` of its own; a v1 text borrows the driver's
    /// buffer until it is stored.
    Message {
        text: Cow<'a, str>,
        client_msg_id: Option<String>,
    },
    /// "I am typing".
    Typing,
    /// A message for one user's eyes.
    Direct { to: String, text: String },
    /// Scroll-back: at most `limit` (1 to [`MAX_PAGE`]) messages of the room with ids below
    /// `before` (at least 1).
    HistoryBefore { before: u64, limit: usize },
    /// A fresh signed token for this connection (token authentication).
    Refresh { token: String },
    /// Admins only: close every connection of `user`.
    Kick { user: String, reason: String },
    /// Admins only: close the one connection that sent message `id` of the admin's room.
    KickSender { id: u64, reason: String },
    /// Admins only: close every connection of `user`, and keep it out for `minutes`.
    Ban {
        user: String,
        minutes: u64,
        reason: String,
    },
    /// Admins only: delete the message `id` of the admin's room.
    Delete { id: u64 },
}

impl Command<'_> {
    /// Whether only an admin may send it.
    pub(crate) fn is_moderation(&self) -> bool {
        matches!(
            self,
            Command::Kick { .. }
                | Command::KickSender { .. }
                | Command::Ban { .. }
                | Command::Delete { .. }
        )
    }
}

/// The longest user name a `kick` or `ban` may name, in bytes.
const MAX_USER: usize = 256;

/// The most bytes of a `kick` or `ban` reason that are kept (a longer one is cut, marked
/// with `…`): it is stored with a ban and shown in close frames and refusals.
pub(crate) const MAX_REASON: usize = 200;

/// The longest ban, in minutes: a year.
pub(crate) const MAX_BAN_MINUTES: u64 = 365 * 24 * 60;

/// The fields of a `kick` or `ban` command, and only those.
#[derive(Deserialize)]
struct ModerationFields {
    user: Option<String>,
    id: Option<u64>,
    minutes: Option<u64>,
    reason: Option<String>,
}

/// The fields of a `delete` command, and only those.
#[derive(Deserialize)]
struct DeleteFields {
    id: Option<u64>,
}

/// The longest token a `refresh` may carry, in bytes.
const MAX_TOKEN: usize = 8 * 1024;

/// The fields of a `refresh` command, and only those.
#[derive(Deserialize)]
struct RefreshFields {
    token: Option<String>,
}

/// The first look at a command: only its `type`. Every other field is skipped unread, so
/// that a field only another command uses is never type-checked (PROTOCOL.md: unknown extra
/// fields are ignored). Borrowed, since most types need no unescaping.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with a \"type\"")]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// The fields of a `message` command, and only those.
#[derive(Deserialize)]
struct MessageFields {
    message: Option<String>,
    client_msg_id: Option<String>,
}

/// The fields of a `direct` command, and only those.
#[derive(Deserialize)]
struct DirectFields {
    to: Option<String>,
    message: Option<String>,
}

/// The fields of a `history_before` command, and only those.
#[derive(Deserialize)]
struct HistoryBeforeFields {
    before: Option<u64>,
    limit: Option<u64>,
}

/// Parses one text frame of a v2 client. `Err` holds the `message` of the `bad_command` error
/// frame: human-readable, and never longer than a few hundred bytes whatever the input.
///
/// Two passes over the text: the first reads the `type`, the second only the fields that type
/// uses, so `{"type":"typing","message":5}` is a typing notice. A missing field of the type
/// is checked after parsing, for a clearer explanation than serde's.
pub(crate) fn parse(text: &str) -> Result<Command<'static>, String> {
    // A derived Deserialize also takes a struct as a positional array; a command is an object.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => "malformed command: not a JSON object".to_owned(),
            Err(e) => bounded(format!("malformed command: {e}")),
        });
    }
    let malformed = |e: serde_json::Error| bounded(format!("malformed command: {e}"));
    let Kind { kind } = serde_json::from_str(text).map_err(malformed)?;
    match &*kind {
        "message" => {
            let fields: MessageFields = serde_json::from_str(text).map_err(malformed)?;
            let text = fields
                .message
                .ok_or(r#"a "message" command needs a "message" string"#)?;
            if let Some(id) = &fields.client_msg_id {
                let chars = id.chars().count();
                if chars == 0 || chars > MAX_CLIENT_MSG_ID {
                    return Err(format!(
                        "client_msg_id must be 1 to {MAX_CLIENT_MSG_ID} characters"
                    ));
                }
            }
            Ok(Command::Message {
                text: text.into(),
                client_msg_id: fields.client_msg_id,
            })
        }
        "typing" => Ok(Command::Typing),
        "direct" => {
            let fields: DirectFields = serde_json::from_str(text).map_err(malformed)?;
            match (fields.to, fields.message) {
                (Some(to), Some(text)) => Ok(Command::Direct { to, text }),
                _ => Err(r#"a "direct" command needs "to" and "message" strings"#.to_owned()),
            }
        }
        "history_before" => {
            let fields: HistoryBeforeFields = serde_json::from_str(text).map_err(malformed)?;
            let before = fields
                .before
                .filter(|&b| b > 0)
                .ok_or(r#"a "history_before" command needs "before", a positive integer"#)?;
            let limit = match fields.limit {
                None => DEFAULT_PAGE,
                Some(n) => usize::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or(format!("limit must be 1 to {MAX_PAGE}"))?,
            };
            Ok(Command::HistoryBefore { before, limit })
        }
        "refresh" => {
            let fields: RefreshFields = serde_json::from_str(text).map_err(malformed)?;
            match fields.token {
                Some(token) if !token.is_empty() && token.len() <= MAX_TOKEN => {
                    Ok(Command::Refresh { token })
                }
                _ => Err(format!(
                    r#"a "refresh" command needs "token", a string of 1 to {MAX_TOKEN} bytes"#
                )),
            }
        }
        "kick" | "ban" => {
            let fields: ModerationFields = serde_json::from_str(text).map_err(malformed)?;
            if let (Some(id), None, "kick") = (fields.id, &fields.user, kind.as_ref()) {
                let reason = cut(fields.reason.unwrap_or_default(), MAX_REASON);
                return Ok(Command::KickSender { id, reason });
            }
            let user = fields
                .user
                .filter(|u| !u.is_empty() && u.len() <= MAX_USER)
                .ok_or(format!(
                    r#"a "{kind}" command needs "user", a string of 1 to {MAX_USER} bytes"#
                ))?;
            let reason = cut(fields.reason.unwrap_or_default(), MAX_REASON);
            if kind == "kick" {
                return Ok(Command::Kick { user, reason });
            }
            let minutes = fields
                .minutes
                .filter(|m| (1..=MAX_BAN_MINUTES).contains(m))
                .ok_or(format!(
                    r#"a "ban" command needs "minutes", an integer from 1 to {MAX_BAN_MINUTES}"#
                ))?;
            Ok(Command::Ban {
                user,
                minutes,
                reason,
            })
        }
        "delete" => {
            let fields: DeleteFields = serde_json::from_str(text).map_err(malformed)?;
            let id = fields
                .id
                .filter(|&id| id > 0)
                .ok_or(r#"a "delete" command needs "id", a positive integer"#)?;
            Ok(Command::Delete { id })
        }
        other => Err(bounded(format!("unknown command type {other:?}"))),
    }
}

/// `s` cut to [`MAX_EXPLANATION`] bytes at a character boundary, marked with `…` when cut.
pub(crate) fn bounded(s: String) -> String {
    cut(s, MAX_EXPLANATION)
}

/// `s` cut to `max` bytes at a character boundary, marked with `…` when cut.
pub(crate) fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_or_explain_why_not() {
        let message = |text: &str, id: Option<&str>| {
            Ok(Command::Message {
                text: Cow::Owned(text.to_owned()),
                client_msg_id: id.map(Into::into),
            })
        };
        let cases: &[(&str, Result<Command, String>)] = &[
            (r#"{"type":"message","message":"hi"}"#, message("hi", None)),
            (
                r#"{"type":"message","message":"hi","client_msg_id":"c-1"}"#,
                message("hi", Some("c-1")),
            ),
            (
                r#"{"type":"message","message":"hi","client_msg_id":null}"#,
                message("hi", None),
            ),
            (
                r#"{"message":"a\"b","type":"message","extra":[1,{}]}"#,
                message("a\"b", None),
            ),
            (r#"{"type":"message","message":""}"#, message("", None)),
            (r#"{"type":"typing"}"#, Ok(Command::Typing)),
            (
                r#"{"type":"direct","to":"bob","message":"psst"}"#,
                Ok(Command::Direct {
                    to: "bob".into(),
                    text: "psst".into(),
                }),
            ),
            (
                "hello",
                Err("malformed command: expected value at line 1 column 1".into()),
            ),
            (
                "[1,2]",
                Err("malformed command: not a JSON object".into()),
            ),
            (
                r#"["message","hi",null,null]"#,
                Err("malformed command: not a JSON object".into()),
            ),
            (
                r#""a string""#,
                Err("malformed command: not a JSON object".into()),
            ),
            (
                r#"{"message":"hi"}"#,
                Err("malformed command: missing field `type` at line 1 column 16".into()),
            ),
            (
                r#"{"type":"dance"}"#,
                Err(r#"unknown command type "dance""#.into()),
            ),
            (
                r#"{"type":"message"}"#,
                Err(r#"a "message" command needs a "message" string"#.into()),
            ),
            (
                r#"{"type":"message","message":5}"#,
                Err("malformed command: invalid type: integer `5`, expected a string at line 1 column 29".into()),
            ),
            (
                r#"{"type":"message","message":"x","client_msg_id":""}"#,
                Err("client_msg_id must be 1 to 64 characters".into()),
            ),
            (
                r#"{"type":"direct","message":"x"}"#,
                Err(r#"a "direct" command needs "to" and "message" strings"#.into()),
            ),
            (
                r#"{"type":"direct","to":7,"message":"x"}"#,
                Err("malformed command: invalid type: integer `7`, expected a string at line 1 column 23".into()),
            ),
            // A field is only read, and type-checked, by the commands that use it.
            (
                r#"{"type":"typing","message":5,"to":[],"client_msg_id":{}}"#,
                Ok(Command::Typing),
            ),
            (
                r#"{"type":"message","message":"hi","to":7}"#,
                message("hi", None),
            ),
            (
                r#"{"type":"direct","to":"bob","message":"psst","client_msg_id":17}"#,
                Ok(Command::Direct {
                    to: "bob".into(),
                    text: "psst".into(),
                }),
            ),
            (
                r#"{"type":"typ\u0069ng"}"#,
                Ok(Command::Typing),
            ),
            (
                r#"{"type":"history_before","before":120}"#,
                Ok(Command::HistoryBefore {
                    before: 120,
                    limit: 50,
                }),
            ),
            (
                r#"{"type":"history_before","before":1,"limit":100,"message":5}"#,
                Ok(Command::HistoryBefore {
                    before: 1,
                    limit: 100,
                }),
            ),
            (
                r#"{"type":"history_before","before":9,"limit":null}"#,
                Ok(Command::HistoryBefore {
                    before: 9,
                    limit: 50,
                }),
            ),
            (
                r#"{"type":"history_before"}"#,
                Err(r#"a "history_before" command needs "before", a positive integer"#.into()),
            ),
            (
                r#"{"type":"history_before","before":0}"#,
                Err(r#"a "history_before" command needs "before", a positive integer"#.into()),
            ),
            (
                r#"{"type":"history_before","before":-3}"#,
                Err("malformed command: invalid value: integer `-3`, expected u64 at line 1 column 36".into()),
            ),
            (
                r#"{"type":"history_before","before":"7"}"#,
                Err("malformed command: invalid type: string \"7\", expected u64 at line 1 column 37".into()),
            ),
            (
                r#"{"type":"history_before","before":7.5}"#,
                Err("malformed command: invalid type: floating point `7.5`, expected u64 at line 1 column 37".into()),
            ),
            (
                r#"{"type":"history_before","before":7,"limit":0}"#,
                Err("limit must be 1 to 100".into()),
            ),
            (
                r#"{"type":"history_before","before":7,"limit":101}"#,
                Err("limit must be 1 to 100".into()),
            ),
            (
                r#"{"type":"kick","user":"bob","reason":"spam"}"#,
                Ok(Command::Kick {
                    user: "bob".into(),
                    reason: "spam".into(),
                }),
            ),
            (
                r#"{"type":"kick","user":"bob"}"#,
                Ok(Command::Kick {
                    user: "bob".into(),
                    reason: String::new(),
                }),
            ),
            (
                r#"{"type":"kick","id":42,"reason":"spam"}"#,
                Ok(Command::KickSender {
                    id: 42,
                    reason: "spam".into(),
                }),
            ),
            (
                r#"{"type":"kick","id":-1}"#,
                Err("malformed command: invalid value: integer `-1`, expected u64 at line 1 column 22".into()),
            ),
            (
                r#"{"type":"kick","user":""}"#,
                Err(r#"a "kick" command needs "user", a string of 1 to 256 bytes"#.into()),
            ),
            (
                r#"{"type":"ban","user":"bob","minutes":60,"reason":"flood"}"#,
                Ok(Command::Ban {
                    user: "bob".into(),
                    minutes: 60,
                    reason: "flood".into(),
                }),
            ),
            (
                r#"{"type":"ban","user":"bob"}"#,
                Err(r#"a "ban" command needs "minutes", an integer from 1 to 525600"#.into()),
            ),
            (
                r#"{"type":"ban","user":"bob","minutes":0}"#,
                Err(r#"a "ban" command needs "minutes", an integer from 1 to 525600"#.into()),
            ),
            (
                r#"{"type":"ban","user":"bob","minutes":525601}"#,
                Err(r#"a "ban" command needs "minutes", an integer from 1 to 525600"#.into()),
            ),
            (
                r#"{"type":"delete","id":42}"#,
                Ok(Command::Delete { id: 42 }),
            ),
            (
                r#"{"type":"delete","id":0}"#,
                Err(r#"a "delete" command needs "id", a positive integer"#.into()),
            ),
            (
                r#"{"type":"delete"}"#,
                Err(r#"a "delete" command needs "id", a positive integer"#.into()),
            ),
            (
                r#"{"type":"typing","message":5"#,
                Err("malformed command: EOF while parsing an object at line 1 column 28".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(&parse(input), expected, "{input}");
        }
    }

    #[test]
    fn client_msg_id_length_counts_characters() {
        let with = |id: &str| {
            parse(
                &serde_json::json!({"type":"message","message":"x","client_msg_id":id}).to_string(),
            )
        };
        assert!(with(&"é".repeat(64)).is_ok());
        assert!(with(&"é".repeat(65)).is_err());
        assert!(with(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn explanations_stay_short_whatever_the_input() {
        for input in [
            format!("\"{}\"", "é".repeat(10_000)),
            format!(r#"{{"type":"{}"}}"#, "ü".repeat(10_000)),
        ] {
            let err = parse(&input).expect_err("not a command");
            assert!(
                err.len() <= MAX_EXPLANATION + '…'.len_utf8(),
                "{}",
                err.len()
            );
        }
    }
}
