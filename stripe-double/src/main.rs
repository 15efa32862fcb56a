//! `giftstream-stripe-double`: the Stripe contract double as a process,
//! for harnesses that are not Rust tests (the browser tests, the chaos
//! campaign). It listens on `--listen` (default a free loopback port),
//! forwards what it does not implement to `--upstream` (localstripe),
//! prints `listening on http://ADDR` on stdout, and runs until SIGTERM or
//! Ctrl-C.

use clap::Parser;
use giftstream_stripe_double::StripeDouble;

/// Command line.
#[derive(Parser)]
#[command(
    version,
    about = "Stripe contract double (Connect, transfers) in front of localstripe"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// localstripe's base URL, for every path the double does not own.
    #[arg(long, env = "GIFTSTREAM_TEST_STRIPE_URL")]
    upstream: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let mut double = StripeDouble::start_on(listener, args.upstream);
    println!("listening on {}", double.url);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = double.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
