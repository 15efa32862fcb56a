//! `giftstream-loadtest markdown`: tables for docs/BENCHMARKS.md from the
//! JSON lines of earlier runs.
//!
//! Owns: [`render`]: one row per run (throughput, latency, server cost,
//! gaps, errors, conservation) and the targets of issue #5 judged against
//! the measured numbers (fan-out CPU per delivery, RSS per idle connection,
//! ingest rate or CPU per ack, p99 at 100,000 deliveries/s offered); for
//! runs made with `--compare-floor` and `storm` runs, the ratios to the
//! floor server and the targets of issue #16.
//! Must not: run anything; it only reads files the script saved.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::saved::{f, load, n, Run};

/// Arguments of `markdown`.
#[derive(Debug, Clone, clap::Args)]
pub struct MarkdownArgs {
    /// Files holding a run's stdout (the JSON line is its last line); a
    /// sibling `NAME.cmd` holds the command that made it.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Render the tables for `args.files`.
pub fn render(args: &MarkdownArgs) -> anyhow::Result<String> {
    // A run that failed left no JSON line: it is named below the table
    // (scripts/bench also lists it as failed), the others are written.
    let mut runs: Vec<Run> = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    for p in &args.files {
        match load(p) {
            Ok(r) => runs.push(r),
            Err(e) => unreadable.push(format!("{e:#}")),
        }
    }
    anyhow::ensure!(!runs.is_empty(), "no run to write: {unreadable:?}");
    let mut s = String::new();
    let _ = writeln!(s, "| run | sockets | acked/s | deliveries/s | gift→viewer p50 / p99 / p99.9 / max (ms) | ack p50 / p99 (ms) | server cores | server µs/delivery | server µs/ack | gaps | skipped | errors | conservation |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let v = &r.v;
        let d = &v["delivery_latency"];
        let a = &v["ack_latency"];
        let lat = if d["count"].as_u64().unwrap_or(0) > 0 {
            format!(
                "{} / {} / {} / {}",
                f(&d["p50_ms"], 2),
                f(&d["p99_ms"], 2),
                f(&d["p999_ms"], 2),
                f(&d["max_ms"], 1)
            )
        } else {
            "–".into()
        };
        let ack = if a["count"].as_u64().unwrap_or(0) > 0 {
            format!("{} / {}", f(&a["p50_ms"], 2), f(&a["p99_ms"], 2))
        } else {
            "–".into()
        };
        let errors = v["errors"]
            .as_object()
            .map(|m| {
                if m.is_empty() {
                    "none".to_string()
                } else {
                    m.iter()
                        .map(|(k, c)| format!("{k}: {c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            })
            .unwrap_or_default();
        let cons = match v["conservation"]["pass"].as_bool() {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "–",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            n(&v["connect"]["connected"]),
            n(&v["acks_per_s"]),
            n(&v["deliveries_per_s"]),
            lat,
            ack,
            f(&v["server"]["cores"], 2),
            f(&v["server"]["cpu_us_per_delivery"], 2),
            f(&v["server"]["cpu_us_per_ack"], 2),
            n(&v["seq_gaps"]),
            n(&v["skipped_events"]),
            errors,
            cons
        );
        if let Some(rss) = v["server_rss"].as_object() {
            let _ = writeln!(
                s,
                "| {} (server RSS) | {} KiB → {} KiB | | | {:.0} bytes per idle joined connection; connect {:.0}/s | | | | | | | | |",
                r.name,
                n(&rss["before_kb"]),
                n(&rss["after_kb"]),
                rss["per_conn_bytes"].as_f64().unwrap_or(0.0),
                v["connect"]["per_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    for u in &unreadable {
        let _ = writeln!(s, "\nNot in the table (the run failed): {u}.");
    }
    s.push_str(&crate::peers_table::render(&runs));
    floor_tables(&mut s, &runs);
    let _ = writeln!(s, "\nCommands:\n");
    for r in &runs {
        let _ = writeln!(s, "- `{}`: `{}`", r.name, r.cmd);
    }
    let _ = writeln!(s, "\n### Targets (issue #5)\n");
    let _ = writeln!(s, "| target | measured | verdict |");
    let _ = writeln!(s, "|---|---|---|");
    fn by<'a>(runs: &'a [Run], scenario: &'a str) -> impl Iterator<Item = &'a Run> + 'a {
        runs.iter().filter(move |r| r.v["scenario"] == scenario)
    }
    for r in by(&runs, "fanout") {
        let x = r.v["server"]["cpu_us_per_delivery"].as_f64();
        let verdict = x.map_or("–", |x| if x <= 2.0 { "met" } else { "missed" });
        let _ = writeln!(
            s,
            "| fan-out ≤ 2 µs server CPU per delivery ({}) | {} µs | {verdict} |",
            r.name,
            f(&r.v["server"]["cpu_us_per_delivery"], 2)
        );
    }
    for r in by(&runs, "conns") {
        let x = r.v["server_rss"]["per_conn_bytes"].as_f64();
        let verdict = x.map_or("–", |x| if x <= 4096.0 { "met" } else { "missed" });
        let _ = writeln!(
            s,
            "| idle joined connection ≤ 4 KB server RSS ({}) | {} bytes | {verdict} |",
            r.name,
            n(&r.v["server_rss"]["per_conn_bytes"])
        );
    }
    // An ingest run against the Redis engine is judged against
    // redis-benchmark by scripts/bench, not against the embedded target.
    for r in by(&runs, "ingest").filter(|r| !r.name.contains("redis")) {
        let rate = r.v["acks_per_s"].as_f64().unwrap_or(0.0);
        let per = r.v["server"]["cpu_us_per_ack"].as_f64();
        let met = rate >= 200_000.0 || per.is_some_and(|p| p <= 5.0);
        let _ = writeln!(s, "| embedded ingest 200,000 acked gifts/s or ≤ 5 µs server CPU per acked gift ({}) | {} acks/s, {} µs/ack | {} |", r.name, n(&r.v["acks_per_s"]), f(&r.v["server"]["cpu_us_per_ack"], 2), if met { "met" } else { "missed" });
    }
    for r in by(&runs, "fanout") {
        let p = &r.v["params"];
        let offered = p["rooms"].as_f64().unwrap_or(0.0)
            * p["viewers"].as_f64().unwrap_or(0.0)
            * p["senders"].as_f64().unwrap_or(0.0)
            * p["rate"].as_f64().unwrap_or(0.0);
        if offered >= 100_000.0 {
            let p99 = r.v["delivery_latency"]["p99_ms"].as_f64();
            let verdict = p99.map_or("–", |x| if x < 50.0 { "met" } else { "missed" });
            let _ = writeln!(s, "| p99 gift→viewer < 50 ms at ≥ 100,000 deliveries/s offered ({}: {offered:.0}/s offered, {} delivered/s) | {} ms | {verdict} |", r.name, n(&r.v["deliveries_per_s"]), f(&r.v["delivery_latency"]["p99_ms"], 2));
        }
    }
    Ok(s)
}

fn ratio(a: &Value, b: &Value) -> String {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// Ratios to the floor server (runs with a `floor`), storm runs, and the
/// targets of issue #16 they answer.
fn floor_tables(s: &mut String, runs: &[Run]) {
    let compared: Vec<&Run> = runs
        .iter()
        .filter(|r| r.v["floor"].is_object() && r.v["scenario"] == "fanout")
        .collect();
    let storms: Vec<&Run> = runs.iter().filter(|r| r.v["scenario"] == "storm").collect();
    if compared.is_empty() && storms.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n### Against the floor (issue #16)\n\n`--compare-floor`: right after the giftstream run, the same scenario against \
         `giftstream-loadtest floor-server` (a thread per core; each event framed once and written to each viewer with a \
         direct non-blocking `send(2)`), in the same process run. Ratio = giftstream / floor (1.00× is at the floor). \
         A target is judged only when the floor kept up (every event delivered, at ≥ 90 % of the offered rate): a \
         saturated floor is no floor.\n"
    );
    let mut targets = Vec::new();
    if !compared.is_empty() {
        let _ = writeln!(s, "| run | CPU per delivery: ratio | giftstream / floor (µs) | p99 gift→viewer: giftstream / floor (ms) | deliveries/s: giftstream / floor |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for r in &compared {
            let (g, fl) = (&r.v, &r.v["floor"]);
            let (gc, fc) = (
                &g["server"]["cpu_us_per_delivery"],
                &fl["server"]["cpu_us_per_delivery"],
            );
            let (gp, fp) = (
                &g["delivery_latency"]["p99_ms"],
                &fl["delivery_latency"]["p99_ms"],
            );
            let _ = writeln!(
                s,
                "| {} | **{}** | {} / {} | {} / {} | {} / {} |",
                r.name,
                ratio(gc, fc),
                f(gc, 2),
                f(fc, 2),
                f(gp, 1),
                f(fp, 1),
                n(&g["deliveries_per_s"]),
                n(&fl["deliveries_per_s"])
            );
            let offered = r.v["params"]["rooms"].as_f64().unwrap_or(0.0)
                * r.v["params"]["viewers"].as_f64().unwrap_or(0.0)
                * r.v["params"]["senders"].as_f64().unwrap_or(0.0)
                * r.v["params"]["rate"].as_f64().unwrap_or(0.0);
            let floor_kept_up = fl["deliveries"] == fl["expected_deliveries"]
                && fl["deliveries_per_s"].as_f64().unwrap_or(0.0) >= 0.9 * offered;
            let judged = |met: bool| {
                if !floor_kept_up {
                    format!(
                        "not judged: the floor fell behind ({} of {} delivered, {}/s of {offered:.0}/s offered)",
                        n(&fl["deliveries"]),
                        n(&fl["expected_deliveries"]),
                        n(&fl["deliveries_per_s"])
                    )
                } else if met {
                    "met".into()
                } else {
                    "missed".into()
                }
            };
            if let (Some(a), Some(b)) = (gc.as_f64(), fc.as_f64()) {
                targets.push(format!(
                    "| fan-out ≤ 1.15× the floor's CPU per delivery ({}) | {:.2}× | {} |",
                    r.name,
                    a / b.max(1e-9),
                    judged(b > 0.0 && a / b <= 1.15)
                ));
            }
            if let (Some(a), Some(b), true) = (gp.as_f64(), fp.as_f64(), offered <= 60_000.0) {
                targets.push(format!(
                    "| p99 gift→viewer within 5 ms of the floor's at ≤ 60k/s ({}) | {:+.1} ms | {} |",
                    r.name,
                    a - b,
                    judged(a - b <= 5.0)
                ));
            }
        }
        let _ = writeln!(s);
    }
    if !storms.is_empty() {
        let _ = writeln!(s, "| storm run | clients joined (failed) | all joined (s) | ratio to floor | time to joined p50 / p99 / max (ms) | ListenOverflows | ListenDrops | SYN retransmits | floor: all joined (s), p99 (ms), ListenOverflows |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for r in &storms {
            let t = &r.v["storm"];
            let k = &t["kernel"];
            let fl = &r.v["floor"]["storm"];
            let tt = &t["time_to_joined"];
            let floor = if fl.is_object() {
                format!(
                    "{} s, {} ms, {}",
                    f(&fl["all_joined_s"], 2),
                    f(&fl["time_to_joined"]["p99_ms"], 1),
                    n(&fl["kernel"]["TcpExtListenOverflows"])
                )
            } else {
                "–".into()
            };
            let _ = writeln!(
                s,
                "| {} | {} ({}) | {} | **{}** | {} / {} / {} | {} | {} | {} | {} |",
                r.name,
                n(&t["joined"]),
                n(&t["failed"]),
                f(&t["all_joined_s"], 2),
                ratio(&t["all_joined_s"], &fl["all_joined_s"]),
                f(&tt["p50_ms"], 1),
                f(&tt["p99_ms"], 1),
                f(&tt["max_ms"], 1),
                n(&k["TcpExtListenOverflows"]),
                n(&k["TcpExtListenDrops"]),
                n(&k["TcpExtTCPSynRetrans"]),
                floor
            );
            if let (Some(a), Some(b)) = (t["all_joined_s"].as_f64(), fl["all_joined_s"].as_f64()) {
                let overflows = k["TcpExtListenOverflows"].as_u64().unwrap_or(0);
                let met = b > 0.0 && a / b <= 2.0 && overflows == 0;
                targets.push(format!(
                    "| storm: all joined within 2× the floor's time, no listen-queue overflow ({}) | {:.2}×, {overflows} overflows | {} |",
                    r.name,
                    a / b.max(1e-9),
                    if met { "met" } else { "missed" }
                ));
            }
        }
        let _ = writeln!(s);
    }
    for r in runs
        .iter()
        .filter(|r| r.v["scenario"] == "ingest" && r.v["note"].is_string())
    {
        let limited = r.v["errors"]["rate_limited"].as_u64().unwrap_or(0);
        if r.name.contains("budget") {
            targets.push(format!(
                "| ingest at the default socket budget: 0 `rate_limited`, acks/s ≈ senders × budget ({}) | {} `rate_limited`, {} acks/s | {} |",
                r.name,
                limited,
                n(&r.v["acks_per_s"]),
                if limited == 0 { "met" } else { "missed" }
            ));
        }
    }
    if !targets.is_empty() {
        let _ = writeln!(
            s,
            "| target (issue #16) | measured | verdict |\n|---|---|---|"
        );
        for t in targets {
            let _ = writeln!(s, "{t}");
        }
    }
}
