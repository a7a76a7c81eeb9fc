//! `SendRing`: the `--send-path io-uring` experiment, a small io_uring ring
//! of the shard's own on which a flush pass submits the `sendmsg` of many
//! connections at once (one `io_uring_enter` instead of one syscall each).
//!
//! Every send carries `MSG_DONTWAIT`, so the kernel either completes it
//! while it is submitted or fails it with `EAGAIN` (io_uring then never arms
//! a poll of its own): all completions are there when the submit returns and
//! nothing outlives the call. glommio's rings are not used because glommio
//! offers no way to submit arbitrary operations on them.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring};

/// Sends one ring takes per submit: a flush pass writes at most this many
/// connections between two yields, so no batch is ever larger.
pub const RING_ENTRIES: u32 = 256;

/// One shard's ring and the scratch its batches are built in (kept between
/// passes so a pass allocates nothing).
pub struct SendRing {
    /// The ring itself (submission and completion queues).
    ring: IoUring,
    /// One header per queued send; `msg_iov` points into `iovecs`.
    msgs: Vec<libc::msghdr>,
    /// Every queued send's buffers, back to back.
    iovecs: Vec<libc::iovec>,
    /// Where each send's buffers start in `iovecs`, and how many.
    spans: Vec<(usize, usize)>,
}

impl std::fmt::Debug for SendRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SendRing({} queued)", self.spans.len())
    }
}

impl SendRing {
    /// A ring of `RING_ENTRIES` entries (about 20 KiB of kernel memory).
    pub fn new() -> io::Result<SendRing> {
        Ok(SendRing {
            ring: IoUring::new(RING_ENTRIES)?,
            msgs: Vec::new(),
            iovecs: Vec::new(),
            spans: Vec::new(),
        })
    }

    /// Sends queued so far in this batch.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no send is queued.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// True when the batch cannot take another send.
    pub fn is_full(&self) -> bool {
        self.spans.len() >= RING_ENTRIES as usize
    }

    /// Queues one `sendmsg` of `bufs` (copied as pointers: the caller keeps
    /// the bytes alive and unchanged until [`SendRing::submit`] returns).
    pub fn queue(&mut self, bufs: &[IoSlice<'_>]) {
        let start = self.iovecs.len();
        self.iovecs.extend(bufs.iter().map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        }));
        self.spans.push((start, bufs.len()));
    }

    /// Submits every queued send, `fds[i]` for the i-th, in one
    /// `io_uring_enter`, and reports each one's result (bytes written, or the
    /// error) to `done(i, result)`. The batch is empty afterwards.
    pub fn submit(&mut self, fds: &[RawFd], mut done: impl FnMut(usize, io::Result<usize>)) {
        let n = self.spans.len();
        debug_assert_eq!(fds.len(), n);
        // Headers are built only now: `iovecs` no longer moves.
        self.msgs.clear();
        for &(start, len) in &self.spans {
            // SAFETY: msghdr is plain data; zeroed is a valid empty header.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = self.iovecs[start..].as_mut_ptr();
            msg.msg_iovlen = len as _;
            self.msgs.push(msg);
        }
        let flags = (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u32;
        let result = self.push_and_submit(fds, flags);
        if let Err(e) = result {
            // The ring itself failed (never seen): report every send as failed
            // with it so each connection ends rather than stalls.
            for i in 0..n {
                done(i, Err(io::Error::new(e.kind(), e.to_string())));
            }
        } else {
            for cqe in self.ring.completion() {
                let res = cqe.result();
                let out = if res < 0 {
                    Err(io::Error::from_raw_os_error(-res))
                } else {
                    Ok(res as usize)
                };
                done(cqe.user_data() as usize, out);
            }
        }
        self.spans.clear();
        self.iovecs.clear();
    }

    /// Pushes one SQE per queued send and enters the kernel once, waiting
    /// for all completions (with `MSG_DONTWAIT`, each completes inline).
    fn push_and_submit(&mut self, fds: &[RawFd], flags: u32) -> io::Result<()> {
        let n = self.msgs.len();
        {
            let mut sq = self.ring.submission();
            for (i, msg) in self.msgs.iter().enumerate() {
                let entry = opcode::SendMsg::new(types::Fd(fds[i]), msg)
                    .flags(flags)
                    .build()
                    .user_data(i as u64);
                // SAFETY: the header, its iovecs and the bytes they point at
                // stay alive and unchanged until the completions are reaped
                // (below, in this call); the queue has room for n entries.
                unsafe { sq.push(&entry) }
                    .map_err(|_| io::Error::other("send ring submission queue full"))?;
            }
        }
        loop {
            match self.ring.submit_and_wait(n) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
