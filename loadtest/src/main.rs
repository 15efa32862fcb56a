//! `giftstream-loadtest`: see the library docs and `--help`.

use clap::Parser;
use giftstream_loadtest::cli::{Cli, Scenario};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match &cli.scenario {
        Scenario::Markdown(args) => {
            return match giftstream_loadtest::markdown::render(args) {
                Ok(md) => {
                    print!("{md}");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("giftstream-loadtest markdown: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        // One thread of its own: the floor is single-threaded by design.
        Scenario::FloorServer(args) => {
            return match giftstream_loadtest::floor::serve(args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("giftstream-loadtest floor-server: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    if let Scenario::Chaos(args) = &cli.scenario {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("giftstream-loadtest: runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        // Ctrl-C or SIGTERM ends the run by dropping it: every process it
        // started is killed and PostgreSQL stopped (see chaos::cluster).
        let run = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = giftstream_loadtest::chaos::run(args) => r,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
                _ = term.recv() => anyhow::bail!("terminated"),
            }
        };
        return match rt.block_on(run) {
            Ok(0) => std::process::ExitCode::SUCCESS,
            Ok(code) => std::process::ExitCode::from(code as u8),
            Err(e) => {
                eprintln!("giftstream-loadtest chaos: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("giftstream-loadtest: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(giftstream_loadtest::run(cli)) {
        Ok(summary) => {
            print!("{}", summary.human());
            // The machine-readable line, always last.
            println!("{}", summary.json_line());
            if summary.ok() {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!("conservation check FAILED");
                std::process::ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("giftstream-loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
