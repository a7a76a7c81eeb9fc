//! The Redis engine (`--redis`): one shard's links to every Redis instance
//! and the commands corecast sends (publish, history scripts, pub/sub
//! interest, the control channel). The shard-side rules (which shard
//! subscribes, ordering, gap repair) live in `shard/cluster/`.
//!
//! Each shard holds, per Redis instance, one pipelined command link (its
//! own publishes, history reads and presence, with no hop to another
//! shard) and one pub/sub link for the channels whose home it is (so each
//! channel is subscribed once per process: Redis copies a message once per
//! subscribed link, and the home already fans out to the other shards).
//! A channel lives on instance `keys::instance_of(channel, n)`; the control
//! channel (user messages, disconnects, broadcasts) on instance 0, where
//! shard 0 of every process listens.

pub mod envelope;
pub mod keys;
pub mod presence;
pub mod scripts;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;

use crate::history::{Epoch, EpochSource, HistoryOptions};
use crate::redis::{
    Client, Cmd, LinkState, RedisError, RedisOptions, RedisUrl, Script, Subscriber,
};
pub use keys::{instance_of, Keys};
use scripts::{ReadMode, ReadReply};

/// One shard's side of the Redis engine.
pub struct Broker {
    keys: Keys,
    urls: Vec<RedisUrl>,
    commands: Vec<Rc<Client>>,
    subscribers: Vec<Rc<Subscriber>>,
    publish_script: Script,
    read_script: Script,
    presence_add: Script,
    presence_get: Script,
    /// Epochs offered to Redis for channels that have none yet (the script
    /// keeps the first one set).
    epochs: RefCell<EpochSource>,
}

/// What a shard's pub/sub links report, tagged with the instance.
pub type OnMessage = Rc<dyn Fn(usize, crate::redis::PubSubEvent<'_>)>;

impl Broker {
    /// Starts this shard's links (they connect and reconnect in the
    /// background; commands fail with `Unavailable` until they are up).
    /// `name` is the client name Redis shows (`CLIENT LIST`).
    pub fn start(
        urls: &[RedisUrl],
        prefix: &str,
        opts: &RedisOptions,
        name: &str,
        seed: u64,
        on_message: OnMessage,
    ) -> Broker {
        let commands = urls
            .iter()
            .map(|url| Client::start(url.clone(), opts.clone(), &format!("{name}-cmd")))
            .collect();
        let subscribers = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let on = on_message.clone();
                Subscriber::start(
                    url.clone(),
                    opts.clone(),
                    &format!("{name}-sub"),
                    Box::new(move |event| on(i, event)),
                )
            })
            .collect();
        Broker {
            keys: Keys::new(prefix),
            urls: urls.to_vec(),
            commands,
            subscribers,
            publish_script: Script::new(scripts::PUBLISH),
            read_script: Script::new(scripts::READ),
            presence_add: Script::new(presence::ADD),
            presence_get: Script::new(presence::GET),
            epochs: RefCell::new(EpochSource::new(seed)),
        }
    }

    /// The names used in Redis.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn instance(&self, channel: &str) -> usize {
        instance_of(channel, self.commands.len())
    }

    fn command_link(&self, channel: &str) -> &Rc<Client> {
        &self.commands[self.instance(channel)]
    }

    /// Publishes an encoded frame of a channel without history.
    pub fn publish_frame(
        &self,
        channel: &str,
        frame: &[u8],
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        let cmd = Cmd::new("PUBLISH")
            .arg(self.keys.pubsub(channel))
            .arg(envelope::frame(frame));
        let link = self.command_link(channel).clone();
        async move { link.call(cmd).await.map(drop) }
    }

    /// Publishes on the control channel (instance 0).
    pub fn publish_control(
        &self,
        payload: Bytes,
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        let cmd = Cmd::new("PUBLISH").arg(self.keys.control()).arg(payload);
        let link = self.commands[0].clone();
        async move { link.call(cmd).await.map(drop) }
    }

    /// Numbers, stores and publishes one publication of a history channel
    /// in one script run; answers its offset and epoch.
    pub async fn publish_history(
        &self,
        channel: &str,
        data: &[u8],
        opts: &HistoryOptions,
    ) -> Result<(u64, Epoch), RedisError> {
        let epoch = self.epochs.borrow_mut().next_epoch();
        let (stream, meta) = (self.keys.stream(channel), self.keys.meta(channel));
        let size = opts.size.to_string();
        let ttl = opts.ttl_ms.max(1).to_string();
        let meta_ttl = opts.meta_ttl_ms.max(opts.ttl_ms).max(1).to_string();
        let args: [&[u8]; 6] = [
            &self.keys.pubsub(channel),
            data,
            size.as_bytes(),
            ttl.as_bytes(),
            meta_ttl.as_bytes(),
            epoch.as_str().as_bytes(),
        ];
        let reply = self
            .command_link(channel)
            .eval(&self.publish_script, &[&stream, &meta], &args)
            .await?;
        scripts::parse_publish(reply).map_err(RedisError::Protocol)
    }

    /// Runs the read script: position, recovery or a page.
    pub async fn read(
        &self,
        channel: &str,
        opts: &HistoryOptions,
        mode: ReadMode<'_>,
    ) -> Result<ReadReply, RedisError> {
        let epoch = self.epochs.borrow_mut().next_epoch();
        let (stream, meta) = (self.keys.stream(channel), self.keys.meta(channel));
        let meta_ttl = opts.meta_ttl_ms.max(opts.ttl_ms).max(1).to_string();
        let ttl = opts.ttl_ms.max(1).to_string();
        let [mode, since, since_epoch, limit] = mode.args();
        let args: [&[u8]; 7] = [
            epoch.as_str().as_bytes(),
            meta_ttl.as_bytes(),
            ttl.as_bytes(),
            &mode,
            &since,
            &since_epoch,
            &limit,
        ];
        let reply = self
            .command_link(channel)
            .eval(&self.read_script, &[&stream, &meta], &args)
            .await?;
        scripts::parse_read(reply).map_err(RedisError::Protocol)
    }

    /// Drops a channel's history; its next use starts a new epoch.
    pub async fn remove_history(&self, channel: &str) -> Result<(), RedisError> {
        let cmd = Cmd::new("DEL")
            .arg(self.keys.stream(channel))
            .arg(self.keys.meta(channel));
        self.command_link(channel).call(cmd).await.map(drop)
    }

    /// Adds (or refreshes) present clients of `channel`: (field, client
    /// object) pairs, each kept `ttl_ms` unless refreshed. The command is
    /// queued when the future is first polled.
    pub fn presence_add(
        &self,
        channel: &str,
        ttl_ms: u64,
        entries: Vec<(String, String)>,
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        let link = self.command_link(channel).clone();
        let script = self.presence_add.clone();
        let keys = [
            self.keys.presence(channel),
            self.keys.presence_expiry(channel),
        ];
        let mut args: Vec<Bytes> = Vec::with_capacity(1 + 2 * entries.len());
        args.push(Bytes::from(ttl_ms.max(1).to_string()));
        for (field, value) in entries {
            args.push(Bytes::from(field));
            args.push(Bytes::from(value));
        }
        async move {
            let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
            let args: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            link.eval(&script, &keys, &args).await.map(drop)
        }
    }

    /// Removes one present client of `channel`; queued when the future is
    /// first polled.
    pub fn presence_remove(
        &self,
        channel: &str,
        field: &str,
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        let link = self.command_link(channel).clone();
        let hdel = Cmd::new("HDEL").arg(self.keys.presence(channel)).arg(field);
        let zrem = Cmd::new("ZREM")
            .arg(self.keys.presence_expiry(channel))
            .arg(field);
        async move {
            let (hdel, zrem) = (link.call(hdel), link.call(zrem));
            hdel.await?;
            zrem.await.map(drop)
        }
    }

    /// `channel`'s present clients across the cluster: up to `limit`
    /// client objects, or (`stats`) the counts.
    pub async fn presence_get(
        &self,
        channel: &str,
        limit: usize,
        stats: bool,
    ) -> Result<presence::PresenceReply, RedisError> {
        let (hash, zset) = (
            self.keys.presence(channel),
            self.keys.presence_expiry(channel),
        );
        let limit = limit.to_string();
        let stats: &[u8] = if stats { b"1" } else { b"0" };
        let reply = self
            .command_link(channel)
            .eval(
                &self.presence_get,
                &[&hash, &zset],
                &[limit.as_bytes(), stats],
            )
            .await?;
        presence::parse_get(reply).map_err(RedisError::Protocol)
    }

    /// Subscribes this shard's pub/sub link to `channel`; resolves once
    /// Redis has confirmed it.
    pub fn subscribe(
        &self,
        channel: &str,
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        let link = self.subscribers[self.instance(channel)].clone();
        let name = self.keys.pubsub(channel);
        async move { link.subscribe(name).await }
    }

    /// Ends this shard's pub/sub interest in `channel`.
    pub fn unsubscribe(&self, channel: &str) {
        self.subscribers[self.instance(channel)].unsubscribe(&self.keys.pubsub(channel));
    }

    /// Subscribes to the control channel (shard 0 of each process does).
    pub fn subscribe_control(
        &self,
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        let link = self.subscribers[0].clone();
        let name = self.keys.control();
        async move { link.subscribe(name).await }
    }

    /// Each instance's address (password masked) and the state of this
    /// shard's two links to it.
    pub fn link_states(&self) -> Vec<(String, LinkState, LinkState)> {
        self.urls
            .iter()
            .zip(self.commands.iter().zip(&self.subscribers))
            .map(|(url, (c, s))| (url.to_string(), c.state(), s.state()))
            .collect()
    }

    /// The command links (for stats).
    pub fn command_links(&self) -> &[Rc<Client>] {
        &self.commands
    }

    /// The pub/sub links (for stats).
    pub fn pubsub_links(&self) -> &[Rc<Subscriber>] {
        &self.subscribers
    }

    /// Closes every link (at shutdown).
    pub fn close(&self) {
        for c in &self.commands {
            c.close();
        }
        for s in &self.subscribers {
            s.close();
        }
    }
}
