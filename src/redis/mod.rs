//! Redis client for glommio shards (no tokio); so far the pure layers: [`url`] and [`resp`].

pub mod resp;
pub mod url;

pub use resp::{Cmd, Reply};
pub use url::RedisUrl;
