//! WS-Addressing endpoint references as WS-Management uses them to name a CIM instance:
//! an `a:Address` and `a:ReferenceParameters` holding `w:ResourceURI` and `w:SelectorSet`.

use super::ns;
use super::writer::{escape_attr_into, escape_into};
use super::xml::Element;

/// A reference to one instance: where (address), what class (resource URI) and which one
/// (selectors, i.e. the key properties).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Epr {
    /// Usually the anonymous role URI; WinRM writes it in every EPR it emits.
    pub address: String,
    /// `w:ResourceURI`: the class of the referenced instance.
    pub resource_uri: String,
    /// `(Name, value)` in document order.
    pub selectors: Vec<(String, String)>,
}

impl Epr {
    /// An EPR with the anonymous address, as WinRM writes job references.
    pub fn anonymous(resource_uri: impl Into<String>, selectors: Vec<(String, String)>) -> Self {
        Epr {
            address: ns::ANONYMOUS.to_owned(),
            resource_uri: resource_uri.into(),
            selectors,
        }
    }

    /// Value of a selector. Selector names are matched ASCII-case-insensitively because
    /// WMI key names are case-insensitive (INFERRED for WinRM; harmless for exact clients).
    pub fn selector(&self, name: &str) -> Option<&str> {
        self.selectors
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads an EPR from the element that holds `a:Address` and `a:ReferenceParameters` as
    /// direct children (winrm.exe and libvirt's form), or from an element wrapping an
    /// `a:EndpointReference` that holds them (r4sd/go-wsman's form, wsman.md §1.1).
    pub fn from_element(el: &Element) -> Result<Epr, String> {
        let holder = el.child(ns::ADDRESSING, "EndpointReference").unwrap_or(el);
        let params = holder
            .child(ns::ADDRESSING, "ReferenceParameters")
            .ok_or_else(|| format!("{} has no a:ReferenceParameters", el.clark_name()))?;
        let resource_uri = params
            .child(ns::WSMAN, "ResourceURI")
            .map(|r| r.text_trimmed().to_owned())
            .ok_or_else(|| format!("{} has no w:ResourceURI", el.clark_name()))?;
        let selectors = match params.child(ns::WSMAN, "SelectorSet") {
            Some(set) => parse_selector_set(set)?,
            None => Vec::new(),
        };
        Ok(Epr {
            address: holder
                .child(ns::ADDRESSING, "Address")
                .map(|a| a.text_trimmed().to_owned())
                .unwrap_or_default(),
            resource_uri,
            selectors,
        })
    }

    /// Writes `a:Address` and `a:ReferenceParameters` (no wrapper), assuming the `a:` and
    /// `w:` prefixes are bound by an ancestor.
    pub fn write_children(&self, out: &mut String) {
        out.push_str("<a:Address>");
        escape_into(out, &self.address);
        out.push_str("</a:Address><a:ReferenceParameters><w:ResourceURI>");
        escape_into(out, &self.resource_uri);
        out.push_str("</w:ResourceURI><w:SelectorSet>");
        for (name, value) in &self.selectors {
            out.push_str("<w:Selector Name=\"");
            escape_attr_into(out, name);
            out.push_str("\">");
            escape_into(out, value);
            out.push_str("</w:Selector>");
        }
        out.push_str("</w:SelectorSet></a:ReferenceParameters>");
    }
}

/// Reads `w:Selector Name="…"` children. Values are trimmed: no WMI key has surrounding
/// whitespace, and pretty-printing clients would otherwise never match.
pub fn parse_selector_set(set: &Element) -> Result<Vec<(String, String)>, String> {
    set.children_named(ns::WSMAN, "Selector")
        .map(|s| {
            let name = s
                .attr("Name")
                .ok_or_else(|| "w:Selector without a Name attribute".to_owned())?;
            Ok((name.to_owned(), s.text_trimmed().to_owned()))
        })
        .collect()
}
