//! Who a connection is and what it may do: a verified token's user attached
//! to a connection (its personal channel `#<user>`, its expiry), delivery to
//! and disconnection of a user's connections, and the namespace checks on
//! subscribe, publish and presence. Everything here is shard-local.

use std::rc::Rc;

use bytes::Bytes;

use super::{ConnKey, Outgoing, Shard, UserSlot};
use crate::auth::{AuthError, Claims, Verifier, LEEWAY_SECS};
use crate::demo::Demo;
use crate::error::CloseReason;
use crate::message::ErrorCode;

/// What a connection asks to do with a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe (also what reading presence needs).
    Subscribe,
    /// Publish from the client.
    Publish,
    /// Read presence or presence stats.
    Presence,
}

/// Seconds since the Unix epoch (the clock tokens are signed against).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The user a personal channel belongs to: `#alice` -> `alice`.
pub fn personal_channel_owner(channel: &str) -> Option<&str> {
    channel.strip_prefix('#').filter(|user| !user.is_empty())
}

impl Shard {
    /// The token verifier, when `--jwt-hmac-secret` or `--jwt-public-key` is set.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.shared.verifier.as_ref()
    }

    /// The `--demo` page and token minter, when `--demo` is on.
    pub fn demo(&self) -> Option<&Demo> {
        self.shared.demo.as_ref()
    }

    /// Verifies a client's token now; without a configured key every token
    /// is invalid.
    pub fn verify_token(&self, token: &str) -> Result<Claims, AuthError> {
        match self.verifier() {
            Some(verifier) => verifier.verify(token, unix_now()),
            None => Err(AuthError::Invalid(
                "no token key is configured (--jwt-hmac-secret, --jwt-public-key)",
            )),
        }
    }

    /// Attaches a verified token's identity to connection `key`: its user
    /// (so `#<user>` reaches it), the claims presence and grants need, and
    /// the close at the token's expiry. An anonymous token (no `sub`)
    /// attaches nothing. Returns the expiry (unix seconds) it set, if any.
    pub fn attach_identity(&self, key: ConnKey, claims: Claims) -> Option<u64> {
        if claims.user.is_empty() {
            return None;
        }
        let mut users = self.users.borrow_mut();
        let slot = users.attach(&claims.user, key);
        let expires_at = claims.expires_at;
        if claims.info.is_some() || !claims.channels.is_empty() {
            users.set_claims(key, Rc::new(claims));
        }
        drop(users);
        let deadline = self.deadline_for(expires_at);
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            conn.user = slot;
            conn.auth_deadline_s = deadline;
        }
        expires_at
    }

    /// Replaces connection `key`'s claims and expiry with a refreshed
    /// token's (the caller checked it names the same user).
    pub fn refresh_identity(&self, key: ConnKey, claims: Claims) -> Option<u64> {
        let expires_at = claims.expires_at;
        let mut users = self.users.borrow_mut();
        if claims.info.is_some() || !claims.channels.is_empty() {
            users.set_claims(key, Rc::new(claims));
        } else {
            users.clear_claims(key);
        }
        drop(users);
        let deadline = self.deadline_for(expires_at);
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            conn.auth_deadline_s = deadline;
        }
        expires_at
    }

    /// Shard second at which a token expiring at `expires_at` (unix
    /// seconds) closes its connection; 0 (never) without an expiry.
    fn deadline_for(&self, expires_at: Option<u64>) -> u32 {
        let Some(exp) = expires_at else { return 0 };
        let now_unix = unix_now();
        // The verifier accepted the token up to LEEWAY_SECS past `exp`;
        // the close honours the same grace, so the two never disagree.
        let left = (exp + LEEWAY_SECS).saturating_sub(now_unix);
        // Rounded up: a deadline in whole shard seconds must never come early.
        (self.now_ms().div_ceil(1000) + left).clamp(1, u64::from(u32::MAX)) as u32
    }

    /// Under `--require-auth`, closes connection `key` with 4001 unless it
    /// authenticates within `--handshake-timeout`.
    pub fn expect_connect(&self, key: ConnKey) {
        let within = Self::ms(self.config.config.handshake_timeout);
        // Rounded up to whole shard seconds, so never early.
        let deadline = (self.now_ms() + within).div_ceil(1000);
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            conn.auth_deadline_s = deadline.clamp(1, u64::from(u32::MAX)) as u32;
        }
    }

    /// An anonymous connection's `connect` carried no user: it stays
    /// anonymous, and under `--require-auth` that ends it.
    pub fn stays_anonymous(&self, key: ConnKey) {
        if self.config.config.require_auth {
            self.close(key, CloseReason::AuthRequired);
        } else if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            conn.auth_deadline_s = 0;
        }
    }

    /// The id clients and the admin API know connection `seq` of this shard
    /// by: `SHARD-SEQ`, unique within the process; in Redis mode
    /// `NODE.SHARD-SEQ` (`NODE`: this process's random id), unique across
    /// processes, since presence lists and join/leave of every process meet
    /// there (and Centrifugo's presence is a map keyed by it).
    pub fn connection_id(&self, seq: u64) -> String {
        if self.config.config.redis.is_empty() {
            format!("{}-{seq}", self.id.0)
        } else {
            format!("{}.{}-{seq}", self.shared.node_id, self.id.0)
        }
    }

    /// Closes connection `key` with `reason` (the close handshake, bounded
    /// by `--close-timeout`).
    pub fn close(&self, key: ConnKey, reason: CloseReason) {
        let deadline = self.now_ms() + Self::ms(self.config.config.close_timeout);
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            conn.begin_close(reason, deadline);
        }
    }

    /// Removes connection `key` from its user's connections.
    pub(super) fn detach_user(&self, key: ConnKey) {
        let slot = self
            .conns
            .borrow()
            .get(key.0 as usize)
            .map_or(UserSlot::NONE, |c| c.user);
        if slot.is_some() {
            self.users.borrow_mut().detach(slot, key);
        }
    }

    /// The user of connection `key` ("" when anonymous), passed to `f`.
    pub fn with_user<R>(&self, key: ConnKey, f: impl FnOnce(&str) -> R) -> R {
        let slot = self
            .conns
            .borrow()
            .get(key.0 as usize)
            .map_or(UserSlot::NONE, |c| c.user);
        f(self.users.borrow().name(slot))
    }

    /// Whether connection `key` may do `access` on `channel`: its
    /// namespace's rules, private grants, and personal channels (only their
    /// owner subscribes or reads presence). The error is what the client
    /// is told.
    pub fn check_access(
        &self,
        key: ConnKey,
        channel: &str,
        access: Access,
    ) -> Result<(), (ErrorCode, String)> {
        self.with_user(key, |user| {
            if access != Access::Publish {
                if let Some(owner) = personal_channel_owner(channel) {
                    if owner != user {
                        return Err((
                            ErrorCode::PermissionDenied,
                            format!("{channel} is another user's personal channel"),
                        ));
                    }
                }
            }
            let ns_name = channel.split_once(':').map_or("default", |(ns, _)| ns);
            let Some(ns) = self.config.config.namespaces.lookup(channel) else {
                return Err((
                    ErrorCode::UnknownNamespace,
                    format!("no namespace {ns_name:?} is configured"),
                ));
            };
            if user.is_empty() && !ns.anonymous {
                return Err((
                    ErrorCode::PermissionDenied,
                    format!("namespace {ns_name:?} needs an authenticated connection"),
                ));
            }
            match access {
                Access::Publish if !ns.client_publish => Err((
                    ErrorCode::PermissionDenied,
                    format!("namespace {ns_name:?} takes publishes from the server API only"),
                )),
                Access::Publish => Ok(()),
                Access::Subscribe | Access::Presence => {
                    let personal = personal_channel_owner(channel).is_some();
                    if ns.private && !personal && !self.granted(key, channel) {
                        return Err((
                            ErrorCode::PermissionDenied,
                            format!("{channel} is private and the token does not grant it"),
                        ));
                    }
                    if access == Access::Presence && !ns.presence {
                        return Err((
                            ErrorCode::PresenceDisabled,
                            format!("presence is off in namespace {ns_name:?}"),
                        ));
                    }
                    Ok(())
                }
            }
        })
    }

    /// True when connection `key`'s token grants `channel`.
    fn granted(&self, key: ConnKey, channel: &str) -> bool {
        self.users
            .borrow()
            .claims(key)
            .is_some_and(|c| c.grants(channel))
    }

    /// Queues `frame` for every local connection of `user`; returns how many.
    pub(super) fn deliver_to_user(&self, user: &str, frame: &Bytes, stamp: u64) -> u64 {
        let users = self.users.borrow();
        let Some(conns) = users.conns_of(user) else {
            return 0;
        };
        let mut out = Outgoing::shared(frame, stamp);
        let mut table = self.conns.borrow_mut();
        let mut n = 0;
        for key in conns.iter() {
            if let Some(conn) = table.get_mut(key.0 as usize) {
                let Some(frame) = self.frame_for(&mut out, conn) else {
                    continue;
                };
                self.deliver(key, conn, frame);
                n += 1;
            }
        }
        drop(table);
        self.metrics.bump(|c| c.delivered += n);
        n
    }

    /// Closes every local connection of `user` with 4000; returns how many.
    pub(super) fn disconnect_user_local(&self, user: &str) -> u64 {
        let keys: Vec<ConnKey> = self
            .users
            .borrow()
            .conns_of(user)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        for key in &keys {
            self.close(*key, CloseReason::Disconnected);
        }
        keys.len() as u64
    }
}
