//! The `corecast` binary: parse flags, set up logging, run the server.

use std::io::Write;

use clap::Parser;

fn main() {
    let config = corecast::Config::parse();
    init_logging();
    if let Err(e) = corecast::server::run(config) {
        eprintln!("corecast: error: {e}");
        std::process::exit(1);
    }
}

/// `RUST_LOG` filters (default `info`); each line names its thread
/// (`shard-N`), so messages never repeat the shard id.
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            let thread = std::thread::current();
            writeln!(
                buf,
                "{} {:<5} {} {}: {}",
                buf.timestamp_millis(),
                record.level(),
                thread.name().unwrap_or("-"),
                record.target(),
                record.args()
            )
        })
        .init();
}
