//! The tenants, people and places of the domain (SPEC §3).

use crate::ids::{AccountId, TeamId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A value given for a closed set of words was not one of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a {what}; expected one of: {expected}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static str,
}

/// Declares a closed set of snake_case words with `as_str`, `Display` and `FromStr`.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::domain::ParseEnumError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text.trim().to_ascii_lowercase().as_str() {
                    $($word => Ok($name::$variant),)+
                    _ => Err($crate::domain::ParseEnumError {
                        what: $what,
                        given: text.to_owned(),
                        expected: concat!($($word, " "),+),
                    }),
                }
            }
        }
    };
}
pub(crate) use word_enum;

word_enum!(
    /// What a user may do in their account.
    Role, "role" {
        /// Deployment-wide operator.
        SuperAdmin => "super_admin",
        Owner => "owner",
        Admin => "admin",
        Engineer => "engineer",
        /// Can watch sessions, but not change them or claim escalations.
        Viewer => "viewer",
    }
);

impl Role {
    /// May start sessions, answer steps, add facts and notes, park, resolve.
    pub const fn can_work_sessions(self) -> bool {
        !matches!(self, Role::Viewer)
    }

    /// May claim an escalation.
    pub const fn can_claim(self) -> bool {
        !matches!(self, Role::Viewer)
    }

    /// May change roles, channels, PSA connections and flows.
    pub const fn is_admin(self) -> bool {
        matches!(self, Role::SuperAdmin | Role::Owner | Role::Admin)
    }
}

word_enum!(
    /// Where a conversation happens.
    Platform, "platform" {
        Slack => "slack",
        Teams => "teams",
        Discord => "discord",
        Console => "console",
    }
);

/// Where a session lives: a thread in a channel on a platform.
///
/// `thread` is the platform's id of the thread's root message (Slack `thread_ts`, Discord thread
/// channel id, Teams `;messageid=` conversation id, a console counter).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ThreadKey {
    pub platform: Platform,
    /// The installation the thread belongs to (Slack team id, Discord guild id, Teams tenant id).
    pub workspace: String,
    pub channel: String,
    pub thread: String,
}

impl ThreadKey {
    /// One string per thread, used to serialise the thread's events.
    pub fn lock_key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.platform, self.workspace, self.channel, self.thread
        )
    }
}

/// A chat channel (not a thread) on a platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelRef {
    pub platform: Platform,
    pub workspace: String,
    pub channel: String,
}

impl ChannelRef {
    /// How a message names the channel: a channel reference each adapter renders its own way
    /// (see [`crate::effect::TextPiece`]).
    pub fn mention(&self) -> String {
        format!("<#{}>", self.channel)
    }
}

/// A person as a chat platform describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatIdentity {
    pub platform: Platform,
    pub platform_user_id: String,
    pub display_name: String,
    pub email: Option<String>,
}

/// Which installation (Slack workspace, Discord guild, Teams tenant, the local console) an event came
/// from; it decides the account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallationRef {
    pub platform: Platform,
    pub external_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: TeamId,
    pub account_id: AccountId,
    pub name: String,
    pub settings: crate::team::TeamSettings,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    pub team_id: TeamId,
    pub platform: Platform,
    pub platform_user_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Role,
    pub created_at: Timestamp,
}

/// How to treat the role when a user is upserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleAssignment {
    /// Give this role to a user seen for the first time; leave existing users alone.
    IfNew(Role),
    /// Set this role whether or not the user exists.
    Always(Role),
}

/// The user behind an event, resolved to their account and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: UserId,
    pub account_id: AccountId,
    pub team_id: TeamId,
    pub display_name: String,
    pub role: Role,
    pub platform: Platform,
    pub platform_user_id: String,
}

impl From<&User> for Actor {
    fn from(user: &User) -> Self {
        Self {
            user_id: user.id,
            account_id: user.account_id,
            team_id: user.team_id,
            display_name: user.display_name.clone(),
            role: user.role,
            platform: user.platform,
            platform_user_id: user.platform_user_id.clone(),
        }
    }
}

word_enum!(
    /// Urgency of an escalation.
    Priority, "priority" {
        Low => "low",
        Normal => "normal",
        High => "high",
        Urgent => "urgent",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_words() {
        assert_eq!("Engineer".parse::<Role>(), Ok(Role::Engineer));
        let err = "boss".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("owner admin engineer viewer"));
    }

    #[test]
    fn viewers_watch_but_do_not_act() {
        assert!(!Role::Viewer.can_claim());
        assert!(!Role::Viewer.can_work_sessions());
        assert!(Role::Engineer.can_claim());
        assert!(!Role::Engineer.is_admin());
        assert!(Role::Owner.is_admin());
    }
}
