//! `Config`: every flag of the `corecast` binary, with its `CORECAST_*`
//! environment variable, config file key and default, plus
//! [`Config::validate`].
//!
//! The config is immutable once the server starts and is shared as
//! `Arc<Config>`. Values derived from the machine (CPU list, connection
//! limit) are resolved here, in [`Config::resolve`], so the rest of the
//! server never looks at the environment. `file.rs` merges the `--config`
//! file under the flags and environment ([`load`]); `namespace.rs` holds the
//! file-only `[namespaces]`; `values.rs` the syntax of sizes, intervals,
//! CPU lists and addresses.

mod file;
mod namespace;
mod values;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::error::StartupError;
use crate::origin::{parse_origins, Origins};
use crate::proxy::{parse_trusted_proxies, TrustedProxies};

pub use file::{load, load_with, LoadError, Loaded, Source};
pub use namespace::{
    NamespaceError, NamespaceOptions, Namespaces, DEFAULT_NAMESPACE, DEMO_NAMESPACE,
    MAX_NAMESPACE_LEN,
};
pub use values::{
    format_cpus, parse_admin_addr, parse_cpu_list, parse_duration, parse_interval,
    parse_redis_prefix, parse_redis_url, parse_size, AdminAddr, CpuList,
};

/// Command-line flags, environment variables and config file of `corecast`.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "corecast",
    version,
    about = "Thread-per-core WebSocket pub/sub server (glommio, io_uring)",
    long_about = "Thread-per-core WebSocket pub/sub server.\n\n\
        One io_uring executor (shard) is pinned per CPU; every shard accepts on the same \
        SO_REUSEPORT port and owns its connections for their whole life.\n\n\
        Public port: GET /ws (JSON pub/sub; /ws?token=JWT authenticates), GET /echo (echo), \
        GET /health (JSON); with --demo, a chat page at GET /demo/.\n\
        Admin port (--admin-addr): GET /metrics (Prometheus), /health, /latency (.hgrm), \
        /api/publish, /api/broadcast, /api/channels, /api/stats, /api/disconnect, \
        /api/user/send, /api/user/disconnect, /api/presence, /api/presence_stats.\n\
        Authentication (JWT): --jwt-hmac-secret and/or --jwt-public-key; clients send a token \
        in the URL or as {\"type\":\"connect\",\"token\":...} (docs/security.md).\n\
        Every flag can also be set through the CORECAST_* environment variable shown, and \
        in the --config FILE (TOML) under its name with _ for - (max_connections = 5000); \
        a flag beats the environment, which beats the file, which beats the default. The \
        file alone configures [namespaces.NAME]. --check-config FILE validates a file and \
        prints the effective configuration without starting (docs/configuration.md).\n\
        Durations take units (500ms, 10s, 2m); sizes take bytes or a K/M/G (binary) suffix.\n\
        Logging: RUST_LOG (default info)."
)]
pub struct Config {
    /// TOML file with a key per flag (its name with `_` for `-`) and
    /// [namespaces.NAME] tables; flags and CORECAST_* variables override it
    /// [default: none].
    #[arg(long = "config", env = "CORECAST_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Validate FILE as --config would (with the other flags and environment),
    /// print the effective configuration and exit: 0 if valid, 1 if not.
    /// Binds nothing.
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "CORECAST_ADDR", default_value = "0.0.0.0")]
    pub addr: IpAddr,

    /// Port to listen on; 0 picks a free port (the log's `listening` line tells which).
    #[arg(long, env = "CORECAST_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Number of shards (one pinned executor each) [default: one per CPU in --cpus].
    #[arg(long, env = "CORECAST_SHARDS")]
    pub shards: Option<usize>,

    /// CPUs to pin shards to, e.g. "0-3" or "1,3" [default: the process's affinity mask,
    /// so `taskset -c 1 corecast` runs one shard on CPU 1].
    #[arg(long, env = "CORECAST_CPUS", value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,

    /// Listen backlog per shard; capped by net.core.somaxconn.
    #[arg(long, env = "CORECAST_BACKLOG", default_value_t = 4096)]
    pub backlog: u32,

    /// Most concurrent connections for this process (all shards)
    /// [default: the open-files hard limit less a reserve for the server's own descriptors].
    #[arg(long, env = "CORECAST_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Largest WebSocket message accepted (a message of exactly this size is accepted;
    /// larger closes with 1009).
    #[arg(long, env = "CORECAST_MAX_MESSAGE_SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Memory one connection's outbound queue may hold before it is closed as a slow
    /// consumer (close 1008 "slow consumer"): frame bytes plus 96 B per queued frame, so
    /// a flood of tiny frames (pongs) is bounded like a few large ones.
    #[arg(long, env = "CORECAST_MAX_OUTBOUND_BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub max_outbound_bytes: usize,

    /// permessage-deflate (RFC 7692) on /ws and /echo: "on" accepts a client's
    /// offer, always with no context takeover, so a connection holds no
    /// compression state (one compressor per window size asked for, 8 to 15
    /// bits, and one decompressor per shard); a publish is compressed at
    /// most once per shard per window size for all its subscribers that
    /// negotiated it. "off" accepts no offer (docs/protocol.md).
    #[arg(long, env = "CORECAST_COMPRESSION", value_enum, default_value_t = Compression::Off)]
    pub compression: Compression,

    /// With --compression on, messages to clients whose payload is smaller than
    /// this go uncompressed (compressing a few bytes costs CPU and saves nothing).
    #[arg(long, env = "CORECAST_COMPRESSION_MIN_SIZE", default_value = "128", value_parser = parse_size)]
    pub compression_min_size: usize,

    /// How the flush pass writes subscribers' outboxes: "syscall" (one non-blocking
    /// sendmsg per dirty connection, the default) or "io-uring" (the sendmsg calls of
    /// up to 256 connections submitted at once on a small private io_uring ring per
    /// shard: one io_uring_enter instead of 256 syscalls). io-uring is an experiment:
    /// docs/ARCHITECTURE.md "io_uring data path" has its measurements.
    #[arg(long, env = "CORECAST_SEND_PATH", value_enum, default_value_t = SendPath::Syscall)]
    pub send_path: SendPath,

    /// Channels one /ws connection may subscribe to (TOO_MANY_CHANNELS above it).
    #[arg(
        long,
        env = "CORECAST_MAX_CHANNELS_PER_CONNECTION",
        default_value_t = 128
    )]
    pub max_channels_per_connection: usize,

    /// Largest HTTP request head (request line + headers) before 431.
    #[arg(long, env = "CORECAST_MAX_HEADER_BYTES", default_value = "8KiB", value_parser = parse_size)]
    pub max_header_bytes: usize,

    /// Time a client has to complete the HTTP upgrade before it is dropped
    /// (and a /connection/websocket client to send `connect` after it:
    /// 3502 "stale").
    #[arg(long, env = "CORECAST_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Interval between server pings on an open connection (WebSocket pings;
    /// on /connection/websocket the protocol's empty reply, announced in the
    /// connect result's `ping`).
    #[arg(long, env = "CORECAST_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// A connection that sends nothing for this long after a ping is closed
    /// (close 1008 "heartbeat timeout").
    #[arg(long, env = "CORECAST_PONG_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub pong_timeout: Duration,

    /// Time the peer has to answer a close frame the server sent (and to take the queued
    /// bytes before it) before the socket is dropped.
    #[arg(long, env = "CORECAST_CLOSE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub close_timeout: Duration,

    /// On SIGINT/SIGTERM, time to wait for clients to answer close 1001 before exiting.
    #[arg(long, env = "CORECAST_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Messages each cross-shard channel holds before the sender queues locally and
    /// pauses reading from its publishers.
    #[arg(long, env = "CORECAST_BUS_CAPACITY", default_value_t = 4096)]
    pub bus_capacity: usize,

    /// Admin listener (/metrics, /health, /latency, /api/*): an address or
    /// "none". Keep it private: it is plain HTTP.
    #[arg(long, env = "CORECAST_ADMIN_ADDR", default_value = "127.0.0.1:9090", value_parser = parse_admin_addr)]
    pub admin_addr: AdminAddr,

    /// Bearer token required on every /api route of the admin listener
    /// (`Authorization: Bearer TOKEN`) [default: none; a warning at startup
    /// when the admin address is not loopback].
    #[arg(long, env = "CORECAST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Largest request body the admin API accepts (413 above it).
    #[arg(long, env = "CORECAST_MAX_API_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_api_body: usize,

    /// Log a fan-out latency summary (count, p50..max in µs) every interval;
    /// 0 turns it off.
    #[arg(long, env = "CORECAST_LATENCY_REPORT_INTERVAL", default_value = "60s", value_parser = parse_interval)]
    pub latency_report_interval: Duration,

    /// Also write each interval's latency distribution as an .hgrm file here.
    #[arg(long, env = "CORECAST_LATENCY_REPORT_DIR")]
    pub latency_report_dir: Option<PathBuf>,

    /// Memory glommio registers with io_uring per shard. corecast does no file I/O
    /// through it, so the 64 KiB minimum keeps startup under small memlock limits.
    #[arg(long, env = "CORECAST_IO_MEMORY", default_value = "64KiB", value_parser = parse_size)]
    pub io_memory: usize,

    /// HMAC secret (HS256/384/512) that client tokens are signed with [default: none].
    #[arg(
        long,
        env = "CORECAST_JWT_HMAC_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_hmac_secret: Option<String>,

    /// PEM public key (RSA or EC) that client tokens are signed for [default: none].
    #[arg(long, env = "CORECAST_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// Refuse connections without a valid token (needs --jwt-hmac-secret or
    /// --jwt-public-key) [default: off: anonymous connections are allowed
    /// where their namespace allows them].
    #[arg(long, env = "CORECAST_REQUIRE_AUTH")]
    pub require_auth: bool,

    /// Browser origins that may open a WebSocket, comma-separated: exact
    /// (`https://app.example.com`) or a wildcard host (`https://*.example.com`).
    /// A request without Origin is always allowed [default: empty, every
    /// origin allowed].
    #[arg(long, env = "CORECAST_ALLOWED_ORIGINS", value_name = "LIST", default_value = "", hide_default_value = true, value_parser = parse_origins)]
    pub allowed_origins: Origins,

    /// Load balancers and reverse proxies whose X-Forwarded-For / X-Real-IP
    /// headers are believed, comma-separated addresses and CIDR blocks
    /// (`127.0.0.1,10.0.0.0/8,fd00::/8`). A connection from one of them is
    /// logged as the right-most X-Forwarded-For address that is not itself
    /// listed (or else X-Real-IP); from any other peer those headers are
    /// ignored, since a client can write anything in them. A malformed header
    /// falls back to the peer address. List only the proxies themselves
    /// (docs/scaling.md) [default: empty, no proxy trusted].
    #[arg(long, env = "CORECAST_TRUSTED_PROXIES", value_name = "LIST", default_value = "", hide_default_value = true, value_parser = parse_trusted_proxies)]
    pub trusted_proxies: TrustedProxies,

    /// Most clients one presence reply lists (the rest is cut, marked truncated).
    #[arg(long, env = "CORECAST_MAX_PRESENCE_CLIENTS", default_value_t = 1000)]
    pub max_presence_clients: usize,

    /// How long a history channel with nothing published keeps its top offset and
    /// epoch after its publications expired, so a client just past the window is
    /// told `recovered:false` rather than silently starting over.
    #[arg(long, env = "CORECAST_HISTORY_META_TTL", default_value = "24h", value_parser = parse_duration)]
    pub history_meta_ttl: Duration,

    /// Memory all history channels of the process may hold (payload plus 64 B per
    /// publication), split evenly between shards; the oldest publications are evicted
    /// first (corecast_history_evictions_total).
    #[arg(long, env = "CORECAST_HISTORY_MAX_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub history_max_bytes: usize,

    /// Most history channel records the process keeps (split evenly between shards).
    /// A record costs ~100 B plus its name and is made by the first subscribe, read or
    /// publish; at the cap a new channel evicts a record holding no publication (its
    /// clients then get recovered:false).
    #[arg(
        long,
        env = "CORECAST_HISTORY_MAX_CHANNELS",
        default_value_t = 1_000_000
    )]
    pub history_max_channels: usize,

    /// Most missed publications a recovering subscribe is sent; more is recovered:false.
    #[arg(
        long,
        env = "CORECAST_RECOVERY_MAX_PUBLICATIONS",
        default_value_t = 300
    )]
    pub recovery_max_publications: usize,

    /// Most publications one history request returns (its limit is capped to this).
    #[arg(long, env = "CORECAST_HISTORY_MAX_LIMIT", default_value_t = 300)]
    pub history_max_limit: usize,

    /// Redis instances to scale out over, comma-separated or repeated
    /// (`redis://[user:pass@]host:port[/db]`). With any, this process joins
    /// the cluster they define: publishes, history, presence and user
    /// messages go through Redis, so every process on them acts as one
    /// server; channels are spread over the instances by a jump consistent
    /// hash (adding one remaps ~1/N of the channels). Redis down at
    /// startup: the server starts and keeps reconnecting. See
    /// docs/scaling.md [default: none: one self-contained process].
    #[arg(long = "redis", env = "CORECAST_REDIS", value_name = "URL", value_delimiter = ',', value_parser = parse_redis_url)]
    pub redis: Vec<crate::redis::RedisUrl>,

    /// Prefix of every key and pub/sub channel this cluster uses in Redis
    /// (several deployments can share one instance with different prefixes).
    #[arg(long, env = "CORECAST_REDIS_PREFIX", default_value = "corecast", value_parser = parse_redis_prefix)]
    pub redis_prefix: String,

    /// How long a Redis command or connect may take before it fails (and a
    /// link with replies outstanding and nothing heard for this long is
    /// reconnected).
    #[arg(long, env = "CORECAST_REDIS_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub redis_timeout: Duration,

    /// Redis mode: how long a present client stays listed in a presence
    /// namespace's cluster-wide presence without being refreshed; each
    /// process refreshes its own every third of it, so a crashed process's
    /// clients disappear within this time.
    #[arg(long, env = "CORECAST_REDIS_PRESENCE_TTL", default_value = "60s", value_parser = parse_duration)]
    pub redis_presence_ttl: Duration,

    /// How often each history channel's home compares what it delivered
    /// with the stream's top in Redis, to repair a publication whose pub/sub
    /// copy was lost (also done at once after every reconnect); 0 turns the
    /// periodic check off.
    #[arg(long, env = "CORECAST_REDIS_POSITION_CHECK", default_value = "10s", value_parser = parse_interval)]
    pub redis_position_check: Duration,

    /// Serve a chat demo on the public port, for trying corecast: GET /demo/
    /// (a page using the centrifuge JavaScript SDK over /connection/websocket)
    /// and GET /demo/token?user=NAME, which gives anyone a token for any NAME,
    /// signed with a key made at startup. Adds the namespace `chat` (signed-in
    /// users, presence, join/leave, history of 100 messages for 10 minutes)
    /// unless the config file defines it. Cannot be combined with
    /// --jwt-hmac-secret or --jwt-public-key, since demo names would then be
    /// real identities (docs/demo.md) [default: off].
    #[arg(long, env = "CORECAST_DEMO")]
    pub demo: bool,

    /// Channel namespaces, from the config file only (and `chat` with
    /// --demo); without a file every channel has the default options.
    #[arg(skip)]
    pub namespaces: Arc<Namespaces>,
}

/// `--compression`: whether permessage-deflate is negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    /// No offer is accepted: every frame goes uncompressed.
    #[default]
    Off,
    /// A client's permessage-deflate offer is accepted.
    On,
}

/// `--send-path`: how the flush pass hands outboxes to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SendPath {
    /// One non-blocking `sendmsg` per dirty connection.
    #[default]
    Syscall,
    /// The pass's `sendmsg`s submitted together on a private io_uring ring.
    IoUring,
}

/// Descriptors kept back from the open-files limit for the server's own use
/// (io_uring rings, eventfds, listeners, stdio) plus room to answer 503.
pub const FD_RESERVE_BASE: u64 = 64;
/// Extra descriptors reserved per shard (three rings, eventfd, listener,
/// blocking-pool pipes, sockets being refused with 503).
pub const FD_RESERVE_PER_SHARD: u64 = 96;

/// A config with every machine-dependent default made concrete.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The flags as given.
    pub config: Config,
    /// CPU of each shard, index = shard id.
    pub cpus: Vec<usize>,
    /// Connection limit for the whole process.
    pub max_connections: usize,
}

/// Longest timeout or interval: per-connection timers keep the low 32 bits
/// of a millisecond clock (49 days), and a week is far past any useful
/// heartbeat or deadline.
const MAX_TIMER: Duration = Duration::from_secs(7 * 24 * 3600);

/// A value that cannot work: the key it belongs to (the field name, which
/// is also the file key; the flag is the same with `-` for `_`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key, e.g. `max_message_size`.
    pub key: &'static str,
    /// Why, without the key: "must be at least 1 byte".
    pub why: String,
}

impl Invalid {
    /// The flag this key is set with, e.g. `--max-message-size`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

impl Config {
    /// Checks values that clap's types cannot, naming the flag.
    pub fn validate(&self) -> Result<(), StartupError> {
        self.check()
            .map_err(|e| StartupError::Config(format!("{} {}", e.flag(), e.why)))
    }

    /// Like [`Config::validate`], but says which key is wrong, so the config
    /// file loader can name the file's key instead of the flag.
    pub fn check(&self) -> Result<(), Invalid> {
        let bad = |key, why: &str| {
            Err(Invalid {
                key,
                why: why.into(),
            })
        };
        if self.shards == Some(0) {
            return bad("shards", "must be at least 1");
        }
        if self.max_message_size == 0 {
            return bad("max_message_size", "must be at least 1 byte");
        }
        if self.max_outbound_bytes < 1024 {
            return bad("max_outbound_bytes", "must be at least 1KiB");
        }
        if self.max_header_bytes < 256 {
            return bad("max_header_bytes", "must be at least 256");
        }
        if self.backlog == 0 {
            return bad("backlog", "must be at least 1");
        }
        if self.bus_capacity == 0 {
            return bad("bus_capacity", "must be at least 1");
        }
        if self.max_connections == Some(0) {
            return bad("max_connections", "must be at least 1");
        }
        if self.history_max_channels == 0 {
            return bad("history_max_channels", "must be at least 1");
        }
        if self.max_presence_clients == 0 {
            return bad("max_presence_clients", "must be at least 1");
        }
        if self.jwt_hmac_secret.as_deref() == Some("") {
            return bad("jwt_hmac_secret", "may not be empty");
        }
        let has_key = self.jwt_hmac_secret.is_some() || self.jwt_public_key.is_some();
        if self.demo && has_key {
            return bad(
                "demo",
                "cannot be combined with --jwt-hmac-secret or --jwt-public-key: the demo gives \
                 anyone a token for any name, which must not pass for a real user's; run the \
                 demo on a server of its own",
            );
        }
        // --demo brings its own key (and mints the tokens it checks).
        if self.require_auth && !has_key && !self.demo {
            return bad(
                "require_auth",
                "needs a key to check tokens with (--jwt-hmac-secret or --jwt-public-key)",
            );
        }
        for (key, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("ping_interval", self.ping_interval),
            ("pong_timeout", self.pong_timeout),
            ("close_timeout", self.close_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
        ] {
            if d < Duration::from_millis(10) {
                return bad(key, &format!("must be at least 10ms (got {d:?})"));
            }
            // Per-connection timers keep 32 bits of milliseconds.
            if d > MAX_TIMER {
                return bad(key, &format!("must be at most 7 days (got {d:?})"));
            }
        }
        Ok(())
    }

    /// Resolves machine-dependent defaults: the CPU list from the affinity
    /// mask, the shard count, and the connection limit from `nofile_hard`.
    pub fn resolve(
        self,
        allowed_cpus: &[usize],
        nofile_hard: u64,
    ) -> Result<Resolved, StartupError> {
        self.validate()?;
        let pool: Vec<usize> = match &self.cpus {
            Some(CpuList(list)) => {
                if let Some(cpu) = list.iter().find(|c| !allowed_cpus.contains(c)) {
                    return Err(StartupError::Config(format!(
                        "--cpus names CPU {cpu}, which this process may not run on (allowed: {})",
                        format_cpus(allowed_cpus)
                    )));
                }
                list.clone()
            }
            None => allowed_cpus.to_vec(),
        };
        if pool.is_empty() {
            return Err(StartupError::Config(
                "no CPU available to run a shard on".into(),
            ));
        }
        let n_shards = self.shards.unwrap_or(pool.len());
        if n_shards > pool.len() {
            return Err(StartupError::Config(format!(
                "--shards {n_shards} needs {n_shards} CPUs but only {} are available ({}); \
                 each shard is pinned to its own CPU",
                pool.len(),
                format_cpus(&pool)
            )));
        }
        let cpus = pool[..n_shards].to_vec();
        let reserve = FD_RESERVE_BASE + FD_RESERVE_PER_SHARD * n_shards as u64;
        let from_fds = nofile_hard.saturating_sub(reserve).max(1);
        let max_connections = self
            .max_connections
            .unwrap_or_else(|| usize::try_from(from_fds).unwrap_or(usize::MAX));
        Ok(Resolved {
            config: self,
            cpus,
            max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        let mut v = vec!["corecast"];
        v.extend_from_slice(args);
        Config::try_parse_from(v).expect("valid test args")
    }

    #[test]
    fn defaults_follow_the_machine() {
        let r = cfg(&[]).resolve(&[0, 1], 20_000).expect("resolves");
        assert_eq!(r.cpus, vec![0, 1]);
        assert_eq!(
            r.max_connections as u64,
            20_000 - FD_RESERVE_BASE - 2 * FD_RESERVE_PER_SHARD
        );
        assert_eq!(r.config.max_message_size, 1 << 20);
        assert_eq!(r.config.handshake_timeout, Duration::from_secs(10));
        assert_eq!(
            r.config.admin_addr,
            AdminAddr(Some("127.0.0.1:9090".parse().unwrap()))
        );
        assert_eq!(r.config.latency_report_interval, Duration::from_secs(60));
        assert_eq!(r.config.max_api_body, 1 << 20);
        assert_eq!(cfg(&["--admin-addr", "none"]).admin_addr, AdminAddr(None));
        assert_eq!(
            cfg(&["--latency-report-interval", "0"]).latency_report_interval,
            Duration::ZERO
        );
    }

    #[test]
    fn a_bad_trusted_proxy_names_the_flag_and_the_entry() {
        assert!(cfg(&[]).trusted_proxies.is_empty());
        let ok = cfg(&["--trusted-proxies", "127.0.0.1,fd00::/8"]);
        assert!(ok.trusted_proxies.contains("fd00::2".parse().unwrap()));
        let e = Config::try_parse_from(["corecast", "--trusted-proxies", "127.0.0.1,lb.local"])
            .unwrap_err()
            .to_string();
        let first = e.lines().next().unwrap_or_default();
        assert!(
            first.contains("--trusted-proxies") && first.contains("entry \"lb.local\""),
            "{e}"
        );
    }

    #[test]
    fn demo_brings_its_own_key_and_refuses_a_real_one() {
        assert!(!cfg(&[]).demo);
        assert!(cfg(&["--demo", "--require-auth"]).check().is_ok());
        for key in [["--jwt-hmac-secret", "s"], ["--jwt-public-key", "k.pem"]] {
            let mut args = vec!["--demo"];
            args.extend_from_slice(&key);
            let invalid = cfg(&args).check().unwrap_err();
            assert_eq!(invalid.key, "demo");
            assert!(
                invalid.why.contains("cannot be combined"),
                "{}",
                invalid.why
            );
        }
        let invalid = cfg(&["--require-auth"]).check().unwrap_err();
        assert_eq!(invalid.key, "require_auth");
    }

    #[test]
    fn too_many_shards_is_a_clear_error() {
        let err = cfg(&["--shards", "3"]).resolve(&[0, 1], 1024).unwrap_err();
        assert!(err.to_string().contains("--shards 3"), "{err}");
        let err = cfg(&["--cpus", "7"]).resolve(&[0, 1], 1024).unwrap_err();
        assert!(err.to_string().contains("CPU 7"), "{err}");
        let r = cfg(&["--cpus", "1"])
            .resolve(&[0, 1], 1024)
            .expect("cpu 1 allowed");
        assert_eq!(r.cpus, vec![1]);
    }
}
