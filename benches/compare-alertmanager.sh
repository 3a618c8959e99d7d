#!/usr/bin/env bash
# Side-by-side benchmark: the same workload against Alertmanager's and SignalCraft's
# POST /api/v2/alerts, in one run on this machine (release builds, 127.0.0.1 only).
#
#   benches/compare-alertmanager.sh [--append]     # --append adds the table to BENCHMARKS.md
#   ONLY=signalcraft benches/compare-alertmanager.sh   # one column only (prints its JSON);
#                                                    # SC_PERF=FILE records `perf record -g` of
#                                                    # SignalCraft during the POSTs into FILE;
#                                                    # SC_SERVER_EXTRA='renotify_yield = "0s"'
#                                                    # adds lines to SignalCraft's [server]
#
# Workload: 100k alerts in batches of 100 over 8 connections, 10,000 groups of
# [alertname, service], group_wait 1s, group_interval 1s, notifications to the
# load generator's webhook sink. SignalCraft runs with its durable redb store.
set -euo pipefail
cd "$(dirname "$0")/.."

ALERTS=${ALERTS:-100000}
BATCH=${BATCH:-100}
CONNS=${CONNS:-8}
NGROUPS=${NGROUPS:-10000}
IDLE=${IDLE:-10}
AM_BIN=${ALERTMANAGER_BIN:-prometheus-alertmanager}
WORK=$(mktemp -d /tmp/sc-bench.XXXXXX)
trap 'kill ${AM_PID:-} ${SC_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_ready() { for _ in $(seq 1 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done; echo "not ready: $1" >&2; return 1; }

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -q -p signalcraft-server --bin signalcraft
  cargo build --release -q -p signalcraft-benches --bin loadgen --features loadgen
fi
TARGET_DIR=${CARGO_TARGET_DIR:-target}
LOADGEN=$TARGET_DIR/release/loadgen
SC=$TARGET_DIR/release/signalcraft
CLK_TCK=$(getconf CLK_TCK)
COMMON=(--alerts "$ALERTS" --batch "$BATCH" --conns "$CONNS" --groups "$NGROUPS" --idle-secs "$IDLE" --clk-tck "$CLK_TCK")

# --- Alertmanager ---------------------------------------------------------------
if [ "${ONLY:-}" != signalcraft ]; then
SINK=$(free_port); PORT=$(free_port)
cat > "$WORK/am.yml" <<YML
route:
  receiver: sink
  group_by: ['alertname', 'service']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 24h
receivers:
  - name: sink
    webhook_configs:
      - url: 'http://127.0.0.1:$SINK/'
        send_resolved: false
YML
"$AM_BIN" --config.file="$WORK/am.yml" --storage.path="$WORK/am-data" \
  --web.listen-address="127.0.0.1:$PORT" --cluster.listen-address= --log.level=warn \
  > "$WORK/am.log" 2>&1 &
AM_PID=$!
wait_ready "http://127.0.0.1:$PORT/-/ready"
AM_VERSION=$("$AM_BIN" --version 2>&1 | head -1)
AM_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
"$LOADGEN" --name alertmanager --url "http://127.0.0.1:$PORT" --pid "$AM_PID" --sink "127.0.0.1:$SINK" \
  "${COMMON[@]}" --out "$WORK/am.json"
kill "$AM_PID"; wait "$AM_PID" 2>/dev/null || true; AM_PID=
fi
if [ "${ONLY:-}" = alertmanager ]; then exit 0; fi

# --- SignalCraft ----------------------------------------------------------------
SINK=$(free_port); PORT=$(free_port)
cat > "$WORK/sc.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
data_dir = "$WORK/sc-data"
log_format = "text"
${SC_SERVER_EXTRA:-}

[[channels]]
name = "sink"
type = "webhook"
url = "http://127.0.0.1:$SINK/"

[route]
receiver = "sink"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "24h"
notify = [{ channel = "sink", target = "http://127.0.0.1:$SINK/" }]
TOML
RUST_LOG=warn "$SC" serve --config "$WORK/sc.toml" > "$WORK/sc.log" 2>&1 &
SC_PID=$!
wait_ready "http://127.0.0.1:$PORT/-/ready"
SC_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "${SC_PERF:-}" ]; then
  (sleep "${SC_PERF_DELAY:-0}"; perf record ${SC_PERF_ARGS:--g} -o "$SC_PERF" -p "$SC_PID" -- sleep "${SC_PERF_SECS:-8}") > "$WORK/perf.log" 2>&1 &
fi
"$LOADGEN" --name signalcraft --url "http://127.0.0.1:$PORT" --pid "$SC_PID" --sink "127.0.0.1:$SINK" \
  "${COMMON[@]}" --out "$WORK/sc.json"
SC_IO=$(tr '\n' ' ' < "/proc/$SC_PID/io" || true)
# CPU seconds per thread name (the store's writer thread vs the tokio workers).
SC_THREADS=$(for t in /proc/$SC_PID/task/*; do echo "$(cat "$t/comm") $(cut -d' ' -f14,15 "$t/stat" 2>/dev/null)"; done |
  awk -v hz="$CLK_TCK" '{c[$1]+=($(NF-1)+$NF)/hz} END {for (k in c) if (c[k] > 0.05) printf "%s=%.1fs ", k, c[k]}')
kill -TERM "$SC_PID"; wait "$SC_PID" 2>/dev/null || true; SC_PID=
if [ "${ONLY:-}" = signalcraft ]; then echo "load average before: $SC_LOAD"; echo "SignalCraft I/O (whole run): $SC_IO"; echo "SignalCraft CPU by thread (whole run): $SC_THREADS"; exit 0; fi

# --- Table ----------------------------------------------------------------------
TABLE=$(python3 - "$WORK/am.json" "$WORK/sc.json" "$AM_VERSION" <<'PY'
import json, sys
am = json.load(open(sys.argv[1])); sc = json.load(open(sys.argv[2])); amv = sys.argv[3]
def f(v, fmt):
    return "n/a" if v is None else fmt.format(v)
def ratio(a, b):
    return "n/a" if (a in (None, 0) or b is None) else "{:.1f}x".format(b / a)
rows = [
  ("accepted alerts/s", f(am["accepted_per_s"], "{:,.0f}"), f(sc["accepted_per_s"], "{:,.0f}"),
   ">= 10x Alertmanager", "met" if sc["accepted_per_s"] >= 10 * am["accepted_per_s"] else "NOT met (" + ratio(am["accepted_per_s"], sc["accepted_per_s"]) + ")"),
  ("CPU time of the target while the POSTs ran (user+sys)", f(am.get("post_cpu_seconds"), "{:.1f} s"), f(sc.get("post_cpu_seconds"), "{:.1f} s"), "", ""),
  ("POST p50", f(am["post_p50_ms"], "{:.1f} ms"), f(sc["post_p50_ms"], "{:.1f} ms"), "", ""),
  ("POST p99", f(am["post_p99_ms"], "{:.1f} ms"), f(sc["post_p99_ms"], "{:.1f} ms"),
   "<= 1/10 of Alertmanager", "met" if sc["post_p99_ms"] <= am["post_p99_ms"] / 10 else "NOT met"),
  ("groups notified", str(am["groups_notified"]), str(sc["groups_notified"]), "all %d" % sc["groups"],
   "met" if sc["groups_notified"] >= sc["groups"] else "NOT met"),
  ("all groups notified after first POST", f(am["all_groups_notified_s"], "{:.2f} s"), f(sc["all_groups_notified_s"], "{:.2f} s"), "", ""),
  ("group's first alert POSTed -> group notified: p50 / p99 / max",
   "%s / %s / %s" % (f(am.get("group_notify_p50_s"), "{:.2f}"), f(am.get("group_notify_p99_s"), "{:.2f}"), f(am.get("group_notify_max_s"), "{:.2f} s")),
   "%s / %s / %s" % (f(sc.get("group_notify_p50_s"), "{:.2f}"), f(sc.get("group_notify_p99_s"), "{:.2f}"), f(sc.get("group_notify_max_s"), "{:.2f} s")),
   "every group <= group_wait + 0.5 s (1.5 s)",
   "met" if sc.get("groups_over_1_5_s") == 0 else "NOT met (%s groups later)" % sc.get("groups_over_1_5_s")),
  ("notifications sent in the whole run", str(am["total_notifications"]), str(sc["total_notifications"]), "", ""),
  ("peak RSS (VmHWM)", f(am["peak_rss_mib"], "{:.0f} MiB"), f(sc["peak_rss_mib"], "{:.0f} MiB"),
   "<= 1/5 of Alertmanager", "met" if (sc["peak_rss_mib"] or 1e9) <= (am["peak_rss_mib"] or 0) / 5 else "NOT met"),
  ("idle CPU, 100k active alerts", f(am["idle_cpu_cores"], "{:.3f} cores"), f(sc["idle_cpu_cores"], "{:.3f} cores"),
   "< 0.05 cores", "met" if (sc["idle_cpu_cores"] is not None and sc["idle_cpu_cores"] < 0.05) else "NOT met"),
  ("notifications from re-posting the same alerts", str(am["repost_notifications"]), str(sc["repost_notifications"]),
   "0", "met" if sc["repost_notifications"] == 0 else "NOT met"),
]
print("| metric | Alertmanager (%s) | SignalCraft | target | SignalCraft vs target |" % amv.replace("|", "/"))
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
)
echo "$TABLE"
echo "load average before the Alertmanager run: $AM_LOAD; before the SignalCraft run: $SC_LOAD"
if [ "${1:-}" = "--append" ]; then
  {
    echo
    echo "## Server vs Alertmanager: POST /api/v2/alerts side by side"
    echo
    echo "Command: \`benches/compare-alertmanager.sh --append\` (release builds; machine: 2 cores, shared)."
    echo "Workload: $ALERTS alerts in batches of $BATCH over $CONNS connections, $NGROUPS groups of [alertname, service],"
    echo "group_wait 1s, group_interval 1s, webhook notifications to the load generator's sink on 127.0.0.1;"
    echo "SignalCraft with its durable redb store. $(date -u +%Y-%m-%d)."
    echo
    echo "$TABLE"
  } >> BENCHMARKS.md
fi
