//! `--config FILE`: reading the TOML file, mapping its keys to flags and
//! merging it under the flags and environment (flag > `CORECAST_*` > file >
//! default), and the effective configuration `--check-config` prints.
//!
//! Each file key is a flag's long name with `_` for `-`. A value is turned
//! back into the text its flag would take and parsed by the flag's own
//! parser: the file is checked key by key first (so an error names the
//! key), then the values no flag or variable overrides are put in front of
//! the real arguments and clap parses everything once more. One parser and
//! one `validate` serve all three sources. Every key of the file is checked,
//! even one a flag overrides, so a bad file is refused before it can matter.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::{Config, NamespaceOptions, Namespaces, DEMO_NAMESPACE};
use crate::error::StartupError;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// A `CORECAST_*` environment variable.
    Env,
    /// The `--config` file.
    File,
    /// The built-in default.
    Default,
    /// Nowhere: an optional setting left unset.
    Unset,
}

/// A merged, validated configuration and where each of its values came from.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration to run with.
    pub config: Config,
    /// `--check-config` was given: print [`Loaded::to_toml`] and exit.
    pub check_only: bool,
    /// One entry per file key, in [`KEYS`] order.
    values: Vec<Value>,
}

/// Why [`load`] gave no configuration.
#[derive(Debug)]
pub enum LoadError {
    /// A command-line problem, or `--help`/`--version`: clap prints it and
    /// picks the exit status (2 for a usage error, 0 for help).
    Usage(clap::Error),
    /// A bad file or value: one line, exit 1.
    Invalid(StartupError),
}

/// Parses the command line, reads the `--config` (or `--check-config`) file
/// if one is named, merges and validates.
pub fn load<I, T>(args: I) -> Result<Loaded, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    load_with(args, |path| std::fs::read(path))
}

/// Like [`load`], with the file's bytes from `read` (tests and fuzzing).
pub fn load_with<I, T>(
    args: I,
    read: impl FnOnce(&Path) -> std::io::Result<Vec<u8>>,
) -> Result<Loaded, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut cmd = Config::command();
    let first = cmd
        .try_get_matches_from_mut(&args)
        .map_err(LoadError::Usage)?;
    let check = first.get_one::<PathBuf>("check_config").cloned();
    if check.is_some() && first.value_source("config_file") == Some(ValueSource::CommandLine) {
        let msg = "--check-config FILE names the file to check; drop --config";
        return Err(LoadError::Usage(
            cmd.error(ErrorKind::ArgumentConflict, msg),
        ));
    }
    let path = check
        .clone()
        .or_else(|| first.get_one::<PathBuf>("config_file").cloned());
    let file = match &path {
        Some(path) => {
            let bytes =
                read(path).map_err(|e| file_error(path, None, format!("cannot read: {e}")))?;
            FileValues::parse(path, &bytes, &cmd)?
        }
        None => FileValues::default(),
    };
    let (matches, from_file) = merge(&mut cmd, &args, &first, &file)?;
    let mut config = Config::from_arg_matches(&matches).map_err(LoadError::Usage)?;
    config.config_file = path.clone();
    config.check_config = None;
    let mut namespaces = file.namespaces;
    if config.demo {
        namespaces.add_builtin(DEMO_NAMESPACE, NamespaceOptions::demo_chat());
    }
    config.namespaces = Arc::new(namespaces);
    let values = effective(&cmd, &matches, &from_file);
    config.check().map_err(|invalid| {
        let from = values.iter().find(|v| v.key == invalid.key);
        match (&path, from.map(|v| v.source)) {
            (Some(path), Some(Source::File)) => file_error(path, Some(invalid.key), invalid.why),
            _ => LoadError::Invalid(StartupError::Config(format!(
                "{} {}",
                invalid.flag(),
                invalid.why
            ))),
        }
    })?;
    Ok(Loaded {
        config,
        check_only: check.is_some(),
        values,
    })
}

impl Loaded {
    /// Where `key`'s value came from; `None` for a key that is not a file key.
    pub fn source(&self, key: &str) -> Option<Source> {
        self.values.iter().find(|v| v.key == key).map(|v| v.source)
    }

    /// The effective configuration as a config file: every key with the
    /// source of its value, unset ones as comments, then the namespaces.
    /// With `mask_secrets`, `admin_token` and `jwt_hmac_secret` show as
    /// `"***"`. Without it, loading the text gives the same configuration.
    pub fn to_toml(&self, mask_secrets: bool) -> String {
        let mut out = String::from(
            "# corecast effective configuration (flag > CORECAST_* environment > file > default)\n",
        );
        if let Some(path) = &self.config.config_file {
            out += &format!("# file: {}\n", path.display());
        }
        for v in &self.values {
            let source = match v.source {
                Source::Flag => format!("flag --{}", v.key.replace('_', "-")),
                Source::Env => format!("env {}", v.env),
                Source::File => "file".into(),
                Source::Default => "default".into(),
                Source::Unset => {
                    out += &format!("# {} is not set\n", v.key);
                    continue;
                }
            };
            let raw = v.raw.as_deref().unwrap_or_default();
            let value = if mask_secrets && v.shape == Shape::Secret {
                toml::Value::String("***".into())
            } else {
                v.shape.to_toml(raw)
            };
            out += &format!("{:<44} # {source}\n", format!("{} = {value}", v.key));
        }
        render_namespaces(&self.config.namespaces, &mut out);
        out
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Usage(e) => write!(f, "{e}"),
            LoadError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// The TOML type a key takes, which is also how its value becomes the text
/// its flag would take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// An integer (or a string of digits).
    Number,
    /// An integer of bytes or a string like "64KiB".
    Size,
    /// A string like "30s".
    Duration,
    /// A string.
    Text,
    /// A string never echoed back: masked in the printout and in errors.
    Secret,
    /// `true` or `false`.
    Flag,
    /// An array of strings (the flag takes them comma-separated).
    List,
    /// An array of URLs that may hold a password: masked like a secret's.
    UrlList,
}

/// Every file key (a flag's id: its long name with `_` for `-`) and its
/// shape. A unit test checks that this is exactly the flags but `--config`
/// and `--check-config`.
const KEYS: &[(&str, Shape)] = &[
    ("addr", Shape::Text),
    ("port", Shape::Number),
    ("shards", Shape::Number),
    ("cpus", Shape::Text),
    ("backlog", Shape::Number),
    ("max_connections", Shape::Number),
    ("max_message_size", Shape::Size),
    ("max_outbound_bytes", Shape::Size),
    ("compression", Shape::Text),
    ("compression_min_size", Shape::Size),
    ("send_path", Shape::Text),
    ("max_channels_per_connection", Shape::Number),
    ("max_header_bytes", Shape::Size),
    ("handshake_timeout", Shape::Duration),
    ("ping_interval", Shape::Duration),
    ("pong_timeout", Shape::Duration),
    ("close_timeout", Shape::Duration),
    ("shutdown_timeout", Shape::Duration),
    ("bus_capacity", Shape::Number),
    ("admin_addr", Shape::Text),
    ("admin_token", Shape::Secret),
    ("max_api_body", Shape::Size),
    ("latency_report_interval", Shape::Duration),
    ("latency_report_dir", Shape::Text),
    ("io_memory", Shape::Size),
    ("jwt_hmac_secret", Shape::Secret),
    ("jwt_public_key", Shape::Text),
    ("require_auth", Shape::Flag),
    ("allowed_origins", Shape::List),
    ("trusted_proxies", Shape::List),
    ("max_presence_clients", Shape::Number),
    ("history_meta_ttl", Shape::Duration),
    ("history_max_bytes", Shape::Size),
    ("history_max_channels", Shape::Number),
    ("recovery_max_publications", Shape::Number),
    ("history_max_limit", Shape::Number),
    ("redis", Shape::UrlList),
    ("redis_prefix", Shape::Text),
    ("redis_timeout", Shape::Duration),
    ("redis_position_check", Shape::Duration),
    ("redis_presence_ttl", Shape::Duration),
    ("demo", Shape::Flag),
];

/// The file key that holds the namespaces (not a flag).
const NAMESPACES_KEY: &str = "namespaces";

/// What one file key turns into on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileArg {
    /// `--flag=VALUE`.
    Value(String),
    /// A boolean flag set to true: `--flag`.
    Present,
    /// A boolean flag set to false: nothing (false is its default).
    Absent,
}

/// A parsed, checked file: the flags it sets and its namespaces.
#[derive(Debug, Default)]
struct FileValues {
    args: Vec<(&'static str, FileArg)>,
    namespaces: Namespaces,
}

/// One key's effective value.
#[derive(Debug)]
struct Value {
    key: &'static str,
    shape: Shape,
    /// Its environment variable, for the printout.
    env: String,
    /// The text clap parsed (None when unset).
    raw: Option<String>,
    source: Source,
}

impl FileValues {
    /// Parses the file and checks every key with its flag's parser.
    fn parse(path: &Path, bytes: &[u8], cmd: &clap::Command) -> Result<FileValues, LoadError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| file_error(path, None, format!("not UTF-8 text ({e})")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_error(path, None, syntax_error(text, &e)))?;
        let mut out = FileValues::default();
        for (key, value) in &table {
            if key == NAMESPACES_KEY {
                out.namespaces = Namespaces::from_toml(value)
                    .map_err(|e| file_error(path, Some(&e.key), e.why))?;
                continue;
            }
            let Some(&(key, shape)) = KEYS.iter().find(|(k, _)| k == key) else {
                return Err(file_error(path, Some(key), unknown_key(key)));
            };
            let arg = shape
                .to_arg(value)
                .map_err(|why| file_error(path, Some(key), why))?;
            if let FileArg::Value(text) = &arg {
                check_value(cmd, key, shape, text)
                    .map_err(|why| file_error(path, Some(key), why))?;
            }
            out.args.push((key, arg));
        }
        Ok(out)
    }
}

impl Shape {
    /// The file value as its flag's text, or why its type is wrong.
    fn to_arg(self, value: &toml::Value) -> Result<FileArg, String> {
        use toml::Value as V;
        let arg = match (self, value) {
            (Shape::Number | Shape::Size, V::Integer(n)) => FileArg::Value(n.to_string()),
            (
                Shape::Number | Shape::Size | Shape::Duration | Shape::Text | Shape::Secret,
                V::String(s),
            ) => FileArg::Value(s.clone()),
            (Shape::Flag, V::Boolean(true)) => FileArg::Present,
            (Shape::Flag, V::Boolean(false)) => FileArg::Absent,
            (Shape::List | Shape::UrlList, V::Array(items)) => {
                let texts: Option<Vec<&str>> = items.iter().map(toml::Value::as_str).collect();
                FileArg::Value(texts.ok_or_else(|| self.expected(value))?.join(","))
            }
            _ => return Err(self.expected(value)),
        };
        Ok(arg)
    }

    /// The type error for `value`.
    fn expected(self, value: &toml::Value) -> String {
        let expected = match self {
            Shape::Number => "a number",
            Shape::Size => "a size (a number of bytes, or a string like \"64KiB\")",
            Shape::Duration => "a duration string like \"30s\"",
            Shape::Text | Shape::Secret => "a string",
            Shape::Flag => "true or false",
            Shape::List => "an array of strings",
            Shape::UrlList => "an array of URL strings",
        };
        let got = match value {
            toml::Value::Array(items) if matches!(self, Shape::List | Shape::UrlList) => {
                let other = items
                    .iter()
                    .find(|v| !v.is_str())
                    .map_or("?", toml::Value::type_str);
                format!("an array holding a {other}")
            }
            other => format!("a {}", other.type_str()),
        };
        format!("expected {expected}, got {got}")
    }

    /// The flag's text as a TOML value for the printout.
    fn to_toml(self, raw: &str) -> toml::Value {
        use toml::Value as V;
        match self {
            Shape::Number | Shape::Size => match raw.parse::<i64>() {
                Ok(n) if raw.bytes().all(|b| b.is_ascii_digit()) => V::Integer(n),
                _ => V::String(raw.into()),
            },
            Shape::Flag => V::Boolean(raw == "true"),
            Shape::List => V::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| V::String(s.into()))
                    .collect(),
            ),
            // Shown as each URL displays itself: with its password masked.
            Shape::UrlList => V::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let shown = s.parse::<crate::redis::RedisUrl>();
                        V::String(shown.map_or_else(|_| "***".into(), |u| u.to_string()))
                    })
                    .collect(),
            ),
            Shape::Duration | Shape::Text | Shape::Secret => V::String(raw.into()),
        }
    }
}

/// Runs `key`'s flag parser on `text` alone; the reason it fails, if it does.
fn check_value(cmd: &clap::Command, key: &str, shape: Shape, text: &str) -> Result<(), String> {
    let shown = if matches!(shape, Shape::Secret | Shape::UrlList) {
        "***".to_string()
    } else {
        format!("{text:?}")
    };
    if shape == Shape::Number && text.trim().parse::<u64>().is_err() {
        return Err(format!("invalid value {shown}: expected a number"));
    }
    let flag = format!("--{}={text}", key.replace('_', "-"));
    // A command of this one flag: its parser alone runs, not every flag's
    // defaults and variables, which keeps a file of many keys cheap.
    let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == key).cloned() else {
        return Err(format!("{key} is not a flag"));
    };
    let one = clap::Command::new("corecast").no_binary_name(true).arg(arg);
    match one.try_get_matches_from([flag]) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("invalid value {shown}: {}", clap_reason(&e))),
    }
}

/// The value parser's own words from a clap error, on one line.
fn clap_reason(e: &clap::Error) -> String {
    use std::error::Error;
    let text = match e.source() {
        Some(source) => source.to_string(),
        None => e.to_string(),
    };
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.trim().trim_start_matches("error: ").to_string()
}

/// Parses `args` again with the file's values in front of them, for every
/// key no flag or variable sets; returns the matches and the keys whose
/// value is the file's.
fn merge(
    cmd: &mut clap::Command,
    args: &[OsString],
    first: &ArgMatches,
    file: &FileValues,
) -> Result<(ArgMatches, HashSet<&'static str>), LoadError> {
    let mut argv: Vec<OsString> = args.iter().take(1).cloned().collect();
    let mut from_file = HashSet::new();
    for (key, arg) in &file.args {
        if matches!(
            first.value_source(key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
        match arg {
            FileArg::Value(text) => argv.push(format!("{flag}={text}").into()),
            FileArg::Present => argv.push(flag.into()),
            FileArg::Absent => {}
        }
        from_file.insert(*key);
    }
    argv.extend(args.iter().skip(1).cloned());
    let matches = cmd
        .try_get_matches_from_mut(argv)
        .map_err(LoadError::Usage)?;
    Ok((matches, from_file))
}

/// Every key's effective text and source.
fn effective(cmd: &clap::Command, matches: &ArgMatches, from_file: &HashSet<&str>) -> Vec<Value> {
    KEYS.iter()
        .map(|&(key, shape)| {
            // A repeated list flag (`--redis A --redis B`) shows all its values.
            let raw = matches.get_raw(key).and_then(|values| {
                let all: Vec<String> = values.map(|v| v.to_string_lossy().into_owned()).collect();
                match shape {
                    Shape::List | Shape::UrlList => Some(all.join(",")),
                    _ => all.into_iter().next_back(),
                }
            });
            let source = match matches.value_source(key) {
                _ if from_file.contains(key) => Source::File,
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Env,
                Some(ValueSource::DefaultValue) => Source::Default,
                Some(_) | None => Source::Unset,
            };
            let env = cmd
                .get_arguments()
                .find(|a| a.get_id() == key)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            Value {
                key,
                shape,
                env,
                raw,
                source,
            }
        })
        .collect()
}

/// `[namespaces.*]` for the printout; without a `[namespaces]` table, the
/// default options as comments (a real table would turn prefixes on).
fn render_namespaces(namespaces: &Namespaces, out: &mut String) {
    if namespaces.is_configured() {
        out.push('\n');
        render_options("default", &namespaces.default, out);
    } else {
        let which = if namespaces.named().is_empty() {
            "every channel"
        } else {
            "every other channel"
        };
        out.push_str(&format!(
            "\n# no [namespaces] table: {which}, a:b included, has the default options\n"
        ));
        render_commented("default", &namespaces.default, out);
    }
    for (name, options) in namespaces.named() {
        if namespaces.is_builtin(name) {
            // A comment, so that loading this text gives the same
            // configuration: the flag that added it adds it again.
            out.push_str("\n# built in by --demo, not from the file:\n");
            render_commented(name, options, out);
        } else {
            out.push('\n');
            render_options(name, options, out);
        }
    }
}

/// A namespace's table as comment lines.
fn render_commented(name: &str, options: &NamespaceOptions, out: &mut String) {
    let mut block = String::new();
    render_options(name, options, &mut block);
    for line in block.lines() {
        out.push_str(&format!("# {line}\n"));
    }
}

fn render_options(name: &str, o: &NamespaceOptions, out: &mut String) {
    // Names are [A-Za-z0-9_.-]: quoted, a '.' stays part of the name.
    let name = if name.contains('.') {
        format!("\"{name}\"")
    } else {
        name.to_string()
    };
    out.push_str(&format!(
        "[namespaces.{name}]\nanonymous = {}\nclient_publish = {}\nprivate = {}\n\
         presence = {}\njoin_leave = {}\nhistory_size = {}\nhistory_ttl = \"{}\"\n",
        o.anonymous,
        o.client_publish,
        o.private,
        o.presence,
        o.join_leave,
        o.history_size,
        humantime::format_duration(o.history_ttl),
    ));
}

/// What to say about a key that is not one: a hint when it is close to one.
fn unknown_key(key: &str) -> String {
    let underscored = key.replace('-', "_");
    if underscored != key && KEYS.iter().any(|(k, _)| *k == underscored) {
        return format!("unknown key (file keys use _ for -: {underscored})");
    }
    if matches!(key, "config" | "check_config" | "check-config") {
        return "unknown key (--config and --check-config are command-line flags only)".into();
    }
    if NamespaceOptions::KEYS.contains(&key) {
        return format!(
            "unknown key ({key} is a namespace option: put it under [namespaces.default])"
        );
    }
    "unknown key (docs/configuration.md lists every key)".into()
}

/// A TOML syntax error on one line, with its line and column.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            // A span is a byte offset; step back to a character boundary.
            let start = (0..=span.start.min(text.len()))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// The error for `path`, on one line whatever the key and reason hold (a
/// quoted TOML key may contain a newline).
fn file_error(path: &Path, key: Option<&str>, why: String) -> LoadError {
    LoadError::Invalid(StartupError::ConfigFile {
        path: path.to_path_buf(),
        key: key.map(one_line),
        why: one_line(&why),
    })
}

/// `s` with control characters escaped (`\n`), everything else as is.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    const PATH: &str = "/etc/corecast.toml";

    fn load_text(args: &[&str], text: &str) -> Result<Loaded, LoadError> {
        let mut argv = vec!["corecast", "--config", PATH];
        argv.extend_from_slice(args);
        load_with(argv, |_| Ok(text.as_bytes().to_vec()))
    }

    fn error(args: &[&str], text: &str) -> String {
        match load_text(args, text) {
            Ok(_) => panic!("{text:?} loaded"),
            Err(LoadError::Invalid(e)) => e.to_string(),
            Err(LoadError::Usage(e)) => panic!("usage error: {e}"),
        }
    }

    #[test]
    fn keys_are_exactly_the_flags() {
        let cmd = Config::command();
        let mut flags: Vec<&str> = cmd
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| !["help", "version", "config_file", "check_config"].contains(id))
            .collect();
        let mut keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        flags.sort_unstable();
        keys.sort_unstable();
        assert_eq!(flags, keys);
        for arg in cmd
            .get_arguments()
            .filter(|a| keys.contains(&a.get_id().as_str()))
        {
            let id = arg.get_id().as_str();
            assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()), "{id}");
            let env = format!("CORECAST_{}", id.to_uppercase());
            assert_eq!(arg.get_env(), Some(OsStr::new(&env)), "{id}");
        }
    }

    #[test]
    fn file_values_sit_between_flags_and_defaults() {
        let text = "max_connections = 5000\nping_interval = \"5s\"\nmax_message_size = \"2MiB\"\n\
                    admin_addr = \"none\"\ncpus = \"0\"\nrequire_auth = true\n\
                    jwt_hmac_secret = \"s3cret\"\nallowed_origins = [\"https://*.example.com\"]\n\
                    trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n";
        let loaded = load_text(&["--ping-interval", "7s"], text).expect("valid");
        let c = &loaded.config;
        assert_eq!(c.max_connections, Some(5000));
        assert_eq!(c.ping_interval, std::time::Duration::from_secs(7));
        assert_eq!(c.max_message_size, 2 << 20);
        assert_eq!(c.admin_addr, super::super::AdminAddr(None));
        assert!(c.require_auth);
        assert!(c.allowed_origins.allows(Some("https://a.example.com")));
        assert!(!c.allowed_origins.allows(Some("https://example.org")));
        assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(c.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(!c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(loaded.source("max_connections"), Some(Source::File));
        assert_eq!(loaded.source("ping_interval"), Some(Source::Flag));
        assert_eq!(loaded.source("pong_timeout"), Some(Source::Default));
        assert_eq!(loaded.source("shards"), Some(Source::Unset));
        assert_eq!(c.config_file.as_deref(), Some(Path::new(PATH)));
    }

    #[test]
    fn errors_name_the_file_the_key_and_why() {
        let e = error(&[], "max_connections = \"abc\"\n");
        assert_eq!(
            e,
            "config /etc/corecast.toml: key max_connections: invalid value \"abc\": expected a number"
        );
        let e = error(&[], "ping_interval = \"soon\"\n");
        assert!(
            e.starts_with("config /etc/corecast.toml: key ping_interval: invalid value \"soon\": "),
            "{e}"
        );
        let e = error(&[], "max_conections = 1\n");
        assert!(e.contains("key max_conections: unknown key"), "{e}");
        let e = error(&[], "max-connections = 1\n");
        assert!(e.contains("use _ for -: max_connections"), "{e}");
        let e = error(&[], "addr = { a = 1 }\n");
        assert!(
            e.contains("key addr: expected a string, got a table"),
            "{e}"
        );
        let e = error(&[], "port = 70000\n");
        assert!(e.contains("key port: invalid value \"70000\""), "{e}");
        let e = error(&[], "allowed_origins = [\"https://ok.example.com\", 3]\n");
        assert!(e.contains("got an array holding a integer"), "{e}");
        let e = error(&[], "allowed_origins = [\"example.com\"]\n");
        assert!(e.contains("key allowed_origins: invalid value"), "{e}");
        let e = error(&[], "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n");
        assert!(
            e.starts_with("config /etc/corecast.toml: key trusted_proxies: invalid value ")
                && e.contains("entry \"10.0.0.1/8\"")
                && !e.contains('\n'),
            "{e}"
        );
        let e = error(&[], "shards = 0\n");
        assert_eq!(
            e,
            "config /etc/corecast.toml: key shards: must be at least 1"
        );
        let e = error(&[], "jwt_hmac_secret = 5\n");
        assert!(e.contains("key jwt_hmac_secret: expected a string"), "{e}");
        let e = error(&[], "port = \n");
        assert!(
            e.starts_with("config /etc/corecast.toml: line 1, column "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = error(&[], "[namespaces.chat]\npresense = true\n");
        assert!(
            e.contains("key namespaces.chat.presense: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_file_value_is_refused_even_when_a_flag_overrides_it() {
        let e = error(&["--ping-interval", "5s"], "ping_interval = \"soon\"\n");
        assert!(e.contains("key ping_interval"), "{e}");
    }

    #[test]
    fn a_flag_failing_validation_still_names_the_flag() {
        let e = error(&["--shards", "0"], "max_connections = 10\n");
        assert_eq!(e, "invalid configuration: --shards must be at least 1");
    }

    #[test]
    fn the_printout_masks_secrets_and_loads_back_the_same() {
        let text = "admin_token = \"tok\"\njwt_hmac_secret = \"s3cret\"\nmax_connections = 7\n\
                    allowed_origins = [\"https://a.example.com\", \"https://*.b.example.com\"]\n\
                    [namespaces.chat]\npresence = true\nhistory_size = 5\nhistory_ttl = \"90s\"\n\
                    [namespaces.\"v1.news\"]\nclient_publish = false\n";
        let loaded = load_text(&["--port", "0"], text).expect("valid");
        let masked = loaded.to_toml(true);
        assert!(
            !masked.contains("tok\"") && !masked.contains("s3cret"),
            "{masked}"
        );
        assert!(masked.contains("admin_token = \"***\""), "{masked}");
        assert!(masked.contains("# flag --port"), "{masked}");
        assert!(masked.contains("# shards is not set"), "{masked}");
        let again = load_text(&["--port", "0"], &loaded.to_toml(false)).expect("printout loads");
        assert_eq!(again.config, loaded.config);
        let plain = load_text(&[], "").expect("empty file");
        let again = load_text(&[], &plain.to_toml(false)).expect("printout loads");
        assert_eq!(again.config, plain.config);
        assert!(!again.config.namespaces.is_configured());
    }

    #[test]
    fn demo_adds_chat_shown_as_a_comment_that_loads_back_the_same() {
        for text in ["demo = true\n", "demo = true\n[namespaces.news]\n"] {
            let loaded = load_text(&[], text).expect("valid");
            let chat = loaded.config.namespaces.lookup("chat:lobby").expect("chat");
            assert!(chat.presence && chat.history());
            let printed = loaded.to_toml(false);
            assert!(
                printed.contains("# built in by --demo, not from the file:\n# [namespaces.chat]\n"),
                "{printed}"
            );
            let again = load_text(&[], &printed).expect("printout loads");
            assert_eq!(again.config, loaded.config, "{printed}");
        }
        let off = load_text(&[], "demo = false\n").expect("valid");
        assert!(!off.config.demo);
        assert_eq!(
            off.config.namespaces.lookup("chat:x"),
            Some(&NamespaceOptions::default())
        );
        let e = error(&[], "demo = true\njwt_hmac_secret = \"s\"\n");
        assert!(
            e.contains("demo") && e.contains("cannot be combined"),
            "{e}"
        );
    }

    #[test]
    fn without_a_file_nothing_is_read() {
        let loaded =
            load_with(["corecast", "--port", "1"], |_| panic!("read a file")).expect("valid");
        assert_eq!(loaded.config.port, 1);
        assert!(loaded.config.config_file.is_none() && !loaded.check_only);
    }

    #[test]
    fn check_config_names_the_file() {
        let loaded = load_with(["corecast", "--check-config", "x.toml"], |p| {
            assert_eq!(p, Path::new("x.toml"));
            Ok(b"port = 1\n".to_vec())
        })
        .expect("valid");
        assert!(loaded.check_only);
        assert_eq!(loaded.config.port, 1);
        let both = load_with(["corecast", "--config", "a", "--check-config", "b"], |_| {
            Ok(vec![])
        });
        assert!(matches!(both, Err(LoadError::Usage(_))));
    }

    #[test]
    fn an_unreadable_file_is_one_line() {
        let e = load_with(["corecast", "--config", "/nope.toml"], |_| {
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config /nope.toml: cannot read: "),
            "{e}"
        );
        let e = load_with(["corecast", "--config", "x"], |_| Ok(vec![0xff, 0xfe])).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
