//! `admin_request`: the admin port's keep-alive read loop, whole and cut,
//! and the routes' answers.

use std::cell::Cell;

use futures_lite::future::{block_on, poll_once};

use super::http::check_response;
use super::{cuts, whole_cuts, ADMIN_TOKEN, SHARD};
use crate::admin::{self, api};
use crate::http::Response;

/// `admin_request`: one byte for `--max-api-body`, one seeding the cuts,
/// then what an admin client sends on one keep-alive connection. The read
/// loop gives the same requests and refusals whole and cut; each request is
/// within its limits, each refusal and each answer of the router is a
/// well-formed response with an expected status (401 exactly when the token
/// is wrong on /api/, 404 exactly for unknown paths).
pub fn check_admin_request(data: &[u8]) {
    let Some((&[max_sel, seed], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_body = usize::from(max_sel) * 8;
    let whole = read_admin_requests(rest, &whole_cuts(rest.len(), ADMIN_FILL_BYTES), max_body);
    let split = read_admin_requests(rest, &cuts(seed, rest.len()), max_body);
    let summary = |reads: &[AdminRead]| reads.iter().map(admin_summary).collect::<Vec<_>>();
    assert_eq!(summary(&whole), summary(&split), "cut admin stream differs");
    for read in &whole {
        match read {
            Ok(req) => check_admin_route(req, max_body),
            Err(Some(refusal)) => {
                assert!(
                    [400, 411, 413, 431].contains(&refusal.status),
                    "{refusal:?}"
                );
                check_response(refusal);
            }
            Err(None) => {}
        }
    }
}

/// Bytes one admin socket read delivers (admin::fill's buffer).
const ADMIN_FILL_BYTES: usize = 4096;

/// One read of the admin loop: a request, a refusal, or the peer gone.
type AdminRead = Result<admin::Request, Option<Response>>;

/// The admin connection loop over an in-memory stream, mirroring
/// `admin::serve` and `read_request` (which are tied to a glommio socket):
/// requests until one is refused, asks to close, or the bytes run out.
fn read_admin_requests(stream: &[u8], cut_lens: &[usize], max_body: usize) -> Vec<AdminRead> {
    let at = Cell::new(0);
    let mut chunks = cut_lens.iter().map(|&n| {
        let start = at.replace(at.get() + n);
        &stream[start..start + n]
    });
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        let read = read_admin_request(&mut buf, &mut chunks, max_body);
        let again = matches!(&read, Ok(request) if request.keep_alive);
        out.push(read);
        if !again {
            return out;
        }
    }
}

fn read_admin_request<'a>(
    buf: &mut Vec<u8>,
    chunks: &mut impl Iterator<Item = &'a [u8]>,
    max_body: usize,
) -> AdminRead {
    let mut fill = |buf: &mut Vec<u8>| {
        let chunk = chunks.next().ok_or(None)?;
        buf.extend_from_slice(chunk);
        Ok::<(), Option<Response>>(())
    };
    loop {
        if let Some((head_len, mut request, content_length)) = admin::parse_head(buf, max_body)? {
            while buf.len() < head_len + content_length {
                fill(buf)?;
            }
            request.body = buf[head_len..head_len + content_length].to_vec();
            buf.drain(..head_len + content_length);
            return Ok(request);
        }
        if buf.len() >= admin::MAX_HEAD_BYTES {
            return Err(Some(Response::error(431, "request head too large")));
        }
        fill(buf)?;
    }
}

/// Comparable form of one admin read.
fn admin_summary(read: &AdminRead) -> String {
    match read {
        Ok(r) => format!(
            "{} {} ? {} auth={:?} keep_alive={} body={:?}",
            r.method, r.path, r.query, r.authorization, r.keep_alive, r.body
        ),
        Err(Some(response)) => format!("refused {} {}", response.status, response.body),
        Err(None) => "gone".to_string(),
    }
}

/// Routes one admin request, when that needs no other shard, and checks it.
fn check_admin_route(req: &admin::Request, max_body: usize) {
    assert!(
        !req.path.contains('?') && req.body.len() <= max_body,
        "{req:?}"
    );
    let route = api::ROUTES.iter().find(|(path, _)| *path == req.path);
    // RFC 9110 11.1: `Bearer` is case-insensitive, then one or more spaces.
    let token = req.authorization.as_deref().and_then(|v| {
        let (scheme, rest) = v.trim_start().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let authorized = token == Some(ADMIN_TOKEN);
    let refused_at_once = match route {
        None => true,
        Some((path, method)) => (path.starts_with("/api/") && !authorized) || req.method != *method,
    };
    const ANSWER_AT_ONCE: [&str; 3] = ["/health", "/api/publish", "/api/broadcast"];
    // The other routes answer after a cross-shard query, which may wait on a
    // glommio timer; an executor is out of reach here, so they are routed
    // only when refused before any query (unknown, unauthorized, wrong method).
    if !refused_at_once && !ANSWER_AT_ONCE.contains(&req.path.as_str()) {
        return;
    }
    let response = SHARD.with(|shard| block_on(poll_once(api::route(shard, req))));
    let response = response.expect("a route without cross-shard queries answers at once");
    check_response(&response);
    assert_eq!(
        response.status == 404,
        route.is_none(),
        "{} -> {}",
        req.path,
        response.status
    );
    if let Some((path, _)) = route {
        if path.starts_with("/api/") {
            assert_eq!(
                response.status == 401,
                !authorized,
                "{req:?} -> {response:?}"
            );
        }
    }
    assert!(
        [200, 400, 401, 404, 405, 503].contains(&response.status),
        "{response:?}"
    );
}
