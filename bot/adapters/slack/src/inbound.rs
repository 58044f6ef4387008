//! What Slack sends, reduced to what must be recorded before answering: which workspace, the keys
//! that recognise a retry or a re-delivery, the lane that keeps a channel's events in order, and the
//! payload itself. Parsing is lenient: fields we don't use, new event types and new block types
//! pass through untouched; only what we act on is read.

use serde_json::{Map, Value};

/// What kind of request a payload came in.
pub const EVENT: &str = "event";
pub const COMMAND: &str = "command";
pub const INTERACTION: &str = "interaction";

/// A request to record and acknowledge.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The Slack workspace (`team_id`).
    pub team: String,
    /// De-duplication keys: any key seen before makes this a repeat.
    pub keys: Vec<String>,
    /// Events with the same lane are handled in the order they arrived.
    pub lane: String,
    /// `{"kind": …, "body": …}` for the job that handles it.
    pub payload: Value,
}

/// How to answer a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `url_verification`: echo the challenge.
    Challenge(String),
    /// Record it, then answer 200.
    Accept(Envelope),
    /// Nothing for us (another app's modal, a bot's own message, an unknown type): answer 200.
    Ignore(String),
}

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Slack request: {0}")]
pub struct Malformed(pub String);

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn lane(team: &str, channel: Option<&str>) -> String {
    format!("slack:{team}:{}", channel.unwrap_or("-"))
}

fn envelope(kind: &str, team: String, keys: Vec<String>, lane: String, body: Value) -> Parsed {
    Parsed::Accept(Envelope {
        team,
        keys,
        lane,
        payload: serde_json::json!({ "kind": kind, "body": body }),
    })
}

/// An Events API request (`POST /slack/events`, JSON).
pub fn parse_event(body: &[u8]) -> Result<Parsed, Malformed> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
    event_value(value)
}

/// An Events API payload (over HTTP or Socket Mode).
pub fn event_value(value: Value) -> Result<Parsed, Malformed> {
    match value.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge =
                str_at(&value, "/challenge").ok_or_else(|| malformed("no challenge"))?;
            Ok(Parsed::Challenge(challenge.to_owned()))
        }
        Some("event_callback") => {
            let team = str_at(&value, "/team_id").ok_or_else(|| malformed("no team_id"))?;
            let event_id = str_at(&value, "/event_id").ok_or_else(|| malformed("no event_id"))?;
            let event = value.get("event").ok_or_else(|| malformed("no event"))?;
            let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
            let channel = str_at(event, "/channel");
            let mut keys = vec![format!("event:{event_id}")];
            match kind {
                "app_mention" => {}
                "message" => {
                    // Our own and other bots' posts, edits and deletions are not a tech typing.
                    if event.get("bot_id").is_some()
                        || event
                            .get("subtype")
                            .is_some_and(|s| s != "thread_broadcast")
                    {
                        return Ok(Parsed::Ignore(
                            "a bot message or a message change".to_owned(),
                        ));
                    }
                    if str_at(event, "/thread_ts").is_none() {
                        return Ok(Parsed::Ignore("a message outside any thread".to_owned()));
                    }
                }
                "app_uninstalled" | "tokens_revoked" => {}
                other => return Ok(Parsed::Ignore(format!("event type {other:?}"))),
            }
            // Slack sometimes sends one message again under a new event id, and sends a mention
            // as both `app_mention` and `message`: the message is the same, so is the key.
            if let (Some(channel), Some(ts)) = (channel, str_at(event, "/ts")) {
                keys.push(format!("message:{channel}:{ts}"));
            }
            let lane = lane(team, channel);
            let team = team.to_owned();
            Ok(envelope(EVENT, team, keys, lane, value))
        }
        Some(other) => Ok(Parsed::Ignore(format!("request type {other:?}"))),
        None => Err(malformed("no type")),
    }
}

/// A slash command (`POST /slack/commands`, form-encoded).
pub fn parse_command(body: &[u8]) -> Result<Parsed, Malformed> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| malformed(format!("not a form: {e}")))?;
    let map: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    command_value(Value::Object(map))
}

/// A slash command's fields as a JSON object (over HTTP or Socket Mode).
pub fn command_value(value: Value) -> Result<Parsed, Malformed> {
    let team = str_at(&value, "/team_id").ok_or_else(|| malformed("no team_id"))?;
    for field in ["/user_id", "/channel_id", "/command"] {
        str_at(&value, field).ok_or_else(|| malformed(format!("no {}", &field[1..])))?;
    }
    let channel = str_at(&value, "/channel_id");
    let keys = str_at(&value, "/trigger_id")
        .map(|t| vec![format!("trigger:{t}")])
        .unwrap_or_default();
    let lane = lane(team, channel);
    let team = team.to_owned();
    Ok(envelope(COMMAND, team, keys, lane, value))
}

/// An interaction (`POST /slack/interactions`, a form with one `payload` field of JSON).
pub fn parse_interaction(body: &[u8]) -> Result<Parsed, Malformed> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| malformed(format!("not a form: {e}")))?;
    let payload = fields
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or_else(|| malformed("no payload field"))?;
    let value: Value = serde_json::from_str(&payload)
        .map_err(|e| malformed(format!("payload is not JSON: {e}")))?;
    interaction_value(value)
}

/// An interaction payload (over HTTP or Socket Mode).
pub fn interaction_value(value: Value) -> Result<Parsed, Malformed> {
    let team = str_at(&value, "/team/id")
        .or_else(|| str_at(&value, "/user/team_id"))
        .ok_or_else(|| malformed("no team"))?
        .to_owned();
    let channel = str_at(&value, "/channel/id")
        .or_else(|| str_at(&value, "/container/channel_id"))
        .map(str::to_owned)
        .or_else(|| {
            // A modal remembers where it was opened.
            crate::forms::submission(&value).map(|(_, place)| place.channel.channel)
        });
    match value.get("type").and_then(Value::as_str) {
        Some("block_actions" | "view_submission" | "message_action") => {}
        Some(other) => return Ok(Parsed::Ignore(format!("interaction type {other:?}"))),
        None => return Err(malformed("no type")),
    }
    // Each click has its own trigger id; only a re-sent request repeats one.
    let keys = str_at(&value, "/trigger_id")
        .map(|t| vec![format!("trigger:{t}")])
        .unwrap_or_default();
    let lane = lane(&team, channel.as_deref());
    Ok(envelope(INTERACTION, team, keys, lane, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(parsed: Parsed) -> Envelope {
        match parsed {
            Parsed::Accept(envelope) => envelope,
            other => panic!("expected to accept, got {other:?}"),
        }
    }

    #[test]
    fn url_verification_echoes_the_challenge() {
        let parsed = parse_event(include_bytes!("../fixtures/url_verification.json")).unwrap();
        assert_eq!(
            parsed,
            Parsed::Challenge("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into())
        );
    }

    #[test]
    fn a_mention_is_keyed_by_event_and_by_message() {
        let envelope =
            accepted(parse_event(include_bytes!("../fixtures/app_mention.json")).unwrap());
        assert_eq!(envelope.team, "T111");
        assert_eq!(
            envelope.keys,
            vec!["event:Ev111", "message:C111:1595926230.009600"]
        );
        assert_eq!(envelope.lane, "slack:T111:C111");
        assert_eq!(envelope.payload["kind"], EVENT);
    }

    #[test]
    fn bot_messages_edits_and_top_level_chatter_are_ignored() {
        let message = |extra: Value| {
            let mut event = serde_json::json!({
                "type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "2.0"
            });
            event
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::to_vec(&serde_json::json!({
                "type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event
            }))
            .unwrap()
        };
        let ignored = |body: Vec<u8>| matches!(parse_event(&body).unwrap(), Parsed::Ignore(_));
        assert!(ignored(message(serde_json::json!({}))));
        assert!(ignored(message(
            serde_json::json!({ "thread_ts": "1.0", "bot_id": "B1" })
        )));
        assert!(ignored(message(
            serde_json::json!({ "thread_ts": "1.0", "subtype": "message_changed" })
        )));
        assert!(!ignored(message(serde_json::json!({ "thread_ts": "1.0" }))));
    }

    #[test]
    fn unknown_events_are_ignored_and_garbage_is_malformed() {
        let body = br#"{"type":"event_callback","team_id":"T1","event_id":"Ev9","event":{"type":"reaction_added"}}"#;
        assert!(matches!(parse_event(body).unwrap(), Parsed::Ignore(_)));
        assert!(matches!(
            parse_event(br#"{"type":"app_rate_limited","team_id":"T1"}"#).unwrap(),
            Parsed::Ignore(_)
        ));
        assert!(parse_event(b"not json").is_err());
        assert!(parse_event(br#"{"type":"event_callback"}"#).is_err());
    }

    #[test]
    fn slash_commands_are_read_from_the_form() {
        let envelope =
            accepted(parse_command(include_bytes!("../fixtures/slash_command.form")).unwrap());
        assert_eq!(envelope.team, "T111");
        assert_eq!(envelope.keys, vec!["trigger:111.111.xxx"]);
        assert_eq!(envelope.payload["body"]["text"], "Hi");
        assert_eq!(envelope.payload["body"]["command"], "/hello-world");
        assert!(parse_command(b"text=hi").is_err());
    }

    #[test]
    fn block_actions_are_read_from_the_payload_field() {
        let envelope =
            accepted(parse_interaction(include_bytes!("../fixtures/block_actions.form")).unwrap());
        assert_eq!(envelope.team, "T111");
        assert_eq!(envelope.lane, "slack:T111:C111");
        assert_eq!(envelope.keys, vec!["trigger:111.222.valid"]);
        assert_eq!(
            envelope.payload["body"]["actions"][0]["value"],
            "click_me_123"
        );
        assert!(parse_interaction(b"payload=%7Bnope").is_err());
        assert!(matches!(
            parse_interaction(b"payload=%7B%22type%22%3A%22view_closed%22%2C%22team%22%3A%7B%22id%22%3A%22T1%22%7D%7D")
                .unwrap(),
            Parsed::Ignore(_)
        ));
    }
}
