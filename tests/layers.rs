//! The module map, checked: every `crate::` path in `src/` (outside `#[cfg(test)]` blocks
//! and comments) is an edge from its top-level module to another, and each edge must be one
//! the map below allows. Dependencies point one way: leaves at the bottom, features above
//! the web layer, the composition root (`server`) on top, imported by nobody. A new edge that
//! points the wrong way (or closes a cycle) fails here with its file and line.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// What each top-level module of `src/` may import. A module missing here may import nothing
/// of the app.
const MAP: &[(&str, &[&str])] = &[
    // Leaves: vocabulary, errors, form plumbing, the database, settings.
    ("domain", &[]),
    ("error", &[]),
    ("forms", &["error"]),
    ("ui", &["error"]),
    ("db", &[]),
    ("metrics", &[]),
    ("limits", &["error"]),
    ("billing_file", &[]),
    ("config", &["billing_file", "domain"]),
    ("stripe_api", &["config"]),
    // E-mail: the outbox, its sender, the templates and the links a mail carries.
    ("mail", &["config", "db", "domain", "metrics"]),
    ("state", &["config", "db", "limits", "mail", "stripe_api"]),
    // The web layer every feature stands on.
    ("web", &["config", "domain", "error", "state"]),
    // Features.
    (
        "auth",
        &[
            "db", "domain", "error", "forms", "limits", "mail", "state", "ui", "web",
        ],
    ),
    ("layout", &["auth", "domain", "ui"]),
    (
        "billing",
        &[
            "billing_file",
            "db",
            "domain",
            "error",
            "forms",
            "layout",
            "limits",
            "mail",
            "metrics",
            "state",
            "ui",
            "web",
        ],
    ),
    (
        "accounts",
        &[
            "auth", "billing", "db", "error", "forms", "layout", "limits", "mail", "state", "ui",
            "web",
        ],
    ),
    (
        "organizations",
        &[
            "auth", "billing", "db", "domain", "error", "forms", "layout", "limits", "mail",
            "state", "ui", "web",
        ],
    ),
    ("webhooks", &["billing", "db", "metrics", "state"]),
    (
        "reconcile",
        &["billing", "config", "db", "metrics", "state", "webhooks"],
    ),
    (
        "admin",
        &[
            "auth",
            "billing",
            "db",
            "error",
            "mail",
            "reconcile",
            "state",
            "ui",
            "web",
            "webhooks",
        ],
    ),
    (
        "commands",
        &[
            "admin",
            "billing",
            "billing_file",
            "config",
            "db",
            "reconcile",
            "stripe_api",
            "webhooks",
        ],
    ),
    ("demo_account", &["auth", "billing", "db", "state", "web"]),
    // The pages' router and shell.
    (
        "app",
        &[
            "accounts",
            "admin",
            "auth",
            "billing",
            "forms",
            "organizations",
            "ui",
            "web",
        ],
    ),
    // The composition root.
    (
        "server",
        &[
            "accounts",
            "admin",
            "app",
            "auth",
            "billing",
            "commands",
            "config",
            "db",
            "demo_account",
            "error",
            "mail",
            "metrics",
            "reconcile",
            "state",
            "stripe_api",
            "web",
            "webhooks",
        ],
    ),
];

/// Edges the map allows today although they close a cycle, each with what removes it. The
/// test fails when one of them is gone, so the list only shrinks. (Empty: the last one,
/// `admin -> app`, went when the composition root began handing the operators' guard the
/// not-found page.)
const KNOWN_CYCLES: &[(&str, &str, &str)] = &[];

/// One `crate::` reference: where, and to which top-level module.
#[derive(Debug)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_owned()
}

/// The source with comments and `#[cfg(test)]` items (the attribute through the end of the
/// item's braces) blanked out, lines kept so line numbers still point right.
fn without_tests_and_comments(source: &str) -> String {
    let mut out: Vec<char> = source.chars().collect();
    // Line comments (including doc comments).
    let mut i = 0;
    let mut in_string = false;
    while i < out.len() {
        match out[i] {
            '"' if i == 0 || out[i - 1] != '\\' => in_string = !in_string,
            '/' if !in_string && out.get(i + 1) == Some(&'/') => {
                while i < out.len() && out[i] != '\n' {
                    out[i] = ' ';
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let text: String = out.iter().collect();
    let mut blanked: Vec<char> = text.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut at = 0;
    while at + marker.len() <= blanked.len() {
        if blanked[at..at + marker.len()] != marker[..] {
            at += 1;
            continue;
        }
        // Blank from the attribute to the end of the item: its first `{ … }` or `;`.
        let mut end = at + marker.len();
        let mut depth = 0usize;
        while end < blanked.len() {
            match blanked[end] {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                ';' if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        let last = end.min(blanked.len() - 1);
        for c in &mut blanked[at..=last] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        at = end + 1;
    }
    blanked.into_iter().collect()
}

/// The first segment of each path a `use crate::…;` tree names.
fn use_tree_roots(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let ident = |s: &str| -> Option<String> {
        let s = s.trim_start();
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        (end > 0).then(|| s[..end].to_owned())
    };
    let Some(inner) = tree.strip_prefix('{') else {
        return ident(tree).into_iter().collect();
    };
    let inner = &inner[..inner.rfind('}').unwrap_or(inner.len())];
    let mut roots = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                roots.extend(ident(&inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    roots.extend(ident(&inner[start..]));
    roots
}

fn edges_of(src: &Path, file: &Path) -> Vec<Edge> {
    let from = top_module(src, file);
    let text = without_tests_and_comments(&fs::read_to_string(file).expect("readable"));
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let at = |offset: usize| {
        format!(
            "{}:{}",
            file.strip_prefix(src.parent().expect("root"))
                .expect("in the crate")
                .display(),
            line_of(offset)
        )
    };
    let mut edges = Vec::new();
    let mut push = |to: String, offset: usize| {
        if to != from && to != "self" {
            edges.push(Edge {
                from: from.clone(),
                to,
                at: at(offset),
            });
        }
    };
    let mut rest = 0;
    while let Some(found) = text[rest..].find("crate::") {
        let offset = rest + found;
        let after = &text[offset + "crate::".len()..];
        let is_use = text[..offset].trim_end().ends_with("use");
        if is_use {
            let end = after.find(';').unwrap_or(after.len());
            for root in use_tree_roots(&after[..end]) {
                push(root, offset);
            }
        } else {
            for root in use_tree_roots(after).into_iter().take(1) {
                push(root, offset);
            }
        }
        rest = offset + "crate::".len();
    }
    edges
}

fn rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("a directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn all_edges() -> Vec<Edge> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .iter()
        // The crate root and the binary only declare and call; they are not a layer.
        .filter(|f| !matches!(top_module(&src, f).as_str(), "lib" | "main"))
        .flat_map(|f| edges_of(&src, f))
        .collect()
}

#[test]
fn every_import_points_the_way_the_map_allows() {
    let map: BTreeMap<&str, BTreeSet<&str>> = MAP
        .iter()
        .map(|(m, allowed)| (*m, allowed.iter().copied().collect()))
        .collect();
    let wrong: Vec<String> = all_edges()
        .into_iter()
        .filter(|e| {
            !map.get(e.from.as_str())
                .is_some_and(|allowed| allowed.contains(e.to.as_str()))
        })
        .map(|e| format!("{}: `{}` imports `{}`", e.at, e.from, e.to))
        .collect();
    assert!(
        wrong.is_empty(),
        "imports the module map does not allow (fix the import, or change MAP and \
         docs/ARCHITECTURE.md together):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_map_has_no_cycle_but_the_known_ones() {
    let known: BTreeSet<(&str, &str)> = KNOWN_CYCLES.iter().map(|(a, b, _)| (*a, *b)).collect();
    let graph: BTreeMap<&str, Vec<&str>> = MAP
        .iter()
        .map(|(m, allowed)| {
            let next = allowed
                .iter()
                .copied()
                .filter(|to| !known.contains(&(*m, *to)))
                .collect();
            (*m, next)
        })
        .collect();
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("the module map has a cycle: {}", cycle.join(" -> "));
        }
    }
    // A known cycle that is gone comes off the list.
    let edges = all_edges();
    for (from, to, why) in KNOWN_CYCLES {
        assert!(
            edges.iter().any(|e| e.from == *from && e.to == *to),
            "`{from}` no longer imports `{to}` ({why}): take it off KNOWN_CYCLES and MAP"
        );
    }
    // And the edge back really exists, or it is no cycle.
    for (from, to, _) in KNOWN_CYCLES {
        let back = map_allows(to, from);
        assert!(
            back,
            "`{to}` -> `{from}` is not in the map: no cycle to list"
        );
    }
}

fn map_allows(from: &str, to: &str) -> bool {
    MAP.iter()
        .any(|(m, allowed)| *m == from && allowed.contains(&to))
}

#[test]
fn the_parser_reads_use_trees_and_skips_tests_and_comments() {
    assert_eq!(
        use_tree_roots("{auth::ssr::{a, b}, billing::{x, y::z}, error::AppError}"),
        ["auth", "billing", "error"]
    );
    assert_eq!(use_tree_roots("web::CurrentUser"), ["web"]);
    let text = without_tests_and_comments(
        "use crate::a;\n// crate::b\n/// crate::c\n#[cfg(test)]\nmod tests { use crate::d; }\nfn f() { crate::e::g(); }\n",
    );
    assert!(text.contains("crate::a") && text.contains("crate::e"));
    assert!(!text.contains("crate::b") && !text.contains("crate::c") && !text.contains("crate::d"));
    assert_eq!(text.lines().count(), 6, "lines are kept");
}
