//! One WS-Management request against one world: parse, dispatch on the action, answer.
//! Sans-IO: the server hands in the bytes and the caller's access level, and gets back the
//! HTTP status, the body, and any transport fault (delay, dropped connection) to apply.

use crate::classes::{self, class_of_uri, keys_of};
use crate::state::{EnumItem, JournalEntry, Limits, WorldSlot};
use crate::wsman::body::{
    EnumerateRequest, EnumerationMode, InvokeInput, ParamValue, PullRequest, ReleaseRequest,
};
use crate::wsman::cimxml::{CimValue, EmbeddedInstance};
use crate::wsman::envelope::RequestError;
use crate::wsman::fault::{Fault, FaultKind, SelectorProblem};
use crate::wsman::writer::{self, Instance, Item, ReplyHeader, Value};
use crate::wsman::{Request, ns, wql};
use crate::{assoc, instances, schema};
use replica_core::engine::Output;
use replica_core::faults::FaultKind as Plan;
use replica_core::methods::{Arg, Call, ParamKind, signature};
use replica_core::ops::WmiClass;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// Read-only credentials: method calls answer 32769 Access Denied.
    ReadOnly,
    /// Authenticated, but with no rights on `root/virtualization/v2` (a user outside Hyper-V
    /// Administrators): everything but Identify is the `w:AccessDenied` fault, as WinRM
    /// answers when WMI refuses the caller (`Code="5"`, E_ACCESSDENIED's Win32 code).
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Fault plan: answer after this delay.
    pub delay_ms: u64,
    /// Fault plan: close the connection without an answer.
    pub drop_connection: bool,
}

/// What the journal learns while a request is handled.
#[derive(Default)]
struct Note {
    operation: &'static str,
    class: Option<String>,
    method: Option<String>,
    vm: Option<String>,
    code: Option<u32>,
    job: Option<String>,
    rule: Option<String>,
    reason: Option<String>,
    fault: Option<String>,
    faults: Vec<String>,
    delay_ms: u64,
    drop: bool,
}

type Outcome = Result<String, Fault>;

/// A request body, parsed without the world: the server parses before it takes the world's
/// lock, so a 4 MiB body does not hold up the world's other clients.
pub struct Parsed<'a> {
    len: usize,
    request: Result<Request<'a>, RequestError>,
    micros: u64,
}

/// Parses a request body (no world needed).
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let started = Instant::now();
    Parsed {
        len: bytes.len(),
        request: Request::parse(bytes),
        micros: started.elapsed().as_micros() as u64,
    }
}

/// Handles one request body addressed to `host` in `slot`'s world.
pub fn handle(
    slot: &mut WorldSlot,
    host: &str,
    bytes: &[u8],
    access: Access,
    limits: &Limits,
) -> Reply {
    handle_parsed(slot, host, parse(bytes), access, limits)
}

/// Handles a request parsed by [`parse`].
pub fn handle_parsed(
    slot: &mut WorldSlot,
    host: &str,
    parsed: Parsed<'_>,
    access: Access,
    limits: &Limits,
) -> Reply {
    let started = Instant::now();
    let now = slot.tick();
    let mut note = Note {
        operation: "Rejected",
        ..Note::default()
    };
    let guid = slot.fresh_guid();
    let Parsed {
        len,
        request: parsed,
        micros: parse_micros,
    } = parsed;
    // The size limit comes first, as in WinRM, whose HTTP layer refuses an oversized request
    // before any SOAP processing; the MessageID is still echoed when it can be read.
    let too_big = (len > limits.max_envelope).then(|| {
        Fault::new(FaultKind::EncodingLimit)
            .with_machine(host)
            .with_message(format!(
                "The request is {len} bytes; the service's MaxEnvelopeSize is {} bytes.",
                limits.max_envelope
            ))
    });
    let (status, body) = match parsed {
        Err(e) => {
            let fault = too_big.unwrap_or_else(|| e.to_fault().with_machine(host));
            note.fault = Some(subcode_name(&fault.kind));
            let h = ReplyHeader {
                message_guid: &guid,
                relates_to: e.message_id.as_deref(),
                lang: None,
            };
            (fault.http_status(), fault.to_xml(&h))
        }
        Ok(req) => {
            let out = match too_big {
                Some(f) => Err(f),
                None => route(slot, host, &req, access, limits, &mut note, &guid),
            };
            let h = req.reply(&guid);
            match out {
                Ok(body) if writer::exceeds_max_envelope_size(&body, req.max_envelope_size) => {
                    let f = Fault::new(FaultKind::EncodingLimit).with_machine(host).with_message(format!(
                        "The response is {} bytes, over the request's MaxEnvelopeSize of {} bytes.",
                        body.len(),
                        req.max_envelope_size.unwrap_or(0)
                    ));
                    note.fault = Some(subcode_name(&f.kind));
                    (f.http_status(), f.to_xml(&h))
                }
                Ok(body) => (200, body),
                Err(f) => {
                    let f = f.with_machine(host);
                    note.fault = Some(subcode_name(&f.kind));
                    (f.http_status(), f.to_xml(&h))
                }
            }
        }
    };
    let entry = JournalEntry {
        seq: 0,
        at: now,
        host: host.to_string(),
        operation: note.operation.to_string(),
        class: note.class,
        method: note.method,
        vm: note.vm,
        code: note.code,
        job: note.job,
        rule: note.rule,
        reason: note.reason,
        fault: note.fault,
        http_status: status,
        faults: note.faults,
        micros: parse_micros + started.elapsed().as_micros() as u64,
    };
    // One line per method call, as a Hyper-V host's VMMS event log has one per operation: an
    // operator (or a test of a `--as-real-host` run, which has no control API) can see on the
    // host's side which VM each call was on.
    if entry.operation == "Invoke" {
        tracing::debug!(
            target: "replica_sim::calls",
            host = %entry.host,
            method = entry.method.as_deref().unwrap_or("-"),
            vm = entry.vm.as_deref().unwrap_or("-"),
            code = entry.code.unwrap_or(0),
            "method call"
        );
    }
    slot.record(entry, limits.max_journal);
    Reply {
        status,
        body,
        delay_ms: note.delay_ms,
        drop_connection: note.drop,
    }
}

/// The IdentifyResponse WinRM gives without credentials, to a request carrying the HTTP header
/// `WSMANIDENTIFY: unauthenticated` (what `Test-WSMan` sends): the OS version is hidden as
/// `OS: 0.0.0`. `None` when the body is not an Identify (the caller then asks for credentials).
pub fn identify_unauthenticated(bytes: &[u8]) -> Option<Reply> {
    let req = Request::parse(bytes).ok()?;
    req.is_identify().then(|| Reply {
        status: 200,
        body: writer::identify_response(
            "Microsoft Corporation",
            "OS: 0.0.0 SP: 0.0 Stack: 3.0",
            ns::PROTOCOL_VERSION,
        ),
        delay_ms: 0,
        drop_connection: false,
    })
}

/// The answer to a request body too large to even be read (over the HTTP layer's cap): the
/// same `w:EncodingLimit` fault as any request over MaxEnvelopeSize, without `a:RelatesTo`.
pub fn body_too_large(host: &str, guid: &str) -> Reply {
    let fault = Fault::new(FaultKind::EncodingLimit)
        .with_machine(host)
        .with_message("The request is larger than the service's MaxEnvelopeSize.");
    let h = ReplyHeader {
        message_guid: guid,
        relates_to: None,
        lang: None,
    };
    Reply {
        status: fault.http_status(),
        body: fault.to_xml(&h),
        delay_ms: 0,
        drop_connection: false,
    }
}

fn subcode_name(k: &FaultKind) -> String {
    k.subcode().map_or_else(
        || format!("{:?}", k.soap_code()),
        |s| format!("{}:{}", s.prefix, s.local),
    )
}

/// `guid` is the response's MessageID, drawn once per request by [`handle`].
fn route(
    slot: &mut WorldSlot,
    host: &str,
    req: &Request,
    access: Access,
    limits: &Limits,
    note: &mut Note,
    guid: &str,
) -> Outcome {
    if req.is_identify() {
        note.operation = "Identify";
        return Ok(writer::identify_response_with_profiles(
            "Microsoft Corporation",
            "OS: 10.0.20348 SP: 0.0 Stack: 3.0",
            ns::PROTOCOL_VERSION,
            &["http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/basic"],
        ));
    }
    // WS-Addressing requires a:MessageID on every request but Identify (whose envelope has
    // no addressing headers); WinRM refuses one without it, or with it empty (issue 16 §5).
    if req
        .message_id
        .as_deref()
        .is_none_or(|m| m.trim().is_empty())
    {
        note.reason = Some("no a:MessageID".into());
        return Err(Fault::new(FaultKind::InvalidMessageInformationHeader)
            .with_message("The request has no a:MessageID header, or an empty one."));
    }
    let action = req.action.as_deref().unwrap_or_default();
    let op_name = match action {
        ns::action::GET => "Get",
        ns::action::ENUMERATE => "Enumerate",
        ns::action::PULL => "Pull",
        ns::action::RELEASE => "Release",
        _ => "Invoke",
    };
    note.operation = op_name;
    if access == Access::Denied {
        note.reason = Some("credentials without rights on root/virtualization/v2".into());
        return Err(Fault::new(FaultKind::AccessDenied));
    }
    // Transport faults of the plan apply to reads too; method calls draw theirs in the model.
    if op_name != "Invoke" {
        let fired = slot.world.draw_faults(host, op_name);
        for f in &fired {
            slot.coverage.record_fault(f);
            note.faults.push(f.name().to_string());
            match f {
                Plan::Delay { ms } => note.delay_ms += ms,
                Plan::DropConnection => note.drop = true,
                Plan::HostDown => {
                    return Err(Fault::new(FaultKind::InternalError)
                        .with_message(format!("The Hyper-V Virtual Machine Management service on {host} is not available (fault plan).")));
                }
                _ => {}
            }
        }
    }
    match op_name {
        "Get" => get(slot, host, req, note, guid),
        "Enumerate" => enumerate(slot, host, req, limits, note, guid),
        "Pull" => pull(slot, req, limits, guid),
        "Release" => {
            let r = ReleaseRequest::parse(req.body.as_ref()).map_err(|e| e.to_fault())?;
            match slot.take_context(&r.context) {
                Some(_) => Ok(writer::release_response(&req.reply(guid))),
                None => Err(Fault::new(FaultKind::InvalidEnumerationContext)
                    .with_message("The enumeration context is not valid: it expired, was released, or was never issued.")),
            }
        }
        _ => match req.invoke_method() {
            Some(method) => invoke(slot, host, req, method, access, note, guid),
            None => Err(
                Fault::new(FaultKind::ActionNotSupported).with_message(format!(
                    "The action {action} is not supported by the service."
                )),
            ),
        },
    }
}

fn unknown_resource(resource: &str) -> Fault {
    Fault::new(FaultKind::DestinationUnreachable).with_message(format!(
        "The WS-Management service cannot find the resource {resource}."
    ))
}

/// Checks selectors against the class's keys, as WinRM does before asking the provider.
fn check_selectors(class: &str, selectors: &[(String, String)]) -> Result<(), Fault> {
    let keys = keys_of(class);
    // Iterated afresh rather than collected: this runs on every Get and method call.
    let real = || {
        selectors
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("__cimnamespace"))
    };
    if real().next().is_none() {
        return Err(
            Fault::new(FaultKind::InvalidSelectors(SelectorProblem::Insufficient)).with_message(
                format!("{class} is addressed by its keys: {}", keys.join(", ")),
            ),
        );
    }
    for (i, (k, _)) in real().enumerate() {
        // In the key's own case first, as clients send it (one `memcmp`, not a fold per byte).
        if !keys
            .iter()
            .any(|key| *key == k.as_str() || key.eq_ignore_ascii_case(k))
        {
            return Err(
                Fault::new(FaultKind::InvalidSelectors(SelectorProblem::Unexpected)).with_message(
                    format!("{k} is not a key of {class}; keys are {}", keys.join(", ")),
                ),
            );
        }
        if real().take(i).any(|(p, _)| p.eq_ignore_ascii_case(k)) {
            return Err(Fault::new(FaultKind::InvalidSelectors(
                SelectorProblem::Duplicate,
            )));
        }
    }
    Ok(())
}

fn get(slot: &mut WorldSlot, host: &str, req: &Request, note: &mut Note, guid: &str) -> Outcome {
    let resource = req.resource_uri.as_deref().unwrap_or_default();
    let class = class_of_uri(resource).ok_or_else(|| unknown_resource(resource))?;
    note.class = Some(class.to_string());
    check_selectors(class, &req.selectors)?;
    if class == "Msvm_ConcreteJob"
        && let Some(id) = req.selector("InstanceID")
    {
        slot.world.observe_job(host, id);
    }
    let inst = instances::find(&slot.world, host, class, &req.selectors).ok_or_else(|| {
        Fault::new(FaultKind::DestinationUnreachable).with_message(format!(
            "The service cannot find the resource identified by the resource URI and selectors ({class}: {}).",
            req.selectors.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        ))
    })?;
    Ok(inst.get_response(&req.reply(guid)))
}

/// The instances an enumeration selects, and the properties to keep (a WQL projection).
type Selection = (Vec<Instance>, Option<Vec<String>>);

/// The instances a filter (WQL, association, selector) or a plain class enumeration selects.
fn select(
    slot: &mut WorldSlot,
    host: &str,
    req: &Request,
    e: &EnumerateRequest,
    note: &mut Note,
) -> Result<Selection, Fault> {
    let resource = req.resource_uri.as_deref().unwrap_or_default();
    let cannot = |msg: String| Fault::new(FaultKind::CannotProcessFilter).with_message(msg);
    let Some(filter) = &e.filter else {
        let class = class_of_uri(resource).ok_or_else(|| unknown_resource(resource))?;
        note.class = Some(class.to_string());
        return Ok((instances::instances(&slot.world, host, class), None));
    };
    let wildcard =
        resource.ends_with("/*") && resource.starts_with(classes::CLASS_BASE.trim_end_matches('/'));
    let dialect = filter.dialect.as_str();
    if dialect.eq_ignore_ascii_case(ns::SELECTOR_DIALECT) {
        // DSP0226 §8.7: the class's instances whose properties equal the selectors.
        let class = class_of_uri(resource).ok_or_else(|| unknown_resource(resource))?;
        note.class = Some(class.to_string());
        let set = filter
            .element
            .as_ref()
            .and_then(|f| f.child(ns::WSMAN, "SelectorSet"))
            .ok_or_else(|| cannot("A SelectorFilter needs a w:SelectorSet.".into()))?;
        let selectors = crate::wsman::epr::parse_selector_set(set).map_err(cannot)?;
        return Ok((
            instances::iter_instances(&slot.world, host, class)
                .filter(|i| classes::matches_selectors(i, selectors.as_slice()))
                .collect(),
            None,
        ));
    }
    let is_wql = dialect.eq_ignore_ascii_case(ns::WQL_DIALECT);
    let is_assoc = dialect.eq_ignore_ascii_case(ns::ASSOCIATION_DIALECT);
    if !is_wql && !is_assoc {
        return Err(
            Fault::new(FaultKind::FilterDialectRequestedUnavailable).with_message(format!(
                "The filter dialect {dialect} is not supported; use WQL, the association filter or the selector filter."
            )),
        );
    }
    // WinRM needs the namespace wildcard URI for WQL and association filters
    // (docs/facts.md#enumeration; winrm.exe's `enumerate wmicimv2/* -dialect:association`).
    if !wildcard {
        return Err(Fault::new(FaultKind::InvalidParameter).with_message(
            "A WQL or association filter needs the resource URI http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/*",
        ));
    }
    if is_assoc {
        return association_filter(slot, host, filter, note);
    }
    let q = wql::Query::parse(&filter.text)
        .map_err(|err| cannot(format!("{err} in `{}`", filter.text)))?;
    match q {
        wql::Query::Select {
            class,
            projection,
            filter: cond,
        } => {
            // Polymorphic: `FROM CIM_ConcreteJob` selects Msvm_ConcreteJob instances.
            let defs: Vec<&'static schema::ClassDef> = schema::served_under(&class).collect();
            if defs.is_empty() {
                return Err(cannot(format!(
                    "Invalid class {class} in `{}`",
                    filter.text
                )));
            }
            note.class = Some(defs.first().map_or(class.clone(), |d| d.name.to_string()));
            // WMI checks the names against the class definition, whatever instances exist;
            // system properties (`__PATH`, …) are always allowed.
            let named = cond
                .iter()
                .flat_map(|c| c.props())
                .chain(projection.iter().flatten().map(String::as_str));
            for p in named {
                if !p.starts_with("__") && !defs.iter().all(|d| d.prop(p).is_some()) {
                    return Err(cannot(format!(
                        "Invalid property {p} of {class} in `{}`",
                        filter.text
                    )));
                }
            }
            if defs.iter().any(|d| d.name == "Msvm_ConcreteJob") {
                // polls:N pacing counts every read of a job.
                let ids: Vec<String> = slot
                    .world
                    .host(host)
                    .map(|h| h.jobs.keys().cloned().collect())
                    .unwrap_or_default();
                let wanted = cond.as_ref().and_then(|c| c.required_eq("InstanceID"));
                for id in ids
                    .iter()
                    .filter(|id| wanted.is_none_or(|w| w.eq_ignore_ascii_case(id)))
                {
                    slot.world.observe_job(host, id);
                }
            }
            let mut out = Vec::new();
            for d in defs {
                out.extend(
                    instances::iter_instances(&slot.world, host, d.name).filter(|i| {
                        cond.as_ref().is_none_or(|c| {
                            c.matches(&|p| classes::prop_text(i, p), &|cls| d.is_a(cls))
                        })
                    }),
                );
            }
            Ok((out, projection))
        }
        wql::Query::Associators {
            source_class,
            source_keys,
            assoc_class,
            result_class,
            role,
            result_role,
            options,
        } => {
            note.class = result_class.clone();
            refuse_class_defs(&options)?;
            let f = assoc::Filters {
                assoc_class,
                result_class,
                role,
                result_role,
                required_qualifier: options.required_qualifier.clone(),
                required_assoc_qualifier: options.required_assoc_qualifier.clone(),
            };
            let keys = resolve_path_keys(&source_class, source_keys)?;
            assoc::associators(&slot.world, host, &source_class, &keys, &f)
                .map(|v| (keys_only(v, &options), None))
                .map_err(traversal_fault)
        }
        wql::Query::References {
            source_class,
            source_keys,
            result_class,
            role,
            options,
        } => {
            note.class = result_class.clone();
            refuse_class_defs(&options)?;
            let f = assoc::Filters {
                result_class,
                role,
                required_qualifier: options.required_qualifier.clone(),
                ..assoc::Filters::default()
            };
            let keys = resolve_path_keys(&source_class, source_keys)?;
            assoc::references(&slot.world, host, &source_class, &keys, &f)
                .map(|v| (keys_only(v, &options), None))
                .map_err(traversal_fault)
        }
    }
}

/// `ClassDefsOnly` asks WMI for class definitions, not instances (the "ASSOCIATORS OF" and
/// "REFERENCES OF" pages). An enumeration's items are instances or EPRs (DSP0226 §8), and the
/// simulator serves no class objects, so the query is refused with the filter fault the other
/// unservable WQL gets. Inferred: no capture shows what WinRM answers to it.
fn refuse_class_defs(options: &wql::TraversalOptions) -> Result<(), Fault> {
    if options.class_defs_only {
        return Err(Fault::new(FaultKind::CannotProcessFilter).with_message(
            "ClassDefsOnly returns class definitions, which this WS-Management service does not serve; query the instances instead.",
        ));
    }
    Ok(())
}

/// `KeysOnly` ("WQL (SQL for WMI)": "the resulting instances are only populated with the keys
/// of the instances"): each result keeps its own class's key properties. The EPRs, built from
/// the keys, are unchanged.
fn keys_only(mut found: Vec<Instance>, options: &wql::TraversalOptions) -> Vec<Instance> {
    if options.keys_only {
        for i in &mut found {
            let keys = keys_of(&i.class);
            i.props
                .retain(|(name, _)| keys.iter().any(|k| k.eq_ignore_ascii_case(name)));
        }
    }
    found
}

/// A WQL object path's key bindings: a key-less `{Class="v"}` names the class's only key.
fn resolve_path_keys(
    class: &str,
    keys: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, Fault> {
    match keys.as_slice() {
        [(k, v)] if k.is_empty() => match keys_of(class) {
            [only] => Ok(vec![((*only).to_string(), v.clone())]),
            _ => Err(
                Fault::new(FaultKind::CannotProcessFilter).with_message(format!(
                    "{class} has more than one key; the object path must name them"
                )),
            ),
        },
        _ => Ok(keys),
    }
}

fn traversal_fault(e: assoc::TraversalError) -> Fault {
    match e {
        // INFERRED: WMI's WBEM_E_NOT_FOUND for the source, which WinRM reports as the
        // resource not found.
        assoc::TraversalError::UnknownSource(path) => Fault::new(FaultKind::DestinationUnreachable)
            .with_message(format!("The source object {path} does not exist.")),
        assoc::TraversalError::UnknownClass(c) => Fault::new(FaultKind::CannotProcessFilter)
            .with_message(format!("Invalid class {c} in the association filter.")),
    }
}

/// DSP0227 §8.2's association filter: `b:AssociatedInstances` (the objects linked to
/// `b:Object`) or `b:AssociationInstances` (the association instances naming it).
fn association_filter(
    slot: &mut WorldSlot,
    host: &str,
    filter: &crate::wsman::body::Filter,
    note: &mut Note,
) -> Result<Selection, Fault> {
    let cannot = |msg: String| Fault::new(FaultKind::CannotProcessFilter).with_message(msg);
    let el = filter
        .element
        .as_ref()
        .ok_or_else(|| cannot("The association filter is empty.".into()))?;
    let (kind, inner) = match (
        el.child(ns::CIMBINDING, "AssociatedInstances"),
        el.child(ns::CIMBINDING, "AssociationInstances"),
    ) {
        (Some(i), None) => ("AssociatedInstances", i),
        (None, Some(i)) => ("AssociationInstances", i),
        _ => {
            return Err(cannot(
                "The association filter needs one b:AssociatedInstances or b:AssociationInstances."
                    .into(),
            ));
        }
    };
    let text = |local: &str| {
        inner
            .child(ns::CIMBINDING, local)
            .map(|c| c.text_trimmed().to_string())
            .filter(|t| !t.is_empty())
    };
    let object = inner
        .child(ns::CIMBINDING, "Object")
        .ok_or_else(|| cannot(format!("{kind} needs a b:Object")))?;
    let epr = crate::wsman::Epr::from_element(object).map_err(cannot)?;
    let class =
        class_of_uri(&epr.resource_uri).ok_or_else(|| unknown_resource(&epr.resource_uri))?;
    // DSP0227 §8.2: both filter types take `b:IncludeResultProperty` (0..n), the properties
    // of the result instances to return; none means all. It is CIM's PropertyList (DSP0200's
    // Associators/References), where names the class does not define are ignored, not
    // refused; so are they here (Inferred: the mapping is the specs', no WinRM capture).
    // Empty names are skipped. The EPRs are taken before this projection (`enumerate`).
    let include: Vec<String> = inner
        .children_named(ns::CIMBINDING, "IncludeResultProperty")
        .map(|p| p.text_trimmed().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let projection = (!include.is_empty()).then_some(include);
    if kind == "AssociatedInstances" {
        let f = assoc::Filters {
            assoc_class: text("AssociationClassName"),
            result_class: text("ResultClassName"),
            role: text("Role"),
            result_role: text("ResultRole"),
            ..assoc::Filters::default()
        };
        note.class = f.result_class.clone();
        assoc::associators(&slot.world, host, class, epr.selectors.as_slice(), &f)
            .map(|v| (v, projection))
            .map_err(traversal_fault)
    } else {
        let f = assoc::Filters {
            result_class: text("ResultClassName"),
            role: text("Role"),
            ..assoc::Filters::default()
        };
        note.class = f.result_class.clone();
        assoc::references(&slot.world, host, class, epr.selectors.as_slice(), &f)
            .map(|v| (v, projection))
            .map_err(traversal_fault)
    }
}

fn enumerate(
    slot: &mut WorldSlot,
    host: &str,
    req: &Request,
    limits: &Limits,
    note: &mut Note,
    guid: &str,
) -> Outcome {
    let e = EnumerateRequest::parse(req.body.as_ref()).map_err(|e| e.to_fault())?;
    let (found, projection) = select(slot, host, req, &e, note)?;
    // A projection keeps only the selected properties; the EPR still names the instance, so
    // it is taken before projecting.
    let project = |mut i: Instance| {
        if let Some(keep) = &projection {
            i.props
                .retain(|(k, _)| keep.iter().any(|p| p.eq_ignore_ascii_case(k)));
        }
        i
    };
    let mut items: VecDeque<EnumItem> = found
        .into_iter()
        .map(|i| match e.mode {
            EnumerationMode::Objects => EnumItem::Instance(project(i)),
            EnumerationMode::Epr => EnumItem::Epr(classes::epr_of(&i)),
            EnumerationMode::ObjectAndEpr => {
                let epr = classes::epr_of(&i);
                EnumItem::ObjectAndEpr(project(i), epr)
            }
        })
        .collect();
    let h = req.reply(guid);
    if !e.optimize {
        let ctx = new_context(slot, items, limits)?;
        return Ok(writer::enumerate_response(&h, &ctx));
    }
    // MaxElements defaults to 1 (DSP0226); libvirt reads one item per page.
    let max = e.max_elements.unwrap_or(1).clamp(1, limits.max_batch_items) as usize;
    let ctx = format!("uuid:{}", slot.fresh_guid());
    let overhead = writer::enumerate_response_optimized(&h, &[], Some(&ctx), true).len();
    let page = take_page(&mut items, max, budget(req, overhead))?;
    let refs: Vec<Item<'_>> = page.iter().map(as_item).collect();
    if items.is_empty() {
        Ok(writer::enumerate_response_optimized(&h, &refs, None, true))
    } else {
        let body = writer::enumerate_response_optimized(&h, &refs, Some(&ctx), false);
        store(slot, ctx, items, limits)?;
        Ok(body)
    }
}

/// Room left for items once the envelope itself is written, under the request's
/// MaxEnvelopeSize (`None`: no limit asked for).
fn budget(req: &Request, overhead: usize) -> Option<usize> {
    req.max_envelope_size.map(|m| {
        usize::try_from(m)
            .unwrap_or(usize::MAX)
            .saturating_sub(overhead)
    })
}

/// Takes up to `max` items, and no more than fit in `budget` bytes: WinRM sends fewer items
/// when the page would exceed MaxEnvelopeSize, and faults only when not even one fits
/// (DSP0226 §8.2, `wsman:EncodingLimit`). The items stay queued when it faults.
fn take_page(
    items: &mut VecDeque<EnumItem>,
    max: usize,
    budget: Option<usize>,
) -> Result<Vec<EnumItem>, Fault> {
    let mut page = Vec::new();
    let mut used = 0usize;
    while page.len() < max {
        let Some(next) = items.front() else { break };
        let len = writer::item_len(&as_item(next));
        if let Some(b) = budget
            && used + len > b
        {
            if page.is_empty() {
                return Err(Fault::new(FaultKind::EncodingLimit).with_message(format!(
                    "One item is {len} bytes; it does not fit in the request's MaxEnvelopeSize."
                )));
            }
            break;
        }
        used += len;
        if let Some(item) = items.pop_front() {
            page.push(item);
        }
    }
    Ok(page)
}

fn as_item(i: &EnumItem) -> Item<'_> {
    match i {
        EnumItem::Instance(x) => Item::Instance(x),
        EnumItem::Epr(x) => Item::Epr(x),
        EnumItem::ObjectAndEpr(x, e) => Item::ObjectAndEpr(x, e),
    }
}

fn new_context(
    slot: &mut WorldSlot,
    items: VecDeque<EnumItem>,
    limits: &Limits,
) -> Result<String, Fault> {
    let ctx = format!("uuid:{}", slot.fresh_guid());
    store(slot, ctx.clone(), items, limits)?;
    Ok(ctx)
}

/// Keeps what is left of an enumeration; `w:QuotaLimit` when the memory budget has no room
/// for it even after this world's older contexts are dropped.
fn store(
    slot: &mut WorldSlot,
    ctx: String,
    items: VecDeque<EnumItem>,
    limits: &Limits,
) -> Result<(), Fault> {
    slot.store_context(ctx, items, limits).map_err(|bytes| {
        Fault::new(FaultKind::QuotaLimit).with_message(format!(
            "The enumeration needs about {} KB and the simulator's memory budget (--limit max_memory_bytes) has no room for it; pull or release other enumerations, or ask for fewer items.",
            bytes >> 10
        ))
    })
}

fn pull(slot: &mut WorldSlot, req: &Request, limits: &Limits, guid: &str) -> Outcome {
    let p = PullRequest::parse(req.body.as_ref()).map_err(|e| e.to_fault())?;
    slot.expire_contexts(limits.enum_context_ttl_ms);
    let Some(mut ctx) = slot.take_context(&p.context) else {
        return Err(Fault::new(FaultKind::InvalidEnumerationContext)
            .with_message("The enumeration context is not valid: it expired, was released, or was never issued."));
    };
    let max = p.max_elements.unwrap_or(1).clamp(1, limits.max_batch_items) as usize;
    let h = req.reply(guid);
    let overhead = writer::pull_response(&h, &[], Some(&p.context), true).len();
    let page = match take_page(&mut ctx.items, max, budget(req, overhead)) {
        Ok(page) => page,
        Err(f) => {
            // The client may retry with a larger MaxEnvelopeSize: keep its place.
            slot.put_context(p.context.clone(), ctx);
            return Err(f);
        }
    };
    let refs: Vec<Item<'_>> = page.iter().map(as_item).collect();
    if ctx.items.is_empty() {
        Ok(writer::pull_response(&h, &refs, None, true))
    } else {
        let body = writer::pull_response(&h, &refs, Some(&p.context), false);
        slot.put_context(p.context.clone(), ctx);
        Ok(body)
    }
}

/// Decodes one parameter by its declared kind.
fn decode_param(kind: ParamKind, values: Vec<ParamValue>) -> Result<Arg, String> {
    // Owned: the request's strings move into the call instead of being copied.
    let mut values = values.into_iter();
    let Some(first) = values.next() else {
        return Ok(Arg::Null);
    };
    Ok(match (kind, first) {
        (_, ParamValue::Nil) => Arg::Null,
        (ParamKind::Ref(_), ParamValue::Epr(e)) => Arg::Ref {
            class: e
                .resource_uri
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            keys: e.selectors.0.into_iter().collect(),
        },
        (ParamKind::Instance(_), ParamValue::Text(t)) if t.trim().is_empty() => Arg::Null,
        (ParamKind::Instance(_), ParamValue::Text(t)) => {
            let inst =
                EmbeddedInstance::parse(&t).map_err(|e| format!("embedded instance: {e}"))?;
            let mut props = BTreeMap::new();
            for (k, v) in inst.properties {
                match v {
                    CimValue::Null => {}
                    CimValue::Scalar(s) => {
                        props.insert(k, vec![s]);
                    }
                    CimValue::Array(a) => {
                        props.insert(k, a);
                    }
                }
            }
            Arg::Instance {
                class: inst.class_name,
                props,
            }
        }
        (ParamKind::StrArray, first) => Arg::List(
            std::iter::once(first)
                .chain(values)
                .filter_map(|v| match v {
                    ParamValue::Text(t) => Some(t),
                    _ => None,
                })
                .collect(),
        ),
        // A datetime in either wire form (DMTF text inside CIM-XML, `xs:dateTime` in a
        // `cim:Datetime`) reaches the model as milliseconds; other text stays text, which the
        // model refuses as not a datetime.
        (ParamKind::Datetime, ParamValue::Text(t)) => {
            match crate::wsman::xsd::parse_dmtf_datetime_ms(t.trim())
                .or_else(|| crate::wsman::xsd::parse_datetime_ms(&t))
                .and_then(|ms| i64::try_from(ms).ok())
            {
                Some(ms) => Arg::Int(ms),
                None => Arg::Text(t),
            }
        }
        (_, ParamValue::Text(t)) => Arg::Text(t),
        (_, ParamValue::Epr(_)) => {
            return Err("a reference was given where a value was expected".into());
        }
    })
}

fn invoke(
    slot: &mut WorldSlot,
    host: &str,
    req: &Request,
    method: &str,
    access: Access,
    note: &mut Note,
    guid: &str,
) -> Outcome {
    let resource = req.resource_uri.as_deref().unwrap_or_default();
    let class_name = class_of_uri(resource).ok_or_else(|| unknown_resource(resource))?;
    note.class = Some(class_name.to_string());
    note.method = Some(method.to_string());
    let class = match class_name {
        "Msvm_ReplicationService" => WmiClass::ReplicationService,
        "Msvm_ComputerSystem" => WmiClass::ComputerSystem,
        "Msvm_ConcreteJob" => WmiClass::ConcreteJob,
        "Msvm_VirtualSystemManagementService" => WmiClass::VirtualSystemManagementService,
        _ => {
            return Err(Fault::new(FaultKind::ActionNotSupported)
                .with_message(format!("{class_name} has no method {method}")));
        }
    };
    let sig = signature(class, method).ok_or_else(|| {
        Fault::new(FaultKind::ActionNotSupported)
            .with_message(format!("{class_name} has no method {method}"))
    })?;
    check_selectors(class_name, &req.selectors)?;
    let target =
        instances::find(&slot.world, host, class_name, &req.selectors).ok_or_else(|| {
            Fault::new(FaultKind::DestinationUnreachable)
                .with_message(format!("No {class_name} instance matches the selectors."))
        })?;
    let input =
        InvokeInput::parse(req.body.as_ref(), resource, sig.name).map_err(|e| e.to_fault())?;
    for (name, _) in &input.params {
        if !sig.inputs.iter().any(|(p, _)| p.eq_ignore_ascii_case(name)) {
            return Err(
                Fault::new(FaultKind::InvalidParameter).with_message(format!(
                    "{name} is not a parameter of {class_name}.{}",
                    sig.name
                )),
            );
        }
    }
    let h = req.reply(guid);
    let out_nil = |outs: &[&'static str]| -> Vec<(&'static str, Value)> {
        outs.iter().map(|o| (*o, Value::Null)).collect()
    };
    let answer_code = |code: u32, note: &mut Note| {
        note.code = Some(code);
        writer::invoke_response(&h, resource, sig.name, &out_nil(sig.outputs), code)
    };
    if access == Access::ReadOnly {
        note.reason = Some("read-only credentials".into());
        return Ok(answer_code(32769, note));
    }
    // Methods declared as reads (GetError, GetErrorEx) are answered from the world.
    if sig.reads {
        return Ok(get_error(slot, host, &target, &h, resource, sig.name, note));
    }
    let mut args = BTreeMap::new();
    let mut params = input.params;
    for (name, kind) in sig.inputs {
        // Taken out, in document order (`InvokeInput::get_all`'s values), to be moved.
        let values: Vec<ParamValue> = params
            .extract_if(.., |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect();
        match decode_param(*kind, values) {
            Ok(a) => {
                args.insert((*name).to_string(), a);
            }
            Err(why) => {
                // INFERRED: a parameter the provider cannot read is "Invalid parameter".
                note.reason = Some(format!("{name}: {why}"));
                return Ok(answer_code(32773, note));
            }
        }
    }
    let call = Call {
        class: Some(class),
        method: sig.name.to_string(),
        target_vm: (class == WmiClass::ComputerSystem)
            .then(|| target.text("Name"))
            .flatten(),
        target_job: (class == WmiClass::ConcreteJob)
            .then(|| target.text("InstanceID"))
            .flatten(),
        args,
    };
    let op = match call.to_operation() {
        Ok(op) => op,
        Err((code, why)) => {
            note.reason = Some(why);
            return Ok(answer_code(code.number(), note));
        }
    };
    note.vm = op.vm().map(str::to_string);
    let now = slot.world.now();
    let mut ans = slot.world.apply(host, &op, now);
    slot.coverage.record(&ans);
    note.code = Some(ans.code);
    note.job = ans.job.clone();
    note.rule = ans.rule.map(str::to_string);
    // Moved, not copied: the answer below needs its code, job and output only.
    note.reason = ans.reason.take();
    for f in &ans.faults {
        note.faults.push(f.name().to_string());
        match f {
            Plan::Delay { ms } => note.delay_ms += ms,
            Plan::DropConnection => note.drop = true,
            _ => {}
        }
    }
    // The model fills `output` only when a rule has effects; for a successful statistics call
    // without any, read the relationship here (a view of the same world).
    let mut output = std::mem::take(&mut ans.output);
    if let (0, Output::None, replica_core::ops::Operation::GetReplicationStatistics { vm, rel }) =
        (ans.code, &output, &op)
        && let Some(r) = slot.world.find_vm(host, vm).and_then(|v| v.rel(*rel))
    {
        output = Output::Statistics {
            health: r.health,
            state: r.state,
            last_replication_time: r.last_replication_time,
            replication_count: r.replication_count,
            pending_bytes: 0,
        };
    }
    let mut outs: Vec<(&str, Value)> = Vec::new();
    for o in sig.outputs {
        let v = match *o {
            "Job" => ans
                .job
                .as_deref()
                .map_or(Value::Null, |j| Value::Ref(Box::new(classes::job_epr(j)))),
            "ResultingSystem" => ans
                .resulting_system
                .as_deref()
                .map_or(Value::Null, |v| Value::Ref(Box::new(classes::vm_epr(v)))),
            "ReplicationStatistics" => match &output {
                Output::Statistics {
                    health,
                    last_replication_time,
                    replication_count,
                    pending_bytes,
                    ..
                } => {
                    let s = classes::embedded(
                        "Msvm_ReplicationStatistics",
                        vec![
                            ("ReplicationHealth", Value::Int(health.number().into())),
                            (
                                "ReplicationSuccessCount",
                                Value::Int(i64::try_from(*replication_count).unwrap_or(i64::MAX)),
                            ),
                            (
                                "PendingReplicationSize",
                                Value::Int(i64::try_from(*pending_bytes).unwrap_or(i64::MAX)),
                            ),
                            (
                                "EndStatisticTime",
                                last_replication_time
                                    .map_or(Value::Null, |t| Value::Datetime(t as i64)),
                            ),
                            ("ReplicationSize", Value::Int(0)),
                            ("MaxReplicationSize", Value::Int(0)),
                            ("StartStatisticTime", Value::Null),
                        ],
                    );
                    Value::Array(vec![Value::Text(s.into())])
                }
                _ => Value::Null,
            },
            "EncodedCertificates" => Value::Array(Vec::new()),
            _ => Value::Null,
        };
        outs.push((o, v));
    }
    Ok(writer::invoke_response(
        &h, resource, sig.name, &outs, ans.code,
    ))
}

/// `Msvm_ConcreteJob.GetError` / `GetErrorEx`: an embedded `Msvm_Error` (GetErrorEx: an
/// array of one) whenever the job did not end OK, else Null: geterror-msvm-concretejob.md «If the
/// operational status of the job is not 2 (OK), this method returns an embedded instance of the
/// Msvm_Error class» and geterrorex-msvm-concretejob.md «this method returns one or more
/// embedded instances».
fn get_error(
    slot: &mut WorldSlot,
    host: &str,
    target: &instances::Found,
    h: &ReplyHeader<'_>,
    resource: &str,
    method: &'static str,
    note: &mut Note,
) -> String {
    note.code = Some(0);
    let id = target.text("InstanceID").unwrap_or_default();
    let err = slot
        .world
        .job(host, &id)
        .filter(|j| classes::job_failed(j) || j.error_code != 0)
        .map(|j| {
            // The entity that failed: the job's VM when it has one, else the job itself.
            let source = match j.change.as_ref().and_then(|c| c.vm.as_deref()) {
                Some(vm) => classes::vm_epr(vm),
                None => classes::job_epr(&j.id),
            };
            let message = if j.error_description.is_empty() {
                format!("The operation failed: {}.", j.state.label())
            } else {
                j.error_description.clone()
            };
            classes::embedded(
                "Msvm_Error",
                vec![
                    // 4: Software Error; 5: Major; 0: Unknown (INFERRED: no capture).
                    ("ErrorType", Value::Int(4)),
                    ("MessageID", Value::Text(j.error_code.to_string().into())),
                    ("Message", Value::Text(message.into())),
                    ("MessageArguments", Value::Array(Vec::new())),
                    ("PerceivedSeverity", Value::Int(5)),
                    ("ProbableCause", Value::Int(0)),
                    (
                        "ErrorSource",
                        Value::Text(classes::object_path(host, &source).into()),
                    ),
                    // 1: CIM_ERR_FAILED.
                    ("CIMStatusCode", Value::Int(1)),
                ],
            )
        });
    let out = match (method, err) {
        ("GetErrorEx", Some(e)) => ("Errors", Value::Array(vec![Value::Text(e.into())])),
        ("GetErrorEx", None) => ("Errors", Value::Null),
        (_, e) => ("Error", e.map_or(Value::Null, |e| Value::Text(e.into()))),
    };
    writer::invoke_response(h, resource, method, &[out], 0)
}
