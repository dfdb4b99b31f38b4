//! The JSON control API under `/_replica/v1/` (DESIGN.md "Control API"): what a test suite uses
//! to arrange the world, break it on purpose and see what its client did. Documented in
//! `sim/openapi.json`, which the tests check the server against.

use crate::server::{App, HostCtx, world_of};
use crate::state::{ClockMode, WorldSlot, lock};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use replica_core::diagram::{self, Format};
use replica_core::faults::{FaultKind, FaultSpec};
use replica_core::topology::{ProfileSpec, TopologySpec};
use replica_core::world::{Job, RelIx, Vm};
use replica_core::{ReplicationState, World};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

fn error(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

fn ok(v: Json) -> Response<Body> {
    axum::Json(v).into_response()
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.control_token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-replica-token").and_then(|v| v.to_str().ok()))
        .unwrap_or_default();
    crate::server::ct_eq_pub(token.as_bytes(), given.trim().as_bytes())
}

type QueryResult = Result<Query<BTreeMap<String, String>>, QueryRejection>;
type BodyResult = Result<Bytes, BytesRejection>;
/// The query and the body of a request, or the JSON error that refuses it.
type Inputs = Result<(BTreeMap<String, String>, Bytes), Box<Response<Body>>>;

/// Turns axum's own rejections (a malformed query string, an unreadable or oversized body) into
/// the API's JSON errors.
fn inputs(q: QueryResult, body: BodyResult) -> Inputs {
    let q = q.map_err(|e| error(e.status(), format!("query string: {}", e.body_text())))?;
    let body = body.map_err(|e| error(e.status(), format!("request body: {}", e.body_text())))?;
    Ok((q.0, body))
}

pub async fn default_world(
    State(ctx): State<HostCtx>,
    Path(rest): Path<String>,
    method: Method,
    q: QueryResult,
    headers: HeaderMap,
    body: BodyResult,
) -> Response<Body> {
    let world = world_of(&headers);
    match inputs(q, body) {
        Ok((q, body)) => off_the_workers(ctx, world, rest, method, q, headers, body).await,
        Err(r) => *r,
    }
}

/// Runs a control request on the blocking pool: `GET state` of a 30,000-VM world or a reset
/// that builds one takes seconds, and on an async worker it would stall every listener.
async fn off_the_workers(
    ctx: HostCtx,
    world: String,
    rest: String,
    method: Method,
    q: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    tokio::task::spawn_blocking(move || handle(&ctx, &world, &rest, method, q, headers, body))
        .await
        .unwrap_or_else(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the control request failed: {e}"),
            )
        })
}

pub async fn named_world(
    State(ctx): State<HostCtx>,
    Path((world, rest)): Path<(String, String)>,
    method: Method,
    q: QueryResult,
    headers: HeaderMap,
    body: BodyResult,
) -> Response<Body> {
    match inputs(q, body) {
        Ok((q, body)) => off_the_workers(ctx, world, rest, method, q, headers, body).await,
        Err(r) => *r,
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(
    body: &Bytes,
) -> Result<Option<T>, Box<Response<Body>>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {e}"),
        ))
    })
}

/// Every control endpoint: method and path below `/_replica/v1/` (`{x}` is a path parameter).
/// `sim/openapi.json` documents exactly these; a test holds the two together.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "health"),
    ("GET", "openapi.json"),
    ("POST", "reset"),
    ("GET", "state"),
    ("GET", "faults"),
    ("POST", "faults"),
    ("DELETE", "faults"),
    ("DELETE", "faults/{id}"),
    ("GET", "clock"),
    ("POST", "clock"),
    ("GET", "journal"),
    ("GET", "coverage"),
    ("GET", "diagram"),
    ("GET", "worlds"),
    ("DELETE", "worlds/{name}"),
];

/// The OpenAPI document of this API, served at `GET /_replica/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The longest delay a fault may ask for: a test double should not hold a connection forever.
pub const MAX_DELAY_MS: u64 = 600_000;

/// The endpoint pattern a request path matches, if any (`faults/3` → `faults/{id}`).
fn pattern_of(parts: &[&str]) -> Option<&'static str> {
    ENDPOINTS.iter().map(|(_, p)| *p).find(|p| {
        let pat: Vec<&str> = p.split('/').collect();
        pat.len() == parts.len()
            && pat
                .iter()
                .zip(parts)
                .all(|(a, b)| a.starts_with('{') || a == b)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    /// A topology as JSON (same shape as the TOML files).
    topology: Option<TopologySpec>,
    /// A topology as TOML text.
    topology_toml: Option<String>,
    /// Select a named behaviour profile for the new world.
    profile: Option<String>,
    seed: Option<u64>,
    /// The new world's clock, in the CLI form (`manual`, `realtime:10`, `polls:3`); default:
    /// the server's `--clock`.
    clock: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    /// `realtime`, `manual`, `polls`, or the CLI form `realtime:10` / `polls:3`.
    mode: Option<String>,
    speed: Option<f64>,
    n: Option<u32>,
    advance_ms: Option<u64>,
    /// A duration: `1500ms`, `2s`, `1.5s`, `5m`, `1h`.
    advance: Option<String>,
}

/// Parses `1500ms`, `2s`, `1.5s`, `5m`, `1h` (a bare number is milliseconds).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        other => {
            return Err(format!(
                "duration `{text}`: unknown unit `{other}`; expected ms, s, m or h"
            ));
        }
    };
    match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * factor <= 1e15 => Ok((n * factor).round() as u64),
        _ => Err(format!(
            "duration `{text}` is not a number with a unit, e.g. 1500ms, 2s, 5m"
        )),
    }
}

fn clock_mode_of(b: &ClockBody, mode: &str) -> Result<ClockMode, String> {
    let m = match mode.trim().to_ascii_lowercase().as_str() {
        "realtime" => ClockMode::Realtime {
            speed: b.speed.unwrap_or(1.0),
        },
        "manual" => ClockMode::Manual,
        "polls" => ClockMode::Polls {
            n: b.n.unwrap_or(1),
        },
        _ => ClockMode::parse(mode)?,
    };
    let valid = match m {
        ClockMode::Realtime { speed } => speed > 0.0 && speed.is_finite() && speed <= 1e6,
        ClockMode::Polls { n } => (1..=10_000).contains(&n),
        ClockMode::Manual => true,
    };
    if valid {
        Ok(m)
    } else {
        Err(format!(
            "invalid clock `{mode}`: realtime needs 0 < speed <= 1000000, polls needs 1 <= n <= 10000"
        ))
    }
}

/// Reads a fault rule strictly: a misspelt field would otherwise make a rule that silently
/// matches everything (FaultSpec cannot deny unknown fields because of its flattened kind).
fn parse_fault(body: &Bytes, world: &World) -> Result<FaultSpec, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("a fault rule is a JSON object".into());
    };
    let kinds = FaultKind::names().collect::<Vec<_>>().join(", ");
    let Some(kind) = obj.get("kind").and_then(Json::as_str) else {
        return Err(format!("a fault rule needs `kind`: one of {kinds}"));
    };
    let own: &[&str] = match kind {
        "return_code" => &["code"],
        "fail_job" => &["error_code", "description", "after_percent"],
        "complete_with_warnings" => &["description"],
        "delay" => &["ms"],
        "drop_connection" | "host_down" => &[],
        "partition" => &["a", "b"],
        other => {
            return Err(format!(
                "unknown fault kind `{other}`; expected one of {kinds}"
            ));
        }
    };
    const COMMON: &[&str] = &["kind", "host", "method", "vm", "count", "probability"];
    for key in obj.keys() {
        if !COMMON.contains(&key.as_str()) && !own.contains(&key.as_str()) {
            let mut allowed: Vec<&str> = COMMON.to_vec();
            allowed.extend_from_slice(own);
            return Err(format!(
                "unknown field `{key}` in a `{kind}` fault; expected {}",
                allowed.join(", ")
            ));
        }
    }
    let spec: FaultSpec =
        serde_json::from_value(v.clone()).map_err(|e| format!("fault rule: {e}"))?;
    spec.validate().map_err(|e| e.to_string())?;
    let hosts = || world.hosts.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut named = Vec::new();
    if let Some(h) = &spec.host {
        named.push(("host", h.clone()));
    }
    if let FaultKind::Partition { a, b } = &spec.kind {
        named.push(("a", a.clone()));
        named.push(("b", b.clone()));
    }
    for (field, h) in named {
        if world.resolve_host(&h).is_none() {
            return Err(format!(
                "{field}: unknown host `{h}`; expected one of {}",
                hosts()
            ));
        }
    }
    if let Some(m) = &spec.method {
        if m.eq_ignore_ascii_case("RequestReplicationStateChangeEx") {
            return Err(
                "method: the model matches RequestReplicationStateChangeEx calls under the name \
                 RequestReplicationStateChange; use that"
                    .into(),
            );
        }
        let known = replica_core::methods::METHODS
            .iter()
            .map(|s| s.name)
            .chain(["Get", "Enumerate", "Pull", "Release"])
            .any(|k| k.eq_ignore_ascii_case(m));
        if !known {
            return Err(format!(
                "method: `{m}` is neither a modelled WMI method nor Get, Enumerate, Pull or Release"
            ));
        }
    }
    if spec.count == Some(0) {
        return Err("count: 0 would never fire; expected at least 1 (or leave it out)".into());
    }
    // Free text (vm, a failing job's description) is kept for the world's life: bounded.
    let size = serde_json::to_vec(&spec).map_or(usize::MAX, |v| v.len());
    if size > MAX_FAULT_RULE_BYTES {
        return Err(format!(
            "the fault rule is {size} bytes of JSON; at most {MAX_FAULT_RULE_BYTES}"
        ));
    }
    if let FaultKind::Delay { ms } = spec.kind
        && ms > MAX_DELAY_MS
    {
        return Err(format!("delay ms {ms} is over the limit of {MAX_DELAY_MS}"));
    }
    Ok(spec)
}

/// The largest fault rule accepted, as JSON.
const MAX_FAULT_RULE_BYTES: usize = 4096;

fn allowed_methods(pattern: &str) -> String {
    ENDPOINTS
        .iter()
        .filter(|(_, p)| *p == pattern)
        .map(|(m, _)| *m)
        .collect::<Vec<_>>()
        .join(", ")
}

#[allow(clippy::too_many_arguments)]
fn handle(
    ctx: &HostCtx,
    world: &str,
    rest: &str,
    method: Method,
    q: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    if !authorized(&ctx.app, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "the control API needs the control token (Authorization: Bearer <token>)",
        );
    }
    let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let Some(pattern) = pattern_of(&parts) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no control endpoint /_replica/v1/{rest}; see GET /_replica/v1/openapi.json"),
        );
    };
    if !ENDPOINTS
        .iter()
        .any(|(m, p)| *p == pattern && *m == method.as_str())
    {
        let allow = allowed_methods(pattern);
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on /_replica/v1/{pattern}; allowed: {allow}"),
        );
        if let Ok(v) = header::HeaderValue::from_str(&allow) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["openapi.json"]) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                OPENAPI,
            )
                .into_response();
        }
        ("GET", ["worlds"]) => return ok(json!({ "worlds": ctx.app.worlds.names() })),
        ("DELETE", ["worlds", name]) => {
            return if ctx.app.worlds.remove(name) {
                ok(json!({ "removed": name }))
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    format!("no world `{name}` (the default world cannot be removed)"),
                )
            };
        }
        _ => {}
    }
    let slot = match ctx.app.worlds.get(world) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if (method.as_str(), parts.as_slice()) == ("GET", ["state"].as_slice()) {
        // Copied under the lock, written out after it: the world's other requests wait
        // for a clone, not for the JSON of every VM.
        let snapshot = {
            let mut s = lock(&slot);
            s.tick();
            StateSnapshot::of(&s)
        };
        return ok(state_json(&snapshot));
    }
    let mut s = lock(&slot);
    s.tick();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["health"]) => ok(json!({
            // `ok` stays true while saves fail: the simulator still answers. `state_file`
            // says whether what it acknowledged is on disk.
            "ok": true,
            "state_file": ctx.app.save_status.health(),
            "world": s.name,
            "host": ctx.host,
            "hosts": ctx.app.host_urls.read().map(|u| u.clone()).unwrap_or_default(),
            "version": env!("CARGO_PKG_VERSION"),
        })),
        ("POST", ["reset"]) => reset(&mut s, &ctx.app, &body),
        ("GET", ["faults"]) => ok(json!({ "faults": s.world.faults })),
        ("POST", ["faults"]) => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "POST faults needs a fault rule as JSON, e.g. {\"kind\":\"return_code\",\"code\":32768}",
                );
            }
            if s.world.faults.len() >= ctx.app.limits.max_faults {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "this world has {} fault rules, the limit (--limit max_faults=N); DELETE faults first",
                        s.world.faults.len()
                    ),
                );
            }
            let spec = match parse_fault(&body, &s.world) {
                Ok(spec) => spec,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            match s.world.add_fault(spec) {
                Ok(id) => {
                    s.changes += 1;
                    let rule = s.world.faults.iter().find(|f| f.id == id).cloned();
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({ "id": id, "rule": rule })),
                    )
                        .into_response()
                }
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        ("DELETE", ["faults"]) => {
            let n = s.world.faults.len();
            s.world.faults.clear();
            s.changes += 1;
            ok(json!({ "removed": n }))
        }
        ("DELETE", ["faults", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("fault id `{id}` is not a number"),
                );
            };
            let before = s.world.faults.len();
            s.world.faults.retain(|f| f.id != id);
            if s.world.faults.len() == before {
                error(StatusCode::NOT_FOUND, format!("no fault {id}"))
            } else {
                s.changes += 1;
                ok(json!({ "removed": 1 }))
            }
        }
        ("GET", ["clock"]) => ok(clock_json(&s)),
        ("POST", ["clock"]) => {
            let b: ClockBody = match parse_body(&body) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "POST clock needs {\"mode\": ...} and/or {\"advance_ms\": N} / {\"advance\": \"2s\"}",
                    );
                }
                Err(r) => return *r,
            };
            let mode = match b.mode.as_deref().map(|m| clock_mode_of(&b, m)).transpose() {
                Ok(m) => m,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            if b.mode.is_none() && (b.speed.is_some() || b.n.is_some()) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "speed and n go with a mode: {\"mode\": \"realtime\", \"speed\": 10}",
                );
            }
            let advance = match (&b.advance, b.advance_ms) {
                (Some(_), Some(_)) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "give advance or advance_ms, not both",
                    );
                }
                (Some(text), None) => match parse_duration(text) {
                    Ok(ms) => Some(ms),
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                },
                (None, ms) => ms,
            };
            if let Some(m) = mode {
                s.clock.set_mode(m);
                s.world.pace = m.pace();
                s.changes += 1;
            }
            if let Some(ms) = advance {
                s.clock.advance(ms);
                s.tick();
                s.changes += 1;
            }
            ok(clock_json(&s))
        }
        ("GET", ["journal"]) => journal(&s, &q),
        ("GET", ["coverage"]) => {
            ok(serde_json::to_value(s.coverage.report()).unwrap_or(Json::Null))
        }
        ("GET", ["diagram"]) => {
            let format = q
                .get("format")
                .map_or(Some(Format::Mermaid), |f| Format::parse(f));
            let Some(format) = format else {
                return error(StatusCode::BAD_REQUEST, "format must be mermaid or dot");
            };
            let highlight: Vec<ReplicationState> =
                if q.get("highlight").is_some_and(|v| v != "false" && v != "0") {
                    current_states(&s.world)
                } else {
                    Vec::new()
                };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                diagram::render(format, &highlight),
            )
                .into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no control endpoint /_replica/v1/{rest}"),
        ),
    }
}

fn reset(s: &mut WorldSlot, app: &App, body: &Bytes) -> Response<Body> {
    let b: Option<ResetBody> = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut spec = app.worlds.default_spec.clone();
    let mut seed = s.seed;
    // A fresh world is fresh in time too: a test's outcome must not depend on the clock an
    // earlier test left behind, so the server's configured mode unless the body names one.
    let mut clock = app.worlds.clock;
    if let Some(b) = &b {
        if let Some(text) = &b.clock {
            let no_extras = ClockBody {
                mode: None,
                speed: None,
                n: None,
                advance_ms: None,
                advance: None,
            };
            match clock_mode_of(&no_extras, text) {
                Ok(m) => clock = m,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            }
        }
        if b.topology.is_some() && b.topology_toml.is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                "give topology or topology_toml, not both",
            );
        }
        if let Some(t) = &b.topology {
            spec = t.clone();
        }
        if let Some(text) = &b.topology_toml {
            match crate::topology_file::parse("topology_toml", text) {
                Ok(t) => spec = t,
                Err(e) => {
                    return (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({
                            "error": e.to_string(),
                            "line": e.line,
                            "column": e.column,
                            "field": e.field,
                        })),
                    )
                        .into_response();
                }
            }
        }
        if let Some(p) = &b.profile {
            spec.profile = Some(ProfileSpec::Named(p.clone()));
        }
        if let Some(x) = b.seed {
            seed = x;
        }
    }
    // Checked before anything changes: a refused reset leaves the world as it was.
    if let Err(e) = app.limits.check_topology(&spec) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if let Err(e) = spec.build(seed, 0) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": e.to_string(), "field": e.path })),
        )
            .into_response();
    }
    let old_seed = s.seed;
    s.seed = seed;
    match s.reset(spec) {
        Ok(()) => {
            s.clock.set_mode(clock);
            s.world.pace = clock.pace();
            ok(json!({ "reset": true, "world": s.name, "seed": s.seed, "clock": s.clock.mode }))
        }
        Err(e) => {
            s.seed = old_seed;
            error(StatusCode::BAD_REQUEST, e)
        }
    }
}

fn journal(s: &WorldSlot, q: &BTreeMap<String, String>) -> Response<Body> {
    let since: u64 = match q.get("since").map(|v| v.parse()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "since must be a journal sequence number (the `next` of the previous page)",
            );
        }
    };
    let limit: usize = match q.get("limit").map(|v| v.parse::<usize>()) {
        None => 1000,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "limit must be 1..=10000"),
    };
    let entries: Vec<Json> = s
        .journal
        .iter()
        .filter(|e| e.seq > since)
        .take(limit)
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or(Json::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "at_rfc3339".into(),
                    Json::String(replica_core::time::rfc3339(e.at)),
                );
            }
            v
        })
        .collect();
    let next = entries
        .last()
        .and_then(|e| e.get("seq"))
        .and_then(Json::as_u64)
        .unwrap_or(since);
    let latest = s.next_seq.saturating_sub(1);
    ok(json!({
        "entries": entries,
        "next": next,
        "latest": latest,
        "more": next < latest,
    }))
}

pub fn current_states(w: &World) -> Vec<ReplicationState> {
    let mut v: Vec<ReplicationState> = w
        .hosts
        .values()
        .flat_map(|h| h.vms.values())
        .flat_map(|vm| vm.rels.iter().flatten().map(|r| r.state))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn clock_json(s: &WorldSlot) -> Json {
    json!({
        "clock": s.clock.mode,
        "now": s.world.now,
        "now_rfc3339": replica_core::time::rfc3339(s.world.now),
    })
}

/// A state value with its number and the aliases users know.
#[derive(Serialize)]
struct StateValue {
    value: u16,
    name: &'static str,
    label: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<&'static str>,
}

fn state_value(s: ReplicationState) -> StateValue {
    StateValue {
        value: s.number(),
        name: s.ident(),
        label: s.label(),
        alias: s.alias(),
    }
}

fn vm_json(vm: &Vm) -> Json {
    let rels: Vec<Json> = [RelIx::Primary, RelIx::Extended]
        .into_iter()
        .filter_map(|ix| {
            vm.rel(ix).map(|r| {
                json!({
                    "index": ix.index(),
                    "instance_id": crate::classes::relationship_id(&vm.id, ix),
                    "state": state_value(r.state),
                    "health": r.health.ident(),
                    "peer_host": r.peer_host,
                    "last_replication_time": r.last_replication_time.map(replica_core::time::rfc3339),
                    "failed_over_replication_type": r.failed_over_replication_type.ident(),
                    "settings": r.settings,
                })
            })
        })
        .collect();
    json!({
        "id": vm.id,
        "name": vm.name,
        "power": vm.power.ident(),
        "mode": vm.mode.ident(),
        "state": state_value(vm.replication_state()),
        "health": vm.replication_health().ident(),
        "relationships": rels,
        "recovery_points": vm.recovery_points.iter().map(|p| json!({
            "id": p.id, "kind": p.kind, "created": replica_core::time::rfc3339(p.created), "name": p.name,
        })).collect::<Vec<_>>(),
        "test_replica": vm.test_replica,
        "test_of": vm.test_of,
        "busy_with": vm.busy_with,
    })
}

fn job_json(j: &Job) -> Json {
    json!({
        "id": j.id,
        "host": j.host,
        "type": { "value": j.job_type.number(), "name": j.job_type.ident(), "label": j.job_type.label() },
        "state": { "value": j.state.number(), "name": j.state.ident(), "label": j.state.label() },
        "percent": j.percent,
        "submitted": replica_core::time::rfc3339(j.submitted),
        "ended": j.ended.map(replica_core::time::rfc3339),
        "error_code": j.error_code,
        "error_description": j.error_description,
        "rule": j.change.as_ref().map(|c| c.rule.clone()),
        "vm": j.change.as_ref().and_then(|c| c.vm.clone()),
    })
}

/// The whole world as JSON: the stable schema documented in `sim/openapi.json` (`State`).
/// What `GET state` shows of a world, copied out of its lock.
pub struct StateSnapshot {
    world: replica_core::World,
    name: String,
    clock: crate::state::Clock,
    next_seq: u64,
    seed: u64,
}

impl StateSnapshot {
    pub fn of(s: &WorldSlot) -> StateSnapshot {
        StateSnapshot {
            world: s.world.clone(),
            name: s.name.clone(),
            clock: s.clock.clone(),
            next_seq: s.next_seq,
            seed: s.seed,
        }
    }
}

pub fn state_json(s: &StateSnapshot) -> Json {
    let w = &s.world;
    let hosts: serde_json::Map<String, Json> = w
        .hosts
        .values()
        .map(|h| {
            (
                h.name.clone(),
                json!({
                    "name": h.name,
                    "service_running": h.service_running,
                    "vms": h.vms.values().map(vm_json).collect::<Vec<_>>(),
                    "jobs": h.jobs.values().map(job_json).collect::<Vec<_>>(),
                    "authorization": h.authorization,
                    "service_settings": h.service_settings,
                }),
            )
        })
        .collect();
    json!({
        "schema": 1,
        "world": s.name,
        "seed": s.seed,
        "now": w.now,
        "now_rfc3339": replica_core::time::rfc3339(w.now),
        "generation": w.generation,
        "clock": s.clock.mode,
        "profile": w.profile,
        "hosts": hosts,
        "faults": w.faults,
        "journal_next": s.next_seq,
    })
}

/// The live page (`crate::ui`): hosts, VMs, jobs, the state machine and the journal.
pub async fn ui(State(_ctx): State<HostCtx>) -> Response<Body> {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        crate::ui::page(),
    )
        .into_response()
}
