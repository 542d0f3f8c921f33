//! `poll_output_grouped` gives the same outputs as `poll_output`, in the same order, except
//! that a broadcast is one `SendMany` instead of one `Send` per recipient.

mod harness;

use std::time::Duration;

use chat_protocol::{ClientId, Config, Input, Output, Payload, Protocol, RoomName};
use harness::Harness;

/// Joins and leaves, tutorial and v2 clients, two rooms, chat and commands.
fn script() -> Vec<Input> {
    let mut inputs = Vec::new();
    for id in 0..12u64 {
        inputs.push(Input::Connect {
            client: ClientId(id),
            user: format!("user{}", id % 9),
            room: RoomName::parse(if id % 3 == 0 { "side" } else { "main" }).expect("valid"),
            protocol: if id % 2 == 0 {
                Protocol::V1
            } else {
                Protocol::V2
            },
            resume: None,
        });
    }
    for round in 0..3u64 {
        // Clients 1, 5 and 9 leave, one a round.
        for id in (0..12u64).filter(|&id| id % 4 != 1 || id > round * 4) {
            let text = if id % 2 == 0 {
                format!("hello {round} from {id}")
            } else if id % 5 == 1 {
                r#"{"type":"typing"}"#.to_owned()
            } else {
                format!(r#"{{"type":"message","message":"v2 {round} {id}"}}"#)
            };
            inputs.push(Input::Text {
                client: ClientId(id),
                text: Payload::from(text.as_str()),
            });
        }
        inputs.push(Input::Disconnect {
            client: ClientId(round * 4 + 1),
        });
    }
    inputs
}

fn run(grouped: bool) -> (Vec<Output>, usize) {
    let mut h = Harness::with_config(Config::default().with_rate_limit(None));
    let mut outputs = Vec::new();
    let mut groups = 0;
    for input in script() {
        h.input(input);
        h.advance(Duration::from_secs(1));
        loop {
            let output = if grouped {
                h.server.poll_output_grouped()
            } else {
                h.server.poll_output()
            };
            match output {
                None => break,
                Some(Output::SendMany { to, payload }) => {
                    assert!(grouped, "poll_output never gives a SendMany");
                    assert!(!to.is_empty(), "a SendMany has recipients");
                    groups += 1;
                    outputs.extend(to.into_iter().map(|to| Output::Send {
                        to,
                        payload: payload.clone(),
                    }));
                }
                Some(output) => outputs.push(output),
            }
        }
    }
    (outputs, groups)
}

#[test]
fn grouped_outputs_are_the_single_ones_in_the_same_order() {
    let (single, none) = run(false);
    let (grouped, groups) = run(true);
    assert_eq!(none, 0);
    assert!(groups > 20, "broadcasts came grouped ({groups})");
    assert!(
        single.len() > 200,
        "the script makes traffic ({})",
        single.len()
    );
    assert_eq!(grouped, single);
}

#[test]
fn the_two_can_be_mixed() {
    let mut h = Harness::with_config(Config::default().with_rate_limit(None));
    for id in 0..5u64 {
        h.connect(id, &format!("u{id}"));
        h.drain();
    }
    h.text(2, "hi");
    // Two recipients one by one, then the rest: the broadcast is not given twice.
    let mut to = Vec::new();
    for _ in 0..2 {
        match h.server.poll_output() {
            Some(Output::Send { to: t, .. }) => to.push(t),
            other => panic!("expected a Send, got {other:?}"),
        }
    }
    while let Some(output) = h.server.poll_output_grouped() {
        match output {
            Output::Send { to: t, .. } => to.push(t),
            Output::SendMany { to: many, .. } => to.extend(many),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(to, (0..5).map(ClientId).collect::<Vec<_>>());
}
