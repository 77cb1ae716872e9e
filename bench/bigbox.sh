#!/usr/bin/env bash
# Issue 23's re-run on a quiet 16-core host, as one prepared call (bench/README.md § What this host
# could not show): the 1/2/4/8-worker scaling and its TTFT error since the engine stamps arrival
# with the kernel, the open loop at 1,000–4,000 req/s, and one core at 1,024 streams, twice.
#
#   bench/bigbox.sh wheels        # here: Goodput's pinned load-path packages as Python 3.12 wheels in .whl/
#   bench/bigbox.sh run [DIR]     # there: ~7 min; raw outputs and the host's description in DIR
#                                 # (default $OUT, else bench/logs/bigbox-DATE)
#   SMALL=1 bench/bigbox.sh run   # the same steps at 2-core sizes, to check the script anywhere
#
# On the lent device machine (its python3 is 3.12 and has numpy, psutil, uvloop, pyyaml; nothing can
# be fetched there): `echo /.whl/ >> .git/info/exclude; bench/bigbox.sh wheels` here, then one run
# with carry [".whl"] and the command `bench/bigbox.sh run`, timeout_s 600. Each step has its own
# time limit, so one that hangs leaves the others' figures.
set -uo pipefail
cd "$(dirname "$0")/.."

PY_TAGS=(--only-binary=:all: --python-version 3.12 --implementation cp)
for n in 17 24 26 27 28 31 34 35; do PY_TAGS+=(--platform "manylinux_2_${n}_x86_64"); done
PY_TAGS+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)

wheels() {
    # the load path's and the simulated engine's packages at their pins (requirements.txt), with what
    # they need (numpy and the rest of the analysis are not on that path)
    local pins
    pins=$(grep -E '^(locust|gevent|geventhttpclient|orjson|psutil|pyyaml|prometheus-client|opentelemetry-proto|protobuf|uvloop)==' requirements.txt)
    rm -rf .whl && mkdir -p .whl
    # shellcheck disable=SC2086
    python3 -m pip download -q "${PY_TAGS[@]}" -d .whl -c constraints.txt $pins || exit 1
    echo "==> .whl: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) (carry it: the limit is 64 MiB)"
}

step() {  # step NAME LIMIT_S COMMAND...: one measurement, its output kept whatever happens to it
    local name=$1 limit=$2
    shift 2
    echo "==> $name (at most ${limit}s): $*"
    { echo "\$ $*"; timeout -k 10 "$limit" "$@" 2>&1; echo "(exit $?)"; } | tee "$DIR/$name.txt"
}

run() {
    DIR=${1:-${OUT:-bench/logs/bigbox-$(date -u +%Y%m%d-%H%M)}}
    mkdir -p "$DIR"
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH=/tmp/site
    fi
    local py=python3
    [ -x .venv/bin/python ] && [ ! -d .whl ] && py=.venv/bin/python
    export PYTHONUNBUFFERED=1
    {
        date -u
        echo "cores: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
        echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB; kernel $(uname -r); $($py --version)"
        echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee "$DIR/host.txt"
    if [ "${SMALL:-0}" = 1 ]; then
        step workers-scaling 240 $py bench/workers_scaling.py --workers 1 2 --streams-per-worker 64 \
            --replicas 1 --rates 100 --rate-workers 2 --duration 16 --warmup 3
        step one-core 120 $py bench/client_capacity.py --transports raw --streams 256 --pin --duration 16 --warmup 3
    else
        # 8 workers + a master + 7 replicas = 16 cores (the 2026-12-04 run's sizes, to compare)
        step workers-scaling 300 $py bench/workers_scaling.py --workers 1 2 4 8 --streams-per-worker 256 \
            --replicas 7 --rates 1000 2000 4000 --rate-workers 8 --duration 20 --warmup 5
        # the acceptance figure: >= 50k chunks/s unflagged, err p99 <= 2 ms at 1,024 streams on one core;
        # pinned as on the 2-core VM (engine core 0, Locust core 1), then as on 2026-12-04 (4 replicas
        # free to use the other cores; Locust is one process, one core)
        step one-core 100 $py bench/client_capacity.py --transports raw --streams 1024 --pin --step-ms 17 \
            --duration 16 --warmup 4
        step one-core-replicas 100 $py bench/client_capacity.py --transports raw --streams 1024 --step-ms 17 \
            --replicas 4 --duration 16 --warmup 4
    fi
    echo "==> outputs in $DIR: $(ls "$DIR" | tr '\n' ' ')"
}

case "${1:-}" in
wheels) wheels ;;
run) run "${2:-}" ;;
*)
    echo "usage: bench/bigbox.sh wheels | run [DIR]   (SMALL=1 for 2-core sizes)" >&2
    exit 2
    ;;
esac
