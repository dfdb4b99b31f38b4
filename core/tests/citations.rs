//! Citations that resolve: a comment in the workspace's Rust code that cites `docs/<file>.md` or
//! `docs/<file>.md#<section>` names a file that exists and a heading it has, and the docs'
//! own links between their pages (`](<file>.md#<section>)`) resolve the same way. Comments
//! used to cite research notes that are not in the repository; the facts they relied on are
//! now in docs/facts.md, and this test keeps every citation pointing at something a reader
//! can open.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// GitHub's anchor for a heading: lower case, letters, digits, `-` and `_` kept, spaces made
/// `-`, everything else dropped; a repeated heading gets `-1`, `-2`, ….
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a markdown file (headings outside fenced code blocks).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(&line[hashes..]);
            let mut candidate = base.clone();
            let mut n = 0;
            while out.contains(&candidate) {
                n += 1;
                candidate = format!("{base}-{n}");
            }
            out.insert(candidate);
        }
    }
    out
}

/// `docs/<file>.md` with an optional `#anchor`, wherever it appears in `text`.
fn doc_citations(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("docs/") {
        let tail = &rest[at + 5..];
        let name_len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(tail.len());
        let name = tail[..name_len].trim_end_matches('.');
        if let Some(stem) = name.strip_suffix(".md") {
            let after = &tail[name.len()..];
            let anchor = after.strip_prefix('#').map(|a| {
                a.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                    .collect::<String>()
            });
            out.push((format!("{stem}.md"), anchor.filter(|a| !a.is_empty())));
        }
        rest = &tail[name_len..];
    }
    out
}

fn rust_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [
        "core",
        "sim",
        "conformance",
        "ntlm",
        "bench",
        "wsman",
        "client",
    ] {
        walk(&root().join(dir), &mut out);
    }
    out.sort();
    out
}

/// Every Rust file as (path relative to the repository, text).
fn rust_sources() -> Vec<(String, String)> {
    rust_files()
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let name = path
                .strip_prefix(root())
                .unwrap_or(&path)
                .display()
                .to_string();
            (name, text)
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    walk_ext(dir, &["rs"], out);
}

/// Files under `dir` with one of `exts`, leaving out build output and hidden directories.
fn walk_ext(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if p.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                walk_ext(&p, exts, out);
            }
        } else if p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
            out.push(p);
        }
    }
}

/// A merge once left its conflict markers in ARCHITECTURE.md for several commits: nothing
/// else reads the docs as text, so nothing noticed.
#[test]
fn no_file_keeps_merge_conflict_markers() {
    let mut files = Vec::new();
    let exts = [
        "rs", "md", "toml", "json", "py", "sh", "yml", "yaml", "xml", "txt", "html",
    ];
    walk_ext(&root(), &exts, &mut files);
    assert!(files.len() > 100, "read only {} files", files.len());
    let mut found = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("<<<<<<< ") || line.starts_with(">>>>>>> ") {
                found.push(format!("{}:{}", f.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "merge conflict markers: {found:?}");
}

/// The research notes and the product contract lived outside the repository; their facts are
/// in docs/facts.md now.
const GONE: &[&str] = &[
    "reference §",
    "Reference §",
    "DESIGN.md",
    "wsman.md",
    "hyperv-replication.md",
    "rust-stack.md",
    "reference/",
];

/// Why `docs/<file>#<anchor>` does not resolve, if it does not.
fn resolve(file: &str, anchor: Option<&str>) -> Option<String> {
    let path = root().join("docs").join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Some(format!("docs/{file} does not exist"));
    };
    match anchor {
        Some(a) if !anchors(&text).contains(a) => Some(format!("docs/{file} has no section #{a}")),
        _ => None,
    }
}

fn comment_part(line: &str) -> Option<&str> {
    line.find("//").map(|at| &line[at..])
}

#[test]
fn every_docs_citation_in_a_rust_comment_resolves() {
    let mut failures = Vec::new();
    let mut seen = 0;
    for (name, text) in rust_sources() {
        for (n, line) in text.lines().enumerate() {
            let Some(comment) = comment_part(line) else {
                continue;
            };
            for (file, anchor) in doc_citations(comment) {
                seen += 1;
                if let Some(why) = resolve(&file, anchor.as_deref()) {
                    failures.push(format!("{name}:{}: {why}", n + 1));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The comments cite docs/facts.md dozens of times; finding none means the scan is broken.
    assert!(seen >= 40, "only {seen} docs/ citations found");
}

#[test]
fn no_rust_comment_cites_notes_outside_the_repository() {
    let mut failures = Vec::new();
    for (name, text) in rust_sources() {
        for (n, line) in text.lines().enumerate() {
            if let Some(comment) = comment_part(line)
                && let Some(g) = GONE.iter().find(|g| comment.contains(*g))
            {
                failures.push(format!("{name}:{}: cites {g}", n + 1));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `source` of every scenario and wire case, and the wire cases' README: what they cite
/// resolves, and none cites the notes that are not in the repository.
#[test]
fn fixture_sources_cite_sections_that_exist() {
    let mut files = Vec::new();
    for (dir, ext) in [("fixtures/scenarios", "toml"), ("fixtures/wire", "json")] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            panic!("no {dir}");
        };
        files.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext)),
        );
    }
    files.push(root().join("fixtures/wire/README.md"));
    files.sort();
    let mut failures = Vec::new();
    let mut seen = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let name = path
            .strip_prefix(root())
            .unwrap_or(path)
            .display()
            .to_string();
        for (file, anchor) in doc_citations(&text) {
            seen += 1;
            if let Some(why) = resolve(&file, anchor.as_deref()) {
                failures.push(format!("{name}: {why}"));
            }
        }
        for g in GONE.iter().filter(|g| text.contains(*g)) {
            failures.push(format!("{name}: cites {g}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        seen >= 20,
        "only {seen} docs/ citations found in the fixtures"
    );
}

#[test]
fn links_between_the_docs_resolve() {
    let mut failures = Vec::new();
    let Ok(entries) = std::fs::read_dir(root().join("docs")) else {
        panic!("no docs/ directory");
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let own = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            let target = &tail[..end];
            rest = &tail[end..];
            if target.contains("://") || target.contains('/') && !target.starts_with("#") {
                continue; // another site, or a path outside docs/ (not checked here)
            }
            let (file, anchor) = match target.split_once('#') {
                Some(("", a)) => (own.as_str(), Some(a)),
                Some((f, a)) => (f, Some(a)),
                None => (target, None),
            };
            if !file.ends_with(".md") {
                continue;
            }
            if let Some(why) = resolve(file, anchor) {
                failures.push(format!("docs/{own}: ]({target}): {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The resolver itself: a missing file, a missing section and a good citation.
#[test]
fn the_resolver_tells_good_citations_from_bad_ones() {
    assert_eq!(resolve("facts.md", Some("faults")), None);
    assert!(resolve("facts.md", Some("no-such-section")).is_some());
    assert!(resolve("no-such-page.md", None).is_some());
    assert_eq!(
        doc_citations("see docs/facts.md#job-types. And docs/provenance.md."),
        vec![
            ("facts.md".to_string(), Some("job-types".to_string())),
            ("provenance.md".to_string(), None)
        ]
    );
    assert_eq!(
        slug(" Rows retagged by the audit (issue 16 §6)"),
        "rows-retagged-by-the-audit-issue-16-6"
    );
    let a = anchors("# A\n```\n# not a heading\n```\n## A\n");
    assert!(a.contains("a") && a.contains("a-1") && !a.contains("not-a-heading"));
}
