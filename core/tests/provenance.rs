//! Provenance that can be checked: every passage the code quotes from a Microsoft page, written
//! `<page>.md «the page's words»` in a rule's source or in a comment of core/ or sim/, must be on
//! that page. The pages' relevant lines are kept verbatim in `fixtures/pages/excerpts.txt`
//! (made and re-checked against MicrosoftDocs/win32 by `scripts/doc_excerpts.py`), so a DOC
//! claim whose words are not on its page fails here, offline.
//!
//! What the rules of a DOC row are, and the list of Inferred rows with the lab run that would
//! settle each, are in docs/provenance.md.

use replica_core::table::{RULES, Source, sources};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PAGE_DIR: &str = "desktop-src/HyperV_v2/";
/// A citation is an excerpt, not a copy of the page.
const MAX_QUOTE: usize = 200;
/// Shorter passages would match almost any page.
const MIN_QUOTE: usize = 12;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The same markdown-insensitive form as `scripts/doc_excerpts.py`: HTML tags become a space,
/// a link keeps its text and loses its target, emphasis, escapes and brackets go, and runs of
/// white space become one space.
fn normalise(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '<'
            && let Some(end) = chars[i..].iter().position(|&d| d == '>')
        {
            out.push(' ');
            i += end + 1;
            continue;
        }
        if c == ']' && chars.get(i + 1) == Some(&'(') {
            // Skip the link target, which may itself hold parentheses.
            let mut depth = 0usize;
            let mut j = i + 1;
            while j < chars.len() {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if !matches!(c, '*' | '\\' | '[' | ']' | '`') {
            out.push(c);
        }
        i += 1;
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The fixture: page file name → its kept lines, normalised; and the commit it names.
struct Excerpts {
    commit: Option<String>,
    pages: BTreeMap<String, Vec<String>>,
}

fn parse_excerpts(text: &str) -> Excerpts {
    let mut commit = None;
    let mut pages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("// source: ") {
            let page = path.strip_prefix(PAGE_DIR).unwrap_or(path).to_string();
            pages.entry(page.clone()).or_default();
            current = Some(page);
        } else if line.starts_with("//") {
            if let Some(at) = line.find("commit ") {
                let hex: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect();
                if hex.len() == 40 {
                    commit = Some(hex);
                }
            }
        } else if let Some(page) = &current
            && !line.trim().is_empty()
        {
            pages
                .get_mut(page)
                .expect("entry made at its source line")
                .push(normalise(line));
        }
    }
    Excerpts { commit, pages }
}

fn excerpts() -> Excerpts {
    let path = root().join("fixtures/pages/excerpts.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_excerpts(&text)
}

/// One `<page>.md «words»` found in some text.
#[derive(Debug)]
struct Citation {
    page: String,
    words: String,
}

/// Every citation in `text`, plus a complaint for each `«` that does not follow a page name or
/// is not closed: a quotation nobody can check is not allowed.
fn citations(text: &str) -> (Vec<Citation>, Vec<String>) {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('«') {
        let before = &rest[..open];
        let after = &rest[open + '«'.len_utf8()..];
        let page = before
            .strip_suffix(' ')
            .and_then(|b| {
                let start = b
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                    .map_or(0, |k| k + 1);
                let name = &b[start..];
                (name.ends_with(".md") && name.len() > 3).then_some(name)
            })
            .map(str::to_string);
        let Some(close) = after.find('»') else {
            bad.push(format!("unclosed « in: {text}"));
            break;
        };
        let words = after[..close].to_string();
        // `<page>.md «words»` written as a pattern in prose is not a citation.
        let placeholder = before.trim_end().ends_with(">.md");
        match page {
            _ if placeholder => {}
            Some(page) => found.push(Citation { page, words }),
            None => bad.push(format!("«{words}» does not follow a <page>.md name")),
        }
        rest = &after[close + '»'.len_utf8()..];
    }
    (found, bad)
}

/// Why a citation does not hold against the excerpts, if it does not.
fn check(c: &Citation, ex: &Excerpts) -> Option<String> {
    let n = c.words.chars().count();
    if !(MIN_QUOTE..=MAX_QUOTE).contains(&n) {
        return Some(format!(
            "{} «{}»: {n} characters, want {MIN_QUOTE}..={MAX_QUOTE}",
            c.page, c.words
        ));
    }
    let Some(lines) = ex.pages.get(&c.page) else {
        return Some(format!(
            "{} «{}»: no excerpt of this page in fixtures/pages/excerpts.txt",
            c.page, c.words
        ));
    };
    let want = normalise(&c.words);
    if lines.iter().any(|l| l.contains(&want)) {
        None
    } else {
        Some(format!("{} «{}»: not on the page", c.page, c.words))
    }
}

/// core/src and sim/src, each file with its comment lines joined (a citation in a comment may
/// wrap) and string escapes of `"` undone.
fn source_texts() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for dir in ["core/src", "sim/src"] {
        collect_rs(&root().join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, join_comment_lines(&text).replace("\\\"", "\""))
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A comment line that follows another comment line is appended to it after one space, so a
/// citation may wrap across `///` lines.
fn join_comment_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_comment = false;
    for line in text.lines() {
        let t = line.trim_start();
        if in_comment && t.starts_with("//") {
            let body = t
                .strip_prefix("///")
                .or_else(|| t.strip_prefix("//!"))
                .or_else(|| t.strip_prefix("//"))
                .unwrap_or(t);
            out.push(' ');
            out.push_str(body.trim_start());
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
        in_comment = line.contains("//");
    }
    out.push('\n');
    out
}

#[test]
fn every_rule_citation_is_on_its_page() {
    let ex = excerpts();
    let mut failures = Vec::new();
    // Rows, preconditions and refusal policies alike.
    for (id, source) in sources() {
        let (found, bad) = citations(source.text());
        failures.extend(bad.into_iter().map(|b| format!("rule {id}: {b}")));
        for c in &found {
            if let Some(why) = check(c, &ex) {
                failures.push(format!("rule {id}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_doc_rule_starts_with_a_citation_of_its_page() {
    for (id, source) in sources() {
        if let Source::Doc(text) = source {
            let (found, _) = citations(text);
            let first = found.first().map(|c| format!("{} «{}»", c.page, c.words));
            assert!(
                first.as_deref().is_some_and(|f| text.starts_with(f)),
                "DOC rule {id} must start with `<page>.md «words»`: {text}"
            );
        }
    }
}

#[test]
fn every_citation_in_core_and_sim_code_is_on_its_page() {
    let ex = excerpts();
    let mut failures = Vec::new();
    let mut seen = 0;
    for (path, text) in source_texts() {
        let (found, bad) = citations(&text);
        let name = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        failures.extend(bad.into_iter().map(|b| format!("{name}: {b}")));
        for c in &found {
            seen += 1;
            if let Some(why) = check(c, &ex) {
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The scan must have found the table's own citations; a broken scan finds none.
    assert!(seen > RULES.len() / 2, "only {seen} citations found");
}

#[test]
fn the_excerpts_name_their_commit_and_hold_only_pages_of_the_v2_folder() {
    let text = std::fs::read_to_string(root().join("fixtures/pages/excerpts.txt")).unwrap();
    let ex = parse_excerpts(&text);
    assert!(ex.commit.is_some(), "the header must name a 40-hex commit");
    for line in text.lines().filter(|l| l.starts_with("// source: ")) {
        assert!(line["// source: ".len()..].starts_with(PAGE_DIR), "{line}");
    }
    for (page, lines) in &ex.pages {
        assert!(!lines.is_empty(), "{page} has no lines");
    }
}

/// The checker itself: a passage that is not on the page, a page with no excerpt, a quotation
/// without a page and a passage too long are each caught.
#[test]
fn the_checker_refuses_what_a_page_does_not_say() {
    let ex = parse_excerpts(
        "// copied verbatim from commit 47e64c189dcb1c1a42c221380ccf0ec81cc82d4b.\n\
         // source: desktop-src/HyperV_v2/x-page.md\n\
         Reverts the current failover, after this [**InitiateFailover**](y.md (v)) can be called again.\n",
    );
    let ok = citations("x-page.md «InitiateFailover can be called again»; INFERRED: more").0;
    assert_eq!(ok.len(), 1);
    assert_eq!(check(&ok[0], &ex), None);

    let not_said = citations("x-page.md «and the VM is turned off»").0;
    assert!(
        check(&not_said[0], &ex)
            .unwrap()
            .contains("not on the page")
    );

    let other_page = citations("y-page.md «InitiateFailover can be called again»").0;
    assert!(check(&other_page[0], &ex).unwrap().contains("no excerpt"));

    let long = format!("x-page.md «{}»", "can be called again ".repeat(11));
    assert!(
        check(&citations(&long).0[0], &ex)
            .unwrap()
            .contains("characters")
    );

    let (found, bad) = citations("as the page says «can be called again»");
    assert!(found.is_empty());
    assert_eq!(bad.len(), 1);
    let (_, unclosed) = citations("x-page.md «can be called again");
    assert_eq!(unclosed.len(), 1);
}

#[test]
fn normalise_ignores_markdown_but_keeps_words() {
    assert_eq!(
        normalise("<span id=\"K\"></span>**Kill** (5)"),
        "Kill (5)".to_string()
    );
    assert_eq!(
        normalise("the [**Msvm\\_Error**](/x/y(v=vs.85)) class"),
        "the Msvm_Error class"
    );
    assert_eq!(
        join_comment_lines("/// a «b\n    /// c» d\nfn x() {}\n"),
        "/// a «b c» d\nfn x() {}\n"
    );
}
