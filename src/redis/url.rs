//! [`RedisUrl`]: `redis://[user:pass@]host[:port][/db]`, parsed once at startup; `Display` never shows the password.

use std::fmt;
use std::str::FromStr;

/// Where Redis is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address (IPv6 in brackets in the URL, without here).
    pub host: String,
    /// TCP port; 6379 when the URL has none.
    pub port: u16,
    /// ACL user (Redis 6+); `None` logs in as `default` when there is a password.
    pub username: Option<String>,
    /// Password for `AUTH`; never printed.
    pub password: Option<String>,
    /// Logical database for `SELECT`; 0 when the URL has no path.
    pub db: u32,
}

/// Redis's well-known port.
pub const DEFAULT_PORT: u16 = 6379;

impl RedisUrl {
    /// `host:port`, for connecting (IPv6 hosts in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for RedisUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<RedisUrl, String> {
        let fail = |why: &str| Err(format!("redis URL {}: {why}", masked(text)));
        let Some(rest) = text.strip_prefix("redis://") else {
            return fail("must start with redis:// (rediss:// TLS is not supported)");
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (non_empty(user), non_empty(pass)),
                None => (non_empty(info), None),
            },
        };
        if username.is_some() && password.is_none() {
            return fail("a user needs a password (redis://user:pass@host)");
        }
        let (host, port) = match split_port(hostport) {
            Ok(parts) => parts,
            Err(why) => return fail(&why),
        };
        if host.is_empty() {
            return fail("no host");
        }
        let db = match path {
            "" => 0,
            db => match db.parse() {
                Ok(n) => n,
                Err(_) => return fail(&format!("database {db:?} is not a number")),
            },
        };
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            username,
            password,
            db,
        })
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            _ => {}
        }
        write!(f, "{}/{}", self.addr(), self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_port(hostport: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err("unclosed [ in host".into());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected {after:?} after ]")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("port {p:?} is not 1-65535")),
        },
    };
    Ok((host, port))
}

/// The URL as typed, with whatever follows `:` in the user info starred,
/// for error messages.
fn masked(text: &str) -> String {
    let Some(rest) = text.strip_prefix("redis://") else {
        return text.to_string();
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once('@') {
        Some((info, _)) if info.contains(':') => {
            let user = info.split(':').next().unwrap_or("");
            text.replacen(info, &format!("{user}:***"), 1)
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> RedisUrl {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn forms_parse() {
        let full = url("redis://app:s3cret@cache.local:6380/2");
        assert_eq!(full.host, "cache.local");
        assert_eq!(full.port, 6380);
        assert_eq!(full.username.as_deref(), Some("app"));
        assert_eq!(full.password.as_deref(), Some("s3cret"));
        assert_eq!(full.db, 2);
        let bare = url("redis://cache");
        assert_eq!((bare.port, bare.db, bare.password), (6379, 0, None));
        let pass_only = url("redis://:pw@127.0.0.1");
        assert_eq!(
            (pass_only.username, pass_only.password.as_deref()),
            (None, Some("pw"))
        );
        assert_eq!(url("redis://[::1]:7000").addr(), "[::1]:7000");
        assert_eq!(url("redis://h:1/").db, 0);
    }

    #[test]
    fn display_masks_the_password() {
        assert_eq!(
            url("redis://app:s3cret@h:1/3").to_string(),
            "redis://app:***@h:1/3"
        );
        assert_eq!(
            url("redis://:s3cret@h").to_string(),
            "redis://:***@h:6379/0"
        );
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        for (text, why) in [
            ("http://h", "must start with redis://"),
            ("redis://h:0", "port \"0\""),
            ("redis://h:99999", "port"),
            ("redis://h/x", "database \"x\""),
            ("redis://:pw@", "no host"),
            ("redis://user@h", "needs a password"),
            (
                "redis://u:topsecret@h:x",
                "redis URL redis://u:***@h:x: port",
            ),
        ] {
            let err = text.parse::<RedisUrl>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.starts_with("redis URL "), "{err}");
            assert!(!err.contains("topsecret"), "{err}");
        }
    }
}
