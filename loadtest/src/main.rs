//! `giftstream-loadtest`: see the library docs and `--help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = giftstream_loadtest::cli::Cli::parse();
    if let giftstream_loadtest::cli::Scenario::Markdown(args) = &cli.scenario {
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
