//! Centrifugo's `connect` and `refresh`: the token, the connection's
//! identity and the `ttl` the SDK refreshes by.

use crate::auth::AuthError;
use crate::centrifugo::proto::{self, ConnectRequest, Reply};
use crate::centrifugo::{self, error_code, Encoding};
use crate::connection::session::Session;
use crate::error::CloseReason;
use crate::shard::Shard;

impl Session {
    pub(super) fn cf_connect(
        &mut self,
        shard: &Shard,
        enc: Encoding,
        id: u32,
        req: ConnectRequest,
    ) {
        let mut expires_at = None;
        if req.token.is_empty() {
            if shard.config.config.require_auth {
                return shard.close(self.key, CloseReason::InvalidToken);
            }
            shard.stays_anonymous(self.key);
        } else {
            match shard.verify_token(&req.token) {
                Err(AuthError::Expired) => {
                    // The SDK fetches a new token and connects again.
                    self.started = false;
                    let message = "token expired".to_string();
                    return self.cf_error(
                        shard,
                        enc,
                        id,
                        error_code::TOKEN_EXPIRED,
                        message,
                        false,
                    );
                }
                Err(e) => {
                    log::debug!("connect refused conn={}-{}: {e}", shard.id.0, self.seq);
                    return shard.close(self.key, CloseReason::InvalidToken);
                }
                Ok(claims) if claims.user.is_empty() => shard.stays_anonymous(self.key),
                Ok(claims) => expires_at = shard.attach_identity(self.key, claims),
            }
        }
        log::debug!(
            "centrifugo connected conn={}-{} client_name={:?}",
            shard.id.0,
            self.seq,
            req.name
        );
        let (expires, ttl) = ttl(expires_at);
        let ping = shard.config.config.ping_interval.as_secs() as u32;
        // The user's personal channel reaches every connection of theirs
        // unasked: for the SDK, a server-side subscription.
        let user = shard.with_user(self.key, str::to_string);
        let subs = if user.is_empty() {
            Vec::new()
        } else {
            vec![proto::SubscriptionEntry {
                key: format!("#{user}"),
                value: Some(proto::SubscribeResult::default()),
            }]
        };
        let reply = Reply {
            id,
            connect: Some(proto::ConnectResult {
                client: self.cf_client_id(shard),
                version: centrifugo::VERSION.to_string(),
                expires,
                ttl,
                ping,
                pong: ping > 0,
                subs,
            }),
            ..Default::default()
        };
        shard.send_to(self.key, centrifugo::reply_frame(enc, &reply));
    }

    pub(super) fn cf_refresh(&mut self, shard: &Shard, enc: Encoding, id: u32, token: &str) {
        let user = shard.with_user(self.key, str::to_string);
        if user.is_empty() {
            let message = "refresh needs a connection with a user".to_string();
            return self.cf_error(shard, enc, id, error_code::BAD_REQUEST, message, false);
        }
        match shard.verify_token(token) {
            Err(AuthError::Expired) => {
                let message = "token expired".to_string();
                self.cf_error(shard, enc, id, error_code::TOKEN_EXPIRED, message, false)
            }
            Ok(claims) if *claims.user == *user => {
                let (expires, ttl) = ttl(shard.refresh_identity(self.key, claims));
                let reply = Reply {
                    id,
                    refresh: Some(proto::RefreshResult {
                        client: self.cf_client_id(shard),
                        version: centrifugo::VERSION.to_string(),
                        expires,
                        ttl,
                    }),
                    ..Default::default()
                };
                shard.send_to(self.key, centrifugo::reply_frame(enc, &reply));
            }
            // Invalid, or another user's: Centrifugo disconnects (3500).
            _ => shard.close(self.key, CloseReason::InvalidToken),
        }
    }
}

/// `expires` and `ttl` for a token expiry in unix seconds: the seconds
/// left minus a margin (a quarter of them, 1 to 5 s), at least 1. The SDK
/// refreshes when `ttl` runs out, and corecast closes an expired
/// connection at once (Centrifugo waits 25 s), so the refresh must come
/// first.
fn ttl(expires_at: Option<u64>) -> (bool, u32) {
    match expires_at {
        Some(at) => (true, ttl_for(at.saturating_sub(crate::shard::unix_now()))),
        None => (false, 0),
    }
}

/// The `ttl` reported for a token with `left` seconds to live.
fn ttl_for(left: u64) -> u32 {
    let ttl = left.saturating_sub((left / 4).clamp(1, 5)).max(1);
    ttl.min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::ttl_for;

    #[test]
    fn ttl_leaves_a_margin_before_expiry() {
        assert_eq!(ttl_for(0), 1);
        assert_eq!(ttl_for(2), 1);
        assert_eq!(ttl_for(8), 6);
        assert_eq!(ttl_for(3600), 3595);
        assert_eq!(ttl_for(u64::MAX), u32::MAX);
    }
}
