#!/usr/bin/env bash
# llama.cpp's own server (llama-server, C++) as a second real engine, built from a registry.
#
#   scripts/llamacpp.sh setup        # download the pinned sdist, build llama-server (CPU, Release) once per pin
#   scripts/llamacpp.sh model        # write the tiny random-weight GGUF into .llamacpp/model (again only if its inputs changed)
#   scripts/llamacpp.sh mmproj       # write the tiny random-weight image projector into .llamacpp/mmproj (same rule);
#                                    # serve with `--mmproj .llamacpp/mmproj/tiny-mmproj.gguf` to accept images
#   scripts/llamacpp.sh start        # setup + model + serve on 127.0.0.1 in the background, wait for /health
#   scripts/llamacpp.sh stop         # stop the server started by `start`
#   scripts/llamacpp.sh status       # print url/pid if running
#   scripts/llamacpp.sh serve PORT [FLAGS...]  # run the server in the foreground, FLAGS appended (tests/support/llamacpp_engine.py uses it)
#   scripts/llamacpp.sh help         # the pinned server's --help
#
# The source is the llama.cpp tree vendored in the llama-cpp-python sdist on PyPI (pin in
# requirements-llamacpp.txt): no GitHub, no Hugging Face, no Python package installed. The model is
# written with the gguf-py of the same tree, run by the suite's .venv (numpy, pyyaml, tqdm, requests).
#
# Settings (environment): LLAMACPP_PORT (default 8012; 0 = any free port), LLAMACPP_DIR (default
# .llamacpp), LLAMACPP_TIMEOUT (health wait, s, default 120), LLAMACPP_THREADS (compute threads,
# default 1: on 2 cores the other one is left to the HTTP threads and the load generator),
# LLAMACPP_PARALLEL (slots, default 4), LLAMACPP_CTX (total context, split between the slots,
# default 32768: 8192 a slot, room for the agentic set's longest sessions), LLAMACPP_CACHE_MIB
# (host-memory prompt cache, default 256; the server's own default is 8 GiB), LLAMACPP_JOBS (build
# jobs, default 2), PY (python3 with pip, for the download),
# GOODPUT_PY (the Python that writes the model, default .venv/bin/python).
# Everything it writes (sdist, source, build, binary, model, pid, port, logs) stays under .llamacpp/ (gitignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LC_DIR="${LLAMACPP_DIR:-$ROOT/.llamacpp}"
REQ="$ROOT/requirements-llamacpp.txt"
SRC="$LC_DIR/src/llama.cpp"
BUILD="$LC_DIR/build"
BIN="$LC_DIR/bin/llama-server"
STAMP="$LC_DIR/bin/.built"
MODEL_DIR="$LC_DIR/model"
MODEL="$MODEL_DIR/tiny-llama.gguf"
BUILDER="$ROOT/scripts/build_tiny_gguf.py"
MMPROJ_DIR="$LC_DIR/mmproj"
MMPROJ="$MMPROJ_DIR/tiny-mmproj.gguf"
MMPROJ_BUILDER="$ROOT/scripts/build_tiny_mmproj.py"
PY="${PY:-python3}"
GOODPUT_PY="${GOODPUT_PY:-$ROOT/.venv/bin/python}"
PORT="${LLAMACPP_PORT:-8012}"
TIMEOUT="${LLAMACPP_TIMEOUT:-120}"
THREADS="${LLAMACPP_THREADS:-1}"
PARALLEL="${LLAMACPP_PARALLEL:-4}"
CTX="${LLAMACPP_CTX:-32768}"
JOBS="${LLAMACPP_JOBS:-2}"
CACHE_MIB="${LLAMACPP_CACHE_MIB:-256}"
SERVED_NAME="tiny-llama"
STATE_DIR="$LC_DIR" ENGINE_NAME="llama-server" STOP_HINT="make llamacpp-stop" PORT_VAR=LLAMACPP_PORT HEALTH_POLL_S=0.5
# shellcheck source=scripts/engine_lib.sh
source "$ROOT/scripts/engine_lib.sh"

say() { echo "==> llamacpp: $*"; }
die() {
	echo "llamacpp: error: $*" >&2
	exit 1
}

pin() {
	local p
	p="$(grep -E '^llama-cpp-python==[0-9][0-9A-Za-z.]*$' "$REQ" | head -n1)" ||
		die "$REQ: expected a line 'llama-cpp-python==<version>'"
	echo "$p"
}

# Only llama-server, CPU, Release; a static binary (no libllama.so beside it to keep in step).
# GGML_NATIVE=OFF: no -march=native, so the binary does not depend on the CPU that built it (this
# machine has AVX-512, another of the same kind may not; .llamacpp/ can be carried to another host).
# With NATIVE off ggml enables the x86-64-v3 set (SSE4.2, AVX, AVX2, FMA, F16C, BMI2), which every
# x86_64 server of the last decade has; for a ~40M-parameter model that is all the speed it needs.
# The server lives under tools/, hence LLAMA_BUILD_TOOLS=ON with --target llama-server (nothing
# else of tools/ is built). No web UI (it would run npm or download a prebuilt UI), no OpenSSL
# (loopback HTTP only), no CURL (LLAMA_CURL is a deprecated no-op in this version; kept explicit).
CMAKE_FLAGS=(
	-DCMAKE_BUILD_TYPE=Release
	-DBUILD_SHARED_LIBS=OFF
	-DGGML_NATIVE=OFF
	-DGGML_CCACHE=OFF
	-DLLAMA_BUILD_SERVER=ON
	-DLLAMA_BUILD_TOOLS=ON
	-DLLAMA_BUILD_TESTS=OFF
	-DLLAMA_BUILD_EXAMPLES=OFF
	-DLLAMA_BUILD_APP=OFF
	-DLLAMA_BUILD_UI=OFF
	-DLLAMA_USE_PREBUILT_UI=OFF
	-DLLAMA_CURL=OFF
	-DLLAMA_OPENSSL=OFF
)

# After the build only the model writer needs the tree: gguf-py and the GPT-2 vocabulary. The
# server's source and README stay too (its API, flags and metric names for this pin): 176 MB -> 4 MB.
KEEP=(LICENSE gguf-py models/ggml-vocab-gpt-2.gguf tools/server)

prune_source() {
	local kept="$LC_DIR/src/kept" k
	rm -rf "$kept"
	for k in "${KEEP[@]}"; do
		mkdir -p "$kept/$(dirname "$k")"
		mv "$SRC/$k" "$kept/$k"
	done
	rm -rf "$SRC"
	mv "$kept" "$SRC"
}

stamp_key() { { pin; printf '%s\n' "${CMAKE_FLAGS[@]}"; } | sha256sum | cut -c1-16; }

cmd_setup() {
	local key p ver
	key="$(stamp_key)"
	if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$key" && -x "$BIN" ]]; then
		say "setup: $BIN is up to date (stamp $key)"
		return 0
	fi
	command -v cmake >/dev/null || die "cmake not found (Debian: apt-get install cmake g++ make)"
	command -v c++ >/dev/null || die "no C++ compiler found (Debian: apt-get install g++)"
	p="$(pin)"
	ver="${p#llama-cpp-python==}"
	local t0=$SECONDS log="$LC_DIR/setup.log"
	mkdir -p "$LC_DIR"
	: >"$log"
	say "setup: [1/3] pip download --no-binary :all: --no-deps $p   (the sdist, ~77 MB; log $log)"
	rm -rf "$LC_DIR/dl"
	"$PY" -m pip download --disable-pip-version-check --progress-bar off \
		--no-binary :all: --no-deps -d "$LC_DIR/dl" "$p" >>"$log" 2>&1 || {
		tail -n 20 "$log" >&2
		die "could not download $p from PyPI (full log: $log)"
	}
	local tarball="$LC_DIR/dl/llama_cpp_python-$ver.tar.gz"
	[[ -f "$tarball" ]] || die "pip download left no $tarball"
	rm -rf "$LC_DIR/src" "$BUILD"
	mkdir -p "$LC_DIR/src"
	tar -xzf "$tarball" -C "$LC_DIR/src" --strip-components=2 "llama_cpp_python-$ver/vendor/llama.cpp" ||
		die "$tarball holds no vendor/llama.cpp"
	rm -rf "$LC_DIR/dl"
	rm -f "$SRC/.git" # a submodule link into the sdist's own (absent) git folder
	local t_dl=$((SECONDS - t0))
	say "setup: [2/3] cmake configure ${CMAKE_FLAGS[*]}"
	# The tree sits inside our git checkout: stop llama.cpp's build-info from reading our commit.
	export GIT_CEILING_DIRECTORIES="$LC_DIR"
	unset SOURCE_DATE_EPOCH # it would switch ggml's AVX2/FMA/F16C defaults off
	cmake -S "$SRC" -B "$BUILD" "${CMAKE_FLAGS[@]}" \
		-DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT="pypi-$p" >>"$log" 2>&1 || {
		tail -n 30 "$log" >&2
		die "cmake configure failed (full log: $log)"
	}
	say "setup: [3/3] cmake --build --target llama-server -j$JOBS   (~10 min on 2 cores)"
	cmake --build "$BUILD" --target llama-server -j"$JOBS" >>"$log" 2>&1 || {
		tail -n 30 "$log" >&2
		die "build failed (full log: $log)"
	}
	mkdir -p "$(dirname "$BIN")"
	cp "$BUILD/bin/llama-server" "$BIN.tmp"
	mv "$BIN.tmp" "$BIN"
	"$BIN" --version >>"$log" 2>&1 || die "$BIN does not run (log: $log)"
	local build_kb
	build_kb="$(du -sk "$BUILD" | cut -f1)"
	rm -rf "$BUILD" # the binary is static; the objects are only needed again for a new pin
	prune_source
	echo "$key" >"$STAMP"
	say "setup: done in $((SECONDS - t0)) s (download + unpack ${t_dl} s); build tree was $((build_kb / 1024)) MB (removed);" \
		"kept: $(du -sh "$BIN" | cut -f1) binary, $(du -sh "$SRC" | cut -f1) of the source (gguf-py, vocabulary, server)"
}

model_key() { { pin; cat "$BUILDER" "$ROOT/scripts/chatml.py"; } | sha256sum | cut -c1-16; }

cmd_model() {
	if [[ -f "$MODEL_DIR/.built" && "$(cat "$MODEL_DIR/.built")" == "$(model_key)" && -f "$MODEL" ]]; then
		say "model: $MODEL is up to date"
		return 0
	fi
	[[ -x "$GOODPUT_PY" ]] || die "no $GOODPUT_PY (run make setup first)"
	[[ -d "$SRC/gguf-py" ]] || die "no $SRC/gguf-py (run make llamacpp-setup first)"
	local t0=$SECONDS
	say "model: writing the tiny random-weight Llama GGUF into $MODEL_DIR"
	rm -rf "$MODEL_DIR.tmp"
	mkdir -p "$MODEL_DIR.tmp"
	"$GOODPUT_PY" "$BUILDER" --gguf-py "$SRC/gguf-py" --vocab "$SRC/models/ggml-vocab-gpt-2.gguf" \
		--out "$MODEL_DIR.tmp/tiny-llama.gguf"
	rm -rf "$MODEL_DIR"
	mv "$MODEL_DIR.tmp" "$MODEL_DIR"
	model_key >"$MODEL_DIR/.built"
	say "model: done in $((SECONDS - t0)) s; $(du -sh "$MODEL" | cut -f1)"
}

# The projector's output width is read from the model, so a new model means a new projector too.
mmproj_key() { { pin; cat "$MMPROJ_BUILDER"; model_key; } | sha256sum | cut -c1-16; }

cmd_mmproj() {
	if [[ -f "$MMPROJ_DIR/.built" && "$(cat "$MMPROJ_DIR/.built")" == "$(mmproj_key)" && -f "$MMPROJ" ]]; then
		say "mmproj: $MMPROJ is up to date"
		return 0
	fi
	[[ -x "$GOODPUT_PY" ]] || die "no $GOODPUT_PY (run make setup first)"
	[[ -d "$SRC/gguf-py" ]] || die "no $SRC/gguf-py (run make llamacpp-setup first)"
	[[ -f "$MODEL_DIR/.built" && -f "$MODEL" ]] || die "no model: run make llamacpp-model"
	local t0=$SECONDS
	say "mmproj: writing the tiny random-weight LLaVA-style projector into $MMPROJ_DIR"
	rm -rf "$MMPROJ_DIR.tmp"
	mkdir -p "$MMPROJ_DIR.tmp"
	"$GOODPUT_PY" "$MMPROJ_BUILDER" --gguf-py "$SRC/gguf-py" --text-model "$MODEL" \
		--out "$MMPROJ_DIR.tmp/tiny-mmproj.gguf"
	rm -rf "$MMPROJ_DIR"
	mv "$MMPROJ_DIR.tmp" "$MMPROJ_DIR"
	mmproj_key >"$MMPROJ_DIR/.built"
	say "mmproj: done in $((SECONDS - t0)) s; $(du -sh "$MMPROJ" | cut -f1)"
}

# Flags checked against the pinned server's --help (scripts/llamacpp.sh help).
serve_cmd() {
	local port="$1"
	printf '%s\n' "$BIN" -m "$MODEL" --alias "$SERVED_NAME" \
		--host 127.0.0.1 --port "$port" \
		--metrics --slots --parallel "$PARALLEL" -c "$CTX" \
		--threads "$THREADS" --threads-batch "$THREADS" \
		--cache-ram "$CACHE_MIB" --jinja --no-webui --offline
}

engine_env() { :; }

serve() {
	[[ -x "$BIN" && -f "$STAMP" ]] || die "not built: run make llamacpp-setup"
	[[ -f "$MODEL_DIR/.built" ]] || die "no model: run make llamacpp-model"
	cmd_serve "$@"
}

case "${1:-}" in
setup) cmd_setup ;;
model) cmd_model ;;
mmproj) cmd_mmproj ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
serve)
	shift
	serve "${1:?usage: serve PORT [FLAGS...]}" "${@:2}"
	;;
help)
	[[ -x "$BIN" ]] || die "not built: run make llamacpp-setup"
	exec "$BIN" --help
	;;
*)
	echo "usage: $0 setup|model|mmproj|start|stop|status|serve PORT|help" >&2
	exit 2
	;;
esac
