//! The table of issue #16, from one `scripts/bench` run: every row for
//! giftstream, the Node peer (`--compare-node`) and the floor server
//! (`--compare-floor`), each measured in the same process run, with the
//! ratios.
//!
//! Owns: [`render`]: which saved run answers which row (by the run names
//! `scripts/bench` gives), and how each row reads its three JSON objects.
//! Must not: run anything or judge targets (`markdown` judges them).

use std::fmt::Write as _;

use serde_json::Value;

use crate::saved::{n, Run};

/// One row: its label, the run that answers it, and how a cell is read
/// from one server's summary (giftstream's, the Node peer's, the floor's).
struct Row {
    label: &'static str,
    run: &'static str,
    cell: fn(&Value) -> Option<(f64, String)>,
}

fn cpu_per_delivery(v: &Value) -> Option<(f64, String)> {
    let x = v["server"]["cpu_us_per_delivery"].as_f64()?;
    Some((x, format!("{x:.2} µs")))
}

fn p99(v: &Value) -> Option<(f64, String)> {
    if v["delivery_latency"]["count"].as_u64().unwrap_or(0) == 0 {
        return None;
    }
    let x = v["delivery_latency"]["p99_ms"].as_f64()?;
    Some((x, format!("{x:.1} ms")))
}

fn cpu_and_rate(v: &Value) -> Option<(f64, String)> {
    let x = v["server"]["cpu_us_per_delivery"].as_f64()?;
    Some((x, format!("{x:.2} µs, {}/s", n(&v["deliveries_per_s"]))))
}

fn all_joined(v: &Value) -> Option<(f64, String)> {
    let x = v["storm"]["all_joined_s"].as_f64()?;
    Some((x, format!("{x:.2} s")))
}

fn rss_per_conn(v: &Value) -> Option<(f64, String)> {
    let x = v["server_rss"]["per_conn_bytes"].as_f64()?;
    Some((x, format!("{:.1} KB", x / 1000.0)))
}

fn peak_rss(v: &Value) -> String {
    v["server_rss_peak_kb"]
        .as_f64()
        .map_or_else(String::new, |kb| {
            format!(", RSS {:.0} MB", kb * 1024.0 / 1e6)
        })
}

/// Acks/s (the ratio is of CPU per ack: cost, like the other rows).
fn acks_cpu_rss(v: &Value) -> Option<(f64, String)> {
    let rate = v["acks_per_s"].as_f64()?;
    let cpu = v["server"]["cpu_us_per_ack"].as_f64()?;
    Some((
        cpu,
        format!("{:.1}k ({cpu:.1} µs){}", rate / 1000.0, peak_rss(v)),
    ))
}

fn acks_limited(v: &Value) -> Option<(f64, String)> {
    let rate = v["acks_per_s"].as_f64()?;
    let cpu = v["server"]["cpu_us_per_ack"].as_f64()?;
    let limited = v["errors"]["rate_limited"].as_u64().unwrap_or(0);
    Some((
        cpu,
        format!(
            "{:.1}k acks/s ({cpu:.1} µs), {limited} `rate_limited`",
            rate / 1000.0
        ),
    ))
}

const ROWS: &[Row] = &[
    Row {
        label: "fan-out 4 rooms × 1,500 viewers, 10 gifts/s each (60k deliveries/s): server CPU per delivery",
        run: "fanout-4x1500",
        cell: cpu_per_delivery,
    },
    Row {
        label: "same: p99 gift→viewer",
        run: "fanout-4x1500",
        cell: p99,
    },
    Row {
        label: "fan-out 10 × 1,500 (150k/s): CPU per delivery, rate",
        run: "fanout-10x1500",
        cell: cpu_and_rate,
    },
    Row {
        label: "15,000 viewers connecting in batches of 500: time until all joined",
        run: "storm-15000",
        cell: all_joined,
    },
    Row {
        label: "idle joined connections: server RSS per connection",
        run: "conns-",
        cell: rss_per_conn,
    },
    Row {
        label: "ingest, 256 sockets × 4 gifts in flight: acks/s (server CPU per ack), peak RSS",
        run: "ingest-256x4",
        cell: acks_cpu_rss,
    },
    Row {
        label: "ingest, 16 sockets × 32 in flight (budget raised)",
        run: "ingest-16x32",
        cell: acks_limited,
    },
    Row {
        label: "ingest, 16 × 32 at the default socket budget (1,000 messages/s)",
        run: "ingest-16x32-budget",
        cell: acks_limited,
    },
    Row {
        label: "Redis engine (+ SQLite), 16 × 32: acks/s (server CPU per ack)",
        run: "ingest-redis-16x32",
        cell: acks_cpu_rss,
    },
];

/// The run a row reads: the exact name, or for a name ending in `-` the
/// first run whose name starts with it (`conns-<N>`).
fn find<'a>(runs: &'a [Run], name: &str) -> Option<&'a Run> {
    runs.iter().find(|r| {
        if name.ends_with('-') {
            r.name.starts_with(name)
        } else {
            r.name == name
        }
    })
}

/// `a / b` as a ratio cell.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// The table, or nothing when no run answers any row.
pub(crate) fn render(runs: &[Run]) -> String {
    let mut rows = Vec::new();
    for row in ROWS {
        let Some(r) = find(runs, row.run) else {
            continue;
        };
        let g = (row.cell)(&r.v);
        let node = (row.cell)(&r.v["node"]);
        let floor = (row.cell)(&r.v["floor"]);
        let failed = |key: &str| r.v["peer_failures"][key].is_string();
        let text = |c: &Option<(f64, String)>, key: &str| match c {
            Some(c) => c.1.clone(),
            None if failed(key) => "failed (see the run)".into(),
            None => "—".into(),
        };
        let num = |c: &Option<(f64, String)>| c.as_ref().map(|c| c.0);
        rows.push(format!(
            "| {} | {} | {} | {} | **{}** | {} |",
            row.label,
            text(&g, ""),
            text(&node, "node"),
            text(&floor, "floor"),
            ratio(num(&g), num(&floor)),
            ratio(num(&g), num(&node)),
        ));
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### The issue #16 table: giftstream, Node `ws`, floor (same run)\n\n\
         Each row's three servers ran the same scenario one after the other in one load-generator \
         process (`--compare-node --compare-floor`): giftstream (embedded default unless the row \
         says otherwise), the Node peer (`loadtest/node-peer/server.js`: Node.js and the `ws` \
         package, one process, the `ws` broadcast recipe, no money work), and the floor server. \
         Ratios are costs (CPU per delivery or per ack, time, bytes): giftstream / reference, \
         lower is better; \"—\" is a server the row was not run against. Server CPU is the \
         server process's utime + stime over the measured phase.\n"
    );
    let _ = writeln!(
        s,
        "| shape | giftstream | Node ws | floor | ratio to floor | ratio to Node |\n|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(s, "{r}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(name: &str, v: Value) -> Run {
        Run {
            name: name.into(),
            cmd: String::new(),
            v,
        }
    }

    #[test]
    fn rows_read_all_three_servers_and_their_ratios() {
        let side = |cpu: f64, p99: f64| {
            json!({"server": {"cpu_us_per_delivery": cpu},
                   "delivery_latency": {"count": 10, "p99_ms": p99}, "deliveries_per_s": 60000.0})
        };
        let mut g = side(9.0, 20.0);
        g["node"] = side(12.0, 19.0);
        g["floor"] = side(6.0, 15.0);
        let t = render(&[run("fanout-4x1500", g)]);
        assert!(
            t.contains("| 9.00 µs | 12.00 µs | 6.00 µs | **1.50×** | 0.75× |"),
            "{t}"
        );
        assert!(
            t.contains("| 20.0 ms | 19.0 ms | 15.0 ms | **1.33×** | 1.05× |"),
            "{t}"
        );
        assert!(!t.contains("storm"), "rows without a run are left out: {t}");
    }

    #[test]
    fn a_missing_peer_is_a_dash_and_prefix_names_match() {
        let g = json!({"server_rss": {"per_conn_bytes": 3800.0}});
        let t = render(&[run("conns-19000", g)]);
        assert!(t.contains("| 3.8 KB | — | — | **–** | – |"), "{t}");
        assert_eq!(render(&[run("mixed", json!({}))]), "");
    }

    #[test]
    fn a_failed_peer_says_so() {
        let mut g = json!({"server": {"cpu_us_per_delivery": 7.0}});
        g["floor"] = json!({"server": {"cpu_us_per_delivery": 6.5}});
        g["peer_failures"] = json!({"node": "GET /v1/wallet: connection reset"});
        let t = render(&[run("fanout-10x1500", g)]);
        assert!(
            t.contains("| 7.00 µs, –/s | failed (see the run) | 6.50 µs, –/s | **1.08×** | – |"),
            "{t}"
        );
    }
}
