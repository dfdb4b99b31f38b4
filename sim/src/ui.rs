//! The live page at `/_replica/ui`: plain HTML, CSS and JS embedded in the binary, no
//! front-end build step and no network access beyond the simulator's own control API.
//!
//! The page polls `GET /_replica/v1/state` and `GET /_replica/v1/journal?since=N` every 500 ms
//! (sending `X-Replica-World` when opened as `/_replica/ui?world=NAME`), reads the state
//! machine once from `GET /_replica/v1/diagram?format=mermaid`, and draws hosts, VMs, jobs with
//! their progress, the 22 states with the current ones highlighted, the journal and the changes
//! it has seen. Server data reaches the DOM only as text nodes, never as HTML.

use replica_core::{
    EnabledState, ReplicationHealth, ReplicationMode, ReplicationState, ReturnCode,
};
use serde_json::json;

/// The page template; `__REPLICA_ENUMS__` is replaced by [`enums_json`].
pub const PAGE: &str = include_str!("ui/page.html");

const ENUMS_PLACEHOLDER: &str = "__REPLICA_ENUMS__";

/// The WMI enumerations the page shows, from the model itself, so the page never carries a
/// second copy of a name or an alias.
pub fn enums_json() -> String {
    let states: Vec<_> = ReplicationState::ALL
        .iter()
        .map(|s| {
            json!({
                "value": s.number(),
                "name": s.ident(),
                "label": s.label(),
                "alias": s.alias(),
            })
        })
        .collect();
    let codes: Vec<_> = ReturnCode::ALL
        .iter()
        .map(|c| json!({ "value": c.number(), "label": c.label() }))
        .collect();
    let modes: Vec<_> = ReplicationMode::ALL
        .iter()
        .map(|m| json!({ "value": m.number(), "name": m.ident(), "label": m.label() }))
        .collect();
    let health: Vec<_> = ReplicationHealth::ALL
        .iter()
        .map(|h| json!({ "value": h.number(), "name": h.ident(), "label": h.label() }))
        .collect();
    let power: Vec<_> = EnabledState::ALL
        .iter()
        .map(|p| json!({ "value": p.number(), "name": p.ident(), "label": p.label() }))
        .collect();
    json!({
        "states": states,
        "return_codes": codes,
        "modes": modes,
        "health": health,
        "power": power,
    })
    .to_string()
}

/// The page as served.
pub fn page() -> String {
    // Inside <script type="application/json"> only `</` could end the element early.
    let data = enums_json().replace('<', "\\u003c");
    PAGE.replacen(ENUMS_PLACEHOLDER, &data, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_safe() {
        let p = page();
        assert!(!p.contains(ENUMS_PLACEHOLDER));
        assert!(p.contains("\"alias\":\"WaitingForFailback\""));
        assert!(p.contains("\"alias\":\"FailbackCompleted\""));
        // No CDN, no remote fonts or scripts: everything is in the binary.
        for needle in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!PAGE.contains(needle), "the page must not load `{needle}`");
        }
        // Server data is set as text, never parsed as HTML.
        for needle in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!PAGE.contains(needle), "the page must not use `{needle}`");
        }
        assert!(PAGE.contains("X-Replica-World"));
        assert!(PAGE.contains("/_replica/v1/state"));
        assert!(PAGE.contains("/_replica/v1/journal?since="));
    }
}
