//! corecast-bench: load generator for corecast.
//!
//! Codemap: `run` (shared options, threads, phases) drives `driver` (one
//! mio loop per pinned thread, connect → upgrade → frames over `ws`, the
//! client codec) with one workload per subcommand: `conns`, `echo`,
//! `fanout`, `recover`, `soak` (churn over a bounded time, checked for loss and
//! leaks), and `baseline`, whose other end is no server but `sender`, a
//! raw pinned writer thread that measures the kernel's per-delivery floor.
//! `seq` counts lost/duplicated/reordered deliveries, `procfs` reads server
//! RSS and kernel socket memory, `report` prints the table, the JSON line
//! and `.hgrm` files, and `plot` draws the percentile chart. `offsets`
//! reads history channels' offsets and positions and checks a subscriber's
//! offsets across reconnects, for `fanout --history` and `recover` (a
//! reconnect storm with recovery). `auth` signs
//! the per-connection tokens of `--jwt-hmac-secret`, before a run's clock
//! starts, and keeps them to corecast.

mod auth;
mod baseline;
mod centrifugo;
mod conns;
mod driver;
mod echo;
mod fanout;
mod msgpack;
mod net;
mod offsets;
mod plot;
mod procfs;
mod recover;
mod report;
mod run;
mod sender;
mod seq;
mod soak;
mod ws;

use clap::{Parser, Subcommand};

/// Load generator for corecast (WebSocket pub/sub).
#[derive(Debug, Parser)]
#[command(name = "corecast-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Open N idle /ws connections, hold them, report connect rate, failures and memory.
    Conns(conns::ConnsArgs),
    /// Round trips on /echo: closed loop, or fixed rate with --rate.
    Echo(echo::EchoArgs),
    /// Pub/sub fan-out: delivery rate, end-to-end latency, loss/dup/reorder checks.
    Fanout(fanout::FanoutArgs),
    /// Churn for a bounded time: per-interval delivery checks, server RSS/fds back to baseline.
    Soak(soak::SoakArgs),
    /// History channels: N subscribers disconnect together and recover; time to recover, loss.
    Recover(recover::RecoverArgs),
    /// Floor: a raw pinned sender writes a pre-encoded frame to N sockets; CPU per delivery.
    Baseline(baseline::BaselineArgs),
}

fn main() {
    let cli = Cli::parse();
    run::epoch();
    let result = match cli.cmd {
        Cmd::Conns(a) => conns::run(a),
        Cmd::Echo(a) => echo::run(a),
        Cmd::Fanout(a) => fanout::run(a),
        Cmd::Soak(a) => soak::run(a),
        Cmd::Recover(a) => recover::run(a),
        Cmd::Baseline(a) => baseline::run(a),
    };
    match result {
        Ok((json, ok)) => {
            println!("{json}");
            std::process::exit(if ok { 0 } else { 2 });
        }
        Err(e) => {
            eprintln!("corecast-bench: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
        let cli = <super::Cli as clap::Parser>::try_parse_from([
            "corecast-bench",
            "echo",
            "--url",
            "ws://127.0.0.1:1/echo",
            "--cpus",
            "0-1",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
        let cli = <super::Cli as clap::Parser>::try_parse_from([
            "corecast-bench",
            "baseline",
            "--sender-cpu",
            "0",
            "--cpus",
            "1",
            "--rate",
            "50000",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
    }

    #[test]
    fn recover_flags_parse() {
        let cli = <super::Cli as clap::Parser>::try_parse_from([
            "corecast-bench",
            "recover",
            "--url",
            "ws://127.0.0.1:1/ws",
            "--subs",
            "200",
            "--rate",
            "500",
            "--secs",
            "3",
            "--cpus",
            "1",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
    }

    #[test]
    fn history_flags_parse_and_namespace_needs_history() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["corecast-bench", "fanout", "--url", "ws://127.0.0.1:1/ws"];
            argv.extend_from_slice(args);
            <super::Cli as clap::Parser>::try_parse_from(argv)
        };
        assert!(parse(&["--history"]).is_ok());
        assert!(parse(&["--history", "--namespace", "x"]).is_ok());
        assert!(parse(&["--namespace", "x"]).is_err());
    }

    #[test]
    fn jwt_secret_flag_parses_and_refuses_empty_secrets() {
        let parse = |secret: &str| {
            <super::Cli as clap::Parser>::try_parse_from([
                "corecast-bench",
                "conns",
                "--url",
                "ws://127.0.0.1:1/ws",
                "-n",
                "1",
                "--jwt-hmac-secret",
                secret,
            ])
        };
        let cli = parse("s3cret").unwrap();
        assert!(
            !format!("{cli:?}").contains("s3cret"),
            "Debug hides the secret"
        );
        assert!(parse("").is_err());
    }
}
