//! The state machine drawn from the transition table, as Mermaid or Graphviz DOT. Every state of
//! `ReplicationState` and every operation of the table appears; current states can be
//! highlighted.

use crate::enums::ReplicationState;
use crate::table::{
    Effect, From, PRECONDITIONS, PolicySwitch, REFUSAL_POLICIES, RULES, Rule, Scope, To,
};
use std::collections::BTreeSet;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "mermaid" | "md" => Some(Format::Mermaid),
            "dot" | "graphviz" => Some(Format::Dot),
            _ => None,
        }
    }
}

fn node(s: ReplicationState) -> String {
    format!("S{}", s.number())
}

fn title(s: ReplicationState) -> String {
    match s.alias() {
        Some(a) => format!("{} {} ({a})", s.number(), s.label()),
        None => format!("{} {}", s.number(), s.label()),
    }
}

/// One edge of the drawing: from a node to a node with a label.
struct Edge {
    from: String,
    to: String,
    label: String,
}

const NONE_NODE: &str = "NoRel";
const PRE_NODE: &str = "PreFailover";
const HOST_NODE: &str = "Service";
const JOB_NODE: &str = "Job";
const VM_NODE: &str = "AnyState";

fn edges_of(r: &Rule) -> Vec<Edge> {
    let label = match r.job {
        Some(j) => format!("{} [{}] job {}", r.op.label(), r.id, j.number()),
        None => format!("{} [{}]", r.op.label(), r.id),
    };
    let from_nodes: Vec<String> = match (r.scope, r.from) {
        (Scope::Host, _) => vec![HOST_NODE.into()],
        (Scope::Job, _) => vec![JOB_NODE.into()],
        (_, From::States(s)) => s.iter().map(|&x| node(x)).collect(),
        (_, From::NoRelationship) => vec![NONE_NODE.into()],
        (_, From::Any) | (_, From::AnyRelationship) => vec![VM_NODE.into()],
    };
    let mut out = Vec::new();
    for f in from_nodes {
        let target = |t: To| -> String {
            match t {
                To::State(s) => node(s),
                To::PreFailover => PRE_NODE.into(),
                To::Removed => NONE_NODE.into(),
                To::ReverseOutcome => "Reversed".into(),
                To::Unchanged => f.clone(),
            }
        };
        match r.via {
            Some(v) if To::State(v) != r.to => {
                out.push(Edge {
                    from: f.clone(),
                    to: node(v),
                    label: label.clone(),
                });
                out.push(Edge {
                    from: node(v),
                    to: target(r.to),
                    label: format!(
                        "job {} completes [{}]",
                        r.job.map_or(0, |j| j.number()),
                        r.id
                    ),
                });
            }
            _ => out.push(Edge {
                from: f.clone(),
                to: target(r.to),
                label: label.clone(),
            }),
        }
    }
    out
}

const PRE_NOTE: &str = "Preconditions";

/// The lines of the preconditions note: the table's preconditions in the order they are
/// checked before any row, its refusal policies, and the conditions its effects carry. They
/// apply to every edge, so they are drawn once rather than on each.
fn precondition_lines() -> Vec<String> {
    let mut out = vec!["Checked in order before any row, first failure answers".to_string()];
    for (n, p) in PRECONDITIONS.iter().enumerate() {
        let exempt: Vec<String> = p.exempt.iter().map(|e| e.label()).collect();
        let mut line = format!("{}. {} answers {}", n + 1, p.id, p.answered.label());
        if !exempt.is_empty() {
            line.push_str(&format!(", not for {}", exempt.join(", ")));
        }
        out.push(line);
    }
    for p in REFUSAL_POLICIES {
        let when = match p.when {
            PolicySwitch::WrongStateAsFailingJob => "profile wrong_state = failing-job",
        };
        out.push(format!(
            "then {} with {when}, a refusal {} becomes a job failing with it",
            p.id, p.code
        ));
    }
    for r in RULES {
        for e in r.effects {
            if let Effect::PeerState { from, to } = e {
                let from: Vec<String> = from.iter().map(|s| s.number().to_string()).collect();
                out.push(format!(
                    "effect of {} moves the peer to {} only from {}",
                    r.id,
                    to.number(),
                    from.join(" or ")
                ));
            }
        }
    }
    out
}

/// Renders the diagram; `highlight` lists states to mark (the world's current states).
pub fn render(format: Format, highlight: &[ReplicationState]) -> String {
    let edges: Vec<Edge> = RULES.iter().flat_map(edges_of).collect();
    let marked: BTreeSet<u16> = highlight.iter().map(|s| s.number()).collect();
    let mut out = String::new();
    let extra = [
        (NONE_NODE, "no relationship (mode None)"),
        (PRE_NODE, "state before the failover"),
        ("Reversed", "roles swapped (profile choice c)"),
        (HOST_NODE, "replication service (host)"),
        (JOB_NODE, "running job"),
        (VM_NODE, "any state"),
    ];
    match format {
        Format::Mermaid => {
            out.push_str("stateDiagram-v2\n");
            for s in ReplicationState::ALL {
                let _ = writeln!(out, "    state \"{}\" as {}", title(*s), node(*s));
            }
            for (id, text) in extra {
                let _ = writeln!(out, "    state \"{text}\" as {id}");
            }
            for e in &edges {
                let _ = writeln!(
                    out,
                    "    {} --> {} : {}",
                    e.from,
                    e.to,
                    e.label.replace(':', " ")
                );
            }
            let _ = writeln!(
                out,
                "    state \"preconditions of every edge\" as {PRE_NOTE}"
            );
            let _ = writeln!(out, "    note right of {PRE_NOTE}");
            for l in precondition_lines() {
                let _ = writeln!(out, "        {}", l.replace(':', " "));
            }
            out.push_str("    end note\n");
            if !marked.is_empty() {
                out.push_str("    classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px\n");
                for n in &marked {
                    let _ = writeln!(out, "    class S{n} current");
                }
            }
        }
        Format::Dot => {
            out.push_str(
                "digraph replication {\n    rankdir=LR;\n    node [shape=box, style=rounded];\n",
            );
            for s in ReplicationState::ALL {
                let style = if marked.contains(&s.number()) {
                    ", style=\"rounded,filled\", fillcolor=\"#ffd54f\""
                } else {
                    ""
                };
                let _ = writeln!(out, "    {} [label=\"{}\"{style}];", node(*s), title(*s));
            }
            for (id, text) in extra {
                let _ = writeln!(out, "    {id} [label=\"{text}\", shape=ellipse];");
            }
            for e in &edges {
                let _ = writeln!(
                    out,
                    "    {} -> {} [label=\"{}\"];",
                    e.from,
                    e.to,
                    e.label.replace('"', "'")
                );
            }
            let note: String = precondition_lines()
                .iter()
                .map(|l| format!("{}\\l", l.replace('"', "'")))
                .collect();
            let _ = writeln!(out, "    {PRE_NOTE} [label=\"{note}\", shape=note];");
            out.push_str("}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_every_rule_is_drawn_in_both_formats() {
        for f in [Format::Mermaid, Format::Dot] {
            let d = render(f, &[ReplicationState::FailbackComplete]);
            for s in ReplicationState::ALL {
                assert!(d.contains(&title(*s)), "{f:?} lacks state {s}");
            }
            for r in RULES {
                assert!(
                    d.contains(&format!("[{}]", r.id)),
                    "{f:?} lacks rule {}",
                    r.id
                );
                assert!(
                    d.contains(&r.op.label()),
                    "{f:?} lacks operation {}",
                    r.op.label()
                );
            }
        }
        for f in [Format::Mermaid, Format::Dot] {
            let d = render(f, &[]);
            for p in PRECONDITIONS {
                assert!(
                    d.contains(&format!(". {} answers", p.id)),
                    "{f:?} lacks {}",
                    p.id
                );
            }
            for p in REFUSAL_POLICIES {
                assert!(
                    d.contains(&format!("then {} with", p.id)),
                    "{f:?} lacks {}",
                    p.id
                );
            }
            assert!(d.contains("service-running answers 32777, not for StartService"));
            assert!(d.contains("moves the peer to 3 only from 1 or 2"));
        }
        assert!(
            render(Format::Mermaid, &[ReplicationState::FailbackComplete])
                .contains("class S14 current")
        );
        assert!(render(Format::Mermaid, &[]).contains("WaitingForFailback"));
    }
}
