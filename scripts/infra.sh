#!/usr/bin/env bash
# PostgreSQL and RabbitMQ owned by this checkout (DESIGN.md §6 and §8).
#
#   scripts/infra.sh install          OS packages (when missing: postgresql, rabbitmq-server, nginx)
#                                     + .venv from requirements.lock
#   scripts/infra.sh venv             only the .venv part of install
#   scripts/infra.sh start|stop       both servers (idempotent; recovers after a crash)
#   scripts/infra.sh rabbitmq-start|rabbitmq-stop   only the broker (tests restart it mid-stream)
#   scripts/infra.sh status           what runs, exit 0 when both are up, 3 otherwise
#   scripts/infra.sh env              `export` lines for the services/tests (eval "$(... env)")
#   scripts/infra.sh exec CMD...      run CMD with that environment
#   scripts/infra.sh psql [ARGS...]   psql as the superuser on the instance
#   scripts/infra.sh rabbitmqctl|rabbitmq-diagnostics|rabbitmq-queues|rabbitmq-plugins ARGS...
#                                     the broker's CLI with this instance's node, cookie and epmd
#   scripts/infra.sh clean            stop and delete the instance's databases and queues
#
# Inputs (environment):
#   RUN_DIR (or SALESLINE_RUN_DIR)  data/log folder, default .run (tests use .run/test)
#   SALESLINE_DB_PORT               PostgreSQL port, default 55432
#   SALESLINE_AMQP_PORT             AMQP port, default 55672; Erlang distribution = +1, epmd = +2
#   SALESLINE_EXTERNAL_INFRA=1      use an existing PostgreSQL/RabbitMQ: start/stop do nothing and
#                                   `env` passes SALESLINE_DB_HOST/PORT/ADMIN_USER/AMQP_URL through
#   PYTHON (python3), VENV (.venv)  for install
#
# Everything listens on 127.0.0.1 only. A system-wide postgresql/rabbitmq-server (5432, 5672, 4369)
# is never touched nor used: we run the binaries directly with private data, ports and epmd.
set -euo pipefail

SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(dirname "$(dirname "$SCRIPT")")"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTERNAL="${SALESLINE_EXTERNAL_INFRA:-0}"

RUN_DIR="${RUN_DIR:-${SALESLINE_RUN_DIR:-.run}}"
case "$RUN_DIR" in /*) ;; *) RUN_DIR="$ROOT/${RUN_DIR#./}" ;; esac
RUN_DIR="${RUN_DIR%/}"

DB_PORT="${SALESLINE_DB_PORT:-55432}"
AMQP_PORT="${SALESLINE_AMQP_PORT:-55672}"
DB_NAME=salesline

log() { printf 'infra: %s\n' "$*" >&2; }
die() { printf 'infra: ERROR: %s\n' "$*" >&2; exit 1; }

for p in "$DB_PORT" "$AMQP_PORT"; do
    if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1024 || p > 65533)); then die "bad port '$p'"; fi
done
# The broker needs three ports; derive them so one variable moves a whole instance.
DIST_PORT=$((AMQP_PORT + 1))
EPMD_PORT=$((AMQP_PORT + 2))
NODENAME="salesline-${AMQP_PORT}@localhost"

# ---------------------------------------------------------------------------------------------
# helpers

# Run as the service account when we are root (initdb refuses root; rabbitmq wants its own user).
# setpriv execs in place: no lingering su/runuser parent that would catch the terminal's Ctrl-C.
user_argv() { # sets AS_USER=(prefix that runs a command as $1)
    AS_USER=()
    ((EUID == 0)) && AS_USER=(setpriv --reuid="$1" --regid="$1" --init-groups --)
    return 0
}
as_user() {
    user_argv "$1"
    shift
    "${AS_USER[@]}" "$@"
}

owner_of() { if ((EUID == 0)); then echo "$1"; else id -un; fi; }

# Something accepts TCP connections on 127.0.0.1:$1.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# A live (non-zombie) process.
alive() {
    [[ -n "${1:-}" && -r "/proc/$1/status" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Pids whose environment holds exactly $1 and whose command name is $2 (stdlib of /proc, no ps).
pids_with_env() {
    local f pid
    grep -lzxF -- "$1" /proc/[0-9]*/environ 2>/dev/null | while read -r f; do
        pid=${f#/proc/}
        pid=${pid%/environ}
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] && echo "$pid"
    done
    return 0
}

wait_gone() { # pids... ; up to $WAIT_S seconds
    local i pid left
    for ((i = 0; i < ${WAIT_S:-15} * 10; i++)); do
        left=0
        for pid in "$@"; do alive "$pid" && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    return 1
}

kill_pids() { # TERM, then KILL after $WAIT_S
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    WAIT_S=${WAIT_S:-10} wait_gone "$@" && return 0
    log "still alive after SIGTERM, sending SIGKILL to $*"
    kill -KILL "$@" 2>/dev/null || true
    WAIT_S=5 wait_gone "$@" || true
}

# Serialise commands on one instance (parallel `make run`/`make test`, tests restarting the
# broker). We re-exec under `flock -o` so the daemons we spawn never inherit the lock's fd.
with_lock() {
    local lock=$1
    shift
    [[ "${_SALESLINE_INFRA_LOCK:-}" == "$lock" ]] && return 0
    mkdir -p "$(dirname "$lock")"
    exec env _SALESLINE_INFRA_LOCK="$lock" flock -o -w 600 "$lock" bash "$SCRIPT" "$@"
}

# Data lives in $RUN_DIR unless the service accounts cannot reach it (e.g. a clone under /root,
# mode 700) or the socket path would exceed the 107-byte unix socket limit; then it lives in
# /var/tmp and $RUN_DIR/state points there.
pick_state_dir() {
    STATE_DIR="$RUN_DIR"
    local reach=1
    if ((EUID == 0)); then
        for u in postgres rabbitmq; do
            id "$u" >/dev/null 2>&1 || continue
            as_user "$u" test -x "$RUN_DIR" 2>/dev/null || reach=0
        done
    fi
    local sock="$RUN_DIR/postgres/socket/.s.PGSQL.$DB_PORT.lock"
    if ((!reach || ${#sock} > 100)); then
        STATE_DIR="/var/tmp/salesline-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)"
        mkdir -p "$STATE_DIR"
        chmod 755 "$STATE_DIR"
        ln -sfn "$STATE_DIR" "$RUN_DIR/state"
    fi
    PG_DIR="$STATE_DIR/postgres"
    PGDATA="$PG_DIR/data"
    PG_SOCK="$PG_DIR/socket"
    PG_LOG="$PG_DIR/postgres.log"
    RMQ_DIR="$STATE_DIR/rabbitmq"
}

layout() {
    mkdir -p "$RUN_DIR"
    pick_state_dir
}

# ---------------------------------------------------------------------------------------------
# install

APT_UPDATED=0
apt_install() {
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ((!APT_UPDATED)); then
        log "apt-get update"
        "${sudo[@]}" apt-get update -q
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"
}

# Newest installed PostgreSQL (Debian keeps binaries off PATH in /usr/lib/postgresql/<v>/bin).
pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n1)
    if [[ -n "$d" && -x "$d/pg_ctl" ]]; then
        echo "$d"
    elif command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
    fi
}

# The real scripts, not Debian's /usr/sbin wrappers (those cd to /var/lib/rabbitmq and su).
rmq_bindir() {
    local d
    for d in /usr/lib/rabbitmq/bin /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin; do
        [[ -x "$d/rabbitmq-server" ]] && { echo "$d"; return; }
    done
    if command -v rabbitmq-server >/dev/null; then dirname "$(command -v rabbitmq-server)"; fi
}

install_packages() {
    local need=()
    [[ -n "$(pg_bindir)" ]] || need+=(postgresql)
    [[ -n "$(rmq_bindir)" ]] || need+=(rabbitmq-server)
    # The contracts service embeds a CJK font in signed contract PDFs (ContractsSettings.pdf_font_path).
    [[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]] || need+=(fonts-noto-cjk)
    # The gateway (deploy/gateway): run by `make run` unprivileged, with its files under $RUN_DIR.
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
    # The tests check the API docs render offline in a real headless browser.
    if [[ "${SALESLINE_TEST_TOOLS:-0}" == 1 ]]; then
        command -v chromium >/dev/null || need+=(chromium)
        # The customer pages are Chinese first: without a CJK font their screenshots show boxes.
        dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'ok installed' || need+=(fonts-noto-cjk)
        # promtool checks and unit-tests the alert rules (deploy/prometheus).
        command -v promtool >/dev/null || need+=(prometheus)
    fi
    if ((${#need[@]})); then
        # Debian may start its own system-wide servers on install: we leave them alone.
        apt_install "${need[@]}"
    fi
    [[ -n "$(pg_bindir)" ]] || die "PostgreSQL binaries not found after install"
    [[ -n "$(rmq_bindir)" ]] || die "RabbitMQ scripts not found after install"
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || die "nginx not found after install"
}

install_venv() {
    local py="$VENV/bin/python" hash
    if ! { [[ -x "$py" ]] && "$py" -c 'import pip' 2>/dev/null; }; then
        rm -rf "$VENV"
        log "creating $VENV with $PYTHON"
        if ! "$PYTHON" -m venv "$VENV"; then
            # Debian ships venv/ensurepip separately.
            rm -rf "$VENV"
            apt_install python3-venv
            "$PYTHON" -m venv "$VENV"
        fi
    fi
    hash=$(sha256sum requirements.lock | cut -d' ' -f1)
    if [[ "$(cat "$VENV/.lock-hash" 2>/dev/null)" != "$hash" ]]; then
        log "pip install -r requirements.lock"
        "$py" -m pip install -q --disable-pip-version-check -r requirements.lock
        echo "$hash" >"$VENV/.lock-hash"
    fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_pid() { # pid of our running postmaster, if any
    local pid
    [[ -f "$PGDATA/postmaster.pid" ]] || return 1
    pid=$(head -n1 "$PGDATA/postmaster.pid" 2>/dev/null) || return 1
    alive "$pid" || return 1
    # Guard against pid reuse after a crash: a postmaster's cwd is its data directory.
    [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f "$PGDATA")" ]] || return 1
    echo "$pid"
}

pg_init() {
    local pguser
    pguser=$(owner_of postgres)
    mkdir -p "$PG_DIR" "$PG_SOCK"
    chown "$pguser:" "$PG_DIR" "$PG_SOCK"
    chmod 700 "$PG_DIR"
    # The marker is written last: a half-done initdb (killed mid-way) is redone.
    if [[ ! -f "$PG_DIR/.initialized" ]]; then
        rm -rf "$PGDATA"
        log "initdb $PGDATA"
        if ! as_user "$pguser" "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
            -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1; then
            tail -n 20 "$PG_DIR/initdb.log" >&2
            die "initdb failed (see $PG_DIR/initdb.log)"
        fi
        echo "include_if_exists = 'salesline.conf'" >>"$PGDATA/postgresql.conf"
        touch "$PG_DIR/.initialized"
    fi
    local have want
    have=$(cat "$PGDATA/PG_VERSION")
    want=$("$PGBIN/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
    [[ "$have" == "$want" ]] || die "data in $PGDATA is PostgreSQL $have, binaries are $want: run 'make clean'"
    # Rewritten on every start so port/socket changes apply. Many processes x pools (20 each,
    # opened as needed; two API workers per service double the APIs') => 400 conns.
    cat >"$PGDATA/salesline.conf" <<EOF
# written by scripts/infra.sh on every start
listen_addresses = '127.0.0.1'
port = $DB_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = ${SALESLINE_PG_MAX_CONNECTIONS:-400}
EOF
    chown "$pguser:" "$PGDATA/salesline.conf"
}

pg_start() {
    PGBIN=$(pg_bindir)
    [[ -n "$PGBIN" ]] || die "PostgreSQL is not installed: run 'make install'"
    local pid
    if pid=$(pg_pid); then
        local port
        port=$(sed -n 4p "$PGDATA/postmaster.pid")
        [[ "$port" == "$DB_PORT" ]] || die "PostgreSQL of $RUN_DIR already runs on port $port; stop it first"
        log "postgres already running (pid $pid) on 127.0.0.1:$DB_PORT"
    else
        pg_init
        # Stale lock from a crash whose pid now belongs to someone else: PostgreSQL would refuse.
        rm -f "$PGDATA/postmaster.pid"
        port_open "$DB_PORT" && die "127.0.0.1:$DB_PORT is used by another process (set SALESLINE_DB_PORT)"
        log "starting postgres on 127.0.0.1:$DB_PORT"
        local ok=0
        # Retries: after a kill -9 the old backends may hold shared memory for a moment.
        for _ in 1 2 3 4 5; do
            if as_user "$(owner_of postgres)" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t 60 \
                start >/dev/null 2>&1; then
                ok=1
                break
            fi
            sleep 2
        done
        if ((!ok)); then
            tail -n 20 "$PG_LOG" >&2 || true
            die "postgres did not start (see $PG_LOG)"
        fi
    fi
    local i
    for ((i = 0; i < 300; i++)); do
        "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$DB_PORT" -U postgres && break
        sleep 0.1
    done
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$DB_PORT" -U postgres || die "postgres not ready on $DB_PORT"
    local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DB_PORT" -U postgres -d postgres -tA)
    if [[ "$("${psql[@]}" -c "select 1 from pg_database where datname = '$DB_NAME'")" != 1 ]]; then
        log "creating database $DB_NAME"
        "${psql[@]}" -c "create database $DB_NAME"
    fi
}

pg_stop() {
    PGBIN=$(pg_bindir)
    local pid
    pid=$(pg_pid) || return 0
    log "stopping postgres (pid $pid)"
    if [[ -n "$PGBIN" ]] && as_user "$(owner_of postgres)" "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 \
        stop >/dev/null 2>&1; then
        return 0
    fi
    # SIGQUIT = immediate shutdown; the next start runs crash recovery.
    kill -QUIT "$pid" 2>/dev/null || true
    WAIT_S=10 wait_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ

rmq_env() { # the complete environment of every rabbitmq process we run (env -i: no leaks)
    local loopback_dist="-kernel inet_dist_use_interface {127,0,0,1}"
    RMQ_ENV=(
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        LANG=C.UTF-8 LC_ALL=C.UTF-8
        # The Erlang cookie is read from $HOME by the server and the CLI alike.
        HOME="$RMQ_DIR/home"
        RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
        RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
        RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
        RABBITMQ_LOG_BASE="$RMQ_DIR/log"
        RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
        RABBITMQ_FEATURE_FLAGS_FILE="$RMQ_DIR/feature_flags"
        RABBITMQ_PID_FILE="$RMQ_DIR/rabbitmq.pid"
        RABBITMQ_NODENAME="$NODENAME"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$AMQP_PORT"
        RABBITMQ_DIST_PORT="$DIST_PORT"
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$loopback_dist"
        RABBITMQ_CTL_ERL_ARGS="$loopback_dist"
        # Private epmd on loopback: never share the system's 4369.
        ERL_EPMD_ADDRESS=127.0.0.1
        ERL_EPMD_PORT="$EPMD_PORT"
        ERL_CRASH_DUMP="$RMQ_DIR/log/erl_crash.dump"
    )
}

rmq_cli() { # rmq_cli <tool> args...: CLI as the broker's user with the broker's cookie
    local tool=$1
    shift
    (cd "$RMQ_DIR" && as_user "$(owner_of rabbitmq)" env -i "${RMQ_ENV[@]}" \
        timeout "${CLI_TIMEOUT:-60}" "$RMQ_BIN/$tool" "$@")
}

# Our broker's beam process (marked by an env var only the server gets; CLI nodes lack it).
rmq_pids() { pids_with_env "SALESLINE_RMQ_SERVER=$NODENAME" beam.smp; }
epmd_pids() { pids_with_env "ERL_EPMD_PORT=$EPMD_PORT" epmd; }

# AMQP handshake answered with a method frame (type 1): the broker accepts clients.
amqp_ready() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "AMQP\0\0\11\1" >&3
        [[ "$(head -c1 <&3 | od -An -tu1 | tr -d " ")" == 1 ]]' _ "$AMQP_PORT" 2>/dev/null
}

rmq_prepare() {
    local rmquser
    rmquser=$(owner_of rabbitmq)
    mkdir -p "$RMQ_DIR"/{home,mnesia,log}
    [[ -f "$RMQ_DIR/enabled_plugins" ]] || echo '[].' >"$RMQ_DIR/enabled_plugins"
    : >"$RMQ_DIR/rabbitmq-env.conf" # empty: do not read /etc/rabbitmq/rabbitmq-env.conf
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# written by scripts/infra.sh; listeners come from RABBITMQ_NODE_IP_ADDRESS/PORT
log.console = false
log.file.level = info
EOF
    if [[ ! -s "$RMQ_DIR/home/.erlang.cookie" ]]; then
        head -c 32 /dev/urandom | sha256sum | cut -c1-32 | tr a-f A-F >"$RMQ_DIR/home/.erlang.cookie"
    fi
    chown -R "$rmquser:" "$RMQ_DIR"
    chmod 400 "$RMQ_DIR/home/.erlang.cookie"
    chmod 700 "$RMQ_DIR/home"
}

rmq_start() {
    RMQ_BIN=$(rmq_bindir)
    [[ -n "$RMQ_BIN" ]] || die "RabbitMQ is not installed: run 'make install'"
    rmq_env
    local pid
    pid=$(rmq_pids | head -n1)
    if [[ -n "$pid" ]]; then
        log "rabbitmq already running (pid $pid) as $NODENAME"
    else
        rmq_prepare
        local p
        for p in "$AMQP_PORT" "$DIST_PORT"; do
            port_open "$p" && die "127.0.0.1:$p is used by another process (set SALESLINE_AMQP_PORT)"
        done
        # A leftover epmd of ours is fine to reuse; anything else on that port is not.
        if port_open "$EPMD_PORT" && [[ -z "$(epmd_pids)" ]]; then
            die "127.0.0.1:$EPMD_PORT (epmd) is used by another process (set SALESLINE_AMQP_PORT)"
        fi
        rm -f "$RMQ_DIR/rabbitmq.pid"
        log "starting rabbitmq $NODENAME on 127.0.0.1:$AMQP_PORT"
        # setsid: own session, so Ctrl-C in the terminal does not reach the broker.
        user_argv rabbitmq
        (
            cd "$RMQ_DIR"
            exec setsid "${AS_USER[@]}" env -i "${RMQ_ENV[@]}" SALESLINE_RMQ_SERVER="$NODENAME" \
                "$RMQ_BIN/rabbitmq-server" </dev/null >>"$RMQ_DIR/log/startup.log" 2>&1
        ) &
        LAUNCHER=$!
    fi
    rmq_wait_ready
}

rmq_wait_ready() {
    local i
    for ((i = 0; i < 900; i++)); do # 90 s
        amqp_ready && break
        if [[ -n "${LAUNCHER:-}" ]] && ! alive "$LAUNCHER"; then
            tail -n 30 "$RMQ_DIR/log/startup.log" >&2 || true
            die "rabbitmq exited during startup (see $RMQ_DIR/log)"
        fi
        sleep 0.1
    done
    amqp_ready || {
        tail -n 30 "$RMQ_DIR/log/startup.log" >&2 || true
        die "rabbitmq not ready on $AMQP_PORT after 90 s (see $RMQ_DIR/log)"
    }
    # The CLI check also proves the cookie/epmd setup that rabbitmq-stop relies on.
    rmq_cli rabbitmq-diagnostics -q -n "$NODENAME" check_port_connectivity >/dev/null ||
        die "rabbitmq-diagnostics check_port_connectivity failed for $NODENAME"
}

rmq_stop() {
    RMQ_BIN=$(rmq_bindir)
    rmq_env
    local pids
    pids=$(rmq_pids)
    if [[ -n "$pids" ]]; then
        log "stopping rabbitmq $NODENAME (pid $pids)"
        # SIGTERM makes RabbitMQ (>= 3.7) run the same graceful shutdown as `rabbitmqctl shutdown`,
        # in ~1 s instead of ~2.5 s (no CLI VM to boot) and without depending on cookie/epmd.
        # shellcheck disable=SC2086
        WAIT_S=30 kill_pids $pids
    fi
    # The VM leaves its epmd behind (and CLI calls may start one): it is private, stop it.
    # shellcheck disable=SC2046
    WAIT_S=5 kill_pids $(epmd_pids)
}

# ---------------------------------------------------------------------------------------------
# commands

q() { printf 'export %s=%q\n' "$1" "$2"; }

cmd_env() {
    if [[ "$EXTERNAL" == 1 ]]; then
        q SALESLINE_EXTERNAL_INFRA 1
        q SALESLINE_DB_HOST "${SALESLINE_DB_HOST:-127.0.0.1}"
        q SALESLINE_DB_PORT "$DB_PORT"
        q SALESLINE_DB_NAME "${SALESLINE_DB_NAME:-$DB_NAME}"
        q SALESLINE_DB_ADMIN_USER "${SALESLINE_DB_ADMIN_USER:-postgres}"
        [[ -z "${SALESLINE_DB_ADMIN_PASSWORD:-}" ]] || q SALESLINE_DB_ADMIN_PASSWORD "$SALESLINE_DB_ADMIN_PASSWORD"
        q SALESLINE_AMQP_URL "${SALESLINE_AMQP_URL:-amqp://guest:guest@127.0.0.1:$AMQP_PORT/}"
    else
        q SALESLINE_DB_HOST 127.0.0.1
        q SALESLINE_DB_PORT "$DB_PORT"
        q SALESLINE_DB_NAME "$DB_NAME"
        q SALESLINE_DB_ADMIN_USER postgres
        q SALESLINE_AMQP_PORT "$AMQP_PORT"
        q SALESLINE_AMQP_URL "amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
    fi
    q SALESLINE_RUN_DIR "$RUN_DIR"
}

external_noop() {
    if [[ "$EXTERNAL" == 1 ]]; then
        log "SALESLINE_EXTERNAL_INFRA=1: not managing PostgreSQL/RabbitMQ ($1 is a no-op)"
        return 0
    fi
    return 1
}

cmd_status() {
    layout
    local rc=0 pid
    if pid=$(pg_pid); then
        echo "postgres: running (pid $pid) on 127.0.0.1:$DB_PORT, data $PGDATA"
    else
        echo "postgres: stopped (port $DB_PORT, data $PGDATA)"
        rc=3
    fi
    pid=$(rmq_pids | head -n1)
    if [[ -n "$pid" ]]; then
        echo "rabbitmq: running (pid $pid) as $NODENAME on 127.0.0.1:$AMQP_PORT (dist $DIST_PORT, epmd $EPMD_PORT)"
    else
        echo "rabbitmq: stopped (port $AMQP_PORT, data $RMQ_DIR)"
        rc=3
    fi
    return "$rc"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
install)
    with_lock "$ROOT/.run/install.lock" install "$@"
    install_packages
    install_venv
    ;;
venv)
    with_lock "$ROOT/.run/install.lock" venv "$@"
    install_venv
    ;;
start)
    external_noop start && exit 0
    with_lock "$RUN_DIR/infra.lock" start "$@"
    layout
    pg_start
    rmq_start
    log "ready: postgres 127.0.0.1:$DB_PORT, amqp 127.0.0.1:$AMQP_PORT (data in $STATE_DIR)"
    ;;
stop)
    external_noop stop && exit 0
    with_lock "$RUN_DIR/infra.lock" stop "$@"
    layout
    rmq_stop
    pg_stop
    ;;
rabbitmq-start | rabbitmq-stop)
    if [[ "$EXTERNAL" == 1 ]]; then
        log "SALESLINE_EXTERNAL_INFRA=1: cannot $cmd an external broker"
        exit 2
    fi
    with_lock "$RUN_DIR/infra.lock" "$cmd" "$@"
    layout
    if [[ "$cmd" == rabbitmq-start ]]; then rmq_start; else rmq_stop; fi
    ;;
status)
    if [[ "$EXTERNAL" == 1 ]]; then
        echo "external infrastructure (SALESLINE_EXTERNAL_INFRA=1)"
        exit 0
    fi
    cmd_status
    ;;
env)
    cmd_env
    ;;
exec)
    (($#)) || die "usage: infra.sh exec COMMAND [ARGS...]"
    eval "$(cmd_env)"
    exec "$@"
    ;;
rabbitmqctl | rabbitmq-diagnostics | rabbitmq-queues | rabbitmq-plugins)
    # The raw /usr/sbin tools would target the system node and start a system epmd on 0.0.0.0:4369.
    layout
    RMQ_BIN=$(rmq_bindir)
    rmq_env
    rc=0
    CLI_TIMEOUT=300 rmq_cli "$cmd" -n "$NODENAME" "$@" || rc=$?
    # Talking to a stopped broker starts an epmd: do not leave it behind.
    # shellcheck disable=SC2046
    [[ -n "$(rmq_pids)" ]] || WAIT_S=5 kill_pids $(epmd_pids)
    exit "$rc"
    ;;
psql)
    eval "$(cmd_env)"
    PGBIN=$(pg_bindir)
    exec "${PGBIN:+$PGBIN/}psql" -h "$SALESLINE_DB_HOST" -p "$SALESLINE_DB_PORT" -U "$SALESLINE_DB_ADMIN_USER" \
        -d "$DB_NAME" "$@"
    ;;
clean)
    if [[ "$EXTERNAL" != 1 ]]; then
        with_lock "$RUN_DIR/infra.lock" clean "$@"
        layout
        rmq_stop
        pg_stop
        # Only this instance's own data: .run/test (another instance) may live inside .run.
        rm -rf "$PG_DIR" "$RMQ_DIR" "$RUN_DIR/state" "$RUN_DIR/infra.lock"
        [[ "$STATE_DIR" == "$RUN_DIR" ]] || rm -rf "$STATE_DIR"
        rmdir "$RUN_DIR" 2>/dev/null || true
    fi
    ;;
*)
    sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help || "$cmd" == help ]] && exit 0
    exit 64
    ;;
esac
