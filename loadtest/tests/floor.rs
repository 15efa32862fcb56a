//! The floor server against the unchanged scenarios: `fanout` and `storm`
//! run against `giftstream-loadtest floor-server` (a child process) and
//! their numbers add up (every acked gift reaches every viewer, no gap, the
//! conservation check passes, every storm client joins).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn loadtest() -> &'static str {
    env!("CARGO_BIN_EXE_giftstream-loadtest")
}

/// A floor server child, killed when dropped.
struct Floor {
    child: Child,
    url: String,
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn floor() -> Floor {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let child = Command::new(loadtest())
        .args(["floor-server", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("floor-server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "floor-server listens");
        std::thread::sleep(Duration::from_millis(20));
    }
    Floor {
        child,
        url: format!("http://{addr}"),
    }
}

fn run(f: &Floor, args: &[&str]) -> Value {
    let out = Command::new(loadtest())
        .args([
            "--quiet",
            "--url",
            &f.url,
            "--server-pid",
            &f.child.id().to_string(),
        ])
        .args(args)
        .output()
        .expect("loadtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadtest {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("output")).expect("JSON line")
}

#[test]
fn fanout_and_storm_run_against_the_floor_unchanged() {
    let f = floor();
    let v = run(
        &f,
        &[
            "fanout",
            "--rooms",
            "2",
            "--viewers",
            "40",
            "--senders",
            "1",
            "--rate",
            "20",
            "--duration-s",
            "1",
        ],
    );
    let acked = v["acked"].as_u64().expect("acked");
    assert!(acked > 0, "{v}");
    assert_eq!(v["sent"], v["acked"], "{v}");
    assert_eq!(
        v["deliveries"],
        acked * 40,
        "every gift reaches all 40: {v}"
    );
    assert_eq!(v["seq_gaps"], 0, "{v}");
    assert_eq!(v["conservation"]["pass"], true, "{v}");
    assert!(v["server"]["cpu_us_per_delivery"].is_number(), "{v}");

    let v = run(
        &f,
        &[
            "storm",
            "--clients",
            "300",
            "--batch",
            "100",
            "--rooms",
            "3",
        ],
    );
    assert_eq!(v["storm"]["joined"], 300, "{v}");
    assert_eq!(v["storm"]["failed"], 0, "{v}");
    assert_eq!(v["storm"]["time_to_joined"]["count"], 300, "{v}");
    assert!(v["storm"]["kernel"].is_object(), "{v}");
}
