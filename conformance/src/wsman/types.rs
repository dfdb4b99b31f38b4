//! Values exchanged with callers: selectors, EPRs, instances, method parameters and results.
//! They carry no Hyper-V knowledge: a class is a name and a bag of properties.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ns;

/// Ordered selector set (`w:SelectorSet`). Order is kept because it is what goes on the wire
/// and what a recording shows; lookups ignore ASCII case because WMI key names do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorSet(pub Vec<(String, String)>);

impl SelectorSet {
    pub fn new() -> Self {
        SelectorSet(Vec::new())
    }

    /// Builder-style append.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((name.into(), value.into()));
        self
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Value of the selector `name` (ASCII case-insensitive, first match).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for SelectorSet {
    fn from(pairs: [(K, V); N]) -> Self {
        SelectorSet(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> From<Vec<(K, V)>> for SelectorSet {
    fn from(pairs: Vec<(K, V)>) -> Self {
        SelectorSet(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// A WS-Addressing endpoint reference as WinRM writes it for WMI objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epr {
    /// `a:Address`, normally the anonymous role URI.
    pub address: String,
    /// `a:ReferenceParameters/w:ResourceURI`.
    pub resource_uri: String,
    /// `a:ReferenceParameters/w:SelectorSet`.
    pub selectors: SelectorSet,
}

impl Epr {
    pub fn new(resource_uri: impl Into<String>, selectors: impl Into<SelectorSet>) -> Self {
        Epr {
            address: ns::ANONYMOUS.to_string(),
            resource_uri: resource_uri.into(),
            selectors: selectors.into(),
        }
    }

    pub fn selector(&self, name: &str) -> Option<&str> {
        self.selectors.get(name)
    }

    /// Class name: the last path segment of the resource URI.
    pub fn class(&self) -> &str {
        self.resource_uri
            .rsplit('/')
            .next()
            .unwrap_or(&self.resource_uri)
    }
}

/// One property value of an instance or one out-parameter.
///
/// The wire carries no schema, so a property that appears once is a scalar and one repeated
/// as siblings is an `Array`; a one-element array therefore reads as a scalar. Use
/// [`PropValue::values`] when a property is known to be an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum PropValue {
    /// `xsi:nil="true"`.
    Null,
    /// Plain text, as sent (numbers, booleans and enums are decimal or `true`/`false` text).
    Text(String),
    /// `cim:Datetime` (also `cim:Date` / `cim:Time`) text.
    Datetime(String),
    /// `cim:Interval` text (an xs:duration such as `P0DT0H0M2S`).
    Interval(String),
    /// An endpoint reference (`a:Address` + `a:ReferenceParameters`).
    Ref(Epr),
    /// Repeated sibling elements, in document order; entries may be `Null`.
    Array(Vec<PropValue>),
    /// Element content this client does not model (e.g. an embedded object written as
    /// child elements), kept as the element's raw XML so that nothing is lost.
    Xml(String),
}

impl PropValue {
    /// Text of a `Text`, `Datetime` or `Interval` value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            PropValue::Text(s) | PropValue::Datetime(s) | PropValue::Interval(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    pub fn as_u32(&self) -> Option<u32> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    pub fn as_u16(&self) -> Option<u16> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    /// `true`/`false` (and `1`/`0`, which XML Schema booleans allow).
    pub fn as_bool(&self) -> Option<bool> {
        match self.as_text()?.trim() {
            "true" | "1" | "True" | "TRUE" => Some(true),
            "false" | "0" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    pub fn as_epr(&self) -> Option<&Epr> {
        match self {
            PropValue::Ref(e) => Some(e),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, PropValue::Null)
    }

    /// The value as a list: an `Array`'s entries, nothing for `Null`, or the scalar alone.
    pub fn values(&self) -> Vec<&PropValue> {
        match self {
            PropValue::Array(v) => v.iter().collect(),
            PropValue::Null => Vec::new(),
            other => vec![other],
        }
    }
}

/// A WMI instance as read from a Get, an enumeration item or an embedded element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Local name of the instance element (`Msvm_ConcreteJob`).
    pub class: String,
    /// Namespace URI of the instance element; WinRM uses the class resource URI.
    pub namespace: String,
    pub props: BTreeMap<String, PropValue>,
}

impl Instance {
    /// Property by exact name, falling back to an ASCII case-insensitive match because WMI
    /// property names are case-insensitive.
    pub fn get(&self, name: &str) -> Option<&PropValue> {
        self.props.get(name).or_else(|| {
            self.props
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(PropValue::as_text)
    }

    pub fn u16(&self, name: &str) -> Option<u16> {
        self.get(name).and_then(PropValue::as_u16)
    }

    pub fn u32(&self, name: &str) -> Option<u32> {
        self.get(name).and_then(PropValue::as_u32)
    }

    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(PropValue::as_u64)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(PropValue::as_bool)
    }
}

/// One enumeration item. Which variant arrives depends on [`EprMode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnumItem {
    Instance(Instance),
    Epr(Epr),
    /// `EnumerateObjectAndEPR`: a `w:Item` holding both.
    InstanceAndEpr(Instance, Epr),
}

impl EnumItem {
    /// The object, when the item carries one.
    pub fn into_instance(self) -> Option<Instance> {
        match self {
            EnumItem::Instance(i) | EnumItem::InstanceAndEpr(i, _) => Some(i),
            EnumItem::Epr(_) => None,
        }
    }

    pub fn instance(&self) -> Option<&Instance> {
        match self {
            EnumItem::Instance(i) | EnumItem::InstanceAndEpr(i, _) => Some(i),
            EnumItem::Epr(_) => None,
        }
    }

    pub fn epr(&self) -> Option<&Epr> {
        match self {
            EnumItem::Epr(e) | EnumItem::InstanceAndEpr(_, e) => Some(e),
            EnumItem::Instance(_) => None,
        }
    }
}

/// `w:EnumerationMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EprMode {
    /// No `w:EnumerationMode`: objects only.
    #[default]
    Objects,
    /// `EnumerateEPR`, as libvirt uses to build EPR parameters.
    Epr,
    /// `EnumerateObjectAndEPR`.
    ObjectAndEpr,
}

/// Options of an enumeration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumOpts {
    /// Send `w:OptimizeEnumeration` so the first items come in the EnumerateResponse.
    pub optimize: bool,
    /// `w:MaxElements` (Enumerate, when optimised) and `n:MaxElements` (Pull). `None` sends
    /// nothing and lets the server choose (WinRM's default is believed to be 1 per Pull).
    pub max_elements: Option<u32>,
    pub epr_mode: EprMode,
    /// Safety stop for a server that never ends a sequence: the enumeration fails after this
    /// many Pulls instead of looping forever.
    pub max_pulls: u32,
}

impl Default for EnumOpts {
    fn default() -> Self {
        EnumOpts {
            optimize: true,
            max_elements: Some(32000),
            epr_mode: EprMode::Objects,
            max_pulls: 10_000,
        }
    }
}

/// One page of an enumeration: an EnumerateResponse or a PullResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumPage {
    pub items: Vec<EnumItem>,
    /// `n:EnumerationContext`, when the server sent one.
    pub context: Option<String>,
    /// `n:EndOfSequence` (in `w:` or `n:`, both are accepted) was present.
    pub end_of_sequence: bool,
}

impl EnumPage {
    /// The context to Pull with next, if the sequence goes on. A page with EndOfSequence is
    /// final even if it repeats the context (WinRM does so in optimised responses); a page
    /// without a context is final too (what WinRb/WinRM relies on).
    pub fn next_context(&self) -> Option<&str> {
        if self.end_of_sequence {
            None
        } else {
            self.context.as_deref()
        }
    }
}

/// A method parameter (`Invoke`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Escaped text (numbers, enums, booleans, strings).
    Text(String),
    /// A reference: `a:Address` + `a:ReferenceParameters` directly under the parameter
    /// element, with no `a:EndpointReference` wrapper (winrm.exe and libvirt form).
    Epr {
        resource_uri: String,
        selectors: SelectorSet,
    },
    /// A CIM-XML `<INSTANCE …>` string, sent as CDATA as libvirt does.
    EmbeddedInstance(String),
    /// `xsi:nil="true"`.
    Nil,
    /// An array parameter: the element repeated once per entry. Nested arrays are refused.
    Array(Vec<Param>),
}

impl Param {
    pub fn text(s: impl Into<String>) -> Self {
        Param::Text(s.into())
    }

    pub fn epr(epr: &Epr) -> Self {
        Param::Epr {
            resource_uri: epr.resource_uri.clone(),
            selectors: epr.selectors.clone(),
        }
    }
}

/// A method's `{Method}_OUTPUT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeOutput {
    pub return_value: u32,
    /// The `Job` out-parameter when it is a reference (4096 "transition started").
    pub job: Option<Epr>,
    /// Every out-parameter except `ReturnValue` (so `Job` appears here too).
    pub out: BTreeMap<String, PropValue>,
}

impl InvokeOutput {
    /// `InstanceID` selector of the job reference, as libvirt reads it.
    pub fn job_instance_id(&self) -> Option<&str> {
        self.job.as_ref().and_then(|j| j.selector("InstanceID"))
    }
}

/// What `Identify` returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyInfo {
    pub protocol_version: Option<String>,
    pub product_vendor: Option<String>,
    pub product_version: Option<String>,
    /// Every child of `IdentifyResponse` by local name (WinRM adds `SecurityProfiles`, ...).
    pub fields: BTreeMap<String, String>,
}
