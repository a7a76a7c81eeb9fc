//! Namespaces: per-channel-prefix options from the config file's
//! `[namespaces.NAME]` tables, and the allocation-free lookup a subscribe
//! or publish makes. What the options mean is enforced elsewhere (auth,
//! presence, history); this module only parses, validates and finds them.
//!
//! A channel `ns:rest` belongs to namespace `ns` (split at the first `:`);
//! a channel without `:` belongs to `default`. When the file has no
//! `[namespaces]` table at all, every channel, `a:b` included, uses the
//! default options, so a server without a config behaves as it always did.
//! Once a `[namespaces]` table exists, a prefix that names no configured
//! namespace is unknown: [`Namespaces::lookup`] returns `None` and callers
//! answer `UNKNOWN_NAMESPACE`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The name of the namespace of channels without a `:`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The namespace `--demo` adds when the file does not define it: the chat
/// page's rooms are channels `chat:ROOM`.
pub const DEMO_NAMESPACE: &str = "chat";

/// Longest namespace name, in bytes: a name is a channel prefix, and a short
/// bound keeps error messages and metrics labels readable.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// What a channel's namespace allows. Every default keeps the behaviour of
/// a server without a config file: anonymous, open, no presence, no history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceOptions {
    /// May connections without a user subscribe and publish here [default: true].
    pub anonymous: bool,
    /// May clients publish, or only the server API [default: true].
    pub client_publish: bool,
    /// Subscribe only with a grant from the token's `channels` claim [default: false].
    pub private: bool,
    /// Keep who is subscribed, for presence queries [default: false].
    pub presence: bool,
    /// Send join and leave messages to subscribers [default: false].
    pub join_leave: bool,
    /// Messages kept per channel for recovery; history is on only when this
    /// and `history_ttl` are both above 0 [default: 0].
    pub history_size: usize,
    /// How long kept messages live ("5m"; 0 is off) [default: 0].
    #[serde(deserialize_with = "duration_or_zero")]
    pub history_ttl: Duration,
}

impl Default for NamespaceOptions {
    fn default() -> Self {
        NamespaceOptions {
            anonymous: true,
            client_publish: true,
            private: false,
            presence: false,
            join_leave: false,
            history_size: 0,
            history_ttl: Duration::ZERO,
        }
    }
}

impl NamespaceOptions {
    /// The option names, as the file spells them.
    pub const KEYS: &'static [&'static str] = &[
        "anonymous",
        "client_publish",
        "private",
        "presence",
        "join_leave",
        "history_size",
        "history_ttl",
    ];

    /// `--demo`'s `chat` namespace: users with a token only (the page
    /// always has one, and presence lists names), presence, join/leave,
    /// and history of the last 100 messages for 10 minutes, which is what a
    /// page shows on joining and what a reconnect recovers.
    pub fn demo_chat() -> NamespaceOptions {
        NamespaceOptions {
            anonymous: false,
            presence: true,
            join_leave: true,
            history_size: 100,
            history_ttl: Duration::from_secs(600),
            ..NamespaceOptions::default()
        }
    }

    /// Whether channels here keep history (both size and ttl are set).
    pub fn history(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }

    /// Checks what serde cannot: history needs both a size and a ttl.
    pub fn validate(&self) -> Result<(), String> {
        match (self.history_size > 0, !self.history_ttl.is_zero()) {
            (true, false) => Err(
                "history_size needs history_ttl too (history is on only when both are above 0)"
                    .into(),
            ),
            (false, true) => Err(
                "history_ttl needs history_size too (history is on only when both are above 0)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

/// Every namespace of the config, immutable once loaded; shared inside
/// `Arc<Config>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// Options of channels without a `:`, and of every channel when no
    /// `[namespaces]` table is configured.
    pub default: NamespaceOptions,
    /// The other namespaces by name (`default` is never in here).
    named: HashMap<Box<str>, NamespaceOptions>,
    /// Whether the file had a `[namespaces]` table: only then is an
    /// undeclared prefix unknown.
    configured: bool,
    /// Names in `named` that a flag added, not the file
    /// ([`Namespaces::add_builtin`]).
    builtin: Vec<Box<str>>,
}

/// Why a `[namespaces]` table was refused: the key it concerns (e.g.
/// `namespaces.chat.presence`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceError {
    /// The dotted key, from `namespaces` down.
    pub key: String,
    /// What is wrong with it.
    pub why: String,
}

impl Namespaces {
    /// Parses the value of the file's `namespaces` key: a table of tables.
    pub fn from_toml(value: &toml::Value) -> Result<Namespaces, NamespaceError> {
        let Some(table) = value.as_table() else {
            return Err(NamespaceError::new(
                "namespaces",
                format!(
                    "expected a table of namespaces ([namespaces.NAME]), got {}",
                    value.type_str()
                ),
            ));
        };
        let mut out = Namespaces {
            configured: true,
            ..Namespaces::default()
        };
        for (name, options) in table {
            let key = format!("namespaces.{name}");
            check_name(name).map_err(|why| NamespaceError::new(&key, why))?;
            let options = parse_options(&key, options)?;
            if name == DEFAULT_NAMESPACE {
                out.default = options;
            } else {
                out.named.insert(name.as_str().into(), options);
            }
        }
        Ok(out)
    }

    /// The options of `channel`'s namespace; `None` when its prefix names no
    /// configured namespace. Allocates nothing (it runs on every subscribe).
    pub fn lookup(&self, channel: &str) -> Option<&NamespaceOptions> {
        let name = match channel.split_once(':') {
            Some((name, _)) if name != DEFAULT_NAMESPACE => name,
            _ => return Some(&self.default),
        };
        match self.named.get(name) {
            Some(options) => Some(options),
            None if self.configured => None,
            // No table: only built-in namespaces are prefixes.
            None => Some(&self.default),
        }
    }

    /// Adds namespace `name` with `options` on behalf of a flag, unless the
    /// file defines `name` (its options win). Without a `[namespaces]`
    /// table every other prefix keeps the default options, as it would
    /// without the flag. Returns whether it was added.
    pub fn add_builtin(&mut self, name: &str, options: NamespaceOptions) -> bool {
        if name == DEFAULT_NAMESPACE || self.named.contains_key(name) {
            return false;
        }
        self.named.insert(name.into(), options);
        self.builtin.push(name.into());
        true
    }

    /// Whether namespace `name` was added by a flag rather than the file.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.iter().any(|b| **b == *name)
    }

    /// Whether a `[namespaces]` table was configured (channel prefixes are
    /// namespaces only then).
    pub fn is_configured(&self) -> bool {
        self.configured
    }

    /// The named namespaces (not `default`), sorted by name.
    pub fn named(&self) -> Vec<(&str, &NamespaceOptions)> {
        let mut out: Vec<_> = self.named.iter().map(|(k, v)| (&**k, v)).collect();
        out.sort_unstable_by_key(|(name, _)| *name);
        out
    }
}

impl NamespaceError {
    fn new(key: &str, why: impl Into<String>) -> NamespaceError {
        NamespaceError {
            key: key.to_string(),
            why: why.into(),
        }
    }
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}: {}", self.key, self.why)
    }
}

/// A name is a channel prefix: non-empty, at most [`MAX_NAMESPACE_LEN`]
/// bytes of `[A-Za-z0-9_.-]`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a namespace name may not be empty".into());
    }
    if name.len() > MAX_NAMESPACE_LEN {
        return Err(format!(
            "a namespace name is at most {MAX_NAMESPACE_LEN} bytes (this one has {})",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "invalid character {c:?} in namespace name (use letters, digits, '_', '.', '-')"
        ));
    }
    Ok(())
}

/// Parses one namespace's table. Each option is first read on its own, so
/// an error names the option (`namespaces.chat.presence`), which serde's
/// message for the whole table would not.
fn parse_options(key: &str, value: &toml::Value) -> Result<NamespaceOptions, NamespaceError> {
    let Some(table) = value.as_table() else {
        return Err(NamespaceError::new(
            key,
            format!("expected a table of options, got {}", value.type_str()),
        ));
    };
    for (option, v) in table {
        let mut one = toml::Table::new();
        one.insert(option.clone(), v.clone());
        NamespaceOptions::deserialize(one).map_err(|e| {
            let why = e.message().replace('\n', " ");
            NamespaceError::new(&format!("{key}.{option}"), why.trim_end())
        })?;
    }
    let options = NamespaceOptions::deserialize(table.clone())
        .map_err(|e| NamespaceError::new(key, e.message().replace('\n', " ")))?;
    options
        .validate()
        .map_err(|why| NamespaceError::new(key, why))?;
    Ok(options)
}

/// `history_ttl`: a duration string ("5m", "0" for off) or the integer 0.
fn duration_or_zero<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
    }
    let bad = || serde::de::Error::custom("expected a duration string like \"5m\" (0 is off)");
    match Raw::deserialize(de).map_err(|_: D::Error| bad())? {
        Raw::Int(0) => Ok(Duration::ZERO),
        Raw::Int(_) => Err(bad()),
        Raw::Text(s) => super::parse_interval(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Namespaces, NamespaceError> {
        let doc: toml::Table = text.parse().expect("valid TOML");
        Namespaces::from_toml(&doc["namespaces"])
    }

    #[test]
    fn without_a_namespaces_table_every_channel_uses_the_default() {
        let ns = Namespaces::default();
        for channel in ["news", "a:b", ":x", "chat:room:1"] {
            assert_eq!(ns.lookup(channel), Some(&NamespaceOptions::default()));
        }
        assert!(!ns.is_configured());
    }

    #[test]
    fn prefixes_pick_their_namespace_and_unknown_ones_none() {
        let ns = parse(
            "[namespaces.default]\nanonymous = false\n\
             [namespaces.chat]\npresence = true\njoin_leave = true\n",
        )
        .expect("valid namespaces");
        assert!(!ns.lookup("lobby").expect("default").anonymous);
        let chat = ns.lookup("chat:room:1").expect("chat");
        assert!(chat.presence && chat.join_leave && chat.anonymous);
        assert_eq!(ns.lookup("default:x"), Some(&ns.default));
        assert_eq!(ns.lookup("foo:x"), None);
        assert_eq!(ns.lookup(":x"), None);
        assert_eq!(ns.lookup("chatter:x"), None);
    }

    #[test]
    fn an_empty_namespaces_table_makes_every_prefix_unknown() {
        let ns = parse("[namespaces]\n").expect("valid");
        assert_eq!(ns.lookup("plain"), Some(&NamespaceOptions::default()));
        assert_eq!(ns.lookup("a:b"), None);
    }

    #[test]
    fn history_needs_both_size_and_ttl() {
        let ns =
            parse("[namespaces.log]\nhistory_size = 10\nhistory_ttl = \"5m\"\n").expect("valid");
        let log = ns.lookup("log:x").expect("log");
        assert!(log.history());
        assert_eq!(log.history_ttl, Duration::from_secs(300));
        let err = parse("[namespaces.log]\nhistory_size = 10\n").unwrap_err();
        assert_eq!(err.key, "namespaces.log");
        assert!(err.why.contains("history_ttl"), "{err}");
        let err = parse("[namespaces.log]\nhistory_ttl = \"1m\"\n").unwrap_err();
        assert!(err.why.contains("history_size"), "{err}");
        assert!(parse("[namespaces.log]\nhistory_ttl = 0\n").is_ok());
    }

    #[test]
    fn bad_options_name_the_option() {
        let err = parse("[namespaces.chat]\npresense = true\n").unwrap_err();
        assert_eq!(err.key, "namespaces.chat.presense");
        assert!(err.why.contains("unknown field"), "{err}");
        let err = parse("[namespaces.chat]\npresence = \"yes\"\n").unwrap_err();
        assert_eq!(err.key, "namespaces.chat.presence");
        let err = parse("[namespaces.chat]\nhistory_ttl = \"soon\"\n").unwrap_err();
        assert_eq!(err.key, "namespaces.chat.history_ttl");
        let err = parse("[namespaces]\nchat = 3\n").unwrap_err();
        assert_eq!(err.key, "namespaces.chat");
        let err = parse("namespaces = 3\n").unwrap_err();
        assert_eq!(err.key, "namespaces");
    }

    #[test]
    fn a_builtin_namespace_leaves_other_prefixes_as_they_were() {
        let mut ns = Namespaces::default();
        assert!(ns.add_builtin(DEMO_NAMESPACE, NamespaceOptions::demo_chat()));
        assert!(ns.is_builtin("chat") && !ns.is_configured());
        let chat = ns.lookup("chat:lobby").expect("chat");
        assert!(chat.presence && chat.join_leave && chat.history() && !chat.anonymous);
        // Without a table, other prefixes still get the default options.
        assert_eq!(ns.lookup("a:b"), Some(&NamespaceOptions::default()));
        assert_eq!(ns.lookup("chat"), Some(&NamespaceOptions::default()));

        // With a table, undeclared prefixes stay unknown.
        let mut ns = parse("[namespaces.news]\n").expect("valid");
        assert!(ns.add_builtin("chat", NamespaceOptions::demo_chat()));
        assert!(ns.lookup("chat:x").expect("chat").presence);
        assert_eq!(ns.lookup("foo:x"), None);

        // The file's own `chat` wins.
        let mut ns = parse("[namespaces.chat]\npresence = false\n").expect("valid");
        assert!(!ns.add_builtin("chat", NamespaceOptions::demo_chat()));
        assert!(!ns.is_builtin("chat"));
        assert!(!ns.lookup("chat:x").expect("chat").presence);
        assert!(!ns.add_builtin(DEFAULT_NAMESPACE, NamespaceOptions::demo_chat()));
    }

    #[test]
    fn names_are_checked() {
        assert!(parse("[namespaces.\"a b\"]\n").is_err());
        assert!(parse("[namespaces.\"\"]\n").is_err());
        assert!(parse(&format!("[namespaces.{}]\n", "n".repeat(65))).is_err());
        assert!(parse(&format!("[namespaces.{}]\n", "n".repeat(64))).is_ok());
        assert!(parse("[namespaces.\"v1.chat-room_2\"]\n").is_ok());
    }
}
