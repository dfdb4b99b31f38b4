//! A small CIM-XML encoder for embedded-instance parameters (`ParamKind::Instance`): the
//! `<INSTANCE CLASSNAME=…><PROPERTY NAME=… TYPE=…><VALUE>…</VALUE></PROPERTY>…</INSTANCE>` text
//! that libvirt and WMI clients pass as a string parameter (docs/facts.md#embedded-instances).
//!
//! Scenario files give property values as text; the CIM type written in `TYPE` comes from the
//! class pages (Msvm_ReplicationSettingData and friends). Unknown properties are strings.

use std::collections::BTreeMap;

use replica_wsman::cimxml::{CimValue, write_instance};

/// The CIM type of a property of the embedded classes the methods take.
pub fn cim_type(prop: &str) -> &'static str {
    const BOOLEAN: &[&str] = &[
        "CompressionEnabled",
        "BypassProxyServer",
        "ReplicateHostKvpItems",
        "AutoResynchronizeEnabled",
        "EnableWriteOrderPreservationAcrossDisks",
        "RecoveryServerEnabled",
    ];
    const UINT16: &[&str] = &[
        "RecoveryServerPortNumber",
        "AuthenticationType",
        "ReplicationInterval",
        "RecoveryHistory",
        "ApplicationConsistentSnapshotInterval",
        "AllowedAuthenticationType",
        "HttpPort",
        "HttpsPort",
        "ReplicationState",
        "ReplicationHealth",
    ];
    const UINT32: &[&str] = &["MonitoringInterval"];
    let is = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(prop));
    if is(BOOLEAN) {
        "boolean"
    } else if is(UINT16) {
        "uint16"
    } else if is(UINT32) {
        "uint32"
    } else {
        "string"
    }
}

/// Properties that are arrays on the class page, written as `PROPERTY.ARRAY` even with one
/// value.
fn is_array(prop: &str) -> bool {
    ["IncludedDisks", "NetworkSettings"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(prop))
}

/// Encodes an embedded instance. `props` maps a property name to its values: none is NULL,
/// one is a scalar (unless the property is an array), several an array. The CIM type of each
/// property is [`cim_type`]'s; the CIM-XML itself is written by the protocol crate's one
/// writer.
pub fn encode_instance(class: &str, props: &BTreeMap<String, Vec<String>>) -> String {
    let typed: Vec<(&str, &str, CimValue)> = props
        .iter()
        .map(|(name, values)| {
            let ty = cim_type(name);
            let value = if values.len() > 1 || is_array(name) {
                CimValue::Array(values.clone())
            } else if let Some(v) = values.first() {
                // Scenario files write booleans as PowerShell does (`True`); CIM-XML's are
                // lower case.
                CimValue::Scalar(if ty == "boolean" {
                    v.trim().to_ascii_lowercase()
                } else {
                    v.clone()
                })
            } else {
                CimValue::Null
            };
            (name.as_str(), ty, value)
        })
        .collect();
    write_instance(class, &typed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn scalars_arrays_nulls_and_escaping() {
        let xml = encode_instance(
            "Msvm_ReplicationSettingData",
            &props(&[
                ("RecoveryConnectionPoint", &["hv<02>&\"x\""]),
                ("ReplicationInterval", &["300"]),
                ("CompressionEnabled", &["True"]),
                ("IncludedDisks", &["a"]),
                ("CertificateThumbPrint", &[]),
            ]),
        );
        let doc = roxmltree::Document::parse(&xml).expect("well-formed");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "INSTANCE");
        assert_eq!(
            root.attribute("CLASSNAME"),
            Some("Msvm_ReplicationSettingData")
        );
        let prop = |name: &str| {
            root.children()
                .find(|n| n.attribute("NAME") == Some(name))
                .expect(name)
        };
        let rcp = prop("RecoveryConnectionPoint");
        assert_eq!(rcp.attribute("TYPE"), Some("string"));
        assert_eq!(
            rcp.first_element_child().and_then(|v| v.text()),
            Some("hv<02>&\"x\"")
        );
        assert_eq!(
            prop("ReplicationInterval").attribute("TYPE"),
            Some("uint16")
        );
        let ce = prop("CompressionEnabled");
        assert_eq!(ce.attribute("TYPE"), Some("boolean"));
        assert_eq!(
            ce.first_element_child().and_then(|v| v.text()),
            Some("true")
        );
        assert_eq!(prop("IncludedDisks").tag_name().name(), "PROPERTY.ARRAY");
        assert!(
            prop("CertificateThumbPrint")
                .first_element_child()
                .is_none()
        );
    }

    #[test]
    fn relationship_instance_id_keeps_backslashes() {
        let xml = encode_instance(
            "Msvm_ReplicationRelationship",
            &props(&[("InstanceID", &[r"Microsoft:ABC\HVR\1"])]),
        );
        assert!(xml.contains(r"Microsoft:ABC\HVR\1"), "{xml}");
    }
}
