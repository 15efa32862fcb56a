//! Saved load-test runs as the table writers read them: a run's file
//! name, the command that made it, and its JSON line; and the number
//! formats the tables share.
//!
//! Owns: [`Run`], [`load`], [`f`], [`n`].
//! Must not: render tables (`markdown`, `peers_table` do).

use std::path::Path;

use serde_json::Value;

/// One saved run: its file's name, its command, its JSON line.
pub struct Run {
    /// The file's name without extension (the run's name in scripts/bench).
    pub name: String,
    /// The command that made it.
    pub cmd: String,
    /// Its JSON line.
    pub v: Value,
}

/// Read one saved run (its stdout file; `NAME.cmd` beside it).
pub fn load(path: &Path) -> anyhow::Result<Run> {
    let text = std::fs::read_to_string(path)?;
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("{}: no JSON line", path.display()))?;
    let v: Value = serde_json::from_str(last)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmd = std::fs::read_to_string(path.with_extension("cmd")).unwrap_or_default();
    Ok(Run {
        name,
        cmd: cmd.trim().to_string(),
        v,
    })
}

/// A number with `digits` decimals, or a dash.
pub fn f(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
}

/// A whole number, or a dash.
pub fn n(v: &Value) -> String {
    v.as_f64().map_or_else(|| "–".into(), |x| format!("{x:.0}"))
}
