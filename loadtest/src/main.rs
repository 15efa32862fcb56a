//! `giftstream-loadtest`: see the library docs and `--help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = giftstream_loadtest::cli::Cli::parse();
    match giftstream_loadtest::run(cli).await {
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
