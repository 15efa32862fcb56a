//! Smoke test of the load tester: real sockets, a real server, real numbers.
//!
//! Runs the `giftstream-loadtest` binary against a server it spawns itself
//! (`--spawn`, the `giftstream` binary of the same target dir, which
//! `cargo test --workspace` builds). When that binary is absent (e.g.
//! `cargo test -p giftstream-loadtest` alone), the server runs in this test
//! process instead and the load tester is pointed at it with `--url` and
//! `--server-pid`. Either way the test asserts that the numbers are real:
//! deliveries equal acked gifts x viewers, no seq gap, the JSON line parses,
//! and the conservation check passes.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn loadtest() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_giftstream-loadtest"))
}

/// Where the server comes from for one run.
enum Server {
    Spawn,
    InProcess {
        url: String,
        _rt: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
    },
}

fn server() -> Server {
    if loadtest().with_file_name("giftstream").is_file() {
        return Server::Spawn;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut cfg = giftstream::config::Config::default();
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.ledger.url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    // As `--spawn` does: load senders exceed a viewer's per-socket budget.
    cfg.hub.socket_msgs_per_s_max = 100_000_000;
    let running = rt
        .block_on(giftstream::server::start(cfg))
        .expect("server starts");
    let url = format!("http://{}", running.addr);
    // The server lives as long as the runtime; dropping `running` only
    // drops the handle.
    std::mem::forget(running);
    Server::InProcess {
        url,
        _rt: rt,
        _dir: dir,
    }
}

/// Run the load tester with `args`; answers its JSON line.
fn run(args: &[&str]) -> Value {
    let server = server();
    let mut cmd = Command::new(loadtest());
    cmd.arg("--quiet");
    match &server {
        Server::Spawn => {
            cmd.arg("--spawn");
        }
        Server::InProcess { url, .. } => {
            cmd.args([
                "--url",
                url,
                "--server-pid",
                &std::process::id().to_string(),
            ]);
        }
    }
    let out = cmd.args(args).output().expect("loadtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loadtest {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().expect("some output");
    let v: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}\n{stdout}"));
    assert!(stdout.contains("conservation: PASS"), "{stdout}");
    v
}

#[test]
fn fanout_numbers_are_real() {
    let v = run(&[
        "fanout",
        "--rooms",
        "2",
        "--viewers",
        "150",
        "--senders",
        "1",
        "--rate",
        "20",
        "--duration-s",
        "3",
    ]);
    assert_eq!(v["scenario"], "fanout");
    let acked = v["acked"].as_u64().expect("acked");
    let deliveries = v["deliveries"].as_u64().expect("deliveries");
    assert!(acked > 0, "{v}");
    assert!(deliveries > 0, "{v}");
    assert_eq!(v["sent"], v["acked"], "every gift acked: {v}");
    assert_eq!(v["unanswered"], 0, "{v}");
    assert_eq!(v["seq_gaps"], 0, "{v}");
    assert_eq!(v["connect"]["connected"], 300, "{v}");
    if v["skipped_events"] == 0 {
        // Each room has 150 viewers: every acked gift reaches all of them.
        assert_eq!(deliveries, acked * 150, "{v}");
        assert_eq!(v["expected_deliveries"], deliveries, "{v}");
    }
    assert!(
        v["delivery_latency"]["count"].as_u64() == Some(deliveries),
        "{v}"
    );
    assert!(
        v["delivery_latency"]["p50_ms"].as_f64().expect("p50") > 0.0,
        "{v}"
    );
    assert!(v["server"]["cpu_us_per_delivery"].is_number(), "{v}");
    let c = &v["conservation"];
    assert_eq!(c["pass"], true, "{v}");
    assert_eq!(c["coins_acked"], acked, "rose costs 1 coin: {v}");
    assert_eq!(c["diamonds_earned"], c["diamonds_acked"], "{v}");
}

#[test]
fn ingest_numbers_are_real() {
    let v = run(&[
        "ingest",
        "--senders",
        "4",
        "--window",
        "8",
        "--rooms",
        "2",
        "--duration-s",
        "2",
    ]);
    assert_eq!(v["scenario"], "ingest");
    let acked = v["acked"].as_u64().expect("acked");
    assert!(acked > 0, "{v}");
    assert_eq!(v["sent"], v["acked"], "{v}");
    assert!(v["acks_per_s"].as_f64().expect("rate") > 0.0, "{v}");
    assert_eq!(v["ack_latency"]["count"], acked, "{v}");
    assert!(v["server"]["cpu_us_per_ack"].is_number(), "{v}");
    let c = &v["conservation"];
    assert_eq!(c["pass"], true, "{v}");
    assert_eq!(c["coins_acked"], acked, "{v}");
    assert_eq!(
        c["coins_granted"].as_i64().expect("granted") - c["coins_left"].as_i64().expect("left"),
        acked as i64,
        "{v}"
    );
}
