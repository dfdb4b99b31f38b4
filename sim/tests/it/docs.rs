//! Documentation that is generated from the model must not drift from it.

use replica_core::diagram::{self, Format};
use std::path::PathBuf;

const FENCE_OPEN: &str = "```mermaid\n";
const FENCE_CLOSE: &str = "\n```";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/state-machine.md")
}

/// `docs/state-machine.md` holds `replica-sim diagram`'s Mermaid output in its ```mermaid block.
/// `REPLICA_BLESS=1` rewrites the block from the model instead of failing.
#[test]
fn state_machine_doc_is_up_to_date() {
    let path = doc_path();
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let start = doc
        .find(FENCE_OPEN)
        .map(|i| i + FENCE_OPEN.len())
        .unwrap_or_else(|| panic!("{} has no ```mermaid block", path.display()));
    let end = doc[start..]
        .find(FENCE_CLOSE)
        .map(|i| start + i)
        .unwrap_or_else(|| panic!("{}: the ```mermaid block is not closed", path.display()));
    let want = diagram::render(Format::Mermaid, &[]);
    let want = want.trim_end_matches('\n');
    if &doc[start..end] == want {
        return;
    }
    if std::env::var_os("REPLICA_BLESS").is_some_and(|v| v == "1") {
        let fresh = format!("{}{want}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, fresh).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("rewrote the Mermaid block of {}", path.display());
        return;
    }
    let first = doc[start..end]
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .map_or_else(
            || "the block has a different number of lines".to_string(),
            |i| {
                format!(
                    "first difference at line {} of the block:\n  doc:   {}\n  model: {}",
                    i + 1,
                    doc[start..end].lines().nth(i).unwrap_or_default(),
                    want.lines().nth(i).unwrap_or_default()
                )
            },
        );
    panic!(
        "docs/state-machine.md is out of date with the transition table ({first}).\n\
         Regenerate it with:\n    REPLICA_BLESS=1 cargo test -p replica-sim --test it docs::\n\
         or paste the output of `cargo run -q -p replica-sim -- diagram` into its ```mermaid block."
    );
}
