//! Identifiers. Each is a UUIDv7 newtype, so ids sort by creation time and are safe in URLs.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The text given where an id was expected is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a valid {kind} id")]
pub struct ParseIdError {
    pub kind: &'static str,
    pub text: String,
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the canonical hyphenated (or simple) form.
            pub fn parse(text: &str) -> Result<Self, ParseIdError> {
                Uuid::try_parse(text.trim()).map(Self).map_err(|_| ParseIdError {
                    kind: $kind,
                    text: text.to_owned(),
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseIdError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }
    };
}

id_type!(
    /// An MSP: the tenant every other record belongs to.
    AccountId, "account");
id_type!(
    /// A team within an account.
    TeamId, "team");
id_type!(
    /// A chat identity linked to an account.
    UserId, "user");
id_type!(
    /// A flow in an account's library.
    FlowId, "flow");
id_type!(
    /// A troubleshooting session bound to a chat thread.
    SessionId, "session");
id_type!(
    /// One event on a session's timeline.
    StepId, "timeline step");
id_type!(
    /// A confirmed piece of knowledge on a session.
    FactId, "fact");
id_type!(
    /// A park or escalate handoff.
    HandoffId, "handoff");
id_type!(
    /// A signed companion link, recorded so it can be revoked.
    LinkId, "link");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = SessionId::new();
        assert_eq!(SessionId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn a_bad_id_names_its_kind() {
        let err = FlowId::parse("printer").unwrap_err();
        assert_eq!(err.to_string(), "`printer` is not a valid flow id");
    }

    #[test]
    fn ids_sort_by_creation() {
        let first = StepId::new();
        let second = StepId::new();
        assert!(first < second);
    }
}
