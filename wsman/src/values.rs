//! Values exchanged with callers: instances, method parameters and results (selectors and
//! EPRs are [`crate::epr`]'s, re-exported here for the client).
//! They carry no Hyper-V knowledge: a class is a name and a bag of properties.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::epr::{Epr, SelectorSet};
pub use crate::request::{EprMode, Param};

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

    /// The text as a `u64`, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    /// The text as an `i64`, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    /// The text as a `u32`, if it is one.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_text().and_then(|s| s.trim().parse().ok())
    }

    /// The text as a `u16`, if it is one.
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

    /// The reference, if this is one.
    pub fn as_epr(&self) -> Option<&Epr> {
        match self {
            PropValue::Ref(e) => Some(e),
            _ => None,
        }
    }

    /// `xsi:nil` (or an empty array).
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
    /// Properties by name (as the server spelled them).
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

    /// Property `name` as text (names compare ASCII case-insensitively).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(PropValue::as_text)
    }

    /// Property `name` as a `u16`.
    pub fn u16(&self, name: &str) -> Option<u16> {
        self.get(name).and_then(PropValue::as_u16)
    }

    /// Property `name` as a `u32`.
    pub fn u32(&self, name: &str) -> Option<u32> {
        self.get(name).and_then(PropValue::as_u32)
    }

    /// Property `name` as a `u64`.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(PropValue::as_u64)
    }

    /// Property `name` as a boolean.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(PropValue::as_bool)
    }
}

/// One enumeration item. Which variant arrives depends on [`EprMode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnumItem {
    /// The object only.
    Instance(Instance),
    /// Its reference only.
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

    /// The object, when the item carries one.
    pub fn instance(&self) -> Option<&Instance> {
        match self {
            EnumItem::Instance(i) | EnumItem::InstanceAndEpr(i, _) => Some(i),
            EnumItem::Epr(_) => None,
        }
    }

    /// The reference, when the item carries one.
    pub fn epr(&self) -> Option<&Epr> {
        match self {
            EnumItem::Epr(e) | EnumItem::InstanceAndEpr(_, e) => Some(e),
            EnumItem::Instance(_) => None,
        }
    }
}

/// Options of an enumeration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumOpts {
    /// Send `w:OptimizeEnumeration` so the first items come in the EnumerateResponse.
    pub optimize: bool,
    /// `w:MaxElements` (Enumerate, when optimised) and `n:MaxElements` (Pull). `None` sends
    /// nothing and lets the server choose (WinRM's default is believed to be 1 per Pull).
    pub max_elements: Option<u32>,
    /// Objects, references or both.
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
    /// The items of this page, in order.
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

/// A reference parameter to the object `epr` names.
impl From<&Epr> for Param {
    fn from(epr: &Epr) -> Self {
        Param::Epr(epr.clone())
    }
}

/// A method's `{Method}_OUTPUT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeOutput {
    /// `ReturnValue` (0 done, 4096 job started, else an error code).
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
    /// `wsmid:ProtocolVersion`.
    pub protocol_version: Option<String>,
    /// `wsmid:ProductVendor`.
    pub product_vendor: Option<String>,
    /// `wsmid:ProductVersion`.
    pub product_version: Option<String>,
    /// Every child of `IdentifyResponse` by local name (WinRM adds `SecurityProfiles`, ...).
    pub fields: BTreeMap<String, String>,
}
