//! The server API for backends: JSON over HTTP on the same port, under `/api/`, authenticated
//! with the operator's key (`--api-key-file` or `CHAT_API_KEY`) as `Authorization: Bearer`.
//! Without a key configured the API does not exist (404). Requests are small and answered at
//! once on the loop: everything they do is the core's own work.
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/rooms` | `200 {"rooms":[{"name","members","last_id"}]}` |
//! | `POST /api/rooms/{room}/messages` `{"text":"..","user":"alice"?}` | `201 {"room","id"}` |
//! | `POST /api/users/{user}/kick` `{"reason":".."?}` | `200 {"user","closed":n}`, `404` if not connected |
//! | `POST /api/users/{user}/ban` `{"minutes":60,"reason":".."?}` | `200 {"user","minutes"}` |

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use chat_protocol::{Input, PublishRefused};

use super::EventLoop;
use crate::http::{Request, Response};

/// What the core answered to the request's input (the last output of its drain).
pub(super) enum CoreAnswer {
    Published(Result<u64, PublishRefused>),
    Dismissed(usize),
}

/// Largest request body the API reads.
pub(super) const MAX_BODY: usize = 64 * 1024 + 1024;

/// Whether `path` belongs to the API.
pub(super) fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// An answer: status and JSON body.
type Answer = (u16, Value);

fn error(status: u16, message: &str) -> Answer {
    (status, json!({ "error": message }))
}

#[derive(Deserialize)]
struct PublishBody {
    text: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct KickBody {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct BanBody {
    minutes: u32,
    #[serde(default)]
    reason: Option<String>,
}

/// The body as JSON of type `T`, or a 400 that says why.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body).map_err(|e| error(400, &format!("bad JSON body: {e}")))
}

/// One decoded path segment.
fn segment(raw: &str) -> Option<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

impl EventLoop {
    /// Whether the API is on (a key is configured).
    pub(super) fn api_enabled(&self) -> bool {
        self.api_key.is_some()
    }

    /// Answers one API request whose body (`Content-Length` bytes) has arrived.
    pub(super) fn answer_api(&mut self, request: &Request, body: &[u8]) -> Response<'static> {
        let (status, value) = self.api(request, body);
        let mut response = Response::shared(status, bytes::Bytes::from(value.to_string()))
            .header("Content-Type", "application/json")
            .header("Cache-Control", "no-store")
            .keep_alive(request.keep_alive);
        if status == 401 {
            response = response.header("WWW-Authenticate", "Bearer");
        }
        if status == 405 {
            response = response.header(
                "Allow",
                if request.path() == "/api/rooms" {
                    "GET"
                } else {
                    "POST"
                },
            );
        }
        response
    }

    fn api(&mut self, request: &Request, body: &[u8]) -> Answer {
        let Some(key) = &self.api_key else {
            return error(404, "not found");
        };
        let presented = request.bearer.as_ref().map(|c| c.expose().as_bytes());
        // Compared in constant time: the answer's timing says nothing about the key.
        if !presented.is_some_and(|p| bool::from(p.ct_eq(key.as_bytes()))) {
            return error(
                401,
                "this API needs the server's key: Authorization: Bearer <key>",
            );
        }
        let path = request.path();
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let method = request.method.as_str();
        match (method, parts.as_slice()) {
            ("GET", ["rooms"]) => self.api_rooms(),
            (_, ["rooms"]) => error(405, "use GET"),
            ("POST", ["rooms", room, "messages"]) => match segment(room) {
                Some(room) => self.api_publish(&room, body),
                None => error(400, "the room name is not UTF-8"),
            },
            ("POST", ["users", user, action @ ("kick" | "ban")]) => match segment(user) {
                Some(user) => self.api_moderate(&user, action, body),
                None => error(400, "the user name is not UTF-8"),
            },
            (_, ["rooms", _, "messages"] | ["users", _, "kick" | "ban"]) => error(405, "use POST"),
            _ => error(404, "no such API endpoint"),
        }
    }

    fn api_rooms(&self) -> Answer {
        let rooms: Vec<Value> = self
            .core
            .rooms()
            .into_iter()
            .map(|room| {
                json!({
                    "name": room.name.as_str(),
                    "members": room.members,
                    "last_id": room.last_id,
                })
            })
            .collect();
        (200, json!({ "rooms": rooms }))
    }

    fn api_publish(&mut self, room: &str, body: &[u8]) -> Answer {
        let body: PublishBody = match parse(body) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let room = match chat_protocol::RoomName::parse(room) {
            Ok(room) => room,
            Err(why) => return error(400, &format!("room: {why}")),
        };
        let answer = self.ask_core(Input::Publish {
            room: room.clone(),
            user: body.user,
            text: body.text,
        });
        match answer {
            Some(CoreAnswer::Published(Ok(id))) => {
                (201, json!({ "room": room.as_str(), "id": id }))
            }
            Some(CoreAnswer::Published(Err(refused @ PublishRefused::BadUser))) => {
                error(400, &refused.to_string())
            }
            Some(CoreAnswer::Published(Err(refused))) => error(503, &refused.to_string()),
            _ => error(500, "the chat core did not answer"),
        }
    }

    /// Feeds `input` and returns the core's answer to it.
    fn ask_core(&mut self, input: Input) -> Option<CoreAnswer> {
        self.api_answer = None;
        self.feed(input);
        self.api_answer.take()
    }

    fn api_moderate(&mut self, user: &str, action: &str, body: &[u8]) -> Answer {
        if action == "kick" {
            let body: KickBody = match parse(body) {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            match self.ask_core(Input::Kick {
                user: user.to_owned(),
                reason: body.reason.unwrap_or_default(),
            }) {
                Some(CoreAnswer::Dismissed(0)) => error(404, "that user has no connection"),
                Some(CoreAnswer::Dismissed(closed)) => {
                    (200, json!({ "user": user, "closed": closed }))
                }
                _ => error(500, "the chat core did not answer"),
            }
        } else {
            let body: BanBody = match parse(body) {
                Ok(body) => body,
                Err(answer) => return answer,
            };
            match self.ask_core(Input::Ban {
                user: user.to_owned(),
                minutes: body.minutes,
                reason: body.reason.unwrap_or_default(),
            }) {
                // A user who is not connected is banned all the same.
                Some(CoreAnswer::Dismissed(closed)) => (
                    200,
                    json!({ "user": user, "minutes": body.minutes, "closed": closed }),
                ),
                _ => error(500, "the chat core did not answer"),
            }
        }
    }
}
