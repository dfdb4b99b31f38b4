//! Bodies of Enumerate, Pull, Release and custom-method (Invoke) requests.

use super::epr::Epr;
use super::fault::{Fault, FaultKind};
use super::ns;
use super::xml::Element;

/// A body that does not have the shape its action requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    /// What is wrong, in words a fault message can carry.
    pub message: String,
}

impl BodyError {
    fn new(message: impl Into<String>) -> Self {
        BodyError {
            message: message.into(),
        }
    }

    /// INFERRED: WinRM reports malformed bodies as SchemaValidationError.
    pub fn to_fault(&self) -> Fault {
        Fault::new(FaultKind::SchemaValidationError).with_message(self.message.clone())
    }
}

/// The `w:Filter` (or WS-Enumeration's own `n:Filter`) of an Enumerate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The Dialect attribute; DSP0226's default (XPath 1.0) when absent.
    pub dialect: String,
    /// The filter text (a WQL query for the WQL dialect).
    pub text: String,
    /// The `w:Filter` element itself, for dialects with structure (association, selector).
    pub element: Option<Element<'static>>,
}

/// `n:Enumerate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnumerateRequest {
    /// `w:OptimizeEnumeration`: the first items travel in the EnumerateResponse.
    pub optimize: bool,
    /// `w:MaxElements`: only meaningful with `optimize`.
    pub max_elements: Option<u32>,
    /// `w:Filter`, when the enumeration is filtered.
    pub filter: Option<Filter>,
    /// `w:EnumerationMode`: objects (the default), EPRs, or both.
    pub mode: EnumerationMode,
}

/// What each enumeration item is (DSP0226 §8.7, `w:EnumerationMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnumerationMode {
    /// No `w:EnumerationMode`: the objects.
    #[default]
    Objects,
    /// `EnumerateEPR`: an `a:EndpointReference` per item (libvirt, for EPR parameters).
    Epr,
    /// `EnumerateObjectAndEPR`: a `w:Item` holding the object then its `a:EndpointReference`
    /// (what the CIM cmdlets' WinRM client asks for, so it can invoke methods on the results).
    ObjectAndEpr,
}

impl EnumerateRequest {
    /// Reads an `n:Enumerate` body; `None` (no body) is refused.
    pub fn parse(body: Option<&Element>) -> Result<EnumerateRequest, BodyError> {
        let el = expect(body, ns::ENUMERATION, "Enumerate")?;
        let mut req = EnumerateRequest {
            optimize: el.child(ns::WSMAN, "OptimizeEnumeration").is_some(),
            max_elements: max_elements(el.child(ns::WSMAN, "MaxElements"))?,
            ..EnumerateRequest::default()
        };
        let filter = el
            .child(ns::WSMAN, "Filter")
            .or_else(|| el.child(ns::ENUMERATION, "Filter"));
        req.filter = filter.map(|f| Filter {
            dialect: f.attr("Dialect").unwrap_or(ns::XPATH_DIALECT).to_owned(),
            text: f.text_trimmed().to_owned(),
            element: Some(f.clone().into_owned()),
        });
        if let Some(mode) = el.child(ns::WSMAN, "EnumerationMode") {
            match mode.text_trimmed() {
                "EnumerateEPR" => req.mode = EnumerationMode::Epr,
                "EnumerateObjectAndEPR" => req.mode = EnumerationMode::ObjectAndEpr,
                other => {
                    return Err(BodyError::new(format!(
                        "unknown w:EnumerationMode `{other}`"
                    )));
                }
            }
        }
        Ok(req)
    }
}

/// `n:Pull`. A resent filter (libvirt does that) is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `n:EnumerationContext`, as the server issued it.
    pub context: String,
    /// `n:MaxElements` (WS-Enumeration's own; WinRb sends this one).
    pub max_elements: Option<u32>,
}

impl PullRequest {
    /// Reads an `n:Pull` body.
    pub fn parse(body: Option<&Element>) -> Result<PullRequest, BodyError> {
        let el = expect(body, ns::ENUMERATION, "Pull")?;
        Ok(PullRequest {
            context: context(el)?,
            max_elements: max_elements(
                el.child(ns::ENUMERATION, "MaxElements")
                    .or_else(|| el.child(ns::WSMAN, "MaxElements")),
            )?,
        })
    }
}

/// `n:Release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// `n:EnumerationContext` of the enumeration to end.
    pub context: String,
}

impl ReleaseRequest {
    /// Reads an `n:Release` body.
    pub fn parse(body: Option<&Element>) -> Result<ReleaseRequest, BodyError> {
        let el = expect(body, ns::ENUMERATION, "Release")?;
        Ok(ReleaseRequest {
            context: context(el)?,
        })
    }
}

/// One input parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// `xsi:nil="true"`.
    Nil,
    /// The element's text, untrimmed. An embedded instance (CIM-XML in CDATA or escaped)
    /// arrives here as its decoded string; a `cim:Datetime`/`cim:Interval` wrapper is
    /// unwrapped to its text.
    Text(String),
    /// A reference parameter.
    Epr(Epr),
}

/// `<p:{Method}_INPUT xmlns:p="{ResourceURI}">`: the parameters in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvokeInput {
    /// The parameters in document order (a repeated name is an array parameter).
    pub params: Vec<(String, ParamValue)>,
}

impl InvokeInput {
    /// Checks the body element against the method and resource URI, then reads every
    /// child as a parameter. An empty body is read as "no parameters": WinRM's own client
    /// always sends the element, but nothing is lost by being lenient about it.
    pub fn parse(
        body: Option<&Element>,
        resource_uri: &str,
        method: &str,
    ) -> Result<InvokeInput, BodyError> {
        let Some(el) = body else {
            return Ok(InvokeInput::default());
        };
        // `{method}_INPUT`, compared without writing it out (a `format!` per call).
        if el.local.strip_suffix("_INPUT") != Some(method) {
            return Err(BodyError::new(format!(
                "the body is {} but method {method} needs {method}_INPUT",
                el.clark_name()
            )));
        }
        if el.ns.as_deref() != Some(resource_uri) {
            return Err(BodyError::new(format!(
                "{method}_INPUT is in namespace `{}`, not the resource URI `{resource_uri}`",
                el.ns.as_deref().unwrap_or("")
            )));
        }
        let params = el
            .children
            .iter()
            .map(|p| {
                if p.ns.as_deref() != Some(resource_uri) {
                    return Err(BodyError::new(format!(
                        "parameter {} is not in the resource URI namespace",
                        p.clark_name()
                    )));
                }
                Ok((p.local.to_string(), param_value(p)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(InvokeInput { params })
    }

    /// First value of a parameter. Names match ASCII-case-insensitively, as WMI's do.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every value of a parameter: repeated elements form an array.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ParamValue> + 'a {
        self.params
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

fn param_value(p: &Element) -> Result<ParamValue, BodyError> {
    if matches!(p.attr_ns(ns::XSI, "nil").map(str::trim), Some("true" | "1")) {
        return Ok(ParamValue::Nil);
    }
    if p.child(ns::ADDRESSING, "Address").is_some()
        || p.child(ns::ADDRESSING, "ReferenceParameters").is_some()
        || p.child(ns::ADDRESSING, "EndpointReference").is_some()
    {
        return Epr::from_element(p)
            .map(ParamValue::Epr)
            .map_err(BodyError::new);
    }
    match p.children.as_slice() {
        [] => Ok(ParamValue::Text(p.text.to_string())),
        [only] if only.ns.as_deref() == Some(ns::CIM_COMMON) => {
            Ok(ParamValue::Text(only.text_trimmed().to_owned()))
        }
        [first, ..] => Err(BodyError::new(format!(
            "parameter {} has an unexpected child element {}",
            p.clark_name(),
            first.clark_name()
        ))),
    }
}

fn expect<'e, 'a>(
    body: Option<&'e Element<'a>>,
    ns: &str,
    local: &str,
) -> Result<&'e Element<'a>, BodyError> {
    match body {
        Some(el) if el.is(ns, local) => Ok(el),
        Some(el) => Err(BodyError::new(format!(
            "expected {{{ns}}}{local} in the body, found {}",
            el.clark_name()
        ))),
        None => Err(BodyError::new(format!(
            "expected {{{ns}}}{local} in the body, found an empty body"
        ))),
    }
}

fn context(el: &Element) -> Result<String, BodyError> {
    el.child(ns::ENUMERATION, "EnumerationContext")
        .map(|c| c.text_trimmed().to_owned())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| BodyError::new(format!("{} has no n:EnumerationContext", el.clark_name())))
}

fn max_elements(el: Option<&Element>) -> Result<Option<u32>, BodyError> {
    el.map(|m| {
        let raw = m.text_trimmed();
        match raw.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(BodyError::new(format!(
                "MaxElements `{raw}` is not a positive 32-bit integer"
            ))),
        }
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Request;
    use crate::envelope::tests::{PYWINRM_ENUMERATE, WINRM_EXE_INVOKE};

    fn req(s: &str) -> Request<'static> {
        match Request::parse(s.as_bytes()) {
            Ok(r) => r.into_owned(),
            Err(e) => panic!("{e}"),
        }
    }

    const SVC: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/Msvm_ReplicationService";

    fn invoke_env(params: &str) -> String {
        format!(
            r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
<env:Header><wsa:Action>{SVC}/InitiateFailback</wsa:Action><wsman:ResourceURI>{SVC}</wsman:ResourceURI></env:Header>
<env:Body><m:InitiateFailback_INPUT xmlns:m="{SVC}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{params}</m:InitiateFailback_INPUT></env:Body></env:Envelope>"#
        )
    }

    fn input(params: &str) -> Result<InvokeInput, BodyError> {
        let r = req(&invoke_env(params));
        InvokeInput::parse(r.body.as_ref(), SVC, "InitiateFailback")
    }

    #[test]
    fn winrm_exe_epr_param() {
        let r = req(WINRM_EXE_INVOKE);
        let (Some(uri), Some(method)) = (r.resource_uri.as_deref(), r.invoke_method()) else {
            panic!("capture has both");
        };
        let inp = InvokeInput::parse(r.body.as_ref(), uri, method);
        let Ok(inp) = inp else { panic!("{inp:?}") };
        let Some(ParamValue::Epr(epr)) = inp.get("plannedsystem") else {
            panic!("{inp:?}")
        };
        assert_eq!(epr.address, ns::ANONYMOUS);
        assert!(epr.resource_uri.ends_with("/Msvm_PlannedComputerSystem"));
        assert_eq!(
            epr.selector("Name"),
            Some("8FF5E6F3-A141-465B-83ED-3BFC0F59F7EF")
        );
    }

    #[test]
    fn params_nil_text_arrays_wrapper() {
        let inp = input(
            r#"<m:A xsi:nil="true"/><m:B> spaced </m:B><m:C>1</m:C><m:C>2</m:C>
<m:D><wsa:EndpointReference><wsa:Address>x</wsa:Address><wsa:ReferenceParameters><wsman:ResourceURI>urn:r</wsman:ResourceURI></wsa:ReferenceParameters></wsa:EndpointReference></m:D>
<m:T><cim:Datetime xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common">2024-05-01T10:00:00Z</cim:Datetime></m:T>"#,
        );
        let Ok(inp) = inp else { panic!("{inp:?}") };
        assert_eq!(inp.get("A"), Some(&ParamValue::Nil));
        assert_eq!(inp.get("B"), Some(&ParamValue::Text(" spaced ".into())));
        let cs: Vec<_> = inp.get_all("c").collect();
        assert_eq!(
            cs,
            [&ParamValue::Text("1".into()), &ParamValue::Text("2".into())]
        );
        assert!(
            matches!(inp.get("D"), Some(ParamValue::Epr(e)) if e.resource_uri == "urn:r" && e.address == "x")
        );
        assert_eq!(
            inp.get("T"),
            Some(&ParamValue::Text("2024-05-01T10:00:00Z".into()))
        );
        assert_eq!(inp.get("missing"), None);
    }

    #[test]
    fn embedded_instance_cdata_and_escaped_are_the_same_text() {
        let inst = r#"<INSTANCE CLASSNAME="Msvm_ReplicationSettingData"><PROPERTY NAME="RecoveryConnectionPoint" TYPE="string"><VALUE>hv02.example</VALUE></PROPERTY></INSTANCE>"#;
        let cdata = input(&format!("<m:S><![CDATA[{inst}]]></m:S>"));
        let escaped = input(&format!(
            "<m:S>{}</m:S>",
            inst.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        ));
        let expected = Some(ParamValue::Text(inst.to_owned()));
        assert_eq!(cdata.ok().and_then(|i| i.get("S").cloned()), expected);
        assert_eq!(escaped.ok().and_then(|i| i.get("S").cloned()), expected);
    }

    #[test]
    fn invoke_body_checks() {
        let r = req(&invoke_env(""));
        assert!(InvokeInput::parse(r.body.as_ref(), SVC, "Other").is_err());
        assert!(InvokeInput::parse(r.body.as_ref(), "urn:other", "InitiateFailback").is_err());
        assert!(InvokeInput::parse(None, SVC, "InitiateFailback").is_ok());
        assert!(
            input(r#"<q:P xmlns:q="urn:q">1</q:P>"#).is_err(),
            "param in a foreign namespace"
        );
        assert!(input("<m:P><m:Q/></m:P>").is_err(), "unexpected structure");
        assert!(
            input("<m:P><wsa:Address>a</wsa:Address></m:P>").is_err(),
            "EPR without ReferenceParameters"
        );
        let e = input("<m:P><m:Q/></m:P>").err();
        assert_eq!(
            e.map(|e| e.to_fault().kind),
            Some(FaultKind::SchemaValidationError)
        );
    }

    #[test]
    fn enumerate_bodies() {
        let r = req(PYWINRM_ENUMERATE);
        // The filter element itself is kept for structured dialects; not compared here.
        let e = EnumerateRequest::parse(r.body.as_ref()).map(|mut e| {
            if let Some(f) = e.filter.as_mut() {
                f.element = None;
            }
            e
        });
        assert_eq!(
            e,
            Ok(EnumerateRequest {
                optimize: true,
                max_elements: Some(32_000),
                filter: Some(Filter {
                    dialect: ns::WQL_DIALECT.into(),
                    text: "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '9C7D3E22'".into(),
                    element: None,
                }),
                mode: EnumerationMode::Objects,
            })
        );
        let parse = |inner: &str| {
            let doc = format!(
                r#"<n:Enumerate xmlns:n="{}" xmlns:w="{}">{inner}</n:Enumerate>"#,
                ns::ENUMERATION,
                ns::WSMAN
            );
            crate::xml::parse(doc.as_bytes())
                .map_err(|e| BodyError::new(e.to_string()))
                .and_then(|el| EnumerateRequest::parse(Some(&el)))
        };
        assert_eq!(parse(""), Ok(EnumerateRequest::default()));
        let epr =
            parse("<w:EnumerationMode>EnumerateEPR</w:EnumerationMode><w:Filter>x</w:Filter>");
        assert!(epr.as_ref().is_ok_and(|e| e.mode == EnumerationMode::Epr));
        let both = parse("<w:EnumerationMode>EnumerateObjectAndEPR</w:EnumerationMode>");
        assert!(both.is_ok_and(|e| e.mode == EnumerationMode::ObjectAndEpr));
        assert_eq!(
            epr.ok().and_then(|e| e.filter).map(|f| f.dialect),
            Some(ns::XPATH_DIALECT.to_owned())
        );
        assert!(parse("<w:EnumerationMode>Bogus</w:EnumerationMode>").is_err());
        assert!(parse("<w:MaxElements>0</w:MaxElements>").is_err());
        assert!(parse("<w:MaxElements>many</w:MaxElements>").is_err());
        assert!(EnumerateRequest::parse(None).is_err());
    }

    #[test]
    fn pull_and_release_bodies() {
        let body = |xml: &str| {
            crate::xml::parse(xml.as_bytes())
                .ok()
                .map(crate::xml::Element::into_owned)
        };
        let pull = body(&format!(
            r#"<n:Pull xmlns:n="{}" xmlns:w="{}"><n:EnumerationContext> uuid:C </n:EnumerationContext><w:OptimizeEnumeration/><n:MaxElements>32000</n:MaxElements></n:Pull>"#,
            ns::ENUMERATION,
            ns::WSMAN
        ));
        assert_eq!(
            PullRequest::parse(pull.as_ref()),
            Ok(PullRequest {
                context: "uuid:C".into(),
                max_elements: Some(32_000)
            })
        );
        let bare = body(&format!(r#"<n:Pull xmlns:n="{}"/>"#, ns::ENUMERATION));
        assert!(PullRequest::parse(bare.as_ref()).is_err());
        let rel = body(&format!(
            r#"<n:Release xmlns:n="{}"><n:EnumerationContext>uuid:C</n:EnumerationContext></n:Release>"#,
            ns::ENUMERATION
        ));
        assert_eq!(
            ReleaseRequest::parse(rel.as_ref()),
            Ok(ReleaseRequest {
                context: "uuid:C".into()
            })
        );
        assert!(ReleaseRequest::parse(pull.as_ref()).is_err());
    }
}
