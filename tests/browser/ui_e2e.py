#!/usr/bin/env python3
"""End-to-end test of the live page /_replica/ui in headless Chromium.

    python3 tests/browser/ui_e2e.py [--bin target/release/replica-sim] [--out tests/browser/out]

1. Starts `replica-sim serve --listen 127.0.0.1:0` and reads its ready line.
2. Starts Chromium headless, driven through the Chrome DevTools Protocol over
   `--remote-debugging-pipe` (file descriptors 3 and 4: no websocket, no extra package),
   and opens /_replica/ui?world=browser-e2e: a world of its own, so the page is also tested
   with a world chosen by `?world=` (its fetches carry X-Replica-World).
3. Drives the InitiateFailback path through the WS-Management endpoint with plain SOAP over
   HTTP (unplanned failover of web-01 on HV-REPLICA, commit, InitiateFailback). The world's
   clock is `manual`, moved forward through the control API, so each stage lasts as long as
   the test needs to look at it.
4. Checks that the page, without being reloaded, shows 13 Failback in progress
   (WaitingForFailback) with a running job 124 and its progress bar, then 14 Failback
   complete (FailbackCompleted) highlighted in the state machine, and the calls in the journal.
5. Saves screenshots: out/ui-running.png (job at 50 %) and out/ui.png (the whole page at the
   end).

Only the Python standard library is used. When Chromium is missing the test fails under CI
(CI=true) and is skipped otherwise. Exit status 0 on success or skip, 1 on failure.
"""

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORLD = "browser-e2e"
AUTH = "Basic " + base64.b64encode(b"admin:admin").decode()
V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
TIMEOUT_S = 15  # per wait on the page
DEADLINE_S = 120  # the whole test


class Failure(Exception):
    pass


def log(msg):
    print(f"[ui-e2e {time.monotonic() - STARTED:6.2f}s] {msg}", flush=True)


STARTED = time.monotonic()


# ---- Chromium ------------------------------------------------------------------------------

def find_chromium():
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Cdp:
    """A Chrome DevTools Protocol client over --remote-debugging-pipe (JSON messages ended by NUL
    on fd 3 into the browser and fd 4 out of it)."""

    def __init__(self, chromium, user_data_dir, log_file):
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()

        def child():
            # Move the pipe ends to fds 3 and 4 of the browser, whatever numbers they had.
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        args = [
            chromium, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-quic", "--mute-audio", "--hide-scrollbars",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            f"--user-data-dir={user_data_dir}", "about:blank",
        ]
        self.proc = subprocess.Popen(args, preexec_fn=child, close_fds=False,
                                     stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._results = {}
        self._cond = threading.Condition()
        self.errors = []  # JS exceptions and console errors of the page
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._results["closed"] = True
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._results[msg["id"]] = msg
                        self._cond.notify_all()
                elif msg.get("method") == "Runtime.exceptionThrown":
                    d = msg["params"]["exceptionDetails"]
                    self.errors.append(d.get("exception", {}).get("description") or d.get("text"))
                elif msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] == "error":
                    self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in msg["params"]["args"]))

    def send(self, method, params=None, session=None, timeout=TIMEOUT_S):
        self._next += 1
        mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        with self._cond:
            while mid not in self._results:
                if self._results.get("closed"):
                    raise Failure(f"Chromium closed the DevTools pipe during {method}")
                left = end - time.monotonic()
                if left <= 0:
                    raise Failure(f"no answer from Chromium to {method} within {timeout}s")
                self._cond.wait(left)
            reply = self._results.pop(mid)
        if "error" in reply:
            raise Failure(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass


class Page:
    def __init__(self, cdp):
        self.cdp = cdp
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method, params=None, timeout=TIMEOUT_S):
        return self.cdp.send(method, params, session=self.session, timeout=timeout)

    def navigate(self, url):
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise Failure(f"navigating to {url}: {r['errorText']}")

    def eval(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise Failure(f"evaluating in the page: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path, full_page=False):
        params = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": 1280, "height": int(size["height"]), "scale": 1}
        data = self.send("Page.captureScreenshot", params, timeout=30)["data"]
        path.write_bytes(base64.b64decode(data))
        log(f"screenshot {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


# What the page shows, read from its DOM (text only: what a person would see).
SNAPSHOT_JS = r"""
(() => {
  const host = h => document.querySelector(`section.host[data-host="${h}"]`);
  const row = (h, vm) => { const hs = host(h); const r = hs && hs.querySelector(`tr[data-vm="${vm}"]`); return r ? r.innerText : null; };
  const replica = host('HV-REPLICA');
  const byId = (id, prop) => { const e = document.getElementById(id); return e ? e[prop || 'innerText'] : null; };
  return {
    polls: Number((document.body && document.body.dataset.polls) || 0),
    status: byId('status', 'className'),
    error: byId('error'),
    world: byId('world', 'value'),
    title: document.title,
    replicaWeb: row('HV-REPLICA', 'web-01'),
    primaryWeb: row('HV-PRIMARY', 'web-01'),
    jobs: replica ? [...replica.querySelectorAll('.job')].map(j => ({
      text: j.innerText, width: j.querySelector('.fill').style.width })) : [],
    current: [...document.querySelectorAll('.st.current')].map(e => Number(e.dataset.state)),
    journal: byId('journal'),
    changes: byId('change-list'),
    next: byId('next'),
    text: document.body ? document.body.innerText : '',
  };
})()
"""


def wait_page(page, what, predicate):
    end = time.monotonic() + TIMEOUT_S
    snap = None
    while time.monotonic() < end:
        snap = page.eval(SNAPSHOT_JS)
        if predicate(snap):
            log(f"page shows {what} (after {snap['polls']} polls)")
            return snap
        time.sleep(0.1)
    shown = {k: v for k, v in (snap or {}).items() if k != "text"}
    raise Failure(f"the page did not show {what} within {TIMEOUT_S}s; it shows {json.dumps(shown, indent=1)}")


# ---- The simulator and WS-Management ----------------------------------------------------------

def start_sim(binary, log_file):
    proc = subprocess.Popen([str(binary), "serve", "--listen", "127.0.0.1:0", "--seed", "7"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    if not ready:
        proc.kill()
        raise Failure("replica-sim printed no ready line within 20s")
    line = proc.stdout.readline().decode()
    try:
        hosts = json.loads(line)["hosts"]
    except (ValueError, KeyError) as e:
        proc.kill()
        raise Failure(f"unexpected ready line {line!r}: {e}")
    return proc, hosts


def http(url, body, content_type, headers=None):
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    req.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def control(base, path, payload):
    status, body = http(f"{base}/worlds/{WORLD}/_replica/v1/{path}", json.dumps(payload), "application/json")
    if status >= 300:
        raise Failure(f"control {path}: HTTP {status} {body[:300]!r}")
    return json.loads(body)


MESSAGE = [0]


def soap(url, resource, action, selectors, body):
    MESSAGE[0] += 1
    sel = "".join(f'<w:Selector Name="{k}">{v}</w:Selector>' for k, v in selectors)
    env = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:To>{url}</a:To>"
        f'<w:ResourceURI s:mustUnderstand="true">{resource}</w:ResourceURI>'
        f'<a:ReplyTo><a:Address s:mustUnderstand="true">{ANONYMOUS}</a:Address></a:ReplyTo>'
        f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
        '<w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize>'
        f"<a:MessageID>uuid:00000000-0000-4000-8000-{MESSAGE[0]:012d}</a:MessageID>"
        f"<w:SelectorSet>{sel}</w:SelectorSet>"
        "<w:OperationTimeout>PT60.000S</w:OperationTimeout></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )
    # The world travels in X-Replica-World, as the page's own fetches do.
    status, raw = http(url, env, "application/soap+xml;charset=UTF-8",
                       {"Authorization": AUTH, "X-Replica-World": WORLD})
    if status != 200:
        raise Failure(f"{action}: HTTP {status} {raw[:400]!r}")
    return ET.fromstring(raw)


def local(el):
    return el.tag.rsplit("}", 1)[-1]


def invoke(url, host, method, vm_id, rsd=None):
    uri = V2 + "Msvm_ReplicationService"
    params = (
        "<p:ComputerSystem>"
        f"<a:Address>{ANONYMOUS}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{V2}Msvm_ComputerSystem</w:ResourceURI><w:SelectorSet>"
        '<w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector>'
        f'<w:Selector Name="Name">{vm_id}</w:Selector></w:SelectorSet>'
        "</a:ReferenceParameters></p:ComputerSystem>"
    )
    if rsd:
        inst = ('<INSTANCE CLASSNAME="Msvm_ReplicationSettingData"><PROPERTY NAME="RecoveryConnectionPoint" '
                f'TYPE="string"><VALUE>{rsd}</VALUE></PROPERTY></INSTANCE>')
        params += "<p:ReplicationSettingData>" + inst.replace("&", "&amp;").replace("<", "&lt;") + "</p:ReplicationSettingData>"
    body = f'<p:{method}_INPUT xmlns:p="{uri}">{params}</p:{method}_INPUT>'
    selectors = [("CreationClassName", "Msvm_ReplicationService"), ("Name", "replicasvc"),
                 ("SystemCreationClassName", "Msvm_ComputerSystem"), ("SystemName", host)]
    doc = soap(url, uri, f"{uri}/{method}", selectors, body)
    code = job = None
    for el in doc.iter():
        if local(el) == "ReturnValue":
            code = int(el.text)
        if local(el) == "Selector" and el.get("Name") == "InstanceID":
            job = el.text
    log(f"{host} Msvm_ReplicationService.{method}: ReturnValue {code}, job {job}")
    if code != 4096 or not job:
        raise Failure(f"{method} on {host}: ReturnValue {code}, expected 4096 with a job")
    return job


def job_state(url, job):
    uri = V2 + "Msvm_ConcreteJob"
    doc = soap(url, uri, "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", [("InstanceID", job)], "")
    props = {local(el): el.text for el in doc.iter()}
    return int(props["JobState"]), int(props["PercentComplete"])


def find_vm(url, name):
    uri = V2 + "*"
    body = ('<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration">'
            '<w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">'
            f"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{name}'</w:Filter>"
            "<w:OptimizeEnumeration/><w:MaxElements>100</w:MaxElements></n:Enumerate>")
    doc = soap(url, uri, "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate", [], body)
    for el in doc.iter():
        if local(el) == "Name" and el.text and el.text.count("-") == 4:
            return el.text
    raise Failure(f"no VM named {name}")


def run_job_to_end(base, url, job):
    control(base, "clock", {"advance_ms": 1000})
    state, pct = job_state(url, job)
    if state != 7:
        raise Failure(f"job {job}: JobState {state} ({pct}%) after its time, expected 7 Completed")


# ---- The test ----------------------------------------------------------------------------

def run(binary, out_dir, chromium, tmp):
    sim_log = open(tmp / "replica-sim.log", "wb")
    browser_log = open(tmp / "chromium.log", "wb")
    sim, hosts = start_sim(binary, sim_log)
    cdp = None
    try:
        primary, replica = hosts["HV-PRIMARY"], hosts["HV-REPLICA"]
        base = primary.rsplit("/wsman", 1)[0]
        log(f"replica-sim ready: {hosts}")
        # The world is created on first use; its clock only moves when the test says so.
        control(base, "clock", {"mode": "manual"})

        cdp = Cdp(chromium, tmp / "profile", browser_log)
        page = Page(cdp)
        page_url = f"{base}/_replica/ui?world={WORLD}"
        page.navigate(page_url)
        log(f"opened {page_url}")
        snap = wait_page(page, "the world before the failover",
                         lambda s: s["polls"] >= 1 and s["replicaWeb"] and "3" in s["replicaWeb"] and s["world"] == WORLD)
        if "Replicating" not in snap["replicaWeb"]:
            raise Failure(f"web-01 on HV-REPLICA should start Replicating: {snap['replicaWeb']!r}")

        vm = find_vm(replica, "web-01")
        job = invoke(replica, "HV-REPLICA", "InitiateFailover", vm)
        run_job_to_end(base, replica, job)
        job = invoke(replica, "HV-REPLICA", "CommitFailover", vm)
        run_job_to_end(base, replica, job)
        wait_page(page, "6 Committed", lambda s: s["replicaWeb"] and "Committed" in s["replicaWeb"])

        job = invoke(replica, "HV-REPLICA", "InitiateFailback", vm, rsd="HV-PRIMARY")
        snap = wait_page(page, "13 Failback in progress (WaitingForFailback) and job 124 running",
                         lambda s: s["replicaWeb"] and "Failback in progress" in s["replicaWeb"]
                         and "WaitingForFailback" in s["replicaWeb"]
                         and any("124 Initiate Failback" in j["text"] for j in s["jobs"]))
        if 13 not in snap["current"]:
            raise Failure(f"state 13 is not highlighted in the state machine: {snap['current']}")

        control(base, "clock", {"advance_ms": 400})
        state, pct = job_state(replica, job)
        log(f"job {job} read through WS-Management: JobState {state}, {pct}%")
        snap = wait_page(page, f"the failback job at {pct}%",
                         lambda s: any("124 Initiate Failback" in j["text"] and f"{pct}%" in j["text"]
                                       and "Running" in j["text"] and j["width"] == f"{pct}%" for j in s["jobs"]))
        page.screenshot(out_dir / "ui-running.png")

        run_job_to_end(base, replica, job)
        snap = wait_page(page, "14 Failback complete (FailbackCompleted)",
                         lambda s: s["replicaWeb"] and "Failback complete" in s["replicaWeb"]
                         and "FailbackCompleted" in s["replicaWeb"] and 14 in s["current"]
                         and any("124 Initiate Failback" in j["text"] and "Completed" in j["text"] for j in s["jobs"]))
        for needle in ("InitiateFailover", "CommitFailover", "InitiateFailback", "4096"):
            if needle not in snap["journal"]:
                raise Failure(f"the journal on the page lacks {needle!r}")
        if "Failback in progress" not in snap["changes"] or "Failback complete" not in snap["changes"]:
            raise Failure(f"the page's change list missed a state: {snap['changes']!r}")
        if snap["status"] != "live" or snap["error"]:
            raise Failure(f"the page reports a problem: {snap['status']} {snap['error']!r}")
        if cdp.errors:
            raise Failure(f"the page logged errors: {cdp.errors}")
        page.screenshot(out_dir / "ui.png", full_page=True)

        # The default world was not touched: the page and the SOAP calls used browser-e2e.
        with urllib.request.urlopen(f"{base}/_replica/v1/state", timeout=10) as r:
            default = json.load(r)
        web = next(v for v in default["hosts"]["HV-REPLICA"]["vms"] if v["name"] == "web-01")
        if web["state"]["value"] != 3:
            raise Failure(f"the default world changed: web-01 on HV-REPLICA is {web['state']}")
        log("PASS: the page followed the failback live to 14 Failback complete")
    finally:
        if cdp:
            cdp.close()
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
        sim_log.close()
        browser_log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.environ.get("REPLICA_SIM_BIN"),
                    help="replica-sim binary (default: $REPLICA_SIM_BIN, target/release, target/debug)")
    ap.add_argument("--out", default=str(ROOT / "tests/browser/out"), help="where screenshots go")
    args = ap.parse_args()

    chromium = find_chromium()
    if not chromium:
        msg = "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            print(f"FAIL: {msg}", file=sys.stderr)
            return 1
        print(f"SKIP: {msg}")
        return 0
    binary = Path(args.bin) if args.bin else next(
        (p for p in (ROOT / "target/release/replica-sim", ROOT / "target/debug/replica-sim") if p.exists()), None)
    if not binary or not binary.exists():
        print("FAIL: no replica-sim binary; build it (cargo build --release -p replica-sim) or pass --bin",
              file=sys.stderr)
        return 1
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    # A watchdog, so a hung browser cannot hang CI.
    timer = threading.Timer(DEADLINE_S, lambda: (print(f"FAIL: over {DEADLINE_S}s", file=sys.stderr), os._exit(1)))
    timer.daemon = True
    timer.start()
    tmp = Path(tempfile.mkdtemp(prefix="replica-ui-e2e-"))
    ok = False
    try:
        log(f"chromium: {chromium}; replica-sim: {binary}")
        run(binary, out_dir, chromium, tmp)
        ok = True
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        for name in ("replica-sim.log", "chromium.log"):
            p = tmp / name
            if p.exists():
                tail = p.read_text(errors="replace").splitlines()[-15:]
                print(f"--- last lines of {name}:\n" + "\n".join(tail), file=sys.stderr)
    finally:
        timer.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{'passed' if ok else 'failed'} in {time.monotonic() - STARTED:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
