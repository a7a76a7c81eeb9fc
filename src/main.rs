//! The `corecast` binary: load the configuration (flags, environment,
//! `--config` file), set up logging, run the server; or, for
//! `--check-config`, print the effective configuration and exit.

use std::io::Write;

use corecast::config::{self, LoadError};

fn main() {
    let loaded = match config::load(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(LoadError::Usage(e)) => e.exit(),
        Err(LoadError::Invalid(e)) => fail(&e),
    };
    if loaded.check_only {
        print!("{}", loaded.to_toml(true));
        return;
    }
    init_logging();
    if let Some(path) = &loaded.config.config_file {
        log::info!("config file={}", path.display());
    }
    if let Err(e) = corecast::server::run(loaded.config) {
        fail(&e);
    }
}

/// Prints the one error line and exits 1.
fn fail(e: &corecast::StartupError) -> ! {
    eprintln!("corecast: error: {e}");
    std::process::exit(1);
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
