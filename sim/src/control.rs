//! The JSON control API under `/_replica/v1/` (DESIGN.md "Control API"): what a test suite uses
//! to arrange the world, break it on purpose and see what its client did. Documented in
//! `sim/openapi.json`, which the tests check the server against.

use crate::server::{App, HostCtx, world_of};
use crate::state::{ClockMode, JournalEntry, WorldSlot, lock};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use replica_core::diagram::{self, Format};
use replica_core::faults::FaultSpec;
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

pub async fn default_world(
    State(ctx): State<HostCtx>,
    Path(rest): Path<String>,
    method: Method,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let world = world_of(&headers);
    handle(&ctx, &world, &rest, method, q, headers, body)
}

pub async fn named_world(
    State(ctx): State<HostCtx>,
    Path((world, rest)): Path<(String, String)>,
    method: Method,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    handle(&ctx, &world, &rest, method, q, headers, body)
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    mode: Option<String>,
    speed: Option<f64>,
    n: Option<u32>,
    advance_ms: Option<u64>,
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
    if rest == "worlds" && method == Method::GET {
        return ok(json!({ "worlds": ctx.app.worlds.names() }));
    }
    if let Some(name) = rest.strip_prefix("worlds/")
        && method == Method::DELETE
    {
        return if ctx.app.worlds.remove(name) {
            ok(json!({ "removed": name }))
        } else {
            error(
                StatusCode::NOT_FOUND,
                format!("no world `{name}` (the default world cannot be removed)"),
            )
        };
    }
    let slot = match ctx.app.worlds.get(world) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let mut s = lock(&slot);
    s.tick();
    let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match (method.clone(), parts.as_slice()) {
        (Method::GET, ["health"]) => ok(json!({
            "ok": true,
            "world": s.name,
            "host": ctx.host,
            "hosts": ctx.app.host_urls.read().map(|u| u.clone()).unwrap_or_default(),
            "version": env!("CARGO_PKG_VERSION"),
        })),
        (Method::POST, ["reset"]) => {
            let b: Option<ResetBody> = match parse_body(&body) {
                Ok(b) => b,
                Err(r) => return *r,
            };
            let mut spec = ctx.app.worlds.default_spec.clone();
            if let Some(b) = &b {
                if let Some(t) = &b.topology {
                    spec = t.clone();
                }
                if let Some(text) = &b.topology_toml {
                    match toml::from_str::<TopologySpec>(text) {
                        Ok(t) => spec = t,
                        Err(e) => {
                            return error(StatusCode::BAD_REQUEST, format!("topology_toml: {e}"));
                        }
                    }
                }
                if let Some(p) = &b.profile {
                    spec.profile = Some(ProfileSpec::Named(p.clone()));
                }
                if let Some(seed) = b.seed {
                    s.seed = seed;
                }
            }
            match s.reset(spec) {
                Ok(()) => ok(json!({ "reset": true, "world": s.name })),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            }
        }
        (Method::GET, ["state"]) => ok(state_json(&s)),
        (Method::GET, ["faults"]) => ok(json!({ "faults": s.world.faults })),
        (Method::POST, ["faults"]) => {
            let spec: FaultSpec = match parse_body(&body) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "POST faults needs a fault rule as JSON",
                    );
                }
                Err(r) => return *r,
            };
            match s.world.add_fault(spec) {
                Ok(id) => (StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response(),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        (Method::DELETE, ["faults"]) => {
            let n = s.world.faults.len();
            s.world.faults.clear();
            ok(json!({ "removed": n }))
        }
        (Method::DELETE, ["faults", id]) => {
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
                ok(json!({ "removed": 1 }))
            }
        }
        (Method::GET, ["clock"]) => ok(clock_json(&s)),
        (Method::POST, ["clock"]) => {
            let b: ClockBody = match parse_body(&body) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "POST clock needs {\"mode\": ...} or {\"advance_ms\": N}",
                    );
                }
                Err(r) => return *r,
            };
            if let Some(mode) = &b.mode {
                let m = match mode.as_str() {
                    "realtime" => ClockMode::Realtime {
                        speed: b.speed.unwrap_or(1.0),
                    },
                    "manual" => ClockMode::Manual,
                    "polls" => ClockMode::Polls {
                        n: b.n.unwrap_or(1),
                    },
                    other => ClockMode::parse(other).unwrap_or(ClockMode::Manual),
                };
                let valid = match m {
                    ClockMode::Realtime { speed } => {
                        speed > 0.0 && speed.is_finite() && speed <= 1e6
                    }
                    ClockMode::Polls { n } => (1..=10_000).contains(&n),
                    ClockMode::Manual => matches!(mode.as_str(), "manual"),
                };
                if !valid {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "invalid clock: mode `{mode}` (realtime with 0 < speed <= 1e6, manual, or polls with 1 <= n <= 10000)"
                        ),
                    );
                }
                s.clock.set_mode(m);
                s.world.pace = m.pace();
            }
            if let Some(ms) = b.advance_ms {
                s.clock.advance(ms);
                s.tick();
            }
            ok(clock_json(&s))
        }
        (Method::GET, ["journal"]) => {
            let since: u64 = q.get("since").and_then(|v| v.parse().ok()).unwrap_or(0);
            let limit: usize = q
                .get("limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000)
                .min(10_000);
            let entries: Vec<&JournalEntry> = s
                .journal
                .iter()
                .filter(|e| e.seq > since)
                .take(limit)
                .collect();
            let next = entries.last().map_or(since, |e| e.seq);
            ok(json!({ "entries": entries, "next": next }))
        }
        (Method::GET, ["coverage"]) => {
            ok(serde_json::to_value(s.coverage.report()).unwrap_or(Json::Null))
        }
        (Method::GET, ["diagram"]) => {
            let format = q
                .get("format")
                .map_or(Some(Format::Mermaid), |f| Format::parse(f));
            let Some(format) = format else {
                return error(StatusCode::BAD_REQUEST, "format must be mermaid or dot");
            };
            let highlight: Vec<ReplicationState> =
                if q.get("highlight").is_some_and(|v| v != "false") {
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
        (
            _,
            [
                "health" | "reset" | "state" | "faults" | "clock" | "journal" | "coverage"
                | "diagram",
                ..,
            ],
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on /_replica/v1/{rest}"),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no control endpoint /_replica/v1/{rest}"),
        ),
    }
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
        "type": { "value": j.job_type.number(), "name": j.job_type.label() },
        "state": { "value": j.state.number(), "name": j.state.label() },
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
pub fn state_json(s: &WorldSlot) -> Json {
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
    })
}

/// The live page (issue 9 fills it in; a plain pointer until then).
pub async fn ui(State(_ctx): State<HostCtx>) -> Response<Body> {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        crate::ui::PAGE,
    )
        .into_response()
}
