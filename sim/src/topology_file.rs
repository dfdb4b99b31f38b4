//! Topology files (`fixtures/topologies/*.toml`): TOML text to a [`TopologySpec`], with errors
//! that say where (file, line, column, field path), what is wrong and what was expected.
//!
//! Three layers can refuse a file, and all three end up at a line: the TOML syntax (the parser's
//! span), the shape (serde's span: an unknown field, a missing one, a wrong type), and the
//! meaning (core's [`TopologyError`] names a field path such as
//! `vms[2].replication.replica_host`, which is mapped back to the span of that value by walking
//! the spanned document).

use replica_core::topology::{TopologyError, TopologySpec};
use serde::Serialize;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A topology that was refused, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologyFileError {
    /// The file name as given (or `topology_toml` for a control API body).
    pub file: String,
    /// 1-based; 0 when the problem has no place in the text (the file cannot be read).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The field path, e.g. `vms[2].replication.replica_host`, when known.
    pub field: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
    /// The offending line of the file, for the reader's eyes.
    pub source_line: Option<String>,
}

impl std::fmt::Display for TopologyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for TopologyFileError {}

/// Line and column (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    // Step back to a character boundary: spans are byte offsets.
    let offset = (0..=offset)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

fn line_text(text: &str, line: usize) -> Option<String> {
    text.lines()
        .nth(line.checked_sub(1)?)
        .map(|l| l.trim_end().chars().take(200).collect())
}

fn located(
    file: &str,
    text: &str,
    span: Option<Range<usize>>,
    field: Option<String>,
    message: String,
) -> TopologyFileError {
    let (line, column) = span.map_or((0, 0), |s| position(text, s.start));
    TopologyFileError {
        file: file.to_string(),
        line,
        column,
        field,
        message,
        source_line: line_text(text, line),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `vms[2].replication.replica_host` → `vms`, `2`, `replication`, `replica_host`.
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        while let Some((ix, after)) = rest.split_once(']') {
            if let Ok(i) = ix.parse() {
                out.push(Segment::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

fn table_get<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// The span of the deepest value on `path` that the document has (a field left out points at
/// the table that should have held it).
fn span_of(root: &Spanned<DeTable<'_>>, path: &str) -> Range<usize> {
    let mut best = root.span();
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for seg in segments(path) {
        let next = match (&seg, table, value) {
            (Segment::Key(k), Some(t), _) => table_get(t, k),
            (Segment::Index(i), None, Some(v)) => v.get_ref().as_array().and_then(|a| a.get(*i)),
            _ => None,
        };
        let Some(next) = next else { break };
        best = next.span();
        table = next.get_ref().as_table();
        value = Some(next);
    }
    best
}

/// The field path of the innermost key or value whose span holds `offset`. Every node is
/// searched: a table's span covers only its header (`[[vms]]`), not the lines below it.
fn path_at(root: &Spanned<DeTable<'_>>, offset: usize) -> Option<String> {
    fn in_value(v: &Spanned<DeValue<'_>>, offset: usize, path: &str) -> Option<String> {
        if let Some(t) = v.get_ref().as_table()
            && let Some(p) = in_table(t, offset, path)
        {
            return Some(p);
        }
        if let Some(a) = v.get_ref().as_array() {
            for (i, item) in a.iter().enumerate() {
                if let Some(p) = in_value(item, offset, &format!("{path}[{i}]")) {
                    return Some(p);
                }
            }
        }
        v.span().contains(&offset).then(|| path.to_string())
    }
    fn in_table(t: &DeTable<'_>, offset: usize, path: &str) -> Option<String> {
        for (k, v) in t.iter() {
            let here = if path.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{path}.{}", k.get_ref())
            };
            if let Some(p) = in_value(v, offset, &here) {
                return Some(p);
            }
            if k.span().contains(&offset) {
                return Some(here);
            }
        }
        None
    }
    in_table(root.get_ref(), offset, "")
}

/// Parses and validates a topology. `file` names the source in errors.
pub fn parse(file: &str, text: &str) -> Result<TopologySpec, TopologyFileError> {
    // The spanned document is only built to locate an error: a 10,000-VM topology would
    // otherwise hold it in memory beside the spec and the world.
    let spec: TopologySpec = match toml::from_str(text) {
        Ok(spec) => spec,
        Err(e) => {
            let doc = DeTable::parse(text)
                .map_err(|e| located(file, text, e.span(), None, e.message().trim().to_string()))?;
            let field = e.span().and_then(|s| path_at(&doc, s.start));
            return Err(located(
                file,
                text,
                e.span(),
                field,
                e.message().trim().to_string(),
            ));
        }
    };
    // Build once with a fixed seed and time: only the validation matters here.
    if let Err(err) = spec.build(0, 0) {
        let doc = DeTable::parse(text)
            .map_err(|e| located(file, text, e.span(), None, e.message().trim().to_string()))?;
        return Err(from_model(file, text, &doc, &err));
    }
    Ok(spec)
}

fn from_model(
    file: &str,
    text: &str,
    doc: &Spanned<DeTable<'_>>,
    e: &TopologyError,
) -> TopologyFileError {
    let span = span_of(doc, &e.path);
    located(
        file,
        text,
        Some(span),
        Some(e.path.clone()),
        format!("{}; expected {}", e.problem, e.expected),
    )
}

/// Reads and parses a topology file.
pub fn load(path: &Path) -> Result<TopologySpec, TopologyFileError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TopologyFileError {
        file: name.clone(),
        line: 0,
        column: 0,
        field: None,
        message: format!("cannot read the file: {e}"),
        source_line: None,
    })?;
    parse(&name, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_split() {
        assert_eq!(
            segments("vms[2].replication.replica_host"),
            vec![
                Segment::Key("vms".into()),
                Segment::Index(2),
                Segment::Key("replication".into()),
                Segment::Key("replica_host".into()),
            ]
        );
        assert_eq!(segments("hosts"), vec![Segment::Key("hosts".into())]);
    }

    #[test]
    fn positions_count_characters() {
        let t = "a = 1\nbé = \"x\"\n";
        assert_eq!(position(t, 0), (1, 1));
        assert_eq!(position(t, 6), (2, 1));
        assert_eq!(position(t, 11), (2, 5));
        assert_eq!(position(t, 10_000), (3, 1));
    }

    #[test]
    fn every_shipped_topology_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/topologies");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures/topologies") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 1);
        parse("default.toml", crate::server::DEFAULT_TOPOLOGY).expect("embedded default");
    }

    /// Every file in `fixtures/topologies/invalid/` is refused at the line and with the words
    /// its first line announces: `# expect: LINE: TEXT`.
    #[test]
    fn invalid_topologies_are_refused_precisely() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/topologies/invalid");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("fixtures/topologies/invalid")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 10, "only {} invalid topologies", files.len());
        let mut wrong = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).expect("readable");
            let first = text.lines().next().unwrap_or_default();
            let Some((line, words)) = first
                .strip_prefix("# expect: ")
                .and_then(|r| r.split_once(": "))
            else {
                wrong.push(format!(
                    "{}: first line must be `# expect: LINE: TEXT`",
                    path.display()
                ));
                continue;
            };
            let line: usize = line.parse().unwrap_or(0);
            let err = match parse(&path.display().to_string(), &text) {
                Ok(_) => {
                    wrong.push(format!("{}: accepted", path.display()));
                    continue;
                }
                Err(e) => e,
            };
            let shown = err.to_string();
            if err.line != line
                || !shown.contains(words.trim())
                || !shown.starts_with(&format!("{}:{line}:", path.display()))
                || err.source_line.is_none()
            {
                wrong.push(format!(
                    "{}: expected line {line} saying `{}`, got `{shown}`",
                    path.display(),
                    words.trim()
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn unreadable_file_is_an_error_not_a_panic() {
        let e = load(Path::new("/nonexistent/topology.toml")).expect_err("missing");
        assert_eq!(e.line, 0);
        assert!(e.to_string().contains("cannot read"));
    }
}
