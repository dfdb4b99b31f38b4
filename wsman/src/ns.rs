//! Namespace URIs and action URIs of WS-Management as WinRM speaks it.
//!
//! Everything in the protocol layer matches on these URIs, never on prefixes: winrm.exe, pywinrm
//! and pypsrp all pick different prefixes for the same namespaces (docs/facts.md#request-headers).

/// SOAP 1.2 envelope. WinRM speaks only SOAP 1.2.
pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing, the 2004/08 submission version (not the 2005/08 W3C one) used by WinRM.
pub const ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// WS-Transfer 2004/09 (Get).
pub const TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// WS-Eventing 2004/08: declared on WinRM envelopes (`e:`) although we never use it.
pub const EVENTING: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing";
/// WS-Enumeration 2004/09 (Enumerate, Pull, Release).
pub const ENUMERATION: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
/// DMTF WS-Management (DSP0226) schema namespace, the `w:` prefix.
pub const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// Microsoft extensions (MS-WSMV), the `p:` prefix at envelope level.
pub const MS_WSMAN: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
/// Microsoft `f:WSManFault` detail namespace.
pub const WSMAN_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
/// CIM binding common types (`cim:Datetime`, `cim:Interval`).
pub const CIM_COMMON: &str = "http://schemas.dmtf.org/wbem/wscim/1/common";
/// XML Schema instance (`xsi:nil`, `xsi:type`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The reserved `xml:` namespace (`xml:lang` on Locale and DataLocale).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// WS-Management Identify (no Action header; body `wsmid:Identify`).
pub const IDENTIFY: &str = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd";

/// The WQL filter dialect WinRM accepts with a `…/<namespace>/*` resource URI.
pub const WQL_DIALECT: &str = "http://schemas.microsoft.com/wbem/wsman/1/WQL";
/// DSP0226 says a `w:Filter` without a Dialect attribute is XPath 1.0.
/// WS-CIM binding (DSP0227): the association filter's elements.
pub const CIMBINDING: &str = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd";
/// DSP0227's association filter dialect.
pub const ASSOCIATION_DIALECT: &str =
    "http://schemas.dmtf.org/wbem/wsman/1/cimbinding/associationFilter";
/// DSP0226's selector filter dialect.
pub const SELECTOR_DIALECT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/SelectorFilter";
/// The XPath 1.0 dialect URI (the default when Dialect is absent).
pub const XPATH_DIALECT: &str = "http://www.w3.org/TR/1999/REC-xpath-19991116";
/// WS-Addressing anonymous role: the `a:To` of every response and the `a:Address` of EPRs.
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// Base of every WMI resource URI: `{WMI_BASE}root/virtualization/v2/Msvm_ConcreteJob`.
pub const WMI_BASE: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/";
/// The HTTP media type of a plain SOAP 1.2 envelope, exactly as every WinRM client sends it
/// and WinRM answers with (docs/facts.md#key-facts).
pub const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
/// Protocol version announced by Identify (the DMTF schema URI, as WinRM does).
pub const PROTOCOL_VERSION: &str = WSMAN;
/// The WMI namespace of Hyper-V's v2 provider.
pub const VIRTUALIZATION_V2: &str = "root/virtualization/v2";
/// `{WMI_BASE}{VIRTUALIZATION_V2}/`: a class name appended gives its resource URI (what
/// [`class_uri`] returns, for callers that format URIs in place).
pub const V2_BASE: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/";

/// Resource URI of a class in `root/virtualization/v2`, e.g. `class_uri("Msvm_ConcreteJob")`.
pub fn class_uri(class: &str) -> String {
    class_uri_in(VIRTUALIZATION_V2, class)
}

/// Resource URI of a class in any WMI namespace (`root/cimv2`, ...); slashes around the
/// namespace are tolerated so `/root/cimv2/` and `root/cimv2` give the same URI.
pub fn class_uri_in(wmi_namespace: &str, class: &str) -> String {
    format!("{WMI_BASE}{}/{class}", wmi_namespace.trim_matches('/'))
}

/// The `…/root/virtualization/v2/*` URI that WQL enumerations must use (a class URI with a WQL
/// filter is a fault on real hosts, docs/facts.md#enumeration).
pub fn ns_wildcard_uri() -> String {
    class_uri("*")
}

/// WS-Management fault detail URIs (`w:FaultDetail`).
pub mod detail {
    /// Selectors the class does not have.
    pub const UNEXPECTED_SELECTORS: &str =
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors";
    /// Key selectors missing.
    pub const INSUFFICIENT_SELECTORS: &str =
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InsufficientSelectors";
    /// A selector given twice.
    pub const DUPLICATE_SELECTORS: &str =
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/DuplicateSelectors";
    /// No such class or namespace.
    pub const INVALID_RESOURCE_URI: &str =
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI";
    /// A value of the wrong type or out of range.
    pub const INVALID_VALUE: &str =
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue";
    /// The response would exceed the request's MaxEnvelopeSize.
    pub const MAX_ENVELOPE_SIZE: &str =
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/MaxEnvelopeSize";
}

/// Action URIs (`a:Action`).
pub mod action {
    /// WS-Transfer Get.
    pub const GET: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";
    /// Its response.
    pub const GET_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse";
    /// WS-Enumeration Enumerate.
    pub const ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
    /// Its response.
    pub const ENUMERATE_RESPONSE: &str =
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse";
    /// WS-Enumeration Pull.
    pub const PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
    /// Its response.
    pub const PULL_RESPONSE: &str =
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse";
    /// WS-Enumeration Release.
    pub const RELEASE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
    /// Its response.
    pub const RELEASE_RESPONSE: &str =
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse";
    /// Header Action of `w:` faults (docs/facts.md#faults).
    pub const WSMAN_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
    /// Header Action of `a:` faults (docs/facts.md#faults).
    pub const ADDRESSING_FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";
    /// Header Action of `n:` faults (docs/facts.md#faults).
    pub const ENUMERATION_FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/fault";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            class_uri("Msvm_ConcreteJob"),
            "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ConcreteJob"
        );
        assert_eq!(
            ns_wildcard_uri(),
            "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/*"
        );
        assert_eq!(format!("{V2_BASE}X"), class_uri("X"));
        assert_eq!(
            class_uri_in("/root/cimv2/", "Win32_OperatingSystem"),
            "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_OperatingSystem"
        );
    }
}
