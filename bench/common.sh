# bench/common.sh — what the bench/run-* scripts share: building, the
# servers by name, starting one (under a wrapper: valgrind, strace) and
# finding its address, stopping it. Sourced, not run.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BENCH_BIN:-$ROOT/target/release}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
WORK=$(mktemp -d /tmp/selectloop-bench.XXXXXX)
# Bash may run an EXIT trap in $(...) subshells too: clean up in the script's own shell only.
MAIN_PID=$$
cleanup() {
    [[ $BASHPID == "$MAIN_PID" ]] || return 0
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
trap 'echo "${BASH_SOURCE[0]}: line $LINENO: $BASH_COMMAND failed" >&2' ERR
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

# Every echo server, by name (io_models' models are io-MODEL, http ones below).
ALL_SERVERS="polling mio tokio threads python echo loop selector selectors_echo"

build() {
    (cd "$ROOT" && cargo build --release -q -p selectloop-bench --bins \
        && cargo build --release -q --example echo --example selectors_echo \
            --example io_models --example http_hello)
}

# The real interpreter, not pyenv's shell-script shim (valgrind and strace
# would measure the shim's bash); empty without python3.
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)

# The command line of server NAME, listening on port 0.
server_cmd() {
    case $1 in
        polling | mio | tokio | threads | loop | selector) echo "$BIN/srv-$1" ;;
        python) echo "$PYTHON $ROOT/bench/srv_selectors.py" ;;
        echo | selectors_echo) echo "$BIN/examples/$1 --addr 127.0.0.1:0" ;;
        io-pool) echo "$BIN/examples/io_models --addr 127.0.0.1:0 --model pool --pool ${POOL:-1000}" ;;
        io-*) echo "$BIN/examples/io_models --addr 127.0.0.1:0 --model ${1#io-}" ;;
        http_hello) echo "$BIN/examples/http_hello --addr 127.0.0.1:0" ;;
        # bench/run-https sets TLS_CERT and TLS_KEY (nginx serves the same files).
        https_hello) echo "$BIN/examples/https_hello --addr 127.0.0.1:0 --cert ${TLS_CERT:?} --key ${TLS_KEY:?} --no-resumption" ;;
        *) echo "unknown server $1" >&2; return 1 ;;
    esac
}

# Whether server NAME can run here (python3 may be missing).
have_server() {
    [[ $1 != python ]] && return 0
    [[ -n $PYTHON ]] && return 0
    echo "skipping the Python selectors server: no python3" >&2
    return 1
}

SRV_PID= SRV_ADDR=
# start_server NAME [WRAPPER...]: runs it in the background, sets SRV_PID
# (the wrapper's, if any) and SRV_ADDR (from its `listening on` line).
start_server() {
    local name=$1
    shift
    local cmd out
    cmd=$(server_cmd "$name")
    # A new file each time: the previous server's line must not be read
    # before this one's shell has even opened it.
    SRV_N=$((${SRV_N:-0} + 1))
    out=$WORK/srv.$SRV_N.out
    # shellcheck disable=SC2086
    "$@" $cmd >"$out" 2>"$WORK/srv.err" &
    SRV_PID=$!
    for _ in $(seq 600); do
        SRV_ADDR=$(sed -n 's/^listening on //p' "$out" 2>/dev/null || true)
        [[ -n $SRV_ADDR ]] && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "server $name did not start:" >&2
    cat "$WORK/srv.err" >&2
    return 1
}

# Stops the server (SIGTERM: SIGINT is ignored by background jobs of a
# script) and waits for it; under strace, the traced child is sent it.
stop_server() {
    [[ -n ${SRV_PID:-} ]] || return 0
    # A wrapper's children too: strace outlives a SIGTERM while it traces.
    local target=${1:-$(pgrep -P "$SRV_PID" || true) $SRV_PID}
    # shellcheck disable=SC2086
    kill -TERM $target 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=
}

# Ticks (utime + stime) of a process and its children (nginx's worker).
ticks() {
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# free_port: sets FREE_PORT to a port the kernel gives out (taken by a
# throwaway http_hello, then freed), for a server that cannot bind port 0
# and say which it got (nginx).
free_port() {
    start_server http_hello
    FREE_PORT=${SRV_ADDR##*:}
    stop_server
}

# start_nginx PORT PROBE: nginx on $WORK/nginx/nginx.conf (which listens on
# 127.0.0.1:PORT) in the foreground of a background job; sets SRV_PID (the
# master) and SRV_ADDR, and returns once its worker runs and `PROBE ADDR`
# succeeds.
start_nginx() {
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/srv.err" &
    SRV_PID=$! SRV_ADDR=127.0.0.1:$1
    for _ in $(seq 100); do
        [[ -n $(pgrep -P "$SRV_PID") ]] && "$2" "$SRV_ADDR" && return 0
        sleep 0.1
    done
    echo "nginx did not start" >&2
    cat "$WORK/srv.err" "$WORK/nginx/logs/error.log" >&2
    return 1
}

# Installs Debian packages on demand; false (and a message) if it cannot.
need() {
    local missing=()
    for cmd in "$@"; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd#*:}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    echo "installing ${missing[*]}" >&2
    { apt-get install -y -qq "${missing[@]}" || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }; } >/dev/null 2>&1 || {
        echo "cannot install ${missing[*]}: skipped" >&2
        return 1
    }
}
