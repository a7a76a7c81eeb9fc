//! Readiness bits and the one rule every socket operation follows: edges
//! (`READABLE`/`WRITABLE`) that a short transfer clears, and hang-ups
//! (`READ_CLOSED`/`WRITE_CLOSED`) that stay set until the kernel says
//! `EAGAIN`. Pure logic, no I/O.

use std::io;
use std::task::Waker;

use crate::sys::epoll_bits;

/// Readiness bit: a `recv` may return data (or EOF). Edge state: cleared
/// by a short transfer.
pub(crate) const READABLE: u8 = 1;
/// Readiness bit: a `send` may take bytes. Edge state: cleared by a short
/// transfer.
pub(crate) const WRITABLE: u8 = 2;
/// Sticky bit: the peer shut its side, or the socket failed (`EPOLLRDHUP`,
/// `EPOLLHUP`, `EPOLLERR`). Every later `recv` returns data, EOF or an
/// error, never `EAGAIN`, and the kernel raises no new edge for it, so a
/// short read must not clear it: a hang-up that arrived with the last
/// bytes would otherwise be lost until a timer noticed.
pub(crate) const READ_CLOSED: u8 = 4;
/// Sticky bit: the connection is hung up or failed (`EPOLLHUP`,
/// `EPOLLERR`): every later `send` fails at once.
pub(crate) const WRITE_CLOSED: u8 = 8;
/// Readiness bits (edge and sticky) for an event's epoll bits.
pub(super) fn ready_bits(bits: u32) -> u8 {
    let mut ready = 0;
    if bits & epoll_bits::IN != 0 {
        ready |= READABLE;
    }
    if bits & epoll_bits::OUT != 0 {
        ready |= WRITABLE;
    }
    if bits & epoll_bits::READ_CLOSED != 0 {
        ready |= READ_CLOSED;
    }
    if bits & epoll_bits::CLOSED != 0 {
        ready |= WRITE_CLOSED;
    }
    ready
}

/// The sticky bit that keeps `bit` (`READABLE` or `WRITABLE`) usable.
fn sticky(bit: u8) -> u8 {
    if bit == READABLE {
        READ_CLOSED | WRITE_CLOSED
    } else {
        WRITE_CLOSED
    }
}

/// May an operation of kind `bit` (`READABLE` or `WRITABLE`) be tried on a
/// socket whose readiness is `ready`? Yes while its edge bit is set, and
/// for good once the matching sticky hang-up bit is.
pub(crate) fn can(ready: u8, bit: u8) -> bool {
    ready & (bit | sticky(bit)) != 0
}

/// Edge-triggered rule shared by every reader and writer of a public
/// socket: updates `ready` after `result` of an operation of kind `bit`
/// that offered `len` bytes. A short transfer clears the edge bit (the
/// kernel raises a new edge on the next byte or on room) but never a
/// sticky bit; EOF (`Ok(0)`) keeps everything, so the next read sees EOF
/// again. `EAGAIN` clears the sticky bits too: the kernel has just said
/// there is nothing, and trusting it beats spinning on a stale bit.
pub(crate) fn after_io(ready: &mut u8, bit: u8, result: &io::Result<usize>, len: usize) {
    match result {
        Ok(n) if *n > 0 && *n < len => *ready &= !bit,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => *ready &= !(bit | sticky(bit)),
        _ => {}
    }
}

/// Keeps `waker` in `slot`, cloning only if it would wake another task.
pub(crate) fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short() -> io::Result<usize> {
        Ok(10)
    }

    fn eagain() -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    #[test]
    fn a_hang_up_outlives_the_short_read_of_the_last_bytes() {
        // Data and FIN in one event: the read of the data comes up short.
        let mut ready = ready_bits(epoll_bits::IN | libc::EPOLLRDHUP as u32);
        after_io(&mut ready, READABLE, &short(), 100);
        assert!(can(ready, READABLE), "the EOF must still be read");
        assert!(!can(ready, WRITABLE), "a half-close says nothing of writes");
        after_io(&mut ready, READABLE, &Ok(0), 100);
        assert!(can(ready, READABLE), "EOF keeps the socket readable");
    }

    #[test]
    fn an_error_keeps_both_directions_usable() {
        let mut ready = ready_bits(libc::EPOLLERR as u32);
        after_io(&mut ready, WRITABLE, &short(), 100);
        after_io(&mut ready, READABLE, &short(), 100);
        assert!(can(ready, READABLE) && can(ready, WRITABLE));
    }

    #[test]
    fn edges_clear_on_a_short_transfer_and_eagain_clears_all() {
        let mut ready = READABLE | WRITABLE;
        after_io(&mut ready, READABLE, &short(), 100);
        assert!(!can(ready, READABLE) && can(ready, WRITABLE));
        after_io(&mut ready, WRITABLE, &Ok(100), 100);
        assert!(can(ready, WRITABLE), "a full write says nothing");
        let mut ready = READABLE | READ_CLOSED;
        after_io(&mut ready, READABLE, &eagain(), 100);
        assert!(!can(ready, READABLE), "EAGAIN is the kernel's last word");
    }
}
