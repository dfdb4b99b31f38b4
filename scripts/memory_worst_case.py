#!/usr/bin/env python3
"""Measures the simulator's peak memory under a hostile client with the default limits.

    python3 scripts/memory_worst_case.py [PATH_TO_REPLICA_SIM] [--quick]

Starts `replica-sim serve` on free ports, then fills every client-fed store as far as the
limits let it: as many worlds as the memory budget takes, each reset to a topology at
`max_topology_vms`; enumerations of every VM left unpulled in each world until the budget
answers w:QuotaLimit; method calls whose refusals quote half a megabyte of client text; fault
rules up to `max_faults`. Prints the peak resident set (VmHWM) and what was refused. Uses only
Python's standard library. The figure goes to README's "Limits" section.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

BIN = next((a for a in sys.argv[1:] if not a.startswith("--")), "target/release/replica-sim")
QUICK = "--quick" in sys.argv
V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
AUTH = "Basic YWRtaW46YWRtaW4="  # admin:admin


def topology(vms):
    parts = ['[[hosts]]\nname = "HV-PRIMARY"\n\n[[hosts]]\nname = "HV-REPLICA"\n']
    for i in range(vms):
        parts.append(f'\n[[vms]]\nname = "vm-{i:05}"\nhost = "HV-PRIMARY"\n'
                     'replication = { replica_host = "HV-REPLICA", recovery_points = 2 }\n')
    return "".join(parts)


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def control(base, world, endpoint, payload):
    return post(f"{base}/worlds/{world}/_replica/v1/{endpoint}", json.dumps(payload).encode(),
                {"Content-Type": "application/json"})


def wsman(base, world, action, resource, body):
    env = (f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
           f'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
           f'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
           f'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><s:Header>'
           f'<a:To>{base}/wsman</a:To><w:ResourceURI>{resource}</w:ResourceURI>'
           f'<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>'
           f'<a:Action>{action}</a:Action><a:MessageID>uuid:00000000-0000-0000-0000-000000000001</a:MessageID>'
           f'</s:Header><s:Body>{body}</s:Body></s:Envelope>')
    return post(f"{base}/worlds/{world}/wsman", env.encode(),
                {"Authorization": AUTH, "Content-Type": "application/soap+xml;charset=UTF-8"})


def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


def main():
    proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--clock", "manual"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        base = ready["hosts"]["HV-PRIMARY"].rsplit("/wsman", 1)[0]
        print(f"started: {base}, {hwm(proc.pid)} MiB")
        vms = 1000 if QUICK else 10_000
        big = topology(vms)
        worlds = []
        for i in range(8 if QUICK else 256):
            status, body = control(base, f"w{i}", "reset", {"topology_toml": big})
            if status != 200:
                print(f"world {i} refused: {status} {body[:160]!r}")
                break
            worlds.append(f"w{i}")
        print(f"{len(worlds)} worlds of {vms} VMs: {hwm(proc.pid)} MiB")
        enumerations = 0
        quota = 0
        for w in worlds:
            for _ in range(64):
                status, body = wsman(base, w, "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                                     V2 + "Msvm_ComputerSystem", "<n:Enumerate/>")
                if b"QuotaLimit" in body:
                    quota += 1
                    break
                enumerations += 1
        print(f"{enumerations} enumerations never pulled, {quota} QuotaLimit: {hwm(proc.pid)} MiB")
        huge = "A" * 480_000
        inst = (f'<INSTANCE CLASSNAME="Msvm_ReplicationSettingData"><PROPERTY NAME="ReplicationInterval" '
                f'TYPE="uint16"><VALUE>{huge}</VALUE></PROPERTY></INSTANCE>')
        params = f"<p:ReplicationSettingData><![CDATA[{inst}]]></p:ReplicationSettingData>"
        svc = V2 + "Msvm_ReplicationService"
        calls = 300 if QUICK else 3000
        for k in range(calls):
            wsman(base, worlds[k % len(worlds)] if worlds else "default", f"{svc}/ModifyReplicationSettings", svc,
                  f'<p:ModifyReplicationSettings_INPUT xmlns:p="{svc}">{params}</p:ModifyReplicationSettings_INPUT>')
        print(f"{calls} calls quoting 480 KB each: {hwm(proc.pid)} MiB")
        for w in worlds[:16]:
            for _ in range(300):
                status, _ = control(base, w, "faults", {"kind": "fail_job", "error_code": 32768,
                                                         "description": "D" * 3000})
                if status != 201:
                    break
        print(f"fault plans filled: peak {hwm(proc.pid)} MiB")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
