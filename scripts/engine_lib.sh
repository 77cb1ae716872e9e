#!/usr/bin/env bash
# What the real-engine scripts share: a background server's pid/port files under its own state
# folder, start (with a health wait that gives up on a dead process or a timeout), stop (its whole
# process group), status and a free port. Sourced by scripts/real_engine.sh and scripts/llamacpp.sh.
#
# The sourcing script sets, before calling these:
#   STATE_DIR     folder for server.pid, server.port, server.url, server.log
#   ENGINE_NAME   the server as a user reads it in messages ("vLLM (CPU)", "llama-server")
#   STOP_HINT     the command that stops it ("make real-engine-stop")
#   PORT_VAR      the environment variable that chooses its port (named in the port-in-use error)
#   PORT TIMEOUT SERVED_NAME PY   port (0 = any free one), health wait in s, model name, python3
#   HEALTH_POLL_S seconds between health probes
# and defines: say, die, cmd_setup, cmd_model, serve_cmd PORT (one argument per line), and
# engine_env (exports the server's environment; may do nothing).

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_busy() {
	"$PY" -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(0)
sys.exit(1)' "$1"
}

running_pid() {
	local pid
	[[ -f "$STATE_DIR/server.pid" ]] || return 1
	pid="$(cat "$STATE_DIR/server.pid")"
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

health() { curl -fs -m 2 -o /dev/null "http://127.0.0.1:$1/health"; }

cmd_start() {
	local pid port
	if pid="$(running_pid)"; then
		port="$(cat "$STATE_DIR/server.port")"
		say "already running: pid $pid, http://127.0.0.1:$port  ($STOP_HINT to stop)"
		return 0
	fi
	cmd_setup
	cmd_model
	port="$PORT"
	[[ "$port" == 0 ]] && port="$(free_port)"
	port_busy "$port" && die "port $port on 127.0.0.1 is in use; set $PORT_VAR=<free port> (or 0 for any)"
	engine_env
	local log="$STATE_DIR/server.log"
	local -a cmd
	mapfile -t cmd < <(serve_cmd "$port")
	say "starting $ENGINE_NAME on http://127.0.0.1:$port, model $SERVED_NAME, log $log"
	local t0=$SECONDS
	# setsid: its own process group, so `stop` ends the server and any children it forked together.
	setsid "${cmd[@]}" >"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$STATE_DIR/server.pid"
	echo "$port" >"$STATE_DIR/server.port"
	until health "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$log" >&2
			rm -f "$STATE_DIR/server.pid"
			die "$ENGINE_NAME exited during start-up (log: $log)"
		fi
		if ((SECONDS - t0 > TIMEOUT)); then
			tail -n 30 "$log" >&2
			cmd_stop
			die "$ENGINE_NAME not healthy after ${TIMEOUT}s (log: $log)"
		fi
		sleep "$HEALTH_POLL_S"
	done
	echo "http://127.0.0.1:$port" >"$STATE_DIR/server.url"
	say "ready in $((SECONDS - t0)) s: http://127.0.0.1:$port  (pid $pid; model name $SERVED_NAME)"
	echo "    try: curl -s http://127.0.0.1:$port/v1/models ; stop: $STOP_HINT"
}

cmd_stop() {
	local pid
	if ! pid="$(running_pid)"; then
		say "not running"
		rm -f "$STATE_DIR/server.pid" "$STATE_DIR/server.url"
		return 0
	fi
	say "stopping pid $pid (process group)"
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "still alive after 15 s: SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$STATE_DIR/server.pid" "$STATE_DIR/server.url"
	say "stopped"
}

# Foreground: the caller (a test fixture) owns the process; $1 = port, the rest more server flags
# (appended to the command line). The sourcing script checks first that the server is built.
cmd_serve() {
	local port="$1"
	shift
	engine_env
	local -a cmd
	mapfile -t cmd < <(serve_cmd "$port")
	exec "${cmd[@]}" "$@"
}

cmd_status() {
	local pid
	if pid="$(running_pid)"; then
		echo "running: pid $pid, http://127.0.0.1:$(cat "$STATE_DIR/server.port")"
	else
		echo "not running"
		return 1
	fi
}
