//! `ChannelList`: the channels one connection subscribes to, the first held
//! inline so that a connection with one subscription allocates nothing.

use std::sync::Arc;

use crate::shard::Subscription;

/// A connection's channel names (shared with the shard's channel table).
#[derive(Debug, Default)]
pub enum ChannelList {
    /// No subscriptions.
    #[default]
    Empty,
    /// One subscription, inline (most connections).
    One(Arc<str>),
    /// Two or more.
    Many(Vec<Arc<str>>),
}

impl ChannelList {
    /// How many channels.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when subscribed to `channel`.
    pub fn contains(&self, channel: &str) -> bool {
        self.as_slice().iter().any(|c| **c == *channel)
    }

    /// Records what a subscribe to `channel` did: an active subscription, or
    /// one waiting for other shards, joins the list. False while it waits
    /// (the connection must pause its reads until the shards answer).
    pub fn record(&mut self, outcome: Subscription, channel: &str) -> bool {
        match outcome {
            Subscription::Active(name) => self.push(name),
            Subscription::Waiting => {
                self.push(Arc::from(channel));
                return false;
            }
            Subscription::Already | Subscription::Failed => {}
        }
        true
    }

    /// Adds a channel (the caller checks it is not there yet).
    pub fn push(&mut self, channel: Arc<str>) {
        match std::mem::take(self) {
            ChannelList::Empty => *self = ChannelList::One(channel),
            ChannelList::One(first) => *self = ChannelList::Many(vec![first, channel]),
            ChannelList::Many(mut all) => {
                all.push(channel);
                *self = ChannelList::Many(all);
            }
        }
    }

    /// Removes `channel`; false if it was not there. Back to inline at one.
    pub fn remove(&mut self, channel: &str) -> bool {
        match self {
            ChannelList::One(c) if **c == *channel => {
                *self = ChannelList::Empty;
                true
            }
            ChannelList::Many(all) => {
                let Some(i) = all.iter().position(|c| **c == *channel) else {
                    return false;
                };
                all.swap_remove(i);
                if all.len() == 1 {
                    if let Some(last) = all.pop() {
                        *self = ChannelList::One(last);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// The channels, in no particular order.
    pub fn as_slice(&self) -> &[Arc<str>] {
        match self {
            ChannelList::Empty => &[],
            ChannelList::One(c) => std::slice::from_ref(c),
            ChannelList::Many(all) => all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_channel_is_inline_and_the_list_shrinks_back() {
        let mut list = ChannelList::default();
        list.push(Arc::from("a"));
        assert!(matches!(list, ChannelList::One(_)));
        list.push(Arc::from("b"));
        list.push(Arc::from("c"));
        assert_eq!(list.len(), 3);
        assert!(list.contains("b"));
        assert!(list.remove("a") && list.remove("c"));
        assert!(!list.remove("a"));
        assert!(matches!(list, ChannelList::One(ref c) if &**c == "b"));
        assert!(list.remove("b"));
        assert_eq!(list.len(), 0);
        assert!(
            std::mem::size_of::<ChannelList>() <= std::mem::size_of::<Vec<Arc<str>>>(),
            "no bigger than the Vec it replaces"
        );
    }
}
