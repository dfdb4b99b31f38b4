//! The JSON control API under `/_replica/v1/` (docs/facts.md#control-api): what a test suite uses
//! to arrange the world, break it on purpose and see what its client did. Documented in
//! `sim/openapi.json`, which the tests check the server against.

// The answers' types come from replica-client, as `crate::api` re-exports them: imported from
// where they are declared, so the control API does not depend on the public module above it.
use crate::app::{App, HostCtx, world_of};
use crate::state::{ClockMode, Pace as _, WorldSlot, lock};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use replica_client::control::{
    ClockState, ControlError, FaultAdded, HostState, JobView, JournalEntry, JournalPage, Named,
    RecoveryPointState, RelationshipState, Reset, ResetDone, VmState, WorldState,
};
use replica_core::diagram::{self, Format};
use replica_core::faults::{FaultKind, FaultSpec};
use replica_core::topology::ProfileSpec;
use replica_core::world::{Job, RelIx, Vm};
use replica_core::{ReplicationState, World};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq as _;

fn error(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    ControlError::new(status.as_u16(), msg).into_response()
}

/// A refusal as the HTTP answer (a local trait: [`ControlError`] is the client crate's type, so
/// axum's `IntoResponse` cannot be implemented for it here).
trait ErrorResponse {
    fn into_response(self) -> Response<Body>;
}

impl ErrorResponse for ControlError {
    fn into_response(self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut body = json!({ "error": self.message });
        if let Some(o) = body.as_object_mut() {
            if let Some(line) = self.line {
                o.insert("line".into(), json!(line));
            }
            if let Some(column) = self.column {
                o.insert("column".into(), json!(column));
            }
            if let Some(field) = self.field {
                o.insert("field".into(), json!(field));
            }
        }
        (status, axum::Json(body)).into_response()
    }
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
    // Constant time: the token's contents must not leak through how fast a guess is refused.
    token.as_bytes().ct_eq(given.trim().as_bytes()).into()
}

/// One world's control call, run on the blocking pool: `GET state` of a 30,000-VM world or a
/// reset that builds one takes seconds, and on an async worker it would stall every listener.
async fn blocking(f: impl FnOnce() -> Response<Body> + Send + 'static) -> Response<Body> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the control request failed: {e}"),
        )
    })
}

/// The world a control call addresses: the `{world}` of `/worlds/{world}/_replica/v1/…`, else
/// the `X-Replica-World` header, else the default world.
struct WorldName(String);

impl<S: Send + Sync> FromRequestParts<S> for WorldName {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(params) = RawPathParams::from_request_parts(parts, state).await
            && let Some((_, w)) = params.iter().find(|(k, _)| *k == "world")
        {
            return Ok(WorldName(w.to_string()));
        }
        Ok(WorldName(world_of(&parts.headers)))
    }
}

/// The query string as names and values; a malformed one is the API's JSON error.
struct Params(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Response<Body>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e| error(e.status(), format!("query string: {}", e.body_text())))
    }
}

/// The request body; an unreadable or oversized one is the API's JSON error.
struct RawBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Response<Body>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| error(e.status(), format!("request body: {}", e.body_text())))
    }
}

/// Runs `f` on the world the call addresses (created by its first use), its clock brought up
/// to date, off the async workers.
async fn on_world(
    ctx: HostCtx,
    world: WorldName,
    f: impl FnOnce(&HostCtx, &mut WorldSlot) -> Response<Body> + Send + 'static,
) -> Response<Body> {
    blocking(move || match ctx.app.worlds.get(&world.0) {
        Ok(slot) => {
            let mut s = lock(&slot);
            s.tick();
            f(&ctx, &mut s)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    })
    .await
}

/// A control endpoint: method and path below `/_replica/v1/` (`{x}` is a path parameter) and
/// its handler. The router, `api::endpoints` and the OpenAPI check all read this one table;
/// `sim/openapi.json` documents exactly these endpoints, and a test holds the two together.
type Route = (&'static str, &'static str, fn() -> MethodRouter<HostCtx>);

pub(crate) const ROUTES: &[Route] = &[
    ("GET", "health", || get(health)),
    ("GET", "openapi.json", || get(openapi)),
    ("POST", "reset", || post(reset)),
    ("GET", "state", || get(state)),
    ("GET", "faults", || get(faults)),
    ("POST", "faults", || post(add_fault)),
    ("DELETE", "faults", || delete(clear_faults)),
    ("DELETE", "faults/{id}", || delete(remove_fault)),
    ("GET", "clock", || get(clock)),
    ("POST", "clock", || post(set_clock)),
    ("GET", "journal", || get(journal)),
    ("GET", "coverage", || get(coverage)),
    ("GET", "diagram", || get(diagram_text)),
    ("GET", "worlds", || get(worlds)),
    ("DELETE", "worlds/{name}", || delete(remove_world)),
];

/// The control API, to nest under `/_replica/v1` and `/worlds/{world}/_replica/v1`.
pub(crate) fn router(ctx: HostCtx) -> Router<HostCtx> {
    let mut r = Router::new();
    for (_, path, handler) in ROUTES {
        r = r.route(&format!("/{path}"), handler());
    }
    r.fallback(no_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        // Before routing: without the token a caller learns nothing, not even what exists.
        .layer(axum::middleware::from_fn_with_state(ctx, require_token))
}

async fn require_token(
    State(ctx): State<HostCtx>,
    req: Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    if authorized(&ctx.app, req.headers()) {
        next.run(req).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "the control API needs the control token (Authorization: Bearer <token>)",
        )
    }
}

/// The part of a request path below `/_replica/v1/` (a nested router sees only that part).
fn endpoint_path(uri: &Uri) -> String {
    uri.path().trim_matches('/').to_string()
}

async fn no_endpoint(uri: Uri) -> Response<Body> {
    let rest = endpoint_path(&uri);
    error(
        StatusCode::NOT_FOUND,
        format!("no control endpoint /_replica/v1/{rest}; see GET /_replica/v1/openapi.json"),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response<Body> {
    let rest = endpoint_path(&uri);
    let parts: Vec<&str> = rest.split('/').collect();
    let pattern = pattern_of(&parts).unwrap_or_default();
    let allow = allowed_methods(pattern);
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on /_replica/v1/{pattern}; allowed: {allow}"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&allow) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

async fn health(State(ctx): State<HostCtx>, world: WorldName) -> Response<Body> {
    on_world(ctx, world, |ctx, s| {
        ok(json!({
            // `ok` stays true while saves fail: the simulator still answers. `state_file`
            // says whether what it acknowledged is on disk.
            "ok": true,
            "state_file": ctx.app.save_status.health(),
            "world": s.name,
            "host": ctx.host,
            "hosts": ctx.app.host_urls.read().map(|u| u.clone()).unwrap_or_default(),
            "version": env!("CARGO_PKG_VERSION"),
        }))
    })
    .await
}

async fn openapi() -> Response<Body> {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn reset(State(ctx): State<HostCtx>, world: WorldName, body: RawBody) -> Response<Body> {
    on_world(ctx, world, move |ctx, s| {
        let b: Option<Reset> = match parse_body(&body.0) {
            Ok(b) => b,
            Err(r) => return *r,
        };
        match apply_reset(s, &ctx.app, b.unwrap_or_default()) {
            Ok(done) => axum::Json(done).into_response(),
            Err(e) => e.into_response(),
        }
    })
    .await
}

async fn state(State(ctx): State<HostCtx>, world: WorldName) -> Response<Body> {
    blocking(move || {
        // Copied under the lock, written out after it: the world's other requests wait for
        // a clone, not for the JSON of every VM.
        match typed_state(&ctx.app, &world.0) {
            Ok(state) => axum::Json(state).into_response(),
            Err(e) => e.into_response(),
        }
    })
    .await
}

async fn faults(State(ctx): State<HostCtx>, world: WorldName) -> Response<Body> {
    on_world(ctx, world, |_, s| ok(json!({ "faults": s.world.faults() }))).await
}

async fn add_fault(State(ctx): State<HostCtx>, world: WorldName, body: RawBody) -> Response<Body> {
    on_world(ctx, world, move |ctx, s| {
        if body.0.iter().all(u8::is_ascii_whitespace) {
            return error(
                StatusCode::BAD_REQUEST,
                "POST faults needs a fault rule as JSON, e.g. {\"kind\":\"return_code\",\"code\":32768}",
            );
        }
        match parse_fault(&body.0).and_then(|spec| apply_add_fault(s, &ctx.app, spec)) {
            Ok(added) => (StatusCode::CREATED, axum::Json(added)).into_response(),
            Err(e) => e.into_response(),
        }
    })
    .await
}

async fn clear_faults(State(ctx): State<HostCtx>, world: WorldName) -> Response<Body> {
    on_world(ctx, world, |_, s| {
        ok(json!({ "removed": apply_clear_faults(s) }))
    })
    .await
}

async fn remove_fault(
    State(ctx): State<HostCtx>,
    world: WorldName,
    Path(params): Path<BTreeMap<String, String>>,
) -> Response<Body> {
    let id = params.get("id").cloned().unwrap_or_default();
    on_world(ctx, world, move |_, s| {
        let Ok(id) = id.parse::<u64>() else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("fault id `{id}` is not a number"),
            );
        };
        if !s.world.remove_fault(id) {
            error(StatusCode::NOT_FOUND, format!("no fault {id}"))
        } else {
            s.changes += 1;
            ok(json!({ "removed": 1 }))
        }
    })
    .await
}

async fn clock(State(ctx): State<HostCtx>, world: WorldName) -> Response<Body> {
    on_world(ctx, world, |_, s| {
        axum::Json(clock_state(s)).into_response()
    })
    .await
}

async fn set_clock(State(ctx): State<HostCtx>, world: WorldName, body: RawBody) -> Response<Body> {
    on_world(ctx, world, move |_, s| {
        let b: ClockBody = match parse_body(&body.0) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "POST clock needs {\"mode\": ...} and/or {\"advance_ms\": N} / {\"advance\": \"2s\"}",
                );
            }
            Err(r) => return *r,
        };
        match apply_clock(s, &b) {
            Ok(()) => axum::Json(clock_state(s)).into_response(),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        }
    })
    .await
}

async fn journal(State(ctx): State<HostCtx>, world: WorldName, q: Params) -> Response<Body> {
    on_world(ctx, world, move |_, s| journal_answer(s, &q.0)).await
}

async fn coverage(State(ctx): State<HostCtx>, world: WorldName) -> Response<Body> {
    on_world(ctx, world, |_, s| {
        ok(serde_json::to_value(s.coverage.report()).unwrap_or(Json::Null))
    })
    .await
}

async fn diagram_text(State(ctx): State<HostCtx>, world: WorldName, q: Params) -> Response<Body> {
    on_world(ctx, world, move |_, s| {
        let format =
            q.0.get("format")
                .map_or(Some(Format::Mermaid), |f| Format::parse(f));
        let Some(format) = format else {
            return error(StatusCode::BAD_REQUEST, "format must be mermaid or dot");
        };
        let highlight: Vec<ReplicationState> = if q
            .0
            .get("highlight")
            .is_some_and(|v| v != "false" && v != "0")
        {
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
    })
    .await
}

async fn worlds(State(ctx): State<HostCtx>) -> Response<Body> {
    blocking(move || ok(json!({ "worlds": ctx.app.worlds.names() }))).await
}

async fn remove_world(
    State(ctx): State<HostCtx>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Response<Body> {
    let name = params.get("name").cloned().unwrap_or_default();
    blocking(move || {
        if ctx.app.worlds.remove(&name) {
            ok(json!({ "removed": name }))
        } else {
            error(
                StatusCode::NOT_FOUND,
                format!("no world `{name}` (the default world cannot be removed)"),
            )
        }
    })
    .await
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

/// The OpenAPI document of this API, served at `GET /_replica/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The longest delay a fault may ask for: a test double should not hold a connection forever.
pub const MAX_DELAY_MS: u64 = 600_000;

/// The endpoint pattern a request path matches, if any (`faults/3` → `faults/{id}`).
fn pattern_of(parts: &[&str]) -> Option<&'static str> {
    ROUTES.iter().map(|(_, p, _)| *p).find(|p| {
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
fn parse_fault(body: &Bytes) -> Result<FaultSpec, ControlError> {
    parse_fault_json(body).map_err(bad)
}

fn parse_fault_json(body: &Bytes) -> Result<FaultSpec, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("a fault rule is a JSON object".into());
    };
    let kinds = FaultKind::names().collect::<Vec<_>>().join(", ");
    let Some(kind) = obj.get("kind").and_then(Json::as_str) else {
        return Err(format!("a fault rule needs `kind`: one of {kinds}"));
    };
    let Some(spec) = FaultKind::spec(kind) else {
        return Err(format!(
            "unknown fault kind `{kind}`; expected one of {kinds}"
        ));
    };
    let (common, own) = (FaultKind::COMMON_FIELDS, spec.fields);
    for key in obj.keys() {
        if !common.contains(&key.as_str()) && !own.contains(&key.as_str()) {
            let mut allowed: Vec<&str> = common.to_vec();
            allowed.extend_from_slice(own);
            return Err(format!(
                "unknown field `{key}` in a `{kind}` fault; expected {}",
                allowed.join(", ")
            ));
        }
    }
    serde_json::from_value(v).map_err(|e| format!("fault rule: {e}"))
}

/// What a fault rule must satisfy however it came (HTTP or a typed call): valid values, hosts
/// and methods this world knows, a bounded size.
fn check_fault(spec: &FaultSpec, world: &World) -> Result<(), String> {
    spec.validate().map_err(|e| e.to_string())?;
    let hosts = || world.hosts().keys().cloned().collect::<Vec<_>>().join(", ");
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
    let size = serde_json::to_vec(spec).map_or(usize::MAX, |v| v.len());
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
    Ok(())
}

/// The largest fault rule accepted, as JSON.
const MAX_FAULT_RULE_BYTES: usize = 4096;

fn allowed_methods(pattern: &str) -> String {
    ROUTES
        .iter()
        .filter(|(_, p, _)| *p == pattern)
        .map(|(m, _, _)| *m)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST clock`: a new mode and/or a step forward, checked whole before anything changes.
fn apply_clock(s: &mut WorldSlot, b: &ClockBody) -> Result<(), String> {
    let mode = b.mode.as_deref().map(|m| clock_mode_of(b, m)).transpose()?;
    if b.mode.is_none() && (b.speed.is_some() || b.n.is_some()) {
        return Err("speed and n go with a mode: {\"mode\": \"realtime\", \"speed\": 10}".into());
    }
    let advance = match (&b.advance, b.advance_ms) {
        (Some(_), Some(_)) => return Err("give advance or advance_ms, not both".into()),
        (Some(text), None) => Some(parse_duration(text)?),
        (None, ms) => ms,
    };
    if let Some(ms) = advance {
        check_advance(s, ms)?;
    }
    if let Some(m) = mode {
        s.clock.set_mode(m);
        s.world.set_pace(m.pace());
        s.changes += 1;
    }
    if let Some(ms) = advance {
        apply_advance(s, ms);
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> ControlError {
    ControlError::new(400, msg)
}

/// A reset, over HTTP or typed: checked whole before anything changes, so a refused reset
/// leaves the world as it was.
fn apply_reset(s: &mut WorldSlot, app: &App, b: Reset) -> Result<ResetDone, ControlError> {
    let mut spec = app.worlds.default_spec.clone();
    // A fresh world is fresh in time too: a test's outcome must not depend on the clock an
    // earlier test left behind, so the server's configured mode unless the body names one.
    let mut clock = app.worlds.clock;
    if let Some(text) = &b.clock {
        let no_extras = ClockBody {
            mode: None,
            speed: None,
            n: None,
            advance_ms: None,
            advance: None,
        };
        clock = clock_mode_of(&no_extras, text).map_err(bad)?;
    }
    if b.topology.is_some() && b.topology_toml.is_some() {
        return Err(bad("give topology or topology_toml, not both"));
    }
    if let Some(t) = b.topology {
        spec = t;
    }
    if let Some(text) = &b.topology_toml {
        spec = crate::topology_file::parse("topology_toml", text).map_err(|e| ControlError {
            line: Some(e.line),
            column: Some(e.column),
            field: e.field.clone(),
            ..bad(e.to_string())
        })?;
    }
    if let Some(p) = b.profile {
        spec.profile = Some(ProfileSpec::Named(p));
    }
    let seed = b.seed.unwrap_or(s.seed);
    app.limits.check_topology(&spec).map_err(bad)?;
    if let Err(e) = spec.build(seed, 0) {
        return Err(ControlError {
            field: Some(e.path.clone()),
            ..bad(e.to_string())
        });
    }
    let old_seed = s.seed;
    s.seed = seed;
    match s.reset(spec) {
        Ok(()) => {
            s.clock.set_mode(clock);
            s.world.set_pace(clock.pace());
            Ok(ResetDone {
                reset: true,
                world: s.name.clone(),
                seed: s.seed,
                clock: s.clock.mode,
            })
        }
        Err(e) => {
            s.seed = old_seed;
            Err(bad(e))
        }
    }
}

/// Adds a rule to the world's fault plan, within `max_faults`.
fn apply_add_fault(
    s: &mut WorldSlot,
    app: &App,
    spec: FaultSpec,
) -> Result<FaultAdded, ControlError> {
    if s.world.faults().len() >= app.limits.max_faults {
        return Err(bad(format!(
            "this world has {} fault rules, the limit (--limit max_faults=N); DELETE faults first",
            s.world.faults().len()
        )));
    }
    check_fault(&spec, &s.world).map_err(bad)?;
    let id = s.world.add_fault(spec).map_err(|e| bad(e.to_string()))?;
    s.changes += 1;
    let rule = s.world.faults().iter().find(|f| f.id == id).cloned();
    Ok(FaultAdded { id, rule })
}

fn apply_clear_faults(s: &mut WorldSlot) -> usize {
    let n = s.world.clear_faults();
    s.changes += 1;
    n
}

/// A step that would take the clock past the last instant the wire can carry is refused: CIM
/// datetimes and RFC 3339 have four-digit years, so every time shown after it would be wrong.
fn check_advance(s: &WorldSlot, ms: u64) -> Result<(), String> {
    let now = s.world.now();
    if now.saturating_add(ms) > replica_core::time::LAST_MS {
        return Err(format!(
            "advancing by {ms} ms would take the clock past {} (the last instant CIM datetimes \
             and RFC 3339 can write); the clock is at {}",
            replica_core::time::rfc3339(replica_core::time::LAST_MS),
            replica_core::time::rfc3339(now),
        ));
    }
    Ok(())
}

fn apply_advance(s: &mut WorldSlot, ms: u64) {
    s.clock.advance(ms);
    s.tick();
    s.changes += 1;
}

/// Runs `f` on world `world` after bringing its clock up to date, as every control call does.
fn with_world<T>(
    app: &App,
    world: &str,
    f: impl FnOnce(&mut WorldSlot) -> Result<T, ControlError>,
) -> Result<T, ControlError> {
    let slot = app.worlds.get(world).map_err(bad)?;
    let mut s = lock(&slot);
    s.tick();
    f(&mut s)
}

pub(crate) fn typed_reset(app: &App, world: &str, r: Reset) -> Result<ResetDone, ControlError> {
    with_world(app, world, |s| apply_reset(s, app, r))
}

pub(crate) fn typed_add_fault(
    app: &App,
    world: &str,
    spec: FaultSpec,
) -> Result<FaultAdded, ControlError> {
    with_world(app, world, |s| apply_add_fault(s, app, spec))
}

pub(crate) fn typed_clear_faults(app: &App, world: &str) -> Result<usize, ControlError> {
    with_world(app, world, |s| Ok(apply_clear_faults(s)))
}

pub(crate) fn typed_advance(app: &App, world: &str, ms: u64) -> Result<ClockState, ControlError> {
    with_world(app, world, |s| {
        check_advance(s, ms).map_err(bad)?;
        apply_advance(s, ms);
        Ok(clock_state(s))
    })
}

pub(crate) fn typed_clock(app: &App, world: &str) -> Result<ClockState, ControlError> {
    with_world(app, world, |s| Ok(clock_state(s)))
}

pub(crate) fn typed_journal(
    app: &App,
    world: &str,
    since: u64,
    limit: usize,
) -> Result<JournalPage, ControlError> {
    if !(1..=10_000).contains(&limit) {
        return Err(bad("limit must be 1..=10000"));
    }
    with_world(app, world, |s| Ok(journal_page(s, since, limit)))
}

pub(crate) fn typed_contexts(app: &App, world: &str) -> Result<usize, ControlError> {
    with_world(app, world, |s| Ok(s.context_count()))
}

pub(crate) fn typed_state(app: &App, world: &str) -> Result<WorldState, ControlError> {
    let snapshot = with_world(app, world, |s| Ok(StateSnapshot::of(s)))?;
    Ok(world_state(&snapshot))
}

fn journal_answer(s: &WorldSlot, q: &BTreeMap<String, String>) -> Response<Body> {
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
    axum::Json(journal_page(s, since, limit)).into_response()
}

fn journal_page(s: &WorldSlot, since: u64, limit: usize) -> JournalPage {
    let entries: Vec<JournalEntry> = s
        .journal
        .iter()
        .filter(|e| e.seq > since)
        .take(limit)
        .map(|e| JournalEntry {
            call: e.clone(),
            at_rfc3339: replica_core::time::rfc3339(e.at),
        })
        .collect();
    let next = entries.last().map_or(since, |e| e.seq);
    let latest = s.next_seq.saturating_sub(1);
    JournalPage {
        entries,
        next,
        latest,
        more: next < latest,
    }
}

pub fn current_states(w: &World) -> Vec<ReplicationState> {
    let mut v: Vec<ReplicationState> = w
        .hosts()
        .values()
        .flat_map(|h| h.vms.values())
        .flat_map(|vm| vm.rels.iter().flatten().map(|r| r.state))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn clock_state(s: &WorldSlot) -> ClockState {
    ClockState {
        clock: s.clock.mode,
        now: s.world.now(),
        now_rfc3339: replica_core::time::rfc3339(s.world.now()),
    }
}

fn vm_state(vm: &Vm) -> VmState {
    let relationships = [RelIx::Primary, RelIx::Extended]
        .into_iter()
        .filter_map(|ix| {
            vm.rel(ix).map(|r| RelationshipState {
                index: ix.index() as u8,
                instance_id: crate::classes::relationship_id(&vm.id, ix),
                state: Named::state(r.state),
                health: r.health.ident().into(),
                peer_host: r.peer_host.clone(),
                last_replication_time: r.last_replication_time.map(replica_core::time::rfc3339),
                failed_over_replication_type: r.failed_over_replication_type.ident().into(),
                settings: r.settings.clone(),
            })
        })
        .collect();
    VmState {
        id: vm.id.clone(),
        name: vm.name.clone(),
        power: vm.power.ident().into(),
        mode: vm.mode.ident().into(),
        state: Named::state(vm.replication_state()),
        health: vm.replication_health().ident().into(),
        relationships,
        recovery_points: vm
            .recovery_points
            .iter()
            .map(|p| RecoveryPointState {
                id: p.id.clone(),
                kind: p.kind,
                created: replica_core::time::rfc3339(p.created),
                name: p.name.clone(),
            })
            .collect(),
        test_replica: vm.test_replica.clone(),
        test_of: vm.test_of.clone(),
        busy_with: vm.busy_with.clone(),
    }
}

fn job_view(j: &Job) -> JobView {
    JobView {
        id: j.id.clone(),
        host: j.host.clone(),
        job_type: Named::job_type(j.job_type),
        state: Named::job_state(j.state),
        percent: j.percent,
        submitted: replica_core::time::rfc3339(j.submitted),
        ended: j.ended.map(replica_core::time::rfc3339),
        error_code: j.error_code,
        error_description: j.error_description.clone(),
        rule: j.change.as_ref().map(|c| c.rule.id().to_string()),
        vm: j.change.as_ref().and_then(|c| c.vm.clone()),
    }
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

pub fn world_state(s: &StateSnapshot) -> WorldState {
    let w = &s.world;
    let hosts = w
        .hosts()
        .values()
        .map(|h| {
            (
                h.name.clone(),
                HostState {
                    name: h.name.clone(),
                    service_running: h.service_running,
                    vms: h.vms.values().map(vm_state).collect(),
                    jobs: h.jobs.values().map(job_view).collect(),
                    authorization: h.authorization.clone(),
                    service_settings: h.service_settings.clone(),
                },
            )
        })
        .collect();
    WorldState {
        schema: 1,
        world: s.name.clone(),
        seed: s.seed,
        now: w.now(),
        now_rfc3339: replica_core::time::rfc3339(w.now()),
        generation: w.generation(),
        clock: s.clock.mode,
        profile: w.profile().clone(),
        hosts,
        faults: w.faults().to_vec(),
        journal_next: s.next_seq,
    }
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
