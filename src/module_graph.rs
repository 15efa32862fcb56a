//! A check that the top-level modules do not import each other in a circle.
//!
//! Owns: the `module_graph_has_no_cycle` unit test. It reads every
//! `src/**/*.rs`, collects the `crate::X` references of each top-level
//! module (a folder or file under `src/`; comments are skipped), and fails,
//! printing the cycle, if that graph has one. The intended direction is
//! top-down: http → app → hub, relay, counters, ledger, payments, settlement,
//! webhooks
//! → model, protocol, config, error.
//! Must not: be compiled outside tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names through `crate::`.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let needle = concat!("crate", "::");
    for line in text.lines() {
        // Code only: a `//` comment (and doc comment) names no dependency.
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find(needle) {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + needle.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `mycrate::`
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::c, d::{e, f}}`: the first ident of each
                // item at depth 1 (a group may span lines: the ident of the
                // first line is enough in practice, the rest are caught on
                // their own lines below).
                let mut depth = 1;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => {
                            push_ident(&item, &mut out);
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 1 {
                        item.push(c);
                    }
                }
                push_ident(&item, &mut out);
            } else {
                push_ident(rest, &mut out);
            }
        }
    }
    out
}

fn push_ident(s: &str, out: &mut BTreeSet<String>) {
    let ident: String = s
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !ident.is_empty() && ident != "self" {
        out.insert(ident);
    }
}

/// Multi-line `use crate::{\n a,\n b::c,\n};` groups: the idents that open
/// each line inside the group.
fn grouped_references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if !inside {
            if t.starts_with(concat!("use crate", "::{")) && !t.contains('}') {
                inside = true;
            }
            continue;
        }
        if t.starts_with('}') {
            inside = false;
            continue;
        }
        push_ident(t, &mut out);
    }
    out
}

/// Edges module → modules it names, for the crate under `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a component");
        let top = first.as_os_str().to_string_lossy();
        let top = top.strip_suffix(".rs").unwrap_or(&top).to_string();
        if top == "lib" || top == "main" || top == "module_graph" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source");
        let mut refs = references(&text);
        refs.extend(grouped_references(&text));
        let edges = g.entry(top.clone()).or_default();
        for r in refs {
            if r != top {
                edges.insert(r);
            }
        }
    }
    g
}

/// One cycle of `g`, as the path of modules that closes it.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // 0 = unseen, 1 = on the stack, 2 = done.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).expect("on stack");
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    let edges: Vec<String> = g
        .iter()
        .map(|(m, to)| {
            format!(
                "{m} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "module cycle: {}\nmodule graph:\n{}",
            cycle.join(" -> "),
            edges.join("\n")
        );
    }
}

#[test]
fn references_reads_use_lines() {
    let text =
        "use crate::a::B;\nuse crate::{c, d::{E, F}};\nfn f() { crate::g::h(); } // crate::x\n";
    let got: Vec<String> = references(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g"]);
    let grouped = "use crate::{\n    hub::Hub,\n    ledger,\n};\n";
    let got: Vec<String> = grouped_references(grouped).into_iter().collect();
    assert_eq!(got, ["hub", "ledger"]);
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "a"]);
}
