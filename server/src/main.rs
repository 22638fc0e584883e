//! `kalamdb-server [--config PATH]`: serves until SIGINT or SIGTERM. `--version` prints the
//! version (the release packages' version) and exits.
//!
//! Once both listeners are bound it prints one line to stdout,
//! `kalamdb-server ready flight=ADDR http=ADDR`, which scripts and tests wait for.

use std::path::PathBuf;
use std::process::ExitCode;

use kalamdb_server::Server;
use kalamdb_server::config::Config;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kalamdb-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let config_path = parse_args()?;
    let config = Config::load(config_path.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kalamdb")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        let addrs = server.addrs();
        println!("kalamdb-server ready flight={} http={}", addrs.flight, addrs.http);
        server.serve(shutdown_signal()).await
    })
}

fn parse_args() -> Result<Option<PathBuf>, String> {
    let usage = "usage: kalamdb-server [--config PATH] | --version";
    let mut args = std::env::args().skip(1);
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(args.next().ok_or(usage)?)),
            "-V" | "--version" => {
                println!("kalamdb-server {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; {usage}")),
        }
    }
    Ok(config)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("kalamdb-server: shutting down");
}
