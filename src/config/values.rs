//! The syntax of flag values that clap's own parsers do not know: sizes
//! ("64KiB"), intervals where "0" is off, CPU lists ("0-3,6") and the
//! admin address ("none" or `IP:PORT`). The same functions parse the
//! config file's values, so a flag and its file key accept the same text.

use std::time::Duration;

/// Where the admin listener binds, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminAddr(pub Option<std::net::SocketAddr>);

/// Parses `--admin-addr`: "none" or an `IP:PORT`.
pub fn parse_admin_addr(s: &str) -> Result<AdminAddr, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(AdminAddr(None));
    }
    s.trim()
        .parse()
        .map(|a| AdminAddr(Some(a)))
        .map_err(|_| format!("not an address: {s:?} (use IP:PORT, e.g. 127.0.0.1:9090, or none)"))
}

/// Parses a duration with its unit: "500ms", "30s", "5m", "1h 30m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("not a duration ({e}): use a number and a unit, e.g. 500ms, 30s, 5m"))
}

/// Parses one `--redis` URL (`redis://[user:pass@]host:port[/db]`).
pub fn parse_redis_url(s: &str) -> Result<crate::redis::RedisUrl, String> {
    s.trim().parse()
}

/// A `--redis-prefix`: 1-64 characters of letters, digits, `_`, `-`, `.`
/// and `:`, so every key it starts stays readable in `redis-cli`.
pub fn parse_redis_prefix(s: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok) {
        return Err(format!(
            "bad prefix {s:?}: use 1-64 letters, digits, '_', '-', '.' or ':'"
        ));
    }
    Ok(s.to_string())
}

/// Parses a duration where a bare "0" means off.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("not a duration ({e}): e.g. 60s, 5m, or 0 for off"))
}

/// A CPU list as given to `--cpus`. A newtype, so clap parses the whole
/// "0-3,6" string into one value instead of expecting repeated numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Formats a CPU list as "0,1,2".
pub fn format_cpus(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses "0-3,6,8-9" into a sorted, de-duplicated CPU list.
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("not a CPU number: {x:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("empty CPU range {part:?}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err("empty CPU list".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(CpuList(out))
}

/// Parses a byte size: "4096", "64KiB", "1M", "2g" (K/M/G are powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("not a size: {s:?} (try 4096, 64KiB, 1MiB)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?} (use K, M or G)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn cpu_lists_parse_ranges() {
        assert_eq!(parse_cpu_list("0-2,5,1"), Ok(CpuList(vec![0, 1, 2, 5])));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }
}
