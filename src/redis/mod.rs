//! Redis client for glommio shards (no tokio): a pipelined command [`Client`] and a pub/sub [`Subscriber`], each one TCP link owned by one shard.
//!
//! Design:
//! - **One pipelined connection per shard for commands.** Every shard talks
//!   to Redis itself, so a publish needs no cross-shard hop. Commands from
//!   all of the shard's tasks are encoded into one buffer; the link task
//!   writes whatever accumulated since it last ran, so everything queued in
//!   one executor turn leaves in one `send`. Redis answers in order, so
//!   replies are matched to callers by a FIFO (no ids, no map).
//! - **Bounded.** `max_in_flight` caps the FIFO (`Busy` beyond it); a call
//!   fails at once with `Unavailable` when the link is not up, so nothing
//!   queues while Redis is away. A call that times out keeps its FIFO slot
//!   (the reply still comes, and is dropped), so later replies stay matched.
//! - **Liveness.** A link that owes replies and has received nothing for
//!   `command_timeout` is declared dead (every waiter gets `Unavailable`).
//!   An idle link sends a PING after `probe_interval` of quiet, so a peer
//!   that vanished without a FIN (a failover, a dropped NAT entry) is found
//!   even on a subscriber that only listens (centrifugo#1189).
//! - **Reconnect forever** with doubling backoff from `backoff_min` to
//!   `backoff_max`, drawn from the upper half of each step so shards that
//!   lost Redis together do not return in lockstep. One `warn!` per outage,
//!   one `info!` when back; retries log nothing above debug.
//! - **Pub/sub on its own connection** ([`Subscriber`]): RESP2 allows no
//!   other commands in subscribe mode. Subscribes issued in one turn go as
//!   one SUBSCRIBE (at most 512 channels); after a reconnect every wanted
//!   channel is resubscribed and `Up` is reported only once all are
//!   confirmed. Messages published while the link was down are lost.
//!
//! Layers: [`url`] and [`resp`] are pure (no I/O, fuzzed); `link.rs` owns the
//! socket and the reconnect loop; [`conn`] and [`pubsub`] say what replies mean.
//! Memory per link: the task, a 16 KiB read chunk, the read buffer (as large
//! as the largest reply, up to 64 MiB), the unsent commands and one small
//! allocation per command in flight.

pub mod conn;
mod link;
pub mod pubsub;
pub mod resp;
mod types;
pub mod url;

#[cfg(test)]
mod tests;

pub use conn::{Client, Script};
pub use pubsub::{OnEvent, PubSubEvent, Subscriber};
pub use resp::{Cmd, Reply};
pub use types::{LinkState, LinkStats, RedisError, RedisOptions};
pub use url::RedisUrl;
