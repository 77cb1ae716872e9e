#!/usr/bin/env bash
# make demo: simulated engine + a 2-minute headless step-load run + the analysis report.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DURATION=${DEMO_DURATION:-120s}
DATASET=${DEMO_DATASET:-random}
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOGDIR=$(mktemp -d)
SIM_PID=""
cleanup() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null; rm -rf "$LOGDIR"; true; }
trap cleanup EXIT INT TERM

echo "==> demo: starting the simulated engine on 127.0.0.1:$PORT (profile default)"
# --enable-per-request-metrics: each answer states the engine's own queue, prefill and decode (as vLLM
# does with that option), so the report says where the time went
$PY -m simserver --host 127.0.0.1 --port "$PORT" --profile default --seed 1 --enable-per-request-metrics \
  >"$LOGDIR/simserver.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 1 100); do
  if $PY -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then break; fi
  if ! kill -0 "$SIM_PID" 2>/dev/null; then echo "simulated engine failed to start:"; cat "$LOGDIR/simserver.log"; exit 1; fi
  sleep 0.1
done

echo "==> demo: step ramp (1 user, +1 every 10 s) for $DURATION, dataset '$DATASET', SLO profile 'chat'"
touch "$LOGDIR/start"
set +e
$PY -m locust -f locustfile.py --headless --host "http://127.0.0.1:$PORT" \
  --dataset "$DATASET" --shape step --step-interval 10s -t "$DURATION" --slo chat \
  --run-name demo --results-dir results --only-summary
rc=$?
set -e
# 0: the run completed (its failed requests are rows in the report); 2: a bad option, or the target
# failed systematically; 130: interrupted (README.md § Exit codes)
if [ "$rc" -ne 0 ]; then echo "demo: the load run did not complete (exit $rc)"; exit "$rc"; fi

RUN_DIR=$(find results -maxdepth 1 -name 'demo-*' -newer "$LOGDIR/start" -type d | sort | tail -1)/
if [ "$RUN_DIR" = "/" ] || [ ! -s "$RUN_DIR/requests.csv" ]; then echo "demo: no run folder was written"; exit 1; fi
echo "==> demo: analysing $RUN_DIR"
$PY -m analysis "$RUN_DIR"
echo "==> demo: done. Open ${RUN_DIR}report.html"
