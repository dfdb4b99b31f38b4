//! Embedded instances: CIM-XML (DSP0201 2.0, also WMI's "WMI-DTD 2.0", which uses the same
//! element names) `INSTANCE` fragments that clients pass as string parameters, e.g.
//! libvirt's `<INSTANCE CLASSNAME="…"><PROPERTY NAME="…" TYPE="string"><VALUE>…</VALUE>
//! </PROPERTY>…</INSTANCE>` inside CDATA (docs/facts.md#embedded-instances).

use super::writer::{escape_attr_into, escape_into};
use super::xml::{self, Element, Limits, XmlError};

/// A property value. CIM-XML carries every value as text; typing is the caller's business
/// (through the typed getters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CimValue {
    /// No VALUE (or VALUE.ARRAY) element: the property is NULL.
    Null,
    /// One VALUE.
    Scalar(String),
    /// A VALUE.ARRAY, in order.
    Array(Vec<String>),
}

/// A parsed embedded instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmbeddedInstance {
    /// The `CLASSNAME` attribute.
    pub class_name: String,
    /// In document order.
    pub properties: Vec<(String, CimValue)>,
}

/// Why an embedded instance was refused or a property could not be read as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimError {
    #[error("embedded instance is not well-formed XML: {0}")]
    /// The text is not well-formed XML (or breaks a limit).
    Xml(#[from] XmlError),
    #[error("embedded instance root is <{found}>, expected <INSTANCE>")]
    /// The root element is not `INSTANCE`.
    NotAnInstance {
        /// The root element's name.
        found: String,
    },
    #[error("<{element}> has no {attribute} attribute")]
    /// A required attribute (NAME, CLASSNAME) is missing.
    MissingAttribute {
        /// The element lacking it.
        element: &'static str,
        /// The attribute it lacks.
        attribute: &'static str,
    },
    #[error("property {property}: {message}")]
    /// A property element is malformed.
    BadProperty {
        /// The property's NAME.
        property: String,
        /// What is wrong with it.
        message: String,
    },
    #[error("property {property} is {found}, expected {expected}")]
    /// A scalar was asked of an array or the other way round.
    TypeMismatch {
        /// The property's NAME.
        property: String,
        /// What the caller asked for.
        expected: &'static str,
        /// What the instance holds.
        found: &'static str,
    },
    #[error("property {property} has value `{value}`, which is not a valid {expected}")]
    /// The value does not parse as the number type asked for.
    BadNumber {
        /// The property's NAME.
        property: String,
        /// The text found.
        value: String,
        /// The number type asked for (`uint16`, ...).
        expected: &'static str,
    },
}

impl EmbeddedInstance {
    /// Parses an embedded instance string (an optional `<?xml …?>` declaration is fine).
    pub fn parse(text: &str) -> Result<EmbeddedInstance, CimError> {
        // Embedded instances are small; a tighter element cap than for envelopes keeps a
        // hostile parameter from costing more than the envelope that carried it.
        let limits = Limits {
            max_depth: 16,
            max_elements: 4_096,
        };
        let root = xml::parse_str_with(text.trim_start_matches('\u{FEFF}'), limits)?;
        if root.ns.is_some() || root.local != "INSTANCE" {
            return Err(CimError::NotAnInstance {
                found: root.clark_name(),
            });
        }
        let class_name = root
            .attr("CLASSNAME")
            .ok_or(CimError::MissingAttribute {
                element: "INSTANCE",
                attribute: "CLASSNAME",
            })?
            .to_owned();
        let mut properties = Vec::with_capacity(root.children.len());
        for p in &root.children {
            if p.ns.is_some() {
                continue;
            }
            let element: &'static str = match &*p.local {
                "PROPERTY" => "PROPERTY",
                "PROPERTY.ARRAY" => "PROPERTY.ARRAY",
                "PROPERTY.REFERENCE" => "PROPERTY.REFERENCE",
                // QUALIFIER and anything unknown carry no property value.
                _ => continue,
            };
            let name = p
                .attr("NAME")
                .ok_or(CimError::MissingAttribute {
                    element,
                    attribute: "NAME",
                })?
                .to_owned();
            let value = match element {
                "PROPERTY" => scalar(p, &name)?,
                "PROPERTY.ARRAY" => array(p, &name)?,
                _ => reference(p),
            };
            properties.push((name, value));
        }
        Ok(EmbeddedInstance {
            class_name,
            properties,
        })
    }

    /// The value of a property; names match ASCII-case-insensitively, as in WMI.
    pub fn get(&self, name: &str) -> Option<&CimValue> {
        self.properties
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A scalar string; `Ok(None)` when the property is absent or NULL.
    pub fn get_str(&self, name: &str) -> Result<Option<&str>, CimError> {
        match self.get(name) {
            None | Some(CimValue::Null) => Ok(None),
            Some(CimValue::Scalar(s)) => Ok(Some(s)),
            Some(CimValue::Array(_)) => Err(CimError::TypeMismatch {
                property: name.to_owned(),
                expected: "a scalar",
                found: "an array",
            }),
        }
    }

    /// A string array; `Ok(None)` when absent or NULL.
    pub fn get_str_array(&self, name: &str) -> Result<Option<&[String]>, CimError> {
        match self.get(name) {
            None | Some(CimValue::Null) => Ok(None),
            Some(CimValue::Array(v)) => Ok(Some(v)),
            Some(CimValue::Scalar(_)) => Err(CimError::TypeMismatch {
                property: name.to_owned(),
                expected: "an array",
                found: "a scalar",
            }),
        }
    }

    /// A scalar property as `uint16`; `Ok(None)` when absent or NULL.
    pub fn get_u16(&self, name: &str) -> Result<Option<u16>, CimError> {
        self.get_num(name, "uint16")
    }

    /// A scalar property as `uint32`; `Ok(None)` when absent or NULL.
    pub fn get_u32(&self, name: &str) -> Result<Option<u32>, CimError> {
        self.get_num(name, "uint32")
    }

    /// A scalar property as `uint64`; `Ok(None)` when absent or NULL.
    pub fn get_u64(&self, name: &str) -> Result<Option<u64>, CimError> {
        self.get_num(name, "uint64")
    }

    /// A CIM boolean (`true`/`false`, any case, as WMI writes and reads them).
    pub fn get_bool(&self, name: &str) -> Result<Option<bool>, CimError> {
        let Some(raw) = self.get_str(name)? else {
            return Ok(None);
        };
        match raw.trim() {
            t if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
            t if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
            _ => Err(CimError::BadNumber {
                property: name.to_owned(),
                value: raw.to_owned(),
                expected: "boolean",
            }),
        }
    }

    fn get_num<T: std::str::FromStr>(
        &self,
        name: &str,
        expected: &'static str,
    ) -> Result<Option<T>, CimError> {
        let Some(raw) = self.get_str(name)? else {
            return Ok(None);
        };
        raw.trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| CimError::BadNumber {
                property: name.to_owned(),
                value: raw.to_owned(),
                expected,
            })
    }
}

fn scalar(p: &Element, name: &str) -> Result<CimValue, CimError> {
    let mut values = p
        .children
        .iter()
        .filter(|c| c.ns.is_none() && c.local == "VALUE");
    let value = values.next();
    if values.next().is_some() {
        return Err(CimError::BadProperty {
            property: name.to_owned(),
            message: "PROPERTY has more than one VALUE (use PROPERTY.ARRAY)".to_owned(),
        });
    }
    Ok(value.map_or(CimValue::Null, |v| CimValue::Scalar(v.text.to_string())))
}

fn array(p: &Element, name: &str) -> Result<CimValue, CimError> {
    let Some(va) = p
        .children
        .iter()
        .find(|c| c.ns.is_none() && c.local == "VALUE.ARRAY")
    else {
        return Ok(CimValue::Null);
    };
    let mut items = Vec::with_capacity(va.children.len());
    for v in &va.children {
        match (v.ns.is_none(), &*v.local) {
            (true, "VALUE") => items.push(v.text.to_string()),
            // Vec<String> has no hole to put it in; refusing beats silently shifting
            // every later element by one.
            (true, "VALUE.NULL") => {
                return Err(CimError::BadProperty {
                    property: name.to_owned(),
                    message: "VALUE.NULL inside VALUE.ARRAY is not supported".to_owned(),
                });
            }
            _ => {}
        }
    }
    Ok(CimValue::Array(items))
}

/// References inside embedded instances are tolerated but not interpreted: a plain VALUE
/// (a WMI object path string) is kept, a structured VALUE.REFERENCE reads as NULL.
fn reference(p: &Element) -> CimValue {
    p.children
        .iter()
        .find(|c| c.ns.is_none() && c.local == "VALUE")
        .map_or(CimValue::Null, |v| CimValue::Scalar(v.text.to_string()))
}

/// Writes an embedded instance the way libvirt (and so WMI) reads them: no declaration,
/// `PROPERTY` or `PROPERTY.ARRAY` with NAME and TYPE, NULL as a property without VALUE.
/// `props` is `(name, CIM type such as "string" or "uint16", value)`.
pub fn write_instance(class: &str, props: &[(&str, &str, CimValue)]) -> String {
    let mut out = String::with_capacity(64 + props.len() * 64);
    out.push_str("<INSTANCE CLASSNAME=\"");
    escape_attr_into(&mut out, class);
    out.push_str("\">");
    for (name, ty, value) in props {
        let element = if matches!(value, CimValue::Array(_)) {
            "PROPERTY.ARRAY"
        } else {
            "PROPERTY"
        };
        out.push('<');
        out.push_str(element);
        out.push_str(" NAME=\"");
        escape_attr_into(&mut out, name);
        out.push_str("\" TYPE=\"");
        escape_attr_into(&mut out, ty);
        out.push('"');
        match value {
            CimValue::Null => {
                out.push_str("/>");
                continue;
            }
            CimValue::Scalar(s) => {
                out.push_str("><VALUE>");
                escape_into(&mut out, s);
                out.push_str("</VALUE>");
            }
            CimValue::Array(items) => {
                out.push_str("><VALUE.ARRAY>");
                for item in items {
                    out.push_str("<VALUE>");
                    escape_into(&mut out, item);
                    out.push_str("</VALUE>");
                }
                out.push_str("</VALUE.ARRAY>");
            }
        }
        out.push_str("</");
        out.push_str(element);
        out.push('>');
    }
    out.push_str("</INSTANCE>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIBVIRT: &str = r#"<INSTANCE CLASSNAME="Msvm_ReplicationSettingData"><PROPERTY NAME="RecoveryConnectionPoint" TYPE="string"><VALUE>hv02.example</VALUE></PROPERTY><PROPERTY.ARRAY NAME="IncludedDisks" TYPE="string"><VALUE.ARRAY><VALUE>a</VALUE><VALUE>b</VALUE></VALUE.ARRAY></PROPERTY.ARRAY></INSTANCE>"#;

    fn parse(s: &str) -> EmbeddedInstance {
        match EmbeddedInstance::parse(s) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn libvirt_form() {
        let i = parse(LIBVIRT);
        assert_eq!(i.class_name, "Msvm_ReplicationSettingData");
        assert_eq!(
            i.get_str("recoveryconnectionpoint"),
            Ok(Some("hv02.example"))
        );
        let disks = i
            .get_str_array("IncludedDisks")
            .ok()
            .flatten()
            .map(<[String]>::to_vec);
        assert_eq!(disks, Some(vec!["a".to_string(), "b".to_string()]));
        assert!(matches!(
            i.get_str("IncludedDisks"),
            Err(CimError::TypeMismatch { .. })
        ));
        assert_eq!(i.get_str("Missing"), Ok(None));
    }

    #[test]
    fn wmi_dtd_with_declaration_qualifiers_nulls_and_refs() {
        let i = parse(
            r#"<?xml version="1.0" encoding="utf-16"?>
<INSTANCE CLASSNAME="Msvm_Error">
  <QUALIFIER NAME="Indication" TYPE="boolean"><VALUE>true</VALUE></QUALIFIER>
  <PROPERTY NAME="ErrorType" TYPE="uint16" PROPAGATED="true"><QUALIFIER NAME="Key" TYPE="boolean"><VALUE>true</VALUE></QUALIFIER><VALUE>4</VALUE></PROPERTY>
  <PROPERTY NAME="Message" TYPE="string"></PROPERTY>
  <PROPERTY NAME="Bad" TYPE="uint16"><VALUE>x4</VALUE></PROPERTY>
  <PROPERTY NAME="Flag" TYPE="boolean"><VALUE>TRUE</VALUE></PROPERTY>
  <PROPERTY.ARRAY NAME="None" TYPE="string"></PROPERTY.ARRAY>
  <PROPERTY.REFERENCE NAME="Ref" REFERENCECLASS="Msvm_ComputerSystem"><VALUE.REFERENCE><INSTANCENAME CLASSNAME="Msvm_ComputerSystem"/></VALUE.REFERENCE></PROPERTY.REFERENCE>
</INSTANCE>"#,
        );
        assert_eq!(i.class_name, "Msvm_Error");
        assert_eq!(i.get_u16("ErrorType"), Ok(Some(4)));
        assert_eq!(i.get("Message"), Some(&CimValue::Null));
        assert_eq!(i.get_u16("Message"), Ok(None));
        assert_eq!(
            i.get_u16("Bad"),
            Err(CimError::BadNumber {
                property: "Bad".into(),
                value: "x4".into(),
                expected: "uint16"
            })
        );
        assert_eq!(i.get_bool("flag"), Ok(Some(true)));
        assert_eq!(i.get("None"), Some(&CimValue::Null));
        assert_eq!(i.get("Ref"), Some(&CimValue::Null));
        assert_eq!(i.properties.len(), 6, "qualifiers are not properties");
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            EmbeddedInstance::parse("<CLASS NAME=\"x\"/>"),
            Err(CimError::NotAnInstance { .. })
        ));
        assert!(matches!(
            EmbeddedInstance::parse("<INSTANCE/>"),
            Err(CimError::MissingAttribute { .. })
        ));
        assert!(matches!(
            EmbeddedInstance::parse("not xml"),
            Err(CimError::Xml(_))
        ));
        assert!(matches!(
            EmbeddedInstance::parse(
                r#"<INSTANCE CLASSNAME="C"><PROPERTY TYPE="string"/></INSTANCE>"#
            ),
            Err(CimError::MissingAttribute {
                attribute: "NAME",
                ..
            })
        ));
        assert!(matches!(
            EmbeddedInstance::parse(
                r#"<INSTANCE CLASSNAME="C"><PROPERTY.ARRAY NAME="A" TYPE="string"><VALUE.ARRAY><VALUE.NULL/></VALUE.ARRAY></PROPERTY.ARRAY></INSTANCE>"#
            ),
            Err(CimError::BadProperty { .. })
        ));
        assert!(matches!(
            EmbeddedInstance::parse(r#"<!DOCTYPE x><INSTANCE CLASSNAME="C"/>"#),
            Err(CimError::Xml(XmlError::DoctypeForbidden { .. }))
        ));
    }

    #[test]
    fn writer_round_trip() {
        let xml = write_instance(
            "Msvm_Error",
            &[
                ("ErrorType", "uint16", CimValue::Scalar("4".into())),
                (
                    "Message",
                    "string",
                    CimValue::Scalar("a <b> & \"c\"".into()),
                ),
                ("ErrorSource", "string", CimValue::Null),
                (
                    "Args",
                    "string",
                    CimValue::Array(vec!["x".into(), "y&".into()]),
                ),
            ],
        );
        assert!(xml.starts_with(r#"<INSTANCE CLASSNAME="Msvm_Error"><PROPERTY NAME="ErrorType" TYPE="uint16"><VALUE>4</VALUE></PROPERTY>"#));
        let i = parse(&xml);
        assert_eq!(i.get_str("Message"), Ok(Some("a <b> & \"c\"")));
        assert_eq!(i.get("ErrorSource"), Some(&CimValue::Null));
        assert_eq!(
            i.get("Args"),
            Some(&CimValue::Array(vec!["x".into(), "y&".into()]))
        );
        assert!(roxmltree::Document::parse(&xml).is_ok());
    }
}
