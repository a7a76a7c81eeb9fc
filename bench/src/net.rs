//! Where connections go and where they come from: `ws://` URLs, source
//! address ranges in 127.0.0.0/8, and the non-blocking connect itself.
//!
//! One box can hold far more than 64k connections to one server port
//! because a TCP connection is identified by its 4-tuple: each source
//! address brings a whole ephemeral port range. IP_BIND_ADDRESS_NO_PORT
//! lets the kernel pick the port at connect() time, with the destination
//! known, instead of reserving one port per source address at bind().

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// A `ws://host:port/path` target, resolved once.
#[derive(Debug, Clone)]
pub struct Url {
    /// The URL as given.
    pub text: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// `host[:port]` as given, for the Host header.
    pub host: String,
    /// Path and query as given (`/ws` when the URL has none).
    pub path: String,
    /// The upgrade request without a token, built once and copied into each connection.
    pub request: Vec<u8>,
    /// The request offers permessage-deflate (`--compression`).
    pub deflate: bool,
    /// The request asks for MessagePack (`--encoding msgpack`).
    pub msgpack: bool,
    /// Connections speak Centrifugo's client protocol (`--encoding
    /// centrifugo[-protobuf]`): the token goes in the connect command.
    pub centrifugo: Option<crate::centrifugo::Proto>,
}

/// The offer `--compression` makes: what Chrome sends.
pub const DEFLATE_OFFER: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";

impl Url {
    /// Appends this URL's upgrade request to `out`, carrying `token` if given.
    pub fn write_request(&self, out: &mut Vec<u8>, token: Option<&str>) {
        match token {
            // Centrifugo's token goes in the connect command, not the URL.
            None | Some(_) if self.centrifugo.is_some() => out.extend_from_slice(&self.request),
            None => out.extend_from_slice(&self.request),
            Some(t) => {
                crate::ws::write_upgrade_request(out, &self.host, &self.path, Some(t));
                if self.deflate {
                    add_header(out, DEFLATE_OFFER);
                }
                if self.msgpack {
                    add_header(out, crate::msgpack::OFFER);
                }
            }
        }
    }

    /// Makes every upgrade request to this URL ask for MessagePack.
    pub fn offer_msgpack(&mut self) {
        if !self.msgpack {
            self.msgpack = true;
            add_header(&mut self.request, crate::msgpack::OFFER);
        }
    }

    /// Makes connections to this /ws URL speak Centrifugo's client protocol
    /// in `proto` at /connection/websocket instead.
    pub fn speak_centrifugo(&mut self, proto: crate::centrifugo::Proto) {
        self.path = crate::centrifugo::PATH.to_string();
        self.request = crate::ws::upgrade_request(&self.host, &self.path);
        if self.deflate {
            add_header(&mut self.request, DEFLATE_OFFER);
        }
        if proto == crate::centrifugo::Proto::Protobuf {
            add_header(&mut self.request, crate::centrifugo::PROTOBUF_OFFER);
        }
        self.centrifugo = Some(proto);
    }

    /// Makes every upgrade request to this URL offer permessage-deflate.
    pub fn offer_deflate(&mut self) {
        if !self.deflate {
            self.deflate = true;
            add_header(&mut self.request, DEFLATE_OFFER);
        }
    }
}

/// Adds a header line to a complete request head (which ends in a blank line).
fn add_header(head: &mut Vec<u8>, line: &str) {
    head.truncate(head.len() - 2);
    head.extend_from_slice(line.as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
}

/// Splits `ws://host[:port][/path]` into `host[:port]` and the path ("/ws"
/// when absent), without resolving anything.
pub fn split_url(text: &str) -> Result<(&str, &str), String> {
    let rest = text
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{text}: only ws:// URLs are supported"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/ws"),
    })
}

/// Parses and resolves `ws://host[:port][/path]` (port 80, path "/ws" by default).
pub fn parse_url(text: &str) -> Result<Url, String> {
    let (hostport, path) = split_url(text)?;
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{text}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{text}: no IPv4 address"))?;
    Ok(Url {
        text: text.to_string(),
        addr,
        host: hostport.to_string(),
        path: path.to_string(),
        request: crate::ws::upgrade_request(hostport, path),
        deflate: false,
        msgpack: false,
        centrifugo: None,
    })
}

/// Parses "127.0.0.2-127.0.0.250,127.0.1.1" into the addresses it names, in order.
pub fn parse_source_ips(spec: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip = |s: &str| {
            s.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| format!("not an IPv4 address: {s:?}"))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (ip(a)?, ip(b)?),
            None => (ip(part)?, ip(part)?),
        };
        let (a, b) = (u32::from(a), u32::from(b));
        if a > b {
            return Err(format!("empty address range {part:?}"));
        }
        if b - a >= 1 << 24 {
            return Err(format!("address range {part:?} is larger than a /8"));
        }
        out.extend((a..=b).map(Ipv4Addr::from));
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    if let Some(bad) = out.iter().find(|ip| !ip.is_loopback()) {
        return Err(format!(
            "source address {bad} is not in 127.0.0.0/8; only loopback sources are supported"
        ));
    }
    Ok(out)
}

/// Starts a non-blocking connect to `dst`, from `src` when given.
/// Returns once the SYN is on its way (EINPROGRESS is success here).
pub fn start_connect(dst: SocketAddr, src: Option<Ipv4Addr>) -> io::Result<mio::net::TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    if let Some(src) = src {
        let one: libc::c_int = 1;
        // SAFETY: a valid fd and a pointer to a c_int of the size given.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        sock.bind(&SocketAddr::new(IpAddr::V4(src), 0).into())?;
    }
    match sock.connect(&dst.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(sock.into()))
}

/// A short, stable name for an I/O error, used as a failure cause.
pub fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::ECONNRESET) => "ECONNRESET",
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL",
        Some(libc::EADDRINUSE) => "EADDRINUSE",
        Some(libc::EMFILE) => "EMFILE (per-process fd limit)",
        Some(libc::ENFILE) => "ENFILE (fs.file-max)",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::EPIPE) => "EPIPE",
        Some(libc::ENOBUFS) => "ENOBUFS",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH",
        Some(n) => return format!("errno {n}"),
        None => return format!("{:?}", e.kind()),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ip_ranges_expand_in_order() {
        let ips = parse_source_ips("127.0.0.2-127.0.0.4, 127.0.1.1").unwrap();
        let want: Vec<Ipv4Addr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(ips, want);
        assert_eq!(parse_source_ips("127.0.0.250-127.0.1.1").unwrap().len(), 8);
    }

    #[test]
    fn source_ip_ranges_reject_bad_input() {
        assert!(parse_source_ips("127.0.0.9-127.0.0.2").is_err());
        assert!(parse_source_ips("10.0.0.1").is_err());
        assert!(parse_source_ips("127.0.0").is_err());
        assert!(parse_source_ips("").is_err());
    }

    #[test]
    fn a_deflate_offer_is_one_more_header_line() {
        let mut u = parse_url("ws://127.0.0.1:9000/ws").unwrap();
        u.offer_deflate();
        u.offer_deflate();
        let mut with_token = Vec::new();
        u.write_request(&mut with_token, Some("t"));
        for head in [&u.request, &with_token] {
            let text = String::from_utf8(head.to_vec()).unwrap();
            assert_eq!(
                text.matches("Sec-WebSocket-Extensions").count(),
                1,
                "{text}"
            );
            assert!(
                text.ends_with(&format!("{DEFLATE_OFFER}\r\n\r\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn urls_default_port_and_path() {
        let u = parse_url("ws://127.0.0.1:9000").unwrap();
        assert_eq!(u.addr, "127.0.0.1:9000".parse().unwrap());
        assert!(u
            .request
            .starts_with(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"));
        let u = parse_url("ws://127.0.0.1:9000/echo").unwrap();
        assert!(u.request.starts_with(b"GET /echo "));
        assert!(parse_url("http://127.0.0.1/").is_err());
        assert_eq!(split_url("ws://h:1").unwrap(), ("h:1", "/ws"));
        assert_eq!(split_url("ws://h/echo?x").unwrap(), ("h", "/echo?x"));
    }

    #[test]
    fn requests_carry_the_token_only_when_given() {
        let u = parse_url("ws://127.0.0.1:9000/ws").unwrap();
        let mut out = Vec::new();
        u.write_request(&mut out, None);
        assert_eq!(out, u.request);
        out.clear();
        u.write_request(&mut out, Some("t.o.k"));
        assert!(out.starts_with(b"GET /ws?token=t.o.k HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"));
    }
}
