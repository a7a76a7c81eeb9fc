//! The measured part: a round-robin over every socket, one nonblocking
//! `send(2)` per visit, as fast as it returns (`send_max`) or paced in 1 ms
//! bursts (`send_paced`). A half-written frame is finished on the socket's
//! next visit, so the receiver always sees whole frames.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::measure::{Counts, Mark, WindowStats};
use super::{window, SenderShared};
use crate::driver::count;
use crate::net::errno_name;

/// Fixed-rate mode sends what is due once per tick: bursts every millisecond,
/// as a server draining its queues on each event-loop turn would.
pub const TICK: Duration = Duration::from_millis(1);

/// Max-rate mode reads the clock once per this many sends (a clock read
/// costs about as much as a tenth of a send; once per 64 is noise).
const CLOCK_EVERY: u32 = 64;

/// One accepted, upgraded connection.
struct Sock {
    stream: TcpStream,
    /// Bytes of the current frame already written; 0 between frames.
    at: usize,
    /// A send failed for good; the socket is skipped.
    dead: bool,
}

/// What one `send` did.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// The frame (or the whole batch) is complete: one delivery per frame.
    Frame,
    /// Part of the frame went out; the rest goes on the next visit.
    Partial,
    /// EAGAIN: the socket's send buffer is full.
    WouldBlock,
    /// A hard error; the socket is dead.
    Failed(String),
    /// The socket died earlier and was passed over without a call.
    Dead,
}

/// Accounts `written` more bytes of a frame of `len` bytes, `at` of which were
/// already out.
fn advance(at: &mut usize, written: usize, len: usize) -> Sent {
    *at += written;
    if *at >= len {
        *at = 0;
        Sent::Frame
    } else {
        Sent::Partial
    }
}

impl Sock {
    /// One nonblocking `send` of what is left of `frame`.
    fn send(&mut self, frame: &[u8]) -> Sent {
        let rest = &frame[self.at..];
        // SAFETY: a valid connected socket and a live buffer of the length given.
        // MSG_DONTWAIT makes the call nonblocking whatever the fd flags say;
        // MSG_NOSIGNAL turns a dead peer into EPIPE instead of SIGPIPE.
        let rc = unsafe {
            libc::send(
                self.stream.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if rc >= 0 {
            return advance(&mut self.at, rc as usize, frame.len());
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Sent::WouldBlock,
            _ => {
                self.dead = true;
                Sent::Failed(format!("send: {}", errno_name(&e)))
            }
        }
    }
}

/// The round-robin over every socket, and what it counted.
pub struct Sweep {
    socks: Vec<Sock>,
    frame: Arc<[u8]>,
    /// Deliveries in one complete `frame` (the batch size).
    per_send: u64,
    next: usize,
    alive: usize,
    /// Every send so far.
    pub counts: Counts,
    /// Failed sends by cause.
    pub errors: BTreeMap<String, u64>,
}

impl Sweep {
    /// A sweep over `streams`, each send writing `frame`, which holds `per_send` frames.
    pub fn new(streams: Vec<TcpStream>, frame: Arc<[u8]>, per_send: u64) -> Sweep {
        let socks: Vec<Sock> = streams
            .into_iter()
            .map(|stream| Sock {
                stream,
                at: 0,
                dead: false,
            })
            .collect();
        Sweep {
            alive: socks.len(),
            socks,
            frame,
            per_send: per_send.max(1),
            next: 0,
            counts: Counts::default(),
            errors: BTreeMap::new(),
        }
    }

    /// Sends to the next live socket; returns what happened.
    fn step(&mut self) -> Sent {
        let n = self.socks.len();
        let s = &mut self.socks[self.next];
        self.next = if self.next + 1 == n { 0 } else { self.next + 1 };
        if s.dead {
            return Sent::Dead;
        }
        let r = s.send(&self.frame);
        self.counts.calls += 1;
        match &r {
            Sent::Frame => self.counts.deliveries += self.per_send,
            Sent::Partial => self.counts.partial += 1,
            Sent::WouldBlock => self.counts.eagain += 1,
            Sent::Failed(cause) => {
                count(&mut self.errors, cause.clone());
                self.alive -= 1;
            }
            Sent::Dead => {}
        }
        r
    }

    /// Finishes every half-written frame, trying for at most `limit`;
    /// returns how many are still unfinished.
    pub fn finish_partials(&mut self, limit: Duration) -> u64 {
        let until = Instant::now() + limit;
        loop {
            let mut left = 0;
            for i in 0..self.socks.len() {
                while self.socks[i].at > 0 && !self.socks[i].dead {
                    self.next = i;
                    if self.step() != Sent::Partial {
                        break;
                    }
                }
                left += u64::from(self.socks[i].at > 0 && !self.socks[i].dead);
            }
            if left == 0 || Instant::now() >= until {
                return left;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// The measured window of one sending loop: it opens once the warm-up has
/// passed and ends `secs` later.
struct Measured {
    opens: Instant,
    ends: Instant,
    /// Sender CPU and counts when the window opened; `None` before.
    start: Option<Mark>,
}

impl Measured {
    /// A window `warmup` after sending began at `t0`, `secs` long.
    fn new(t0: Instant, warmup: Duration, secs: Duration) -> Measured {
        Measured {
            opens: t0 + warmup,
            ends: t0 + warmup + secs,
            start: None,
        }
    }

    /// Opens the window when it is due (telling the receivers); true once it has ended.
    fn check(&mut self, now: Instant, sweep: &Sweep, ss: &SenderShared) -> bool {
        if self.start.is_none() && now >= self.opens {
            ss.window.store(window::OPEN, Ordering::Relaxed);
            self.start = Some(Mark::now(sweep.counts));
        }
        now >= self.ends
    }

    /// The window's figures, from its opening (or now, if it never opened) to now.
    fn stats(self, sweep: &Sweep) -> WindowStats {
        let start = self.start.unwrap_or_else(|| Mark::now(sweep.counts));
        start.until(Mark::now(sweep.counts))
    }
}

/// Max rate: send round-robin as fast as `send` returns, EAGAIN or not.
pub fn send_max(
    sweep: &mut Sweep,
    ss: &SenderShared,
    warmup: Duration,
    secs: Duration,
) -> WindowStats {
    let mut measured = Measured::new(Instant::now(), warmup, secs);
    while sweep.alive > 0 {
        for _ in 0..CLOCK_EVERY {
            sweep.step();
        }
        if measured.check(Instant::now(), sweep, ss) {
            break;
        }
    }
    measured.stats(sweep)
}

/// Deliveries due `elapsed` after sending began at `rate` per second.
pub fn due(rate: f64, elapsed: Duration) -> u64 {
    (rate * elapsed.as_secs_f64()) as u64
}

/// Fixed rate: every [`TICK`], send what is due round-robin, then sleep.
/// A socket that says EAGAIN is passed over; a tick gives up once every live
/// socket in a row has refused, and the deficit carries to the next tick.
pub fn send_paced(
    sweep: &mut Sweep,
    ss: &SenderShared,
    rate: f64,
    warmup: Duration,
    secs: Duration,
) -> WindowStats {
    let t0 = Instant::now();
    let mut measured = Measured::new(t0, warmup, secs);
    let mut tick = t0;
    while sweep.alive > 0 {
        let now = Instant::now();
        if measured.check(now, sweep, ss) {
            break;
        }
        let target = due(rate, now.duration_since(t0));
        let mut refused = 0;
        while sweep.counts.deliveries < target && refused < sweep.alive {
            match sweep.step() {
                Sent::Frame => refused = 0,
                Sent::Dead => {}
                _ => refused += 1,
            }
        }
        tick += TICK;
        let now = Instant::now();
        if tick < now {
            // Missed ticks are not replayed one by one: `due` already counts them.
            tick = now;
        }
        std::thread::sleep(tick.min(measured.ends).saturating_duration_since(now));
    }
    measured.stats(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::handshake::listen;

    #[test]
    fn partial_writes_complete_a_frame_on_a_later_send() {
        let mut at = 0;
        assert_eq!(advance(&mut at, 40, 110), Sent::Partial);
        assert_eq!(advance(&mut at, 60, 110), Sent::Partial);
        assert_eq!(advance(&mut at, 10, 110), Sent::Frame);
        assert_eq!(at, 0);
        assert_eq!(advance(&mut at, 110, 110), Sent::Frame);
    }

    #[test]
    fn sweep_counts_deliveries_and_eagain_over_a_real_socket() {
        sweep_over_a_real_socket(1);
    }

    #[test]
    fn a_batch_counts_each_of_its_frames() {
        sweep_over_a_real_socket(3);
    }

    fn sweep_over_a_real_socket(batch: u64) {
        use std::io::Read as _;
        let (l, addr) = listen(1).unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = loop {
            match l.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        let frame = [0x81, 3, b'a', b'b', b'c'];
        let batched: Arc<[u8]> = Arc::from(frame.repeat(batch as usize));
        let mut sweep = Sweep::new(vec![TcpStream::from_std(server)], batched, batch);
        // Nobody reads yet, so the socket buffers fill and send says EAGAIN.
        while sweep.counts.eagain == 0 {
            sweep.step();
        }
        let c = sweep.counts;
        assert_eq!(c.calls, c.deliveries / batch + c.eagain + c.partial);
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut read_until = |bytes: usize, got: &mut Vec<u8>| {
            while got.len() < bytes {
                let n = client.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
        };
        read_until(c.deliveries as usize * frame.len(), &mut got);
        assert_eq!(sweep.finish_partials(Duration::from_secs(5)), 0);
        let total = sweep.counts.deliveries as usize * frame.len();
        read_until(total, &mut got);
        assert_eq!(got.len(), total);
        assert!(got.chunks(frame.len()).all(|f| f == frame));
        assert_eq!(sweep.counts.deliveries % batch, 0);
        assert!(sweep.errors.is_empty());
    }

    #[test]
    fn pacing_spreads_the_rate_over_ticks() {
        assert_eq!(due(50_000.0, Duration::from_secs(1)), 50_000);
        assert_eq!(due(50_000.0, TICK), 50);
        assert_eq!(due(50_000.0, Duration::from_micros(1500)), 75);
        assert_eq!(due(1.0, Duration::from_millis(999)), 0);
    }
}
