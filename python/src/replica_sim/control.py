"""A typed client of the simulator's JSON control API (`/_replica/v1/`, sim/openapi.json).

Standard library only (http.client): the package has no dependencies, and a test suite's own
HTTP stack (requests and its proxy settings) stays out of the way.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Union

__all__ = ["Control", "ControlError"]

Json = Dict[str, Any]


class ControlError(Exception):
    """The control API refused a request: `status` is the HTTP status, `message` the server's
    `error` text (e.g. "unknown fault kind `boom`; expected one of ..."), `body` the whole
    JSON answer (a refused reset also names `line`, `column` and `field`)."""

    def __init__(self, method: str, path: str, status: int, message: str, body: Optional[Json] = None):
        super().__init__(f"{method} {path}: {status} {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.body: Json = body or {}


class Control:
    """The control API of one world, reached through one host's listener.

    `world` is sent as the `X-Replica-World` header (None: the default world); `token` as
    `Authorization: Bearer` when the simulator was started with a control token. With HTTPS,
    `fingerprint` (SHA-256 of the certificate, `AB:CD:...`) pins the simulator's certificate:
    it is self-signed, so it cannot be validated against a CA, and pinning it is what tells us
    we talk to the process we started.
    """

    def __init__(self, base_url: str, *, world: Optional[str] = None, token: Optional[str] = None,
                 fingerprint: Optional[str] = None, timeout: float = 30.0):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.port is None:
            raise ValueError(f"base_url must be http(s)://HOST:PORT, not {base_url!r}")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}"
        self.world = world
        self.token = token
        self.fingerprint = fingerprint
        self.timeout = timeout
        self._scheme, self._host, self._port = parsed.scheme, parsed.hostname, parsed.port

    def in_world(self, world: Optional[str]) -> "Control":
        """The same client, for another world (None: the default world)."""
        return Control(self.base_url, world=world, token=self.token, fingerprint=self.fingerprint,
                       timeout=self.timeout)

    # --- transport ---------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._scheme == "http":
            return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        # Validation is replaced by the pin below (self-signed certificate, see the class doc).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout, context=context)
        conn.connect()
        if self.fingerprint:
            der = conn.sock.getpeercert(binary_form=True) or b""
            seen = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
            if seen != self.fingerprint.upper():
                conn.close()
                raise ssl.SSLError(f"certificate fingerprint {seen} is not the simulator's {self.fingerprint}")
        return conn

    def request(self, method: str, path: str, body: Optional[Mapping[str, Any]] = None,
                query: Optional[Mapping[str, Any]] = None) -> Any:
        """`method /_replica/v1/path`; returns the decoded JSON (text for non-JSON answers),
        raises ControlError with the server's message on any status >= 400."""
        target = "/_replica/v1/" + path
        if query:
            target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.world:
            headers["X-Replica-World"] = self.world
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connect()
        try:
            conn.request(method, target, body=data, headers=headers)
            response = conn.getresponse()
            status, raw = response.status, response.read()
            is_json = (response.getheader("Content-Type") or "").startswith("application/json")
        finally:
            conn.close()
        text = raw.decode("utf-8", "replace")
        decoded: Any = json.loads(text) if is_json and text else text
        if status >= 400:
            message = decoded.get("error", text) if isinstance(decoded, dict) else text.strip()
            raise ControlError(method, target, status, str(message),
                               decoded if isinstance(decoded, dict) else None)
        return decoded

    # --- the endpoints (sim/openapi.json) ----------------------------------------------

    def health(self) -> Json:
        """`{"ok": true, "world", "host", "hosts", "version"}`; creates the world if new."""
        return self.request("GET", "health")

    def openapi(self) -> Json:
        """The OpenAPI document of this API."""
        return self.request("GET", "openapi.json")

    def reset(self, *, topology_toml: Optional[str] = None, topology: Optional[Json] = None,
              profile: Optional[str] = None, seed: Optional[int] = None) -> Json:
        """A fresh world: the simulator's topology, or this one (TOML text or the same shape
        as JSON), optionally a named behaviour profile and a seed. Journal and coverage start
        over; the clock keeps its mode."""
        body = {"topology_toml": topology_toml, "topology": topology, "profile": profile, "seed": seed}
        return self.request("POST", "reset", {k: v for k, v in body.items() if v is not None})

    def state(self) -> Json:
        """The whole world: hosts, VMs, relationships, jobs, faults (schema 1)."""
        return self.request("GET", "state")

    def faults(self) -> List[Json]:
        """The fault rules in force."""
        return self.request("GET", "faults")["faults"]

    def add_fault(self, kind: str, **fields: Any) -> Json:
        """Adds a fault rule and returns `{"id", "rule"}`. `kind` is return_code, fail_job,
        complete_with_warnings, delay, drop_connection, host_down or partition; `fields` are its own fields (code,
        error_code, description, after_percent, ms, a, b) and the common ones (host, method,
        vm, count, probability). A field the kind does not have is refused by name."""
        return self.request("POST", "faults", {"kind": kind, **fields})

    def remove_fault(self, fault_id: int) -> None:
        """Removes one fault rule (ControlError 404 if there is none with this id)."""
        self.request("DELETE", f"faults/{int(fault_id)}")

    def clear_faults(self) -> int:
        """Removes every fault rule; returns how many there were."""
        return self.request("DELETE", "faults")["removed"]

    def clock(self) -> Json:
        """`{"clock": mode, "now": ms, "now_rfc3339"}`."""
        return self.request("GET", "clock")

    def set_clock(self, mode: str, *, speed: Optional[float] = None, n: Optional[int] = None) -> Json:
        """Switches the clock: `manual`, `realtime` (with `speed`), `polls` (with `n`), or the
        CLI forms `realtime:10`, `polls:3`."""
        body = {"mode": mode, "speed": speed, "n": n}
        return self.request("POST", "clock", {k: v for k, v in body.items() if v is not None})

    def advance(self, by: Union[int, str]) -> Json:
        """Moves virtual time forward: milliseconds (int) or a duration (`"1500ms"`, `"2s"`,
        `"5m"`); running jobs progress accordingly."""
        return self.request("POST", "clock", {"advance_ms": by} if isinstance(by, int) else {"advance": by})

    def journal(self, since: int = 0, limit: Optional[int] = None) -> Json:
        """One page of the journal: `{"entries", "next", "latest", "more"}`; pass `next` as
        `since` to read on."""
        return self.request("GET", "journal", query={"since": since, "limit": limit})

    def journal_entries(self, since: int = 0) -> List[Json]:
        """Every journal entry after `since` (all pages)."""
        entries: List[Json] = []
        while True:
            page = self.journal(since, limit=10_000)
            entries += page["entries"]
            if not page["more"] or page["next"] == since:
                return entries
            since = page["next"]

    def coverage(self) -> Json:
        """Which methods, transitions, return codes and fault kinds the calls exercised."""
        return self.request("GET", "coverage")

    def diagram(self, format: str = "mermaid", highlight: bool = False) -> str:
        """The state machine as Mermaid or DOT text; `highlight` marks the world's states."""
        return self.request("GET", "diagram", query={"format": format, "highlight": "true" if highlight else None})

    def worlds(self) -> List[str]:
        """The names of every world in the simulator."""
        return self.request("GET", "worlds")["worlds"]

    def delete_world(self, name: str) -> None:
        """Removes a world (ControlError 404 if it does not exist; the default world stays)."""
        self.request("DELETE", f"worlds/{urllib.parse.quote(name, safe='')}")
