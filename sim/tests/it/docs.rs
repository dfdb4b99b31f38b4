//! Documentation that is generated from the model must not drift from it.

use replica_core::diagram::{self, Format};
use std::path::PathBuf;

const FENCE_OPEN: &str = "```mermaid\n";
const FENCE_CLOSE: &str = "\n```";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/state-machine.md")
}

/// `docs/state-machine.md` holds `replica-sim diagram`'s Mermaid output in its ```mermaid block.
/// The whole document is the snapshot and the expected text is the document with that block
/// drawn from the model now, so prose edits never fail the test and `UPDATE_EXPECT=1` (the
/// workspace's one bless switch, expect-test's) rewrites only the block.
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
    let fresh = format!(
        "{}{}{}",
        &doc[..start],
        want.trim_end_matches('\n'),
        &doc[end..]
    );
    expect_test::expect_file![path].assert_eq(&fresh);
}
