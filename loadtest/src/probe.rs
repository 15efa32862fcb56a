//! What the server process spends, read from `/proc`.
//!
//! Owns: [`Probe`]: CPU time (utime + stime of `/proc/PID/stat`, in µs) and
//! resident memory (`VmRSS` of `/proc/PID/status`, in KiB) of one process
//! or the sum over a few (several nodes, at most [`PIDS_MAX`]), and
//! [`CpuSpan`], the difference between two readings.
//! Must not: guess; a process that cannot be read gives an error.

use serde::Serialize;

/// Processes one probe sums over, at most (`--server-pid` of each node).
pub const PIDS_MAX: usize = 8;

/// Reads one process's CPU and memory (or the sum over a few).
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pid: u32,
    more: [u32; PIDS_MAX - 1],
    more_len: usize,
    tick_us: u64,
}

impl Probe {
    /// A probe of `pid` (checked readable now).
    pub fn new(pid: u32) -> anyhow::Result<Probe> {
        Probe::sum(&[pid])
    }

    /// A probe summing over `pids` (1..=[`PIDS_MAX`], each checked readable
    /// now); its `pid` is the first.
    pub fn sum(pids: &[u32]) -> anyhow::Result<Probe> {
        anyhow::ensure!(
            !pids.is_empty() && pids.len() <= PIDS_MAX,
            "between 1 and {PIDS_MAX} server pids"
        );
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let mut more = [0; PIDS_MAX - 1];
        more[..pids.len() - 1].copy_from_slice(&pids[1..]);
        let p = Probe {
            pid: pids[0],
            more,
            more_len: pids.len() - 1,
            tick_us: 1_000_000 / if hz > 0 { hz as u64 } else { 100 },
        };
        p.cpu_us()?;
        Ok(p)
    }

    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.pid).chain(self.more[..self.more_len].iter().copied())
    }

    /// This process.
    pub fn me() -> anyhow::Result<Probe> {
        Probe::new(std::process::id())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// User plus system CPU time so far, µs (resolution: one clock tick),
    /// summed over the probe's processes.
    pub fn cpu_us(&self) -> anyhow::Result<u64> {
        let mut sum = 0;
        for pid in self.pids() {
            sum += self.cpu_us_of(pid)?;
        }
        Ok(sum)
    }

    /// Resident set size now, KiB, summed over the probe's processes.
    pub fn rss_kb(&self) -> anyhow::Result<u64> {
        let mut sum = 0;
        for pid in self.pids() {
            sum += rss_kb_of(pid)?;
        }
        Ok(sum)
    }

    /// Peak resident set size so far (VmHWM), KiB, summed over the
    /// probe's processes.
    pub fn rss_peak_kb(&self) -> anyhow::Result<u64> {
        let mut sum = 0;
        for pid in self.pids() {
            sum += status_kb(pid, "VmHWM:")?;
        }
        Ok(sum)
    }

    fn cpu_us_of(&self, pid: u32) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command (which may hold spaces) start after ')'.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| anyhow::anyhow!("malformed /proc/{pid}/stat"))?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state); utime is field 14, stime field 15.
        let utime: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0);
        let stime: u64 = f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((utime + stime) * self.tick_us)
    }

    /// Start measuring CPU.
    pub fn start(&self) -> anyhow::Result<CpuMark> {
        Ok(CpuMark {
            probe: *self,
            at_us: self.cpu_us()?,
            wall: std::time::Instant::now(),
        })
    }
}

/// Resident set size of `pid` now, KiB.
fn rss_kb_of(pid: u32) -> anyhow::Result<u64> {
    status_kb(pid, "VmRSS:")
}

/// A KiB field (`field` with its colon) of `/proc/<pid>/status`.
fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// A CPU reading to measure from.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    probe: Probe,
    at_us: u64,
    wall: std::time::Instant,
}

impl CpuMark {
    /// CPU spent since the mark.
    pub fn stop(&self) -> anyhow::Result<CpuSpan> {
        let now = self.probe.cpu_us()?;
        let wall_s = self.wall.elapsed().as_secs_f64();
        let cpu_us = now.saturating_sub(self.at_us);
        Ok(CpuSpan {
            pid: self.probe.pid,
            cpu_us,
            wall_s,
            cores: if wall_s > 0.0 {
                cpu_us as f64 / 1e6 / wall_s
            } else {
                0.0
            },
        })
    }
}

/// CPU spent by one process over a span of wall time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuSpan {
    /// The process.
    pub pid: u32,
    /// User + system CPU, µs.
    pub cpu_us: u64,
    /// Wall time of the span, s.
    pub wall_s: f64,
    /// Average cores busy.
    pub cores: f64,
}
