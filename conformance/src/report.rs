//! Reports: the human table (stdout), JUnit XML and JSON files, and the progress display
//! (stderr: one live line on a terminal, plain lines otherwise).

use serde::Serialize;

// The progress display lives with the runner that drives it (so the runner does not depend
// on the reports); it is still reached here.
pub use crate::runner::Progress;
use crate::runner::{Divergence, ScenarioReport, Status};

/// The whole run, as the JSON report writes it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub target: String,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub ms: u64,
    pub scenarios: Vec<ScenarioReport>,
    /// Replays only: simulator vs recording, step by step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<Vec<Divergence>>,
}

impl RunReport {
    pub fn new(target: &str, scenarios: Vec<ScenarioReport>, ms: u64) -> RunReport {
        let count = |s: Status| scenarios.iter().filter(|r| r.status == s).count();
        RunReport {
            target: target.to_string(),
            passed: count(Status::Passed),
            failed: count(Status::Failed),
            skipped: count(Status::Skipped),
            ms,
            scenarios,
            differences: None,
        }
    }

    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Passed => "ok",
        Status::Failed => "FAIL",
        Status::Skipped => "skip",
    }
}

/// The human table: scenario, step, result, ms; failures and skip reasons under their row.
pub fn table(r: &RunReport) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut notes: Vec<(usize, String)> = Vec::new();
    for sc in &r.scenarios {
        if sc.steps.is_empty() {
            rows.push([
                sc.name.clone(),
                "-".into(),
                status_word(sc.status).into(),
                sc.ms.to_string(),
            ]);
            if let Some(why) = &sc.reason {
                notes.push((rows.len() - 1, why.clone()));
            }
        }
        for (i, st) in sc.steps.iter().enumerate() {
            rows.push([
                if i == 0 {
                    sc.name.clone()
                } else {
                    String::new()
                },
                format!("{}. {}", st.index, st.label),
                status_word(st.status).into(),
                st.ms.to_string(),
            ]);
            for f in &st.failures {
                notes.push((rows.len() - 1, f.clone()));
            }
        }
        if !sc.steps.is_empty()
            && let Some(why) = &sc.reason
        {
            notes.push((rows.len() - 1, why.clone()));
        }
        for d in &sc.divergences {
            notes.push((
                rows.len().saturating_sub(1),
                format!("replay divergence: {d}"),
            ));
        }
    }
    let head = ["scenario", "step", "result", "ms"];
    let mut w = head.map(str::len);
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i]
                .max(c.chars().count())
                .min(if i == 1 { 70 } else { 48 });
        }
    }
    let fit = |s: &str, n: usize| {
        let len = s.chars().count();
        if len > n {
            let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
            t.push('…');
            t
        } else {
            format!("{s}{}", " ".repeat(n - len))
        }
    };
    let mut out = String::new();
    let line = |c: [&str; 4]| {
        format!(
            "{}  {}  {}  {:>w3$}\n",
            fit(c[0], w[0]),
            fit(c[1], w[1]),
            fit(c[2], w[2]),
            c[3],
            w3 = w[3]
        )
    };
    out.push_str(&line(head));
    out.push_str(&format!("{}\n", "-".repeat(w.iter().sum::<usize>() + 6)));
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
        for (_, n) in notes.iter().filter(|(r, _)| *r == i) {
            out.push_str(&format!("    ↳ {n}\n"));
        }
    }
    out.push_str(&format!(
        "\n{} scenarios against {}: {} passed, {} failed, {} skipped in {:.1} s\n",
        r.scenarios.len(),
        r.target,
        r.passed,
        r.failed,
        r.skipped,
        r.ms as f64 / 1000.0
    ));
    if let Some(diffs) = &r.differences {
        out.push_str(&difference_text(diffs));
    }
    out
}

/// The difference report (simulator vs recording) as text.
pub fn difference_text(diffs: &[Divergence]) -> String {
    let mut out = String::from("\nDifference report (simulator vs recording): ");
    if diffs.is_empty() {
        out.push_str(
            "no divergence; every rule the steps exercised is confirmed by the recording\n",
        );
        return out;
    }
    out.push_str(&format!("{} divergent step(s)\n", diffs.len()));
    for d in diffs {
        out.push_str(&format!("  {} step {}: {}\n", d.scenario, d.step, d.label));
        for x in &d.differences {
            out.push_str(&format!("      {x}\n"));
        }
        out.push_str(&format!("      model: {}\n", d.provenance));
    }
    out
}

pub use replica_client::wsman::escape as xml_escape;

/// JUnit XML: one `testsuite` for the run, one `testcase` per scenario, step timings and
/// failures in the body.
pub fn junit(r: &RunReport) -> String {
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"replica-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">\n",
        r.scenarios.len(),
        r.failed,
        r.skipped,
        secs(r.ms)
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">\n",
        xml_escape(&format!("replica-conformance {}", r.target)),
        r.scenarios.len(),
        r.failed,
        r.skipped,
        secs(r.ms)
    ));
    for sc in &r.scenarios {
        out.push_str(&format!(
            "    <testcase classname=\"scenarios\" name=\"{}\" time=\"{}\">\n",
            xml_escape(&sc.name),
            secs(sc.ms)
        ));
        match sc.status {
            Status::Skipped => out.push_str(&format!(
                "      <skipped message=\"{}\"/>\n",
                xml_escape(sc.reason.as_deref().unwrap_or("skipped"))
            )),
            Status::Failed => {
                let mut lines: Vec<String> = Vec::new();
                if let Some(r) = &sc.reason {
                    lines.push(r.clone());
                }
                for st in &sc.steps {
                    for f in &st.failures {
                        lines.push(format!("step {} ({}): {f}", st.index, st.label));
                    }
                }
                for d in &sc.divergences {
                    lines.push(format!("replay divergence: {d}"));
                }
                let first = lines.first().cloned().unwrap_or_else(|| "failed".into());
                out.push_str(&format!(
                    "      <failure message=\"{}\" type=\"conformance\">{}</failure>\n",
                    xml_escape(&first),
                    xml_escape(&lines.join("\n"))
                ));
            }
            Status::Passed => {}
        }
        if !sc.steps.is_empty() {
            let steps: Vec<String> = sc
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "{}. {} {} {} ms",
                        s.index,
                        s.label,
                        status_word(s.status),
                        s.ms
                    )
                })
                .collect();
            out.push_str(&format!(
                "      <system-out>{}</system-out>\n",
                xml_escape(&steps.join("\n"))
            ));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

pub fn json(r: &RunReport) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{StepObservation, StepReport};

    fn sample() -> RunReport {
        let step = |i: usize, status: Status, failures: Vec<&str>| StepReport {
            index: i,
            label: format!("Step <{i}> & \"more\""),
            status,
            failures: failures.into_iter().map(str::to_string).collect(),
            ms: 7,
            observed: StepObservation::default(),
            model: None,
        };
        let sc = |name: &str, status: Status, reason: Option<&str>, steps| ScenarioReport {
            name: name.into(),
            tags: vec![],
            status,
            reason: reason.map(str::to_string),
            steps,
            ms: 12,
            divergences: vec![],
            recording: None,
            binding: Default::default(),
            lab_hosts: Default::default(),
        };
        RunReport::new(
            "sim",
            vec![
                sc(
                    "a-ok",
                    Status::Passed,
                    None,
                    vec![step(1, Status::Passed, vec![])],
                ),
                sc(
                    "b-bad",
                    Status::Failed,
                    None,
                    vec![
                        step(1, Status::Passed, vec![]),
                        step(2, Status::Failed, vec!["ReturnValue 0 (expected 4096) <&>"]),
                    ],
                ),
                sc(
                    "c-skip",
                    Status::Skipped,
                    Some("sim_only: needs <control>"),
                    vec![],
                ),
            ],
            1234,
        )
    }

    #[test]
    fn table_has_every_step_and_the_summary() {
        let t = table(&sample());
        assert!(t.starts_with("scenario"), "{t}");
        assert!(t.contains("2. Step <2>"), "{t}");
        assert!(t.contains("FAIL"), "{t}");
        assert!(t.contains("↳ ReturnValue 0 (expected 4096)"), "{t}");
        assert!(t.contains("↳ sim_only"), "{t}");
        assert!(
            t.contains("3 scenarios against sim: 1 passed, 1 failed, 1 skipped in 1.2 s"),
            "{t}"
        );
    }

    #[test]
    fn junit_is_well_formed_and_counts() {
        let x = junit(&sample());
        let doc = roxmltree::Document::parse(&x).expect("well-formed JUnit");
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .expect("suite");
        assert_eq!(suite.attribute("tests"), Some("3"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("skipped"), Some("1"));
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 3);
        let failure = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("failure");
        assert!(failure.text().is_some_and(|t| t.contains("<&>")));
        assert!(cases[2].children().any(|n| n.has_tag_name("skipped")));
        assert_eq!(xml_escape("a\u{1}b"), "a\u{FFFD}b");
    }

    #[test]
    fn json_round_trips_counts() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).expect("json");
        assert_eq!(v["failed"], 1);
        assert_eq!(v["scenarios"][1]["steps"][1]["status"], "failed");
        assert_eq!(v["scenarios"][2]["reason"], "sim_only: needs <control>");
    }
}
