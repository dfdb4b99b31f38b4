//! Property tests: every parser of this layer must turn any input into a value or an error,
//! never a panic, and anything echoed from a request must leave the response well-formed.
//!
//! Case counts are the bounded CI run; `REPLICA_FUZZ_CASES=N` raises every target to N cases
//! for a long run (README, docs/security.md): `REPLICA_FUZZ_CASES=200000 cargo test --release
//! -p replica-wsman -p replica-sim fuzz`. The simulator's `fuzz` module adds the topology loader, whole
//! requests through dispatch seeded from `fixtures/wire/`, and the regression fixtures of
//! `fixtures/fuzz/`.

use proptest::prelude::*;

use super::body::{EnumerateRequest, InvokeInput, PullRequest, ReleaseRequest};
use super::cimxml::EmbeddedInstance;
use super::envelope::Request;
use super::fault::{Fault, FaultKind};
use super::wql::Query;

/// Cases for one target: `default` in CI, `REPLICA_FUZZ_CASES` when set.
pub fn cases(default: u32) -> u32 {
    std::env::var("REPLICA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// The configuration of every fuzz target: `cases(default)` cases, no persistence file
/// (a failure is turned into a fixture under `fixtures/fuzz/` instead).
pub fn config(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One edit of an input: positions wrap around the input's length.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Removes the byte at the position.
    Delete(usize),
    /// Inserts a byte.
    Insert(usize, u8),
    /// Overwrites a byte.
    Replace(usize, u8),
    /// Cuts the input at the position.
    Truncate(usize),
    /// Copies a slice of the input elsewhere, which makes tags nest and repeat oddly.
    Splice(usize, usize, usize),
}

/// Bytes that are most likely to change the meaning of XML or WQL.
pub fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"<>/=\"'&;:![]{}?-*,. \n\tx0".to_vec()),
    ]
}

/// Any one [`Mutation`].
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0usize..64, any::<usize>())
            .prop_map(|(a, l, b)| Mutation::Splice(a, l, b)),
    ]
}

/// Applies `mutations` in order to a copy of `input`.
pub fn apply(input: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut v = input.to_vec();
    for m in mutations {
        let len = v.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *m {
            Mutation::Delete(i) if len > 0 => {
                v.remove(i % len);
            }
            Mutation::Delete(_) => {}
            Mutation::Insert(i, b) => v.insert(at(i), b),
            Mutation::Replace(i, b) => {
                if let Some(slot) = v.get_mut(if len == 0 { 0 } else { i % len }) {
                    *slot = b;
                }
            }
            Mutation::Truncate(i) => v.truncate(at(i)),
            Mutation::Splice(from, n, to) => {
                let start = at(from).min(len);
                let end = start.saturating_add(n).min(len);
                let piece: Vec<u8> = v.get(start..end).map(<[u8]>::to_vec).unwrap_or_default();
                let to = at(to);
                v.splice(to..to, piece);
            }
        }
    }
    v
}

/// Runs every consumer of a request, and checks that whatever the request can make us
/// echo (MessageID, Locale) still yields a well-formed fault envelope.
pub fn exercise_request(bytes: &[u8]) {
    let Ok(req) = Request::parse(bytes) else {
        return;
    };
    let body = req.body.as_ref();
    let _ = EnumerateRequest::parse(body);
    let _ = PullRequest::parse(body);
    let _ = ReleaseRequest::parse(body);
    if let (Some(uri), Some(method)) = (req.resource_uri.as_deref(), req.invoke_method())
        && let Ok(input) = InvokeInput::parse(body, uri, method)
    {
        for (_, v) in &input.params {
            if let super::body::ParamValue::Text(t) = v {
                let _ = EmbeddedInstance::parse(t);
            }
        }
    }
    if let Some(f) = EnumerateRequest::parse(body).ok().and_then(|e| e.filter) {
        let _ = Query::parse(&f.text);
    }
    let xml = Fault::new(FaultKind::SchemaValidationError).to_xml(&req.reply("G"));
    assert!(roxmltree::Document::parse(&xml).is_ok(), "{xml}");
}

/// Parses an embedded instance and reads every property every typed way.
pub fn exercise_instance(text: &str) {
    if let Ok(i) = EmbeddedInstance::parse(text) {
        for (name, _) in &i.properties {
            let _ = i.get_u16(name);
            let _ = i.get_bool(name);
            let _ = i.get_str_array(name);
        }
    }
}

/// Parses WQL and evaluates a WHERE clause against two made-up rows.
pub fn exercise_query(text: &str) {
    if let Ok(Query::Select {
        filter: Some(f), ..
    }) = Query::parse(text)
    {
        let _ = f.matches(&|_| Some("x".to_string()), &|_| true);
        let _ = f.matches(&|_| None, &|_| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::{PYPSRP_GET, PYWINRM_ENUMERATE, WINRM_EXE_INVOKE};
    use crate::writer::{Instance, Value, get_response};

    const INSTANCE: &str = r#"<?xml version="1.0"?><INSTANCE CLASSNAME="Msvm_ReplicationSettingData"><QUALIFIER NAME="Q" TYPE="boolean"><VALUE>true</VALUE></QUALIFIER><PROPERTY NAME="RecoveryConnectionPoint" TYPE="string"><VALUE>hv02.example</VALUE></PROPERTY><PROPERTY NAME="N" TYPE="uint16"><VALUE>4</VALUE></PROPERTY><PROPERTY.ARRAY NAME="IncludedDisks" TYPE="string"><VALUE.ARRAY><VALUE>a</VALUE><VALUE>b</VALUE></VALUE.ARRAY></PROPERTY.ARRAY></INSTANCE>"#;

    const QUERIES: &[&str] = &[
        "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '9C7D3E22-5B1A'",
        r#"select Name, ElementName from Msvm_ComputerSystem where Name="a""b" and X <> 'it''s' AND Y != 'c:\\d'"#,
        "ASSOCIATORS OF {Msvm_ComputerSystem.CreationClassName='Msvm_ComputerSystem',Name='8FF5'} WHERE AssocClass = Msvm_SystemDevice ResultClass = Msvm_VirtualSystemSettingData",
    ];

    proptest! {
        #![proptest_config(config(2048))]

        #[test]
        fn request_parser_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
            exercise_request(&bytes);
        }

        #[test]
        fn request_parser_survives_mutated_envelopes(
            which in 0usize..3,
            mutations in prop::collection::vec(mutation(), 1..8),
        ) {
            let base = [WINRM_EXE_INVOKE, PYPSRP_GET, PYWINRM_ENUMERATE];
            let input = base.get(which).copied().unwrap_or(PYPSRP_GET);
            exercise_request(&apply(input.as_bytes(), &mutations));
        }

        #[test]
        fn cimxml_parser_survives(
            mutations in prop::collection::vec(mutation(), 0..8),
            junk in ".{0,200}",
        ) {
            exercise_instance(&junk);
            let mutated = apply(INSTANCE.as_bytes(), &mutations);
            exercise_instance(&String::from_utf8_lossy(&mutated));
        }

        #[test]
        fn wql_parser_survives(
            which in 0usize..3,
            mutations in prop::collection::vec(mutation(), 0..6),
            junk in ".{0,120}",
        ) {
            exercise_query(&junk);
            let base = QUERIES.get(which).copied().unwrap_or("");
            let mutated = apply(base.as_bytes(), &mutations);
            exercise_query(&String::from_utf8_lossy(&mutated));
        }

        #[test]
        fn any_text_round_trips_through_the_writer(text in ".{0,80}") {
            let inst = Instance {
                class: "C".into(),
                resource_uri: "urn:c".into(),
                props: vec![("P".into(), Value::Text(text.clone().into()))],
            };
            let xml = get_response(&crate::writer::ReplyHeader { message_guid: "G", relates_to: Some(&text), lang: None }, &inst);
            let doc = roxmltree::Document::parse(&xml);
            prop_assert!(doc.is_ok(), "{}", xml);
            let expected: String = text
                .chars()
                .map(|c| if (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}') { '\u{FFFD}' } else { c })
                .collect();
            let found = doc.ok().and_then(|d| {
                d.descendants()
                    .find(|n| n.has_tag_name(("urn:c", "P")))
                    .map(|n| n.text().unwrap_or("").to_owned())
            });
            prop_assert_eq!(found, Some(expected));
        }
    }
}
