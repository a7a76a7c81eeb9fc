//! Startup and the process's life: resolve limits, bind, start one pinned
//! executor per shard, wait until all serve, then wait for them to drain.
//!
//! Everything that can fail at startup fails here, before a byte is served,
//! as a [`StartupError`].

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_lite::AsyncReadExt;
use glommio::{LocalExecutorBuilder, Placement};
use socket2::Socket;

use crate::auth::Verifier;
use crate::bus::{self, Bus, MeshEnds};
use crate::config::{format_cpus, Config, Resolved, DEMO_NAMESPACE};
use crate::demo::{self, Demo};
use crate::error::StartupError;
use crate::listener::Port;
use crate::reactor::EpollSet;
use crate::shard::{Shard, ShardId, Shared};
use crate::topics::MAX_SHARDS;
use crate::{connection, listener, shutdown, sys};

/// glommio refuses to start below this RLIMIT_MEMLOCK (its own check).
const MIN_MEMLOCK: u64 = 512 * 1024;

/// What a shard thread needs to start; all `Send`.
struct ShardPlan {
    id: ShardId,
    cpu: usize,
    config: Arc<Resolved>,
    shared: Arc<Shared>,
    socket: Socket,
    admin: Option<Socket>,
    mesh: MeshEnds,
    control: UnixStream,
    ready: mpsc::Sender<Result<(), StartupError>>,
}

/// Runs the server until a shutdown signal has been handled.
pub fn run(config: Config) -> Result<(), StartupError> {
    // Before any thread exists, so every thread inherits the blocked mask.
    sys::block_shutdown_signals()
        .map_err(|e| StartupError::Shard(format!("cannot block signals: {e}")))?;
    let config = resolve(config)?;
    let cfg = &config.config;
    let n = config.cpus.len();
    let backlog = effective_backlog(cfg.backlog);
    let (sockets, port) = listener::bind_all(cfg.addr, cfg.port, n, backlog)?;
    // `_admin_linger` lives to the end of this function: once every shard
    // has exited (or startup has failed) it takes the admin socket out of
    // LISTEN, so an immediate restart can bind it (see `AdminLinger`).
    let (mut admin_sockets, admin_addr, _admin_linger) = match cfg.admin_addr.0 {
        Some(addr) => {
            let admin = listener::bind_admin(addr, n)?;
            let sockets = admin.per_shard.into_iter().map(Some).collect();
            (sockets, Some(admin.addr), Some(admin.linger))
        }
        None => ((0..n).map(|_| None).collect::<Vec<_>>(), None, None),
    };
    check_admin_exposure(&config);
    prepare_report_dir(&config)?;
    let (verifier, demo) = if config.config.demo {
        start_demo(&config)?
    } else {
        (build_verifier(&config)?, None)
    };
    let config = Arc::new(config);
    let shared = Arc::new(Shared {
        n_shards: n,
        verifier,
        demo,
        redis_up: (0..n).map(|_| AtomicBool::new(false)).collect(),
        node_id: node_id(),
        ..Shared::default()
    });
    let mut meshes = if n > 1 {
        bus::mesh(n, config.config.bus_capacity)
    } else {
        bus::mesh(1, 1)
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut controls = Vec::with_capacity(n);
    let mut threads = Vec::with_capacity(n);
    for (i, socket) in sockets.into_iter().enumerate() {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| StartupError::Shard(format!("control socket: {e}")))?;
        controls.push(ours);
        let plan = ShardPlan {
            id: ShardId(i as u16),
            cpu: config.cpus[i],
            config: config.clone(),
            shared: shared.clone(),
            socket,
            admin: admin_sockets[i].take(),
            mesh: meshes.remove(0),
            control: theirs,
            ready: ready_tx.clone(),
        };
        threads.push(spawn_shard(plan)?);
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(StartupError::Shard(
                    "a shard thread exited during startup".into(),
                ))
            }
        }
    }
    // Everything the process holds must exist before the `listening` line:
    // it is the readiness signal (tests take fd baselines after it).
    let listening = _admin_linger
        .as_ref()
        .and_then(|linger| linger.duplicate().ok())
        .into_iter()
        .collect();
    shutdown::spawn_signal_thread(controls, listening);
    let addr = SocketAddr::new(cfg_addr(&config), port);
    let admin = admin_addr.map_or_else(|| "none".to_string(), |a| a.to_string());
    let cfg = &config.config;
    if !cfg.redis.is_empty() {
        let urls: Vec<String> = cfg.redis.iter().map(ToString::to_string).collect();
        log::info!(
            "redis mode instances={} prefix={} node={} (links connect in the background; /health shows them)",
            urls.join(","),
            cfg.redis_prefix,
            shared.node_id
        );
    }
    log::info!(
        "listening addr={addr} port={port} admin={admin} shards={n} cpus={} max_connections={} \
         max_message_size={} max_outbound_bytes={} backlog={backlog}",
        format_cpus(&config.cpus),
        config.max_connections,
        config.config.max_message_size,
        config.config.max_outbound_bytes,
    );
    for thread in threads {
        if thread.join().is_err() {
            log::error!("a shard thread panicked");
        }
    }
    log::info!("shutdown complete");
    Ok(())
}

fn cfg_addr(config: &Resolved) -> std::net::IpAddr {
    config.config.addr
}

/// The token verifier from `--jwt-hmac-secret`/`--jwt-public-key` (the
/// key file is read here, once), with the startup lines that say what
/// authentication is on.
fn build_verifier(config: &Resolved) -> Result<Option<Verifier>, StartupError> {
    let cfg = &config.config;
    let verifier = Verifier::from_config(
        cfg.jwt_hmac_secret.as_deref(),
        cfg.jwt_public_key.as_deref(),
    )
    .map_err(StartupError::Config)?;
    if let Some(verifier) = &verifier {
        let algorithms: Vec<String> = verifier.algorithms().map(|a| format!("{a:?}")).collect();
        log::info!(
            "auth on algorithms={} require_auth={}",
            algorithms.join(","),
            cfg.require_auth
        );
        if cfg.allowed_origins.is_empty() {
            log::warn!(
                "auth is on and --allowed-origins is empty: a web page on any site can open \
                 connections from its visitors' browsers (see docs/security.md)"
            );
        }
    }
    Ok(verifier)
}

/// `--demo`: a fresh random key (from the kernel, never logged or shown)
/// that both mints the page's tokens and verifies them. `Config::check`
/// already refused `--demo` beside a configured key, so this key is the
/// only one the server accepts.
fn start_demo(config: &Resolved) -> Result<(Option<Verifier>, Option<Demo>), StartupError> {
    let mut secret = [0u8; demo::KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut secret))
        .map_err(|e| StartupError::Config(format!("--demo: cannot read /dev/urandom: {e}")))?;
    let verifier = Verifier::new(Some(&secret), None).map_err(StartupError::Config)?;
    log::warn!(
        "demo on: GET /demo/ serves a chat page and /demo/token gives anyone a \
         token for any name, signed with a key made at startup; for trying corecast, not for \
         production (docs/demo.md)"
    );
    if config.config.namespaces.is_builtin(DEMO_NAMESPACE) {
        log::info!("demo namespace {DEMO_NAMESPACE} built in (presence, join_leave, history)");
    }
    Ok((Some(verifier), Some(Demo::new(&secret))))
}

/// Warns when the admin API is reachable off this host without a token.
fn check_admin_exposure(config: &Resolved) {
    let cfg = &config.config;
    if let Some(addr) = cfg.admin_addr.0 {
        if !addr.ip().is_loopback() && cfg.admin_token.is_none() {
            log::warn!(
                "admin listener addr={addr} is not loopback and has no --admin-token: anyone who can \
                 reach it can publish, broadcast and disconnect clients"
            );
        }
    }
}

/// Creates `--latency-report-dir` up front, so a bad path fails at start.
fn prepare_report_dir(config: &Resolved) -> Result<(), StartupError> {
    if let Some(dir) = &config.config.latency_report_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            StartupError::Config(format!("--latency-report-dir {}: {e}", dir.display()))
        })?;
    }
    Ok(())
}

/// Raises limits, reads the CPU mask, and resolves defaults; logs the limits.
fn resolve(config: Config) -> Result<Resolved, StartupError> {
    let (before, nofile) = sys::raise_nofile()
        .map_err(|e| StartupError::Config(format!("cannot read RLIMIT_NOFILE: {e}")))?;
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let resolved = config.resolve(&allowed, nofile.hard)?;
    if resolved.cpus.len() > MAX_SHARDS {
        return Err(StartupError::Config(format!(
            "at most {MAX_SHARDS} shards are supported"
        )));
    }
    log::info!(
        "open files limit soft={} hard={} (soft was {}) max_connections={}",
        nofile.soft,
        nofile.hard,
        before.soft,
        resolved.max_connections
    );
    if (resolved.max_connections as u64) > nofile.hard {
        log::warn!(
            "open files hard limit {} is below --max-connections {}; accepts will fail with EMFILE \
             before the limit (raise LimitNOFILE, see scripts/)",
            nofile.hard,
            resolved.max_connections
        );
    }
    sys::probe_io_uring().map_err(|e| StartupError::IoUring(e.to_string()))?;
    let (_, memlock) = sys::raise_memlock()
        .map_err(|e| StartupError::Config(format!("cannot read RLIMIT_MEMLOCK: {e}")))?;
    if memlock.soft < MIN_MEMLOCK {
        return Err(StartupError::Memlock {
            limit: memlock.soft,
        });
    }
    Ok(resolved)
}

/// The backlog to ask for, capped as the kernel would cap it, with a note.
fn effective_backlog(requested: u32) -> u32 {
    match sys::read_sysctl("/proc/sys/net/core/somaxconn") {
        Some(max) if (requested as u64) > max => {
            log::info!(
                "backlog {requested} capped to net.core.somaxconn={max} (raise it, see sysctl/)"
            );
            max as u32
        }
        _ => requested,
    }
}

fn spawn_shard(plan: ShardPlan) -> Result<JoinHandle<()>, StartupError> {
    let name = format!("shard-{}", plan.id.0);
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || shard_thread(plan))
        .map_err(|e| StartupError::Shard(format!("cannot spawn {name}: {e}")))
}

fn shard_thread(plan: ShardPlan) {
    let (id, cpu) = (plan.id, plan.cpu);
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        let _ = plan.ready.send(Err(StartupError::Shard(format!(
            "cannot pin shard {} to CPU {cpu}",
            id.0
        ))));
        return;
    }
    let builder =
        LocalExecutorBuilder::new(Placement::Unbound).io_memory(plan.config.config.io_memory);
    // glommio panics on some setup failures (e.g. a missing io_uring probe
    // opcode); report those as startup errors too.
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.make()));
    let made = made.unwrap_or_else(|_| {
        Err(glommio::GlommioError::from(std::io::Error::other(
            "glommio panicked creating the executor",
        )))
    });
    let executor = match made {
        Ok(executor) => executor,
        Err(e) => {
            let msg = e.to_string();
            let err = if msg.to_ascii_lowercase().contains("memlock") {
                StartupError::Memlock {
                    limit: sys::raise_memlock().map(|(_, l)| l.soft).unwrap_or(0),
                }
            } else {
                StartupError::IoUring(msg)
            };
            let _ = plan.ready.send(Err(err));
            return;
        }
    };
    executor.run(shard_main(plan));
}

async fn shard_main(plan: ShardPlan) {
    let epoll = match EpollSet::new() {
        Ok(epoll) => epoll,
        Err(e) => {
            let msg = format!("cannot create the shard's epoll set: {e}");
            let _ = plan.ready.send(Err(StartupError::Shard(msg)));
            return;
        }
    };
    let (bus, receivers) = Bus::connect(plan.id, plan.mesh).await;
    let bus = Rc::new(bus);
    let shard = Rc::new(Shard::new(
        plan.id,
        plan.config,
        plan.shared,
        bus.clone(),
        epoll,
    ));
    shard.start_cluster();
    glommio::spawn_local(EpollSet::dispatch_forever(shard.clone())).detach();
    glommio::spawn_local(shard.clone().flush_forever()).detach();
    glommio::spawn_local(connection::run_forever(shard.clone())).detach();
    for (_, rx) in receivers {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                shard.on_bus_message(msg);
            }
        })
        .detach();
    }
    for peer in bus.peers() {
        glommio::spawn_local(bus.clone().forward(peer)).detach();
    }
    glommio::spawn_local(
        shard
            .clone()
            .tick_forever(tick_period(&shard.config.config)),
    )
    .detach();
    glommio::spawn_local(wait_for_control(shard.clone(), plan.control)).detach();
    glommio::spawn_local(listener::run(shard.clone(), plan.socket, Port::Public)).detach();
    if let Some(admin) = plan.admin {
        glommio::spawn_local(listener::run(shard.clone(), admin, Port::Admin)).detach();
    }
    let interval = shard.config.config.latency_report_interval;
    if shard.id == ShardId(0) && !interval.is_zero() {
        glommio::spawn_local(crate::admin::report_latency_forever(shard.clone())).detach();
    }
    shard.shared.ready_shards.fetch_add(1, Ordering::Relaxed);
    let _ = plan.ready.send(Ok(()));
    shard.shutdown.wait().await;
    shard.drain().await;
    log::debug!(
        "shard exiting overflowed_bus_messages={}",
        bus.n_overflowed()
    );
}

/// Fine enough to honour the shortest timer; coarse enough to cost nothing.
/// A random id for this process (Redis mode: it names the process's
/// presence entries): 8 hex digits from std's per-process random keys.
fn node_id() -> String {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    format!("{:08x}", random as u32)
}

fn tick_period(cfg: &Config) -> Duration {
    let shortest = cfg
        .ping_interval
        .min(cfg.pong_timeout)
        .min(cfg.close_timeout);
    (shortest / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

/// One byte (or EOF) on the control socket starts this shard's drain.
async fn wait_for_control(shard: Rc<Shard>, control: UnixStream) {
    // SAFETY: the fd is one end of a socketpair we own; glommio takes it over.
    let mut control = unsafe { glommio::net::UnixStream::from_raw_fd(control.into_raw_fd()) };
    let mut byte = [0u8; 1];
    let _ = control.read(&mut byte).await;
    shard.shutdown.set();
}
