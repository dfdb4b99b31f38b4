//! Namespace URIs, action URIs and resource-URI helpers.
//!
//! Responses are matched on these URIs, never on prefixes: WinRM, the simulator and recordings
//! may all spell prefixes differently (docs/facts.md#request-headers).

/// SOAP 1.2 envelope (`s:`).
pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing 2004/08 (`a:`), the version WinRM speaks.
pub const ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// DMTF WS-Management (`w:`).
pub const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// Microsoft WS-Management extensions (`p:` in request headers: DataLocale, SessionId...).
pub const MS_WSMAN: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
/// WS-Enumeration (`n:`).
pub const ENUMERATION: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
/// WS-Transfer (`x:`).
pub const TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// WinRM's fault detail namespace (`f:WSManFault`).
pub const WSMAN_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
/// WS-Management Identify (`wsmid:`).
pub const IDENTITY: &str = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd";
/// XML Schema instance (`xsi:nil`, `xsi:type`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// CIM binding common types (`cim:Datetime`, `cim:Interval`).
pub const CIM_COMMON: &str = "http://schemas.dmtf.org/wbem/wscim/1/common";
/// The `xml:` namespace (for `xml:lang`), fixed by the XML spec.
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";

/// Anonymous reply address used in every request's `a:ReplyTo` and in EPR parameters.
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// The WQL filter dialect WinRM understands.
pub const WQL_DIALECT: &str = "http://schemas.microsoft.com/wbem/wsman/1/WQL";

/// Action URIs of the operations this client sends.
pub mod action {
    pub const GET: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";
    pub const ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
    pub const PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
    pub const RELEASE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
}

/// Prefix of every WMI resource URI.
pub const WMI_BASE: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi";
/// The WMI namespace of Hyper-V's v2 provider.
pub const VIRTUALIZATION_V2: &str = "root/virtualization/v2";

/// Resource URI of a class in `root/virtualization/v2`, e.g.
/// `class_uri("Msvm_ConcreteJob")`.
pub fn class_uri(class: &str) -> String {
    class_uri_in(VIRTUALIZATION_V2, class)
}

/// Resource URI of a class in any WMI namespace (`root/cimv2`, ...).
pub fn class_uri_in(wmi_namespace: &str, class: &str) -> String {
    format!("{WMI_BASE}/{}/{class}", wmi_namespace.trim_matches('/'))
}

/// The `…/root/virtualization/v2/*` URI that WQL enumerations must use (a class URI with a WQL
/// filter is a fault on real hosts, docs/facts.md#enumeration).
pub fn ns_wildcard_uri() -> String {
    class_uri("*")
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
        assert_eq!(
            class_uri_in("/root/cimv2/", "Win32_OperatingSystem"),
            "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_OperatingSystem"
        );
    }
}
