//! The console's picture of chat: channels with posted messages (cards that update in place),
//! replies in threads, private messages. The console notifier writes here from the background
//! worker; the REPL prints what arrived.

use async_trait::async_trait;
use rf_core::domain::{ChannelRef, ThreadKey};
use rf_core::effect::Message;
use rf_core::notify::{MessageRef, Notifier, NotifyError};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Most messages kept per channel, and most arrivals waiting to be printed.
const KEEP: usize = 200;

/// Something that arrived while the console was busy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// Where it is shown: `#escalations`, `#helpdesk thread`, `private to Sam`.
    pub label: String,
    pub message: Message,
    /// `(card updated)` and the like.
    pub note: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    channels: HashMap<String, Vec<(String, Message)>>,
    arrivals: VecDeque<Arrival>,
    next_id: u64,
}

/// Shared between the REPL and the notifier.
#[derive(Debug, Clone, Default)]
pub struct Board(Arc<Mutex<State>>);

impl Board {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }

    fn arrive(state: &mut State, arrival: Arrival) {
        if state.arrivals.len() >= KEEP {
            state.arrivals.pop_front();
        }
        state.arrivals.push_back(arrival);
    }

    /// Everything that arrived since the last call.
    pub fn take_arrivals(&self) -> Vec<Arrival> {
        self.with(|state| state.arrivals.drain(..).collect())
    }

    /// The messages of a channel, oldest first.
    pub fn channel(&self, channel: &str) -> Vec<Message> {
        self.with(|state| {
            state
                .channels
                .get(channel)
                .map(|messages| messages.iter().map(|(_, m)| m.clone()).collect())
                .unwrap_or_default()
        })
    }
}

/// The console as a chat platform for the escalation machinery. Console users are known by their
/// lowercase name, which is what private messages are labelled with.
#[derive(Debug, Clone)]
pub struct ConsoleNotifier {
    board: Board,
}

impl ConsoleNotifier {
    pub fn new(board: Board) -> Self {
        Self { board }
    }

    /// The board this notifier posts to.
    pub fn board(&self) -> Board {
        self.board.clone()
    }
}

#[async_trait]
impl Notifier for ConsoleNotifier {
    async fn post(
        &self,
        channel: &ChannelRef,
        message: &Message,
    ) -> Result<MessageRef, NotifyError> {
        Ok(self.board.with(|state| {
            state.next_id += 1;
            let id = format!("m{}", state.next_id);
            let messages = state.channels.entry(channel.channel.clone()).or_default();
            if messages.len() >= KEEP {
                messages.remove(0);
            }
            messages.push((id.clone(), message.clone()));
            Board::arrive(
                state,
                Arrival {
                    label: channel.channel.clone(),
                    message: message.clone(),
                    note: None,
                },
            );
            MessageRef {
                channel: channel.clone(),
                id,
            }
        }))
    }

    async fn update(&self, posted: &MessageRef, message: &Message) -> Result<(), NotifyError> {
        self.board.with(|state| {
            if let Some(slot) = state
                .channels
                .get_mut(&posted.channel.channel)
                .and_then(|messages| messages.iter_mut().find(|(id, _)| *id == posted.id))
            {
                slot.1 = message.clone();
            }
            Board::arrive(
                state,
                Arrival {
                    label: posted.channel.channel.clone(),
                    message: message.clone(),
                    note: Some("card updated".to_owned()),
                },
            );
        });
        Ok(())
    }

    async fn reply(&self, thread: &ThreadKey, message: &Message) -> Result<(), NotifyError> {
        self.board.with(|state| {
            Board::arrive(
                state,
                Arrival {
                    label: format!("{} thread", thread.channel),
                    message: message.clone(),
                    note: None,
                },
            );
        });
        Ok(())
    }

    async fn direct(
        &self,
        _workspace: &str,
        platform_user_id: &str,
        message: &Message,
    ) -> Result<(), NotifyError> {
        let label = format!("private to {platform_user_id}");
        self.board.with(|state| {
            Board::arrive(
                state,
                Arrival {
                    label,
                    message: message.clone(),
                    note: None,
                },
            )
        });
        Ok(())
    }

    async fn invite(&self, thread: &ThreadKey, platform_user_id: &str) -> Result<(), NotifyError> {
        let text = format!("{platform_user_id} was added to the thread.");
        self.board.with(|state| {
            Board::arrive(
                state,
                Arrival {
                    label: format!("{} thread", thread.channel),
                    message: Message::text(text),
                    note: None,
                },
            );
        });
        Ok(())
    }
}
