//! Fault plans as data: rules matched by host, method and VM, limited by a count or a
//! probability drawn from the world's seeded RNG.

use crate::rng::SimRng;
use serde::{Deserialize, Serialize};

/// One fault kind as data: its name on the wire, what it does, and the fields of a rule that
/// belong to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSpec {
    /// The `kind` of a rule, e.g. `fail_job`.
    pub name: &'static str,
    /// What it does, in words.
    pub description: &'static str,
    /// The rule fields that belong to this kind (besides [`FaultKind::COMMON_FIELDS`]).
    pub fields: &'static [&'static str],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// The method answers this ReturnValue and changes nothing.
    ReturnCode { code: u32 },
    /// The method starts its job, which ends in Exception (10) once it passes `after_percent`.
    FailJob {
        error_code: u16,
        #[serde(default = "default_description")]
        description: String,
        #[serde(default)]
        after_percent: u8,
    },
    /// The method starts its job, which does what it was asked but ends in JobState 32768
    /// Completed with Warnings, ErrorCode 0, the warning as its ErrorDescription.
    CompleteWithWarnings {
        #[serde(default = "default_warning")]
        description: String,
    },
    /// The answer is delayed (applied by the transport).
    Delay { ms: u64 },
    /// The connection is closed without an answer (applied by the transport).
    DropConnection,
    /// The host's replication service is unreachable: every method answers 32777.
    HostDown,
    /// The two hosts cannot reach each other: calls that need the peer answer 32777 and deltas
    /// stop flowing.
    Partition { a: String, b: String },
}

fn default_warning() -> String {
    "The operation completed with warnings (injected fault).".into()
}

fn default_description() -> String {
    "The operation failed (injected fault).".into()
}

impl FaultKind {
    /// Every kind: its name, what it does and its own fields, the one declaration the
    /// coverage report, the control API's validation and errors, and the OpenAPI check
    /// (sim/tests/it/control.rs) read. One row per variant of [`FaultKind`];
    /// `kinds_cover_every_variant` holds the two together.
    pub const KINDS: &'static [KindSpec] = &[
        KindSpec {
            name: "return_code",
            description: "The method answers this ReturnValue and changes nothing.",
            fields: &["code"],
        },
        KindSpec {
            name: "fail_job",
            description: "The method starts its job, which ends in Exception (10) once it passes after_percent.",
            fields: &["error_code", "description", "after_percent"],
        },
        KindSpec {
            name: "complete_with_warnings",
            description: "The method starts its job, which does what it was asked but ends in JobState 32768 (Completed with Warnings) with the warning as its ErrorDescription.",
            fields: &["description"],
        },
        KindSpec {
            name: "delay",
            description: "The answer is delayed.",
            fields: &["ms"],
        },
        KindSpec {
            name: "drop_connection",
            description: "The connection is closed without an answer.",
            fields: &[],
        },
        KindSpec {
            name: "host_down",
            description: "The host's replication service is unreachable: every method answers 32777.",
            fields: &[],
        },
        KindSpec {
            name: "partition",
            description: "The two hosts cannot reach each other: calls that need the peer answer 32777 and deltas stop flowing.",
            fields: &["a", "b"],
        },
    ];

    /// The fields every rule may carry, whatever its kind (see [`FaultSpec`]).
    pub const COMMON_FIELDS: &'static [&'static str] =
        &["kind", "host", "method", "vm", "count", "probability"];

    /// The kinds' names, in [`FaultKind::KINDS`] order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::KINDS.iter().map(|k| k.name)
    }

    /// The declaration of the kind named `name`.
    pub fn spec(name: &str) -> Option<&'static KindSpec> {
        Self::KINDS.iter().find(|k| k.name == name)
    }

    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::ReturnCode { .. } => "return_code",
            FaultKind::FailJob { .. } => "fail_job",
            FaultKind::CompleteWithWarnings { .. } => "complete_with_warnings",
            FaultKind::Delay { .. } => "delay",
            FaultKind::DropConnection => "drop_connection",
            FaultKind::HostDown => "host_down",
            FaultKind::Partition { .. } => "partition",
        }
    }
}

/// A rule as a test writes it (no id yet).
// No `deny_unknown_fields`: serde cannot combine it with the flattened kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    #[serde(default)]
    pub host: Option<String>,
    /// Method name, e.g. `InitiateFailback`; for reads, the WS-Management operation (`Get`,
    /// `Enumerate`, `Pull`).
    #[serde(default)]
    pub method: Option<String>,
    /// VM GUID or ElementName.
    #[serde(default)]
    pub vm: Option<String>,
    /// Fire at most this many times.
    #[serde(default)]
    pub count: Option<u32>,
    /// Fire with this probability (0..=1), drawn from the world's seeded RNG.
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(flatten)]
    pub kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultSpec,
    pub fired: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    #[error("probability must be between 0 and 1, got {0}")]
    Probability(String),
    #[error("fail_job after_percent must be 0..=100, got {0}")]
    Percent(u8),
    #[error("return_code {0} is not a documented return code (0, 4096, 32768-32779)")]
    Code(u32),
    #[error("return_code 4096 promises a job; use kind fail_job to make a job fail")]
    JobStarted,
    #[error("partition needs two different hosts")]
    Partition,
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), FaultSpecError> {
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(FaultSpecError::Probability(p.to_string()));
        }
        match &self.kind {
            FaultKind::FailJob { after_percent, .. } if *after_percent > 100 => {
                Err(FaultSpecError::Percent(*after_percent))
            }
            FaultKind::ReturnCode { code }
                if crate::enums::ReturnCode::from_number(*code).is_err() =>
            {
                Err(FaultSpecError::Code(*code))
            }
            // 4096 promises a job; a fault that only answers cannot keep that promise.
            FaultKind::ReturnCode { code: 4096 } => Err(FaultSpecError::JobStarted),
            FaultKind::Partition { a, b } if a.eq_ignore_ascii_case(b) => {
                Err(FaultSpecError::Partition)
            }
            _ => Ok(()),
        }
    }
}

impl FaultRule {
    fn applies_to(
        &self,
        host: &str,
        method: &str,
        vm_id: Option<&str>,
        vm_name: Option<&str>,
    ) -> bool {
        let s = &self.spec;
        if matches!(s.kind, FaultKind::Partition { .. }) {
            return false;
        }
        if s.count.is_some_and(|c| self.fired >= c) {
            return false;
        }
        let host_ok = s
            .host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host));
        let method_ok = s
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let vm_ok = s.vm.as_deref().is_none_or(|v| {
            vm_id.is_some_and(|id| id.eq_ignore_ascii_case(v)) || vm_name == Some(v)
        });
        host_ok && method_ok && vm_ok
    }
}

/// Finds the rules that fire for this call, counts them, and returns their kinds in rule order.
/// A probabilistic rule consumes one draw from `rng` each time it is considered, so the same
/// seed and the same calls fire the same faults.
pub fn draw(
    rules: &mut [FaultRule],
    rng: &mut SimRng,
    host: &str,
    method: &str,
    vm_id: Option<&str>,
    vm_name: Option<&str>,
) -> Vec<FaultKind> {
    let mut fired = Vec::new();
    for rule in rules.iter_mut() {
        if !rule.applies_to(host, method, vm_id, vm_name) {
            continue;
        }
        if let Some(p) = rule.spec.probability
            && rng.next_f64() >= p
        {
            continue;
        }
        rule.fired += 1;
        fired.push(rule.spec.kind.clone());
    }
    fired
}

/// Whether a partition rule separates the two hosts.
pub fn partitioned(rules: &[FaultRule], a: &str, b: &str) -> bool {
    rules.iter().any(|r| match &r.spec.kind {
        FaultKind::Partition { a: x, b: y } => {
            (x.eq_ignore_ascii_case(a) && y.eq_ignore_ascii_case(b))
                || (x.eq_ignore_ascii_case(b) && y.eq_ignore_ascii_case(a))
        }
        _ => false,
    })
}

#[cfg(test)]
mod kinds_tests {
    use super::FaultKind;

    #[test]
    fn kinds_cover_every_variant() {
        let every = [
            FaultKind::ReturnCode { code: 32768 },
            FaultKind::FailJob {
                error_code: 32768,
                description: String::new(),
                after_percent: 0,
            },
            FaultKind::CompleteWithWarnings {
                description: String::new(),
            },
            FaultKind::Delay { ms: 1 },
            FaultKind::DropConnection,
            FaultKind::HostDown,
            FaultKind::Partition {
                a: String::new(),
                b: String::new(),
            },
        ];
        let names: Vec<&str> = every.iter().map(FaultKind::name).collect();
        assert_eq!(names, FaultKind::names().collect::<Vec<_>>());
        for (kind, spec) in every.iter().zip(FaultKind::KINDS) {
            assert!(!spec.description.is_empty(), "{}", spec.name);
            // The declared fields are exactly what the variant carries on the wire.
            let json = serde_json::to_value(kind).expect("serialises");
            let mut carried: Vec<&str> = json
                .as_object()
                .expect("an object")
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "kind")
                .collect();
            let mut declared = spec.fields.to_vec();
            carried.sort_unstable();
            declared.sort_unstable();
            assert_eq!(carried, declared, "{}", spec.name);
        }
    }
}
