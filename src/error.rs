//! The two error boundaries: [`StartupError`] ends the process before it
//! serves, [`CloseReason`] ends one connection.
//!
//! Errors are classified by who caused them (as pingora does): a client's
//! mistake is a close code plus a counter and a `debug!` line; only the
//! server's own failures reach `error!`.

use std::fmt;
use std::io;

/// Why the server could not start. `main` prints it as one line and exits 1.
#[derive(Debug)]
pub enum StartupError {
    /// A flag value that cannot work.
    Config(String),
    /// The `--config` file cannot be read, or one of its keys is wrong.
    ConfigFile {
        /// The file, as named on the command line.
        path: std::path::PathBuf,
        /// The key at fault (`max_connections`, `namespaces.chat.presence`),
        /// if the fault is one key's.
        key: Option<String>,
        /// Why, on one line.
        why: String,
    },
    /// Binding or configuring a listening socket failed.
    Bind {
        /// What was being bound.
        addr: String,
        /// The flag that chose it (`--port`, `--admin-addr`).
        flag: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// io_uring could not be set up (old kernel, disabled by sysctl or seccomp).
    IoUring(String),
    /// RLIMIT_MEMLOCK is too low for glommio's rings.
    Memlock {
        /// The soft limit in bytes.
        limit: u64,
    },
    /// A shard thread could not be started or pinned.
    Shard(String),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::Config(msg) => write!(f, "invalid configuration: {msg}"),
            StartupError::ConfigFile { path, key: Some(key), why } => {
                write!(f, "config {}: key {key}: {why}", path.display())
            }
            StartupError::ConfigFile { path, key: None, why } => write!(f, "config {}: {why}", path.display()),
            // Whose socket it is cannot be known from here: another program,
            // another corecast, or a listener the kernel is still closing.
            StartupError::Bind { addr, flag, source } if source.kind() == io::ErrorKind::AddrInUse => write!(
                f,
                "cannot listen on {addr} ({flag}): address already in use: another socket holds \
                 it{}; stop what holds it or pick another {flag}{}",
                if *flag == "--port" { " without SO_REUSEPORT or under another user" } else { "" },
                if *flag == "--admin-addr" { ", or use --admin-addr none (each corecast process needs its own admin port)" } else { "" },
            ),
            StartupError::Bind { addr, flag, source } => write!(f, "cannot listen on {addr} ({flag}): {source}"),
            StartupError::IoUring(msg) => write!(
                f,
                "io_uring is unavailable: {msg} (corecast needs Linux 5.8 or later with io_uring \
                 enabled; check /proc/sys/kernel/io_uring_disabled and any seccomp profile)"
            ),
            StartupError::Memlock { limit } => write!(
                f,
                "RLIMIT_MEMLOCK is {} KiB, below the 512 KiB glommio needs for its io_uring rings; \
                 raise it with `ulimit -l 8192`, LimitMEMLOCK=64M in the systemd unit (scripts/corecast.service), or a \
                 memlock line in /etc/security/limits.d (see scripts/)",
                limit / 1024
            ),
            StartupError::Shard(msg) => write!(f, "cannot start shard: {msg}"),
        }
    }
}

impl std::error::Error for StartupError {}

/// The RFC 6455 rule a client broke (close 1002). An enum rather than the
/// reason text itself: `CloseReason` lives in every connection's state,
/// and a `&'static str` in it made that 24 bytes instead of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// `reserved opcode`.
    ReservedOpcode,
    /// `reserved bits set`.
    ReservedBits,
    /// `client frame not masked`.
    NotMasked,
    /// `fragmented control frame`.
    FragmentedControl,
    /// `control frame payload over 125 bytes`.
    ControlTooLong,
    /// `continuation without a message`.
    OrphanContinuation,
    /// `new message inside a fragmented one`.
    NestedMessage,
    /// `close payload of one byte`.
    OneByteClose,
    /// `invalid close code`.
    InvalidCloseCode,
    /// `invalid compressed data` (a permessage-deflate message that does
    /// not inflate).
    BadCompression,
}

impl Violation {
    /// The close frame's reason text.
    pub fn text(self) -> &'static str {
        match self {
            Violation::ReservedOpcode => "reserved opcode",
            Violation::BadCompression => "invalid compressed data",
            Violation::ReservedBits => "reserved bits set",
            Violation::NotMasked => "client frame not masked",
            Violation::FragmentedControl => "fragmented control frame",
            Violation::ControlTooLong => "control frame payload over 125 bytes",
            Violation::OrphanContinuation => "continuation without a message",
            Violation::NestedMessage => "new message inside a fragmented one",
            Violation::OneByteClose => "close payload of one byte",
            Violation::InvalidCloseCode => "invalid close code",
        }
    }
}

/// Why a connection ended; each maps to a WebSocket close code and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client started the close handshake; we echo its code.
    ClientClosed(u16),
    /// The server is shutting down (1001).
    GoingAway,
    /// A protocol violation by the client (1002).
    Protocol(Violation),
    /// A text message that is not valid UTF-8, or a bad close reason (1007).
    InvalidUtf8,
    /// A message above `--max-message-size` (1009).
    TooBig,
    /// The outbound queue exceeded `--max-outbound-bytes` (1008 "slow consumer").
    SlowConsumer,
    /// Nothing was received within `--pong-timeout` of a ping (1008 "heartbeat timeout").
    HeartbeatTimeout,
    /// An operator closed it through `POST /api/disconnect` or
    /// `POST /api/user/disconnect` (4000).
    Disconnected,
    /// The `connect` message's token is invalid (4001 "invalid token").
    InvalidToken,
    /// `--require-auth` and no valid token arrived within
    /// `--handshake-timeout` of the upgrade (4001 "authentication required").
    AuthRequired,
    /// The connection's token expired without a `refresh` (4002 "token expired").
    TokenExpired,
    /// Redis mode: the connection's history channel lost publications that
    /// are no longer in Redis; reconnect and resubscribe with recovery
    /// (4010 "insufficient state").
    InsufficientState,
    /// A Centrifugo-protocol client sent a malformed command, or one before
    /// `connect` (1008 "bad request"; 3501 on /connection/websocket).
    BadRequest,
    /// The TCP connection ended without a close handshake (no frame is sent).
    Abnormal,
}

impl CloseReason {
    /// The close code sent in the close frame.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::ClientClosed(code) => code,
            CloseReason::GoingAway => 1001,
            CloseReason::Protocol(_) => 1002,
            CloseReason::InvalidUtf8 => 1007,
            CloseReason::TooBig => 1009,
            CloseReason::SlowConsumer | CloseReason::HeartbeatTimeout => 1008,
            CloseReason::Disconnected => 4000,
            CloseReason::InvalidToken | CloseReason::AuthRequired => 4001,
            CloseReason::TokenExpired => 4002,
            CloseReason::InsufficientState => 4010,
            CloseReason::BadRequest => 1008,
            CloseReason::Abnormal => 1006,
        }
    }

    /// The close frame's reason text (at most 123 bytes by RFC 6455).
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::ClientClosed(_) | CloseReason::Abnormal => "",
            CloseReason::GoingAway => "server shutting down",
            CloseReason::Protocol(what) => what.text(),
            CloseReason::InvalidUtf8 => "invalid utf-8",
            CloseReason::TooBig => "message too big",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::HeartbeatTimeout => "heartbeat timeout",
            CloseReason::Disconnected => "disconnected by server",
            CloseReason::InvalidToken => "invalid token",
            CloseReason::AuthRequired => "authentication required",
            CloseReason::TokenExpired => "token expired",
            CloseReason::InsufficientState => "insufficient state",
            CloseReason::BadRequest => "bad request",
        }
    }

    /// Short label for logs and counters.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::ClientClosed(_) => "client_closed",
            CloseReason::GoingAway => "shutdown",
            CloseReason::Protocol(_) => "protocol_error",
            CloseReason::InvalidUtf8 => "invalid_utf8",
            CloseReason::TooBig => "message_too_big",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::HeartbeatTimeout => "heartbeat_timeout",
            CloseReason::Disconnected => "disconnected",
            CloseReason::InvalidToken => "invalid_token",
            CloseReason::AuthRequired => "auth_required",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::InsufficientState => "insufficient_state",
            CloseReason::BadRequest => "bad_request",
            CloseReason::Abnormal => "abnormal",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label(), self.code())
    }
}
