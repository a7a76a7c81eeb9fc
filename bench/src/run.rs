//! Running a workload: options every subcommand shares, spawning the pinned
//! loop threads, the ramp with its progress bar, and phase changes. The
//! main thread only watches counters and flips phases; it never touches a
//! connection.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::driver::{self, phase, LoopConfig, LoopStats, Shared, Workload};
use crate::{auth, net};

/// Options of every subcommand that drives a server.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Server URL, ws://HOST:PORT/PATH; repeat to spread connections round-robin
    /// over several servers or ports.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    #[command(flatten)]
    pub loops: Loops,
    /// Write the latency distribution (microseconds) in HdrHistogram .hgrm format.
    #[arg(long)]
    pub hgrm: Option<String>,
    /// Write a latency-by-percentile chart (.svg or .png).
    #[arg(long)]
    pub plot: Option<String>,
    /// Free-form label copied into the JSON line.
    #[arg(long)]
    pub label: Option<String>,
    /// Authenticate every connection to a /ws URL with its own HS256 token
    /// signed with SECRET: the upgrade asks for `/ws?token=JWT`, claims
    /// `{"sub":"u<N>","exp":now+1 day}`, N the connection's index in the run,
    /// so each connection is a user of its own. Tokens are all signed
    /// before the clock starts, so no measured rate includes signing; the
    /// report's `auth` row says whether auth was on. Only for corecast:
    /// other paths (/echo) get no token, and a /ws URL whose local listener
    /// is a program other than `corecast` (a reference peer) is refused.
    #[arg(
        long,
        value_name = "SECRET",
        env = auth::SECRET_ENV,
        hide_env_values = true,
        value_parser = auth::parse_secret
    )]
    pub jwt_hmac_secret: Option<auth::Secret>,
    /// Offer permessage-deflate on every upgrade (`permessage-deflate;
    /// client_max_window_bits`, as Chrome does); a server that does not
    /// accept it fails the connection ("permessage-deflate not negotiated").
    /// Compressed messages from the server are inflated before the workload
    /// sees them; the bench itself sends uncompressed frames.
    #[arg(long)]
    pub compression: bool,
    /// What /ws connections speak: `json` (text frames), or `msgpack`
    /// (`Sec-WebSocket-Protocol: corecast.msgpack`, binary frames; a server
    /// that does not choose it fails the connection). Workloads stay the
    /// same: the bench converts each message it sends to MessagePack and
    /// each one it receives back to JSON text, which costs the bench (not
    /// the server) CPU per message. Other paths (/echo) are left as they are.
    /// `centrifugo` and `centrifugo-protobuf` send /ws connections to
    /// /connection/websocket, where they speak Centrifugo's client protocol
    /// (connect with the token first), translated the same way.
    #[arg(long, value_enum, default_value_t = Encoding::Json)]
    pub encoding: Encoding,
}

/// `--encoding`: what /ws connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// corecast's JSON protocol in text frames.
    Json,
    /// The same protocol in MessagePack (binary frames).
    Msgpack,
    /// Centrifugo's client protocol in JSON, at /connection/websocket
    /// instead of /ws (the connection's token goes in its connect command).
    Centrifugo,
    /// Centrifugo's client protocol in Protobuf (`centrifuge-protobuf`).
    CentrifugoProtobuf,
}

impl Encoding {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Msgpack => "msgpack",
            Encoding::Centrifugo => "centrifugo",
            Encoding::CentrifugoProtobuf => "centrifugo-protobuf",
        }
    }
}

impl Common {
    /// Whether this run authenticates, for the report's `auth` row and JSON field.
    pub fn auth_mode(&self) -> auth::Mode {
        auth::Mode::of(self.jwt_hmac_secret.as_ref(), &self.urls)
    }

    /// The report's `auth` row: says whether the run's connections were users.
    pub fn auth_row(&self) -> (String, String) {
        ("auth".into(), self.auth_mode().to_string())
    }

    /// The report's `encoding` row: what /ws connections spoke.
    pub fn encoding_row(&self) -> (String, String) {
        ("encoding".into(), self.encoding.name().into())
    }

    /// The report's `compression` row: whether permessage-deflate was offered
    /// (and, since a refusal fails the connection, agreed on every one).
    pub fn compression_row(&self) -> (String, String) {
        let mode = if self.compression {
            "permessage-deflate (every connection)"
        } else {
            "off"
        };
        ("compression".into(), mode.into())
    }
}

/// Where the client loops run and how they open connections; shared by every
/// subcommand, including `baseline`, which has no server URL to take.
#[derive(Debug, Clone, Args)]
pub struct Loops {
    /// Event-loop threads, each pinned to one CPU of --cpus.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// CPUs to pin the threads to, e.g. "1" or "2-3" [default: the affinity mask, in order].
    #[arg(long, value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,
    /// Source addresses to bind, spread round-robin, e.g. 127.0.0.2-127.0.0.250
    /// (loopback only; needed past ~28k connections to one server port).
    #[arg(long)]
    pub source_ips: Option<String>,
    /// Connections each thread may have connecting or upgrading at once.
    #[arg(long, default_value_t = 256)]
    pub max_connecting: usize,
    /// Seconds a connect plus upgrade may take before it fails as a timeout.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds the ramp (all connections open, and subscribed) may take.
    #[arg(long, default_value_t = 120.0)]
    pub ramp_timeout: f64,
}

/// Process-wide time origin; message stamps are nanoseconds since it.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from the epoch to `t`.
pub fn ns_since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos() as u64
}

/// A CPU list; a newtype so clap takes "0-3,6" as one value.
#[derive(Debug, Clone)]
pub struct CpuList(pub Vec<usize>);

/// Parses "0-3,6" into CPU numbers.
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("not a CPU: {x:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("backwards CPU range {part:?}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(CpuList(out))
}

/// Threads running one workload, and the counters they share.
pub struct Running<W> {
    /// Counters and phase.
    pub shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<Result<(W, LoopStats), String>>>,
    /// Hard stop for every thread.
    pub deadline: Instant,
    /// When the threads were started.
    pub started: Instant,
}

/// Starts `common.loops.threads` loops over `n` connections. `make` builds each thread's
/// workload from the global indexes of the connections it owns and the shared counters.
pub fn start<W, F>(
    common: &Common,
    n: usize,
    budget: Duration,
    make: F,
) -> Result<Running<W>, String>
where
    W: Workload + Send + 'static,
    F: Fn(&[usize], &Arc<Shared>) -> W + Send + Sync + 'static,
{
    check_outputs(common)?;
    let mut urls: Vec<net::Url> = common
        .urls
        .iter()
        .map(|u| net::parse_url(u))
        .collect::<Result<_, _>>()?;
    if common.compression {
        urls.iter_mut().for_each(net::Url::offer_deflate);
    }
    for u in urls.iter_mut().filter(|u| u.path.starts_with("/ws")) {
        match common.encoding {
            Encoding::Json => {}
            Encoding::Msgpack => u.offer_msgpack(),
            Encoding::Centrifugo => u.speak_centrifugo(crate::centrifugo::Proto::Json),
            Encoding::CentrifugoProtobuf => u.speak_centrifugo(crate::centrifugo::Proto::Protobuf),
        }
    }
    for u in &urls {
        if !u.addr.ip().is_loopback() {
            eprintln!(
                "warning: {} is not a loopback address; it was given explicitly",
                u.text
            );
        }
    }
    let sources = match &common.loops.source_ips {
        Some(spec) => net::parse_source_ips(spec)?,
        None => Vec::new(),
    };
    let threads = common.loops.threads.max(1);
    let mask: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let cpus = match &common.loops.cpus {
        Some(list) => {
            check_in_mask(&list.0, &mask)?;
            list.0.clone()
        }
        None => mask,
    };
    let plan = Arc::new(plan_connections(common, n, threads, &urls, &sources)?);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(common.loops.ramp_timeout) + budget;
    let shared = Arc::new(Shared::default());
    let cfg = LoopConfig {
        max_connecting: common.loops.max_connecting.max(1),
        connect_timeout: Duration::from_secs_f64(common.loops.connect_timeout),
        deadline,
    };
    let urls = Arc::new(urls);
    let sh = Arc::clone(&shared);
    let handles = driver::spawn_pinned(threads, &cpus, move |t| {
        let mut w = make(&plan[t].ids, &sh);
        let stats = driver::run_loop(&urls, &plan[t].targets, &mut w, &sh, &cfg, t as u32 + 1)
            .map_err(|e| format!("event loop: {e}"))?;
        Ok((w, stats))
    })
    .map_err(|e| format!("spawn: {e}"))?;
    Ok(Running {
        shared,
        handles,
        deadline,
        started,
    })
}

/// Spreads the connections over threads, URLs and sources and, with
/// `--jwt-hmac-secret`, checks that the /ws URLs lead to corecast and signs
/// every token. Called before the run's clock starts: with 100k connections
/// signing takes a fraction of a second, which would otherwise slow the ramp.
fn plan_connections(
    common: &Common,
    n: usize,
    threads: usize,
    urls: &[net::Url],
    sources: &[std::net::Ipv4Addr],
) -> Result<Vec<driver::ThreadPlan>, String> {
    let signer = match &common.jwt_hmac_secret {
        Some(secret) => Some(auth::Signer::new(secret, std::time::SystemTime::now())?),
        None => None,
    };
    let Some(signer) = signer.filter(|_| urls.iter().any(|u| auth::takes_token(&u.path))) else {
        return driver::plan(n, threads, urls, sources, None);
    };
    let mut ports: Vec<u16> = urls
        .iter()
        .filter(|u| auth::takes_token(&u.path))
        .map(|u| u.addr.port())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    for warning in auth::check_targets(&ports)? {
        eprintln!("{warning}");
    }
    let t0 = Instant::now();
    let plan = driver::plan(n, threads, urls, sources, Some(&signer))?;
    let signed = plan
        .iter()
        .flat_map(|p| &p.targets)
        .filter(|t| t.token.is_some())
        .count();
    eprintln!(
        "auth: signed {signed} tokens in {:.1} ms, before the clock started",
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(plan)
}

/// Refuses `--cpus` outside the affinity mask up front: pinning there fails
/// in each thread, and the run would only learn of it after the ramp timed
/// out. An unreadable mask (empty) checks nothing and leaves it to the threads.
fn check_in_mask(cpus: &[usize], mask: &[usize]) -> Result<(), String> {
    match cpus.iter().find(|c| !mask.is_empty() && !mask.contains(c)) {
        Some(c) => Err(format!(
            "--cpus: CPU {c} is not in this process's affinity mask {mask:?}"
        )),
        None => Ok(()),
    }
}

impl<W> Running<W> {
    /// Waits until `expected` connections are ready or failed (or the ramp times out),
    /// with a progress bar on a terminal. Returns the ramp's duration.
    pub fn ramp(&self, expected: u64, ramp_timeout: f64, what: &str) -> Duration {
        let bar = progress_bar(expected, what);
        let limit = self.started + Duration::from_secs_f64(ramp_timeout);
        loop {
            let ready = self.shared.ready.load(Ordering::Relaxed);
            let failed = self.shared.failed.load(Ordering::Relaxed)
                + self.shared.lost.load(Ordering::Relaxed);
            bar.set_position(ready);
            bar.set_message(format!("failed {failed}"));
            if ready + failed >= expected || Instant::now() >= limit || self.finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bar.finish_and_clear();
        self.started.elapsed()
    }

    /// True once every thread has returned.
    pub fn finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Sets the phase.
    pub fn set_phase(&self, p: u8) {
        self.shared.phase.store(p, Ordering::Relaxed);
    }

    /// The measured phase: RUN for `secs` (or until the deadline), then
    /// DRAIN. Returns the seconds the run phase really lasted.
    pub fn run_for(&self, secs: f64) -> f64 {
        self.set_phase(phase::RUN);
        let t0 = Instant::now();
        self.sleep(Duration::from_secs_f64(secs));
        self.set_phase(phase::DRAIN);
        t0.elapsed().as_secs_f64()
    }

    /// Sleeps up to `d`, waking early past the deadline or when every thread has ended.
    pub fn sleep(&self, d: Duration) {
        let until = (Instant::now() + d).min(self.deadline);
        while Instant::now() < until && !self.finished() {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
        }
    }

    /// Stops every thread and collects their workloads and stats.
    pub fn join(self) -> Result<(Vec<W>, LoopStats), String> {
        self.set_phase(phase::STOP);
        let mut ws = Vec::new();
        let mut all = LoopStats::default();
        for h in self.handles {
            let (w, s) = h
                .join()
                .map_err(|_| "bench thread panicked".to_string())??;
            driver::merge_counts(&mut all.errors, &s.errors);
            driver::merge_counts(&mut all.close_codes, &s.close_codes);
            all.open_at_end += s.open_at_end;
            ws.push(w);
        }
        Ok((ws, all))
    }
}

/// A bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style = ProgressStyle::with_template(&format!(
        "{what} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} ({{per_sec}}) {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Refuses, before any connection, a `--hgrm` or `--plot` file that could
/// not be written after the run: a missing or unwritable directory, a
/// directory given as the file, or a plot that is neither .svg nor .png.
/// Leaves no file behind: an existing one is only opened for writing, and
/// one created for the check is removed.
pub fn check_outputs(common: &Common) -> Result<(), String> {
    if let Some(path) = &common.plot {
        if !(path.ends_with(".svg") || path.ends_with(".png")) {
            return Err(format!("--plot {path}: the file must end in .svg or .png"));
        }
    }
    let files = [("--hgrm", &common.hgrm), ("--plot", &common.plot)];
    for (flag, path) in files {
        if let Some(path) = path {
            check_writable(path).map_err(|e| format!("{flag} {path}: {e}"))?;
        }
    }
    Ok(())
}

/// Whether `path` can be opened for writing, without truncating or leaving a file.
fn check_writable(path: &str) -> Result<(), String> {
    use std::fs::OpenOptions;
    let p = std::path::Path::new(path);
    if p.is_dir() {
        return Err("is a directory".into());
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!("directory {} does not exist", parent.display()));
    }
    if p.exists() {
        return OpenOptions::new()
            .write(true)
            .open(p)
            .map(drop)
            .map_err(|e| format!("cannot write: {e}"));
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .map_err(|e| format!("cannot create: {e}"))?;
    std::fs::remove_file(p).map_err(|e| format!("cannot remove the check file: {e}"))
}

/// Writes the .hgrm file and the plot a run asked for; failures become report rows.
pub fn save_outputs(
    common: &Common,
    title: &str,
    h: &hdrhistogram::Histogram<u64>,
) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if let Some(path) = &common.hgrm {
        let r = crate::report::save_hgrm(path, h).map_err(|e| e.to_string());
        rows.push((
            "hgrm".into(),
            r.map_or_else(|e| format!("FAILED {path}: {e}"), |_| path.clone()),
        ));
    }
    if let Some(path) = &common.plot {
        let r = crate::plot::save_plot(path, title, h);
        rows.push((
            "plot".into(),
            r.map_or_else(|e| format!("FAILED {path}: {e}"), |_| path.clone()),
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_keep_order_and_refuse_nonsense() {
        assert_eq!(parse_cpu_list("1").unwrap().0, vec![1]);
        assert_eq!(parse_cpu_list("2-3,0").unwrap().0, vec![2, 3, 0]);
        assert!(parse_cpu_list("3-1").unwrap_err().contains("backwards"));
        assert!(parse_cpu_list("x").unwrap_err().contains("not a CPU"));
        assert!(parse_cpu_list(" , ").unwrap_err().contains("empty"));
    }

    fn common(hgrm: Option<String>, plot: Option<String>) -> Common {
        Common {
            urls: vec!["ws://127.0.0.1:1/ws".into()],
            loops: Loops {
                threads: 1,
                cpus: None,
                source_ips: None,
                max_connecting: 1,
                connect_timeout: 1.0,
                ramp_timeout: 1.0,
            },
            hgrm,
            plot,
            label: None,
            jwt_hmac_secret: None,
            compression: false,
            encoding: Encoding::Json,
        }
    }

    #[test]
    fn bad_output_paths_are_refused_before_the_run() {
        let dir = std::env::temp_dir().join(format!("cc-bench-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let ok = common(Some(at("a.hgrm")), Some(at("a.svg")));
        assert!(check_outputs(&ok).is_ok());
        assert!(!dir.join("a.hgrm").exists(), "the check leaves no file");
        std::fs::write(dir.join("kept.hgrm"), "old").unwrap();
        assert!(check_outputs(&common(Some(at("kept.hgrm")), None)).is_ok());
        assert_eq!(
            std::fs::read_to_string(dir.join("kept.hgrm")).unwrap(),
            "old"
        );

        let missing = common(None, Some(at("no/such/dir/a.svg")));
        let e = check_outputs(&missing).unwrap_err();
        assert!(
            e.starts_with("--plot ") && e.contains("does not exist"),
            "{e}"
        );
        let e = check_outputs(&common(Some(dir.to_str().unwrap().into()), None)).unwrap_err();
        assert!(
            e.starts_with("--hgrm ") && e.contains("is a directory"),
            "{e}"
        );
        let e = check_outputs(&common(None, Some(at("a.txt")))).unwrap_err();
        assert!(e.contains(".svg or .png"), "{e}");
        assert!(check_outputs(&common(None, None)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cpus_outside_the_affinity_mask_are_refused() {
        assert!(check_in_mask(&[1, 3], &[0, 1, 2, 3]).is_ok());
        assert!(check_in_mask(&[4], &[0, 1, 2, 3])
            .unwrap_err()
            .contains("CPU 4"));
        assert!(
            check_in_mask(&[4], &[]).is_ok(),
            "unknown mask checks nothing"
        );
    }
}
