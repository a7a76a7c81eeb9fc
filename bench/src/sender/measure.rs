//! What the sender measures: its own thread's CPU time (getrusage
//! RUSAGE_THREAD) and its send counts, sampled at the window's edges.
//! Pure arithmetic apart from the one getrusage call.

use std::time::Instant;

/// Send calls and their outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Complete frames written (deliveries); a complete batch counts each of its frames.
    pub deliveries: u64,
    /// `send` calls made.
    pub calls: u64,
    /// Calls that returned EAGAIN (socket send buffer full).
    pub eagain: u64,
    /// Calls that wrote only part of what was left of a frame.
    pub partial: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            deliveries: self.deliveries - o.deliveries,
            calls: self.calls - o.calls,
            eagain: self.eagain - o.eagain,
            partial: self.partial - o.partial,
        }
    }
}

/// User and system CPU time of one thread, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// User time.
    pub user: f64,
    /// System time (the kernel's send path, loopback receive processing included).
    pub sys: f64,
}

impl CpuTime {
    /// User plus system.
    pub fn total(self) -> f64 {
        self.user + self.sys
    }
}

impl std::ops::Sub for CpuTime {
    type Output = CpuTime;
    fn sub(self, o: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - o.user,
            sys: self.sys - o.sys,
        }
    }
}

/// CPU time the calling thread has used so far (getrusage RUSAGE_THREAD;
/// Linux derives it from the scheduler's nanosecond runtime).
pub fn thread_cpu() -> CpuTime {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a pointer to a rusage owned by this frame.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return CpuTime::default();
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    CpuTime {
        user: secs(ru.ru_utime),
        sys: secs(ru.ru_stime),
    }
}

/// The measured window as the sender saw it.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowStats {
    /// Length of the window in seconds.
    pub secs: f64,
    /// Sender thread CPU over the window.
    pub cpu: CpuTime,
    /// Sends over the window.
    pub counts: Counts,
}

impl WindowStats {
    /// Deliveries per second.
    pub fn per_s(&self) -> f64 {
        per(self.counts.deliveries as f64, self.secs)
    }
    /// Sender CPU-seconds per second (1.0 = one core saturated).
    pub fn cpu_per_s(&self) -> f64 {
        per(self.cpu.total(), self.secs)
    }
    /// Sender CPU microseconds per delivery.
    pub fn us_per_delivery(&self) -> f64 {
        per(self.cpu.total() * 1e6, self.counts.deliveries as f64)
    }
}

/// `x / d`, 0 when `d` is 0.
pub fn per(x: f64, d: f64) -> f64 {
    if d > 0.0 {
        x / d
    } else {
        0.0
    }
}

/// A point in time with the sender's CPU and counts at that point.
#[derive(Clone, Copy)]
pub struct Mark {
    /// When.
    pub at: Instant,
    /// Thread CPU time so far.
    pub cpu: CpuTime,
    /// Send counts so far.
    pub counts: Counts,
}

impl Mark {
    /// Samples the clock and this thread's CPU time, with `counts`.
    pub fn now(counts: Counts) -> Mark {
        Mark {
            at: Instant::now(),
            cpu: thread_cpu(),
            counts,
        }
    }

    /// The window from `self` to `end`.
    pub fn until(self, end: Mark) -> WindowStats {
        WindowStats {
            secs: end.at.duration_since(self.at).as_secs_f64(),
            cpu: end.cpu - self.cpu,
            counts: end.counts - self.counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn window_figures_divide_safely() {
        let w = WindowStats {
            secs: 2.0,
            cpu: CpuTime {
                user: 0.1,
                sys: 0.3,
            },
            counts: Counts {
                deliveries: 100_000,
                calls: 100_010,
                eagain: 10,
                partial: 0,
            },
        };
        assert_eq!(w.per_s(), 50_000.0);
        assert!((w.cpu_per_s() - 0.2).abs() < 1e-12);
        assert!((w.us_per_delivery() - 4.0).abs() < 1e-9);
        assert_eq!(WindowStats::default().us_per_delivery(), 0.0);
    }

    #[test]
    fn thread_cpu_grows_with_work() {
        let a = thread_cpu();
        let t = Instant::now();
        let mut x = 0u64;
        while (thread_cpu() - a).total() < 0.002 && t.elapsed() < Duration::from_secs(5) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let d = thread_cpu() - a;
        assert!(d.total() >= 0.002 && d.user > 0.0, "{d:?}");
    }
}
