//! OS signals -> every shard. SIGINT/SIGTERM are blocked in all threads and
//! taken by one plain thread with `sigwait`; it writes a byte to each
//! shard's control socket, which starts that shard's drain. A second signal
//! exits at once with status 130.

use std::io::Write;
use std::os::unix::net::UnixStream;

use crate::sys;

/// Exit status when a second signal cuts the drain short.
pub const FORCED_EXIT_STATUS: i32 = 130;

/// Starts the thread that turns signals into shard shutdowns. `listening`
/// are sockets to take out of LISTEN before a forced exit, so that a
/// restart right after it finds their ports free (see
/// `listener::AdminLinger`).
pub fn spawn_signal_thread(controls: Vec<UnixStream>, listening: Vec<socket2::Socket>) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = match sys::wait_for_signal() {
                Ok(sig) => sig,
                Err(e) => {
                    log::error!("sigwait failed, signals will not be handled: {e}");
                    return;
                }
            };
            log::info!("received {sig}, draining (send it again to exit at once)");
            for mut control in &controls {
                let _ = control.write_all(b"s");
            }
            if let Ok(sig) = sys::wait_for_signal() {
                log::warn!("received {sig} again, exiting without finishing the drain");
            }
            for socket in &listening {
                let _ = socket.shutdown(std::net::Shutdown::Read);
            }
            std::process::exit(FORCED_EXIT_STATUS);
        });
    if let Err(e) = spawned {
        log::error!("cannot start the signal thread, SIGTERM will not drain: {e}");
    }
}
