//! Property tests: no sequence of inputs panics the state machine, and it only ever addresses
//! connected clients.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use chat_protocol::{ClientId, Input, Output, Payload};
use harness::Harness;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Connect(u64, String),
    Text(u64, String),
    Disconnect(u64),
    Timeout,
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    // A small id space so connects, texts and disconnects collide often.
    let id = 0u64..8;
    prop_oneof![
        (id.clone(), any::<String>()).prop_map(|(i, u)| Step::Connect(i, u)),
        (id.clone(), any::<String>()).prop_map(|(i, t)| Step::Text(i, t)),
        id.prop_map(Step::Disconnect),
        Just(Step::Timeout),
        (0u64..120_000).prop_map(Step::Advance),
    ]
}

proptest! {
    #[test]
    fn any_input_sequence_is_safe(steps in prop::collection::vec(step(), 0..200)) {
        let mut h = Harness::new();
        // The driver's view: who is connected. Inputs that would break the driver contract are
        // still fed, and must come back as errors, not panics or state changes.
        let mut connected = BTreeSet::new();
        for step in steps {
            let input = match step {
                Step::Advance(ms) => { h.advance(Duration::from_millis(ms)); continue; }
                Step::Connect(i, user) => Input::Connect { client: ClientId(i), user },
                Step::Text(i, t) => Input::Text { client: ClientId(i), text: Payload::from(t) },
                Step::Disconnect(i) => Input::Disconnect { client: ClientId(i) },
                Step::Timeout => Input::Timeout,
            };
            let valid = match &input {
                Input::Connect { client, .. } => !connected.contains(client),
                Input::Text { client, .. } | Input::Disconnect { client } => connected.contains(client),
                Input::Timeout => true,
            };
            let result = h.server.handle_input(h.now, input.clone());
            prop_assert_eq!(result.is_ok(), valid, "{:?}", input);
            if valid {
                match input {
                    Input::Connect { client, .. } => { connected.insert(client); }
                    Input::Disconnect { client } => { connected.remove(&client); }
                    _ => {}
                }
            }
            for out in h.drain() {
                let to = match &out {
                    Output::Send { to, payload } => {
                        let v: serde_json::Value = serde_json::from_str(payload).expect("JSON");
                        prop_assert!(v["type"].is_string() && v["timestamp"].is_string());
                        *to
                    }
                    Output::Close { client, .. } => *client,
                };
                prop_assert!(connected.contains(&to), "addressed {} which is not connected", to);
            }
            prop_assert_eq!(h.server.client_count(), connected.len());
        }
    }
}
