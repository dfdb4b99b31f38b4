//! Coverage: which rows of the transition table, which return codes and which fault kinds a
//! test suite exercised, with counts, and which it did not. Reads the table; restates nothing.

use crate::engine::Answer;
use crate::enums::ReturnCode;
use crate::faults::FaultKind;
use crate::table::{PRECONDITIONS, REFUSAL_POLICIES, RULES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Calls accepted or refused by each rule.
    pub rules: BTreeMap<String, u64>,
    pub codes: BTreeMap<u32, u64>,
    pub faults: BTreeMap<String, u64>,
    /// Calls refused by each precondition (or turned into a failing job by a refusal policy).
    #[serde(default)]
    pub preconditions: BTreeMap<String, u64>,
}

/// One more call for `id`. The key is copied only the first time: `entry` would want an owned
/// key on every call, an allocation per request on the simulator's hot path.
fn count(map: &mut BTreeMap<String, u64>, id: &str) {
    match map.get_mut(id) {
        Some(n) => *n += 1,
        None => {
            map.insert(id.to_string(), 1);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageReport {
    pub rules: Vec<Row>,
    pub return_codes: Vec<Row>,
    pub fault_kinds: Vec<Row>,
    /// Every precondition and refusal policy of the table, with the calls it refused.
    pub preconditions: Vec<Row>,
    pub rules_covered: usize,
    pub rules_total: usize,
    pub missing_rules: Vec<String>,
    pub missing_return_codes: Vec<u32>,
    pub missing_fault_kinds: Vec<String>,
    pub missing_preconditions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    pub description: String,
    pub count: u64,
}

impl Coverage {
    pub fn record(&mut self, answer: &Answer) {
        if let Some(r) = answer.rule {
            count(&mut self.rules, r);
        }
        if let Some(p) = answer.precondition {
            count(&mut self.preconditions, p);
        }
        *self.codes.entry(answer.code).or_default() += 1;
        for f in &answer.faults {
            self.record_fault(f);
        }
    }

    pub fn record_fault(&mut self, f: &FaultKind) {
        count(&mut self.faults, f.name());
    }

    pub fn report(&self) -> CoverageReport {
        let rules: Vec<Row> = RULES
            .iter()
            .map(|r| Row {
                id: r.id.to_string(),
                description: format!(
                    "{} ({}: {})",
                    r.op.label(),
                    r.source.kind(),
                    r.source.text()
                ),
                count: self.rules.get(r.id).copied().unwrap_or(0),
            })
            .collect();
        let return_codes: Vec<Row> = ReturnCode::ALL
            .iter()
            .map(|c| Row {
                id: c.number().to_string(),
                description: c.label().to_string(),
                count: self.codes.get(&c.number()).copied().unwrap_or(0),
            })
            .collect();
        let fault_kinds: Vec<Row> = FaultKind::KINDS
            .iter()
            .map(|k| Row {
                id: k.name.to_string(),
                description: k.description.to_string(),
                count: self.faults.get(k.name).copied().unwrap_or(0),
            })
            .collect();
        let pre = PRECONDITIONS.iter().map(|p| {
            let exempt: Vec<String> = p.exempt.iter().map(|e| e.label()).collect();
            (p.id, p.answered.label(), exempt, p.source)
        });
        let pol = REFUSAL_POLICIES
            .iter()
            .map(|p| (p.id, p.code.to_string(), Vec::new(), p.source));
        let preconditions: Vec<Row> = pre
            .chain(pol)
            .map(|(id, code, exempt, source)| Row {
                id: id.to_string(),
                description: format!(
                    "answers {code}{} ({}: {})",
                    if exempt.is_empty() {
                        String::new()
                    } else {
                        format!("; not for {}", exempt.join(", "))
                    },
                    source.kind(),
                    source.text()
                ),
                count: self.preconditions.get(id).copied().unwrap_or(0),
            })
            .collect();
        CoverageReport {
            missing_preconditions: preconditions
                .iter()
                .filter(|r| r.count == 0)
                .map(|r| r.id.clone())
                .collect(),
            preconditions,
            rules_covered: rules.iter().filter(|r| r.count > 0).count(),
            rules_total: rules.len(),
            missing_rules: rules
                .iter()
                .filter(|r| r.count == 0)
                .map(|r| r.id.clone())
                .collect(),
            missing_return_codes: return_codes
                .iter()
                .filter(|r| r.count == 0)
                .filter_map(|r| r.id.parse().ok())
                .collect(),
            missing_fault_kinds: fault_kinds
                .iter()
                .filter(|r| r.count == 0)
                .map(|r| r.id.clone())
                .collect(),
            rules,
            return_codes,
            fault_kinds,
        }
    }
}
