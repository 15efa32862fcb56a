//! The report: a human summary and one machine-readable JSON line.
//!
//! Owns: [`Summary`] (everything a run measured, serializable), built from
//! an [`Outcome`] plus the conservation verdict, its human rendering, and
//! the derived numbers: rates over the measured phase and the server's CPU
//! per delivery and per acked gift.
//! Must not: measure anything itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::conservation::Conservation;
use crate::metrics::{Percentiles, TimePoint};
use crate::probe::CpuSpan;
use crate::scenarios::storm::StormStats;
use crate::scenarios::{ConnectStats, Outcome, RssStats};
use crate::wire::Encoding;

/// What the server spent.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCost {
    /// Server process id.
    pub pid: u32,
    /// CPU over the measured phase, µs.
    pub cpu_us: u64,
    /// Average cores busy.
    pub cores: f64,
    /// CPU µs per delivery (when there were deliveries).
    pub cpu_us_per_delivery: Option<f64>,
    /// CPU µs per acked gift (when there were acks).
    pub cpu_us_per_ack: Option<f64>,
}

/// A run's cost as a ratio to a reference server's in the same run (the
/// floor server's, or the Node peer's): giftstream / reference, so 1.0 is
/// at the reference.
#[derive(Debug, Clone, Serialize)]
pub struct VsFloor {
    /// Server CPU per delivery.
    pub cpu_per_delivery: Option<f64>,
    /// p99 gift→viewer minus the floor's, ms.
    pub p99_gap_ms: Option<f64>,
    /// Deliveries per second.
    pub deliveries_per_s: Option<f64>,
    /// Time until every storm client joined.
    pub all_joined: Option<f64>,
    /// p99 of a storm client's time to `joined`.
    pub joined_p99: Option<f64>,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `giftstream-loadtest`.
    pub tool: &'static str,
    /// Scenario name.
    pub scenario: &'static str,
    /// Run id (prefix of every id it made).
    pub run: String,
    /// Wire encoding.
    pub encoding: Encoding,
    /// Scenario parameters.
    pub params: serde_json::Value,
    /// Wall time of the measured phase, s.
    pub measured_s: f64,
    /// Connecting.
    pub connect: ConnectStats,
    /// Gifts sent.
    pub sent: u64,
    /// Gifts acked.
    pub acked: u64,
    /// Acks per second over the measured phase.
    pub acks_per_s: f64,
    /// Gift events received by viewers.
    pub deliveries: u64,
    /// Deliveries per second over the measured phase.
    pub deliveries_per_s: f64,
    /// Acked gifts x viewers of their room (fanout).
    pub expected_deliveries: Option<u64>,
    /// Send -> viewer latency.
    pub delivery_latency: Percentiles,
    /// Send -> ack latency.
    pub ack_latency: Percentiles,
    /// Missing seqs not announced by `skipped`.
    pub seq_gaps: u64,
    /// Viewers that saw such a gap.
    pub viewers_with_gaps: u64,
    /// `skipped` messages.
    pub skipped_msgs: u64,
    /// Events covered by them.
    pub skipped_events: u64,
    /// Gifts without an answer at the end.
    pub unanswered: u64,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// Server closes by code.
    pub closes: BTreeMap<String, u64>,
    /// Undecodable frames.
    pub garbled: u64,
    /// Joins, leaves, reconnects, resumes (mixed).
    pub churn: BTreeMap<&'static str, u64>,
    /// Server cost (with --server-pid or --spawn).
    pub server: Option<ServerCost>,
    /// Server memory (conns).
    pub server_rss: Option<RssStats>,
    /// The server's peak RSS (VmHWM) at the end of the run, KiB (summed
    /// over its processes).
    pub server_rss_peak_kb: Option<u64>,
    /// This process's CPU.
    pub client_cpu: Option<CpuSpan>,
    /// The conservation check (scenarios that gift).
    pub conservation: Option<Conservation>,
    /// Time to `joined` and kernel drops (storm).
    pub storm: Option<StormStats>,
    /// What to know about this run (e.g. which config key bounds it).
    pub note: Option<String>,
    /// The same scenario against the floor server (`--compare-floor`).
    pub floor: Option<Box<Summary>>,
    /// This run's cost as a ratio to the floor's (`--compare-floor`).
    pub vs_floor: Option<VsFloor>,
    /// The same scenario against the Node peer (`--compare-node`).
    pub node: Option<Box<Summary>>,
    /// This run's cost as a ratio to the Node peer's (`--compare-node`).
    pub vs_node: Option<VsFloor>,
    /// A reference server whose run of the scenario failed (`floor`,
    /// `node`), with why: this run's own figures stand.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub peer_failures: BTreeMap<&'static str, String>,
    /// Per-second series (not in the JSON line; see the chart).
    #[serde(skip)]
    pub timeline: Vec<TimePoint>,
}

impl Summary {
    /// Build from a scenario's outcome.
    pub fn new(
        run: &str,
        encoding: Encoding,
        o: Outcome,
        conservation: Option<Conservation>,
    ) -> Summary {
        let t = &o.tally;
        let secs = o.measured_s.max(1e-9);
        let server = o.server_cpu.map(|c| ServerCost {
            pid: c.pid,
            cpu_us: c.cpu_us,
            cores: c.cores,
            cpu_us_per_delivery: (t.deliveries > 0).then(|| c.cpu_us as f64 / t.deliveries as f64),
            cpu_us_per_ack: (t.acked > 0).then(|| c.cpu_us as f64 / t.acked as f64),
        });
        let churn = BTreeMap::from([
            ("joins", t.joins),
            ("leaves", t.leaves),
            ("reconnects", t.reconnects),
            ("resumes", t.resumes),
        ]);
        Summary {
            tool: "giftstream-loadtest",
            scenario: o.scenario,
            run: run.to_string(),
            encoding,
            params: o.params,
            measured_s: o.measured_s,
            connect: o.connect,
            sent: t.sent,
            acked: t.acked,
            acks_per_s: t.acked as f64 / secs,
            deliveries: t.deliveries,
            deliveries_per_s: t.deliveries as f64 / secs,
            expected_deliveries: o.expected_deliveries,
            delivery_latency: o.delivery_latency,
            ack_latency: o.ack_latency,
            seq_gaps: t.seq_gaps,
            viewers_with_gaps: t.viewers_with_gaps,
            skipped_msgs: t.skipped_msgs,
            skipped_events: t.skipped_events,
            unanswered: t.unanswered,
            errors: t.errors.clone(),
            closes: t.closes.clone(),
            garbled: t.garbled,
            churn,
            server,
            server_rss: o.rss,
            server_rss_peak_kb: None,
            client_cpu: o.client_cpu,
            conservation,
            storm: o.storm,
            note: None,
            floor: None,
            vs_floor: None,
            node: None,
            vs_node: None,
            peer_failures: BTreeMap::new(),
            timeline: o.timeline,
        }
    }

    /// Attach the floor server's run of the same scenario and the ratios.
    pub fn set_floor(&mut self, floor: Summary) {
        self.vs_floor = Some(self.ratios_to(&floor));
        self.floor = Some(Box::new(floor));
    }

    /// Attach the Node peer's run of the same scenario and the ratios.
    pub fn set_node(&mut self, node: Summary) {
        self.vs_node = Some(self.ratios_to(&node));
        self.node = Some(Box::new(node));
    }

    /// This run's cost as a ratio to `reference`'s run of the same scenario.
    fn ratios_to(&self, reference: &Summary) -> VsFloor {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let per_delivery = |s: &Summary| s.server.as_ref().and_then(|c| c.cpu_us_per_delivery);
        let p99 = |s: &Summary| (s.delivery_latency.count > 0).then_some(s.delivery_latency.p99_ms);
        let joined = |s: &Summary| s.storm.as_ref().map(|t| t.all_joined_s);
        let joined_p99 = |s: &Summary| s.storm.as_ref().map(|t| t.time_to_joined.p99_ms);
        VsFloor {
            cpu_per_delivery: ratio(per_delivery(self), per_delivery(reference)),
            p99_gap_ms: p99(self).zip(p99(reference)).map(|(a, b)| a - b),
            deliveries_per_s: ratio(
                (self.deliveries > 0).then_some(self.deliveries_per_s),
                (reference.deliveries > 0).then_some(reference.deliveries_per_s),
            ),
            all_joined: ratio(joined(self), joined(reference)),
            joined_p99: ratio(joined_p99(self), joined_p99(reference)),
        }
    }

    /// False when the conservation check failed.
    pub fn ok(&self) -> bool {
        self.conservation.as_ref().is_none_or(|c| c.pass)
    }

    /// The machine-readable line.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The human summary.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let lat = |p: &Percentiles| {
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
                p.p50_ms, p.p99_ms, p.p999_ms, p.max_ms, p.count
            )
        };
        let _ = writeln!(
            s,
            "== giftstream-loadtest {} (run {}, {:?}) ==",
            self.scenario, self.run, self.encoding
        );
        let _ = writeln!(s, "params:       {}", self.params);
        let _ = writeln!(
            s,
            "connect:      {} sockets in {:.2} s ({:.0}/s), {} failed",
            self.connect.connected, self.connect.seconds, self.connect.per_s, self.connect.failed
        );
        let _ = writeln!(s, "measured:     {:.2} s", self.measured_s);
        if self.sent > 0 {
            let _ = writeln!(
                s,
                "gifts:        {} sent, {} acked ({:.0}/s), {} unanswered",
                self.sent, self.acked, self.acks_per_s, self.unanswered
            );
            let _ = writeln!(s, "ack latency:  {}", lat(&self.ack_latency));
        }
        if self.deliveries > 0 || self.expected_deliveries.is_some() {
            let _ = writeln!(
                s,
                "deliveries:   {} ({:.0}/s){}",
                self.deliveries,
                self.deliveries_per_s,
                self.expected_deliveries
                    .map(|e| format!(", expected {e} (acked x viewers)"))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "gift->viewer: {}", lat(&self.delivery_latency));
            let _ = writeln!(
                s,
                "seq:          {} gaps ({} viewers), {} skipped msgs covering {} events",
                self.seq_gaps, self.viewers_with_gaps, self.skipped_msgs, self.skipped_events
            );
        }
        if self.churn.values().any(|v| *v > 0) {
            let _ = writeln!(s, "churn:        {:?}", self.churn);
        }
        let _ = writeln!(s, "errors:       {:?}", self.errors);
        let _ = writeln!(s, "closes:       {:?}", self.closes);
        if let Some(c) = &self.server {
            let per = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2} µs"));
            let _ = writeln!(
                s,
                "server cpu:   {:.3} s ({:.2} cores); per delivery {}, per acked gift {}",
                c.cpu_us as f64 / 1e6,
                c.cores,
                per(c.cpu_us_per_delivery),
                per(c.cpu_us_per_ack)
            );
        }
        if let Some(r) = &self.server_rss {
            let _ = writeln!(
                s,
                "server rss:   {} KiB -> {} KiB: {:.0} bytes per connection",
                r.before_kb, r.after_kb, r.per_conn_bytes
            );
        }
        if let Some(kb) = self.server_rss_peak_kb {
            let _ = writeln!(s, "server peak:  {kb} KiB RSS (VmHWM)");
        }
        if let Some(c) = &self.client_cpu {
            let _ = writeln!(
                s,
                "client cpu:   {:.3} s ({:.2} cores)",
                c.cpu_us as f64 / 1e6,
                c.cores
            );
        }
        if let Some(t) = &self.storm {
            let _ = writeln!(
                s,
                "storm:        {} joined, {} failed; all joined in {:.2} s; time to joined {}",
                t.joined,
                t.failed,
                t.all_joined_s,
                lat(&t.time_to_joined)
            );
            let _ = writeln!(s, "kernel:       {:?} (increase over the storm)", t.kernel);
        }
        if let Some(n) = &self.note {
            let _ = writeln!(s, "note:         {n}");
        }
        for (key, why) in &self.peer_failures {
            let _ = writeln!(
                s,
                "-- the same scenario against the {key} reference failed: {why}"
            );
        }
        for (name, peer, v) in [
            ("floor server", &self.floor, &self.vs_floor),
            ("Node peer", &self.node, &self.vs_node),
        ] {
            let (Some(f), Some(v)) = (peer, v) else {
                continue;
            };
            let x = |r: Option<f64>| r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"));
            let _ = writeln!(s, "-- the same scenario against the {name} --");
            for line in f.human().lines().skip(1) {
                let _ = writeln!(s, "  {line}");
            }
            let _ = writeln!(
                s,
                "vs {name}: CPU per delivery {}; p99 gift->viewer {}; deliveries/s {}; all joined {}; joined p99 {}",
                x(v.cpu_per_delivery),
                v.p99_gap_ms
                    .map_or_else(|| "-".into(), |g| format!("{g:+.1} ms")),
                x(v.deliveries_per_s),
                x(v.all_joined),
                x(v.joined_p99)
            );
        }
        if let Some(c) = &self.conservation {
            let _ = writeln!(
                s,
                "conservation: {}: coins granted {} - left {} = {} vs acked {}; diamonds earned {} vs acked {}{}",
                if c.pass { "PASS" } else { "FAIL" },
                c.coins_granted,
                c.coins_left,
                c.coins_granted - c.coins_left,
                c.coins_acked,
                c.diamonds_earned,
                c.diamonds_acked,
                if c.unanswered > 0 {
                    format!(" ({} gifts unanswered)", c.unanswered)
                } else {
                    String::new()
                }
            );
        }
        s
    }
}
