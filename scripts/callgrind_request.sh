#!/usr/bin/env bash
# User-space instructions per request of a running `replica-sim serve`, counted by callgrind:
# a figure that does not move with the machine's load, unlike calls per second under wrk.
#
#   scripts/callgrind_request.sh target/release/replica-sim bench/requests/get.xml 500
#
# The server runs under valgrind with instrumentation off; 50 requests warm it up, then N
# requests (Basic admin:admin, one keep-alive connection, to HV-REPLICA) are counted, and the
# total is divided by N. bench/requests/{get,invoke}.xml are the bodies `replica-bench --wrk`
# sends (Get of Msvm_ComputerSystem app-01, InitiateFailover on HV-REPLICA). Needs valgrind
# and python3. Prints the top functions by inclusive cost after the figure.
set -euo pipefail
bin=${1:?replica-sim binary}
body=${2:?request body file}
n=${3:-500}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$out/cg.out" "$bin" serve --listen 127.0.0.1:0 >"$out/ready" 2>/dev/null &
pid=$!
for _ in $(seq 1 300); do [ -s "$out/ready" ] && break; sleep 0.2; done
url=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['hosts']['HV-REPLICA'])" "$out/ready")
post() {
  python3 - "$url" "$body" "$1" <<'PY'
import http.client, re, sys
url, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = open(path, 'rb').read()
host, target = re.match(r'http://([^/]+)(/.*)', url).groups()
c = http.client.HTTPConnection(host)
for _ in range(n):
    c.request('POST', target, body, {'Content-Type': 'application/soap+xml;charset=UTF-8',
                                     'Authorization': 'Basic YWRtaW46YWRtaW4='})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f'HTTP {r.status}')
PY
}
post 50
callgrind_control -i on "$pid" >/dev/null 2>&1
post "$n"
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 1
kill "$pid"
wait "$pid" 2>/dev/null || true
total=0
for f in "$out"/cg.out*; do
  t=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  total=$((total + ${t:-0}))
done
echo "instructions per request: $((total / n))"
for f in "$out"/cg.out*; do
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null \
    | grep -E 'dispatch::parse |dispatch::handle_parsed |server::wsman::[{][{]closure[}][}] |poll_catch |framing::Watched' \
    | sed 's#\[/.*##; s#???:##; s/,//g; s/([ 0-9.]*%)//' \
    | awk -v n="$n" '{v = $1; $1 = ""; printf "  %8.1fk %s\n", v / n / 1000, $0}' || true
done
