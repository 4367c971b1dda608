#!/usr/bin/env bash
# The project's test command: every check CI runs, in the order CI runs them.
#
#   ./scripts/test.sh            fmt, clippy, the whole test suite (SQLite, then the HTTP suite
#                                again on PostgreSQL), the real-client smoke tests
#   ./scripts/test.sh --quick    the same without fmt and clippy
#   ./scripts/test.sh --services FILE
#                                only start PostgreSQL and RabbitMQ, write their URLs (and
#                                the control scripts the fault campaign uses) to FILE as
#                                `export` lines (source it), and keep them up until killed
#
# It installs what is missing (PostgreSQL and RabbitMQ from Debian packages, the Python clients
# in target/venv, Keystone from PyPI in target/keystone-venv), starts a throwaway PostgreSQL,
# RabbitMQ and Keystone on free loopback ports under one temp dir, and stops them and removes
# that dir on exit, however it exits. Keystone is the reference one in ../shared
# (KEYSTONE_SCRIPTS overrides where its start.sh/stop.sh are).
#
# Last, scripts/compose-test.sh runs docker-compose.yml across containers (a Docker engine is
# needed; it makes its images from Debian packages and the debug binaries, and removes its
# containers, network, volumes and image however the run ends).
#
# Environment:
#   GLANCE_TEST_WITH_RABBITMQ=0   do not start RabbitMQ (the tests that need a broker then
#                                 fail, saying so)
#   GLANCE_TEST_WITH_DOCKER=0     skip the compose stack across containers
#                                 (scripts/compose-test.sh; needs a running Docker engine)
#   GLANCE_TEST_KEEP_TMP=1        keep the temp dir (database and broker logs) after the run
#   GLANCE_TEST_WITH_KEYSTONE=0   do not start Keystone (tests/tests/keystone.rs is left out,
#                                 and the run says so)
#   GLANCE_TEST_FUZZ_SECONDS=N    how long the fuzz targets run, split between the three
#                                 (default 60; 0 skips; fuzz/README.md)
#   GLANCE_TEST_PARITY=0          skip the side-by-side runs against the reference Glance 33
#                                 (tests/parity/run.sh; needs ../shared/reference-glance, whose
#                                 venv it builds once, ~3 min, and reuses) and Glare 5.0.1
#                                 (tests/parity/glare_run.sh; ../shared/reference-glare, ~30 s),
#                                 and the import plugins' (tests/parity/plugins_run.sh)
set -euo pipefail

GLANCECLIENT_VERSION=4.13.0
OPENSTACKSDK_VERSION=4.22.0
# The `openstack` CLI, for `openstack image metadef ...` in tests/smoke/metadefs_smoke.sh.
OPENSTACKCLIENT_VERSION=10.5.0
# Generates requests from the served OpenAPI document (tests/openapi/schemathesis.sh).
SCHEMATHESIS_VERSION=4.32.5
# The `glare` CLI, for tests/smoke/glare_smoke.sh (its own venv: the reference Glare's pins).
GLARECLIENT_VERSION=0.5.3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
SERVICES_FILE=""
WITH_RABBITMQ=${GLANCE_TEST_WITH_RABBITMQ:-1}
WITH_KEYSTONE=${GLANCE_TEST_WITH_KEYSTONE:-1}
KEYSTONE_SCRIPTS=${KEYSTONE_SCRIPTS:-$ROOT/../shared/reference-keystone}
KEYSTONE_HOME="" KEYSTONE_PORT=""
KEYSTONE_VENV=$ROOT/target/keystone-venv
WITH_PARITY=${GLANCE_TEST_PARITY:-1}
FUZZ_SECONDS=${GLANCE_TEST_FUZZ_SECONDS:-60}
WITH_DOCKER=${GLANCE_TEST_WITH_DOCKER:-1}
COMPOSE_PROJECT="" STANDINS_PID=""

TMPROOT=""
PG_BINDIR="" PG_DIR="" PG_PORT=""
RABBIT_PID="" EPMD_PID="" RABBIT_DIR="" RABBIT_NODE="" RABBIT_PORT="" RABBIT_DIST_PORT="" EPMD_PORT=""
RABBIT_ENV=()
POLICY_RC_CREATED=0
FAILED=()
SUMMARY=()
DIGEST=()
# Each step's output, kept after the run (target/ is ignored by git).
STEP_LOGS=""
START=$SECONDS

phase() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf '\n==> test.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

# A port nobody listens on right now. Another process could take it before we bind it;
# the starters below retry with a fresh port when that happens.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------------------------------------
# System packages

find_pg_bindir() {
    local d
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

find_rabbitmq_server() {
    local f
    for f in /usr/lib/rabbitmq/bin/rabbitmq-server /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server; do
        [[ -x $f ]] && { echo "$f"; return 0; }
    done
    # Elsewhere the script on PATH is the real one (Debian's /usr/sbin one is a wrapper that
    # switches to the rabbitmq user and loses our environment, hence the paths above first).
    command -v rabbitmq-server 2>/dev/null
}

find_epmd() {
    command -v epmd 2>/dev/null && return 0
    local f
    for f in /usr/lib/erlang/erts-*/bin/epmd; do
        [[ -x $f ]] && { echo "$f"; return 0; }
    done
    return 1
}

ensure_packages() {
    local need=()
    find_pg_bindir >/dev/null || need+=(postgresql)
    if [[ $WITH_RABBITMQ == 1 ]]; then
        { find_rabbitmq_server >/dev/null && find_epmd >/dev/null; } || need+=(rabbitmq-server)
    fi
    command -v curl >/dev/null || need+=(curl)
    # The format inspector's tests build real images with these.
    command -v qemu-img >/dev/null || need+=(qemu-utils)
    command -v genisoimage >/dev/null || need+=(genisoimage)
    # The compose file is validated, and run on the Docker engine by compose-test.sh;
    # compose-images.sh makes its base images with debootstrap and strips with objcopy.
    command -v docker-compose >/dev/null || need+=(docker-compose)
    if [[ $WITH_DOCKER == 1 ]]; then
        command -v debootstrap >/dev/null || need+=(debootstrap)
        command -v objcopy >/dev/null || need+=(binutils)
    fi
    # glance-digest links the system's OpenSSL, found with pkg-config.
    { command -v pkg-config >/dev/null && pkg-config --exists openssl; } || need+=(libssl-dev pkg-config)
    command -v python3 >/dev/null || need+=(python3)
    # Debian's python3 has no venv/ensurepip without python3-venv.
    python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
    if [[ ${#need[@]} -eq 0 ]]; then
        note "postgresql, rabbitmq-server, curl, libssl-dev, pkg-config, python3-venv, qemu-utils, genisoimage, docker-compose, debootstrap, binutils: present"
        return 0
    fi
    command -v apt-get >/dev/null || die "missing ${need[*]} and there is no apt-get to install them"
    note "installing: ${need[*]}"
    # Package scripts would start the distribution's own PostgreSQL/RabbitMQ on the default
    # ports and leave them running; a policy-rc.d that says no keeps the install inert.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${need[@]}" </dev/null
    if [[ $POLICY_RC_CREATED == 1 ]]; then
        as_root rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL: initdb in the temp dir, trust auth, 127.0.0.1 only, socket in the temp dir.
# As root it runs as the postgres user (PostgreSQL refuses to run as root).

pg_run() {
    # PostgreSQL's tools fail when they cannot read the current directory, so run from PG_DIR.
    if [[ $EUID -eq 0 ]]; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

start_postgres() {
    PG_BINDIR=$(find_pg_bindir) || die "no PostgreSQL server binaries found"
    PG_DIR=$TMPROOT/postgres
    mkdir -p "$PG_DIR/sock"
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run PostgreSQL as"
        chown -R postgres: "$PG_DIR"
    fi
    pg_run "$PG_BINDIR/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale \
        >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    local attempt
    for attempt in 1 2 3; do
        PG_PORT=$(free_port)
        if pg_run "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-p $PG_PORT -k $PG_DIR/sock -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >"$PG_DIR/pg_ctl.log" 2>&1; then
            break
        fi
        note "PostgreSQL did not start on port $PG_PORT (attempt $attempt)"
        tail -n 20 "$PG_DIR/server.log" >&2 || true
        PG_PORT=""
    done
    [[ -n $PG_PORT ]] || die "PostgreSQL would not start (log: $PG_DIR/server.log)"
    "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null \
        || die "PostgreSQL started but psql cannot connect on 127.0.0.1:$PG_PORT"
    export GLANCE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
    note "PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data $PG_DIR/data)"
    note "GLANCE_TEST_POSTGRES_URL=$GLANCE_TEST_POSTGRES_URL"
}

stop_postgres() {
    [[ -n $PG_DIR && -f $PG_DIR/data/postmaster.pid ]] || return 0
    if ! pg_run "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1; then
        local pid
        pid=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)
        if [[ -n $pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ: a node of its own (name, ports, epmd, cookie, data, logs, no plugins) under the
# temp dir, run as the current user in its own process group so stopping it stops everything.

# The node's environment, as VAR=value words for env(1). Only rabbitmq processes get this
# HOME (for the cookie): cargo and the rest keep the caller's.
rabbit_env() {
    RABBIT_ENV=(
        HOME="$RABBIT_DIR/home"
        RABBITMQ_NODENAME="$RABBIT_NODE"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$RABBIT_PORT"
        RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT"
        ERL_EPMD_PORT="$EPMD_PORT"
        RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
        RABBITMQ_LOG_BASE="$RABBIT_DIR/log"
        RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_DIR/advanced.config"
        RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
        RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
        RABBITMQ_PID_FILE="$RABBIT_DIR/rabbitmq.pid"
    )
}

# rabbitmqctl/rabbitmq-diagnostics against our node, e.g. `rabbit_cli rabbitmqctl list_queues`.
rabbit_cli() {
    local tool=$1
    shift
    rabbit_env
    env "${RABBIT_ENV[@]}" "$(dirname "$(find_rabbitmq_server)")/$tool" -n "$RABBIT_NODE" "$@"
}

# True once the broker answers an AMQP 0-9-1 protocol header with a Connection.Start frame.
amqp_ready() {
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"AMQP\x00\x00\x09\x01")
s.settimeout(5)
frame = s.recv(7)
sys.exit(0 if frame[:1] == b"\x01" else 1)
EOF
}

start_rabbitmq() {
    local server epmd
    server=$(find_rabbitmq_server) || die "rabbitmq-server not found"
    epmd=$(find_epmd) || die "epmd (Erlang) not found"
    RABBIT_DIR=$TMPROOT/rabbitmq
    mkdir -p "$RABBIT_DIR/home" "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log"
    # rabbitmq-server and rabbitmqctl authenticate to each other with this cookie.
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16), end="")' >"$RABBIT_DIR/home/.erlang.cookie")
    chmod 400 "$RABBIT_DIR/home/.erlang.cookie"
    printf '[].\n' >"$RABBIT_DIR/enabled_plugins"
    : >"$RABBIT_DIR/rabbitmq-env.conf"
    RABBIT_NODE="rabbit-$(python3 -c 'import secrets; print(secrets.token_hex(4))')@localhost"

    local attempt deadline
    for attempt in 1 2 3; do
        RABBIT_PORT=$(free_port)
        RABBIT_DIST_PORT=$(free_port)
        EPMD_PORT=$(free_port)
        cat >"$RABBIT_DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$RABBIT_PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
EOF
        # Our own epmd on a free port, so none is left behind on 4369 and none is shared.
        "$epmd" -port "$EPMD_PORT" -address 127.0.0.1 >"$RABBIT_DIR/log/epmd.log" 2>&1 &
        EPMD_PID=$!
        # A background command is not a process group leader, so setsid makes a new group in
        # place (no fork): $! is the group's id and stop_rabbitmq can signal all of it.
        rabbit_env
        setsid env "${RABBIT_ENV[@]}" "$server" >"$RABBIT_DIR/log/startup.log" 2>&1 </dev/null &
        RABBIT_PID=$!
        deadline=$((SECONDS + 90))
        while ((SECONDS < deadline)); do
            if amqp_ready "$RABBIT_PORT"; then
                break 2
            fi
            kill -0 "$RABBIT_PID" 2>/dev/null || break
            sleep 1
        done
        note "RabbitMQ did not come up on port $RABBIT_PORT (attempt $attempt)"
        tail -n 30 "$RABBIT_DIR/log/startup.log" >&2 || true
        stop_rabbitmq
    done
    if [[ -z $RABBIT_PID ]]; then
        ls "$RABBIT_DIR/log" >&2 || true
        tail -n 50 "$RABBIT_DIR"/log/*.log >&2 || true
        die "RabbitMQ would not start (its logs are above; GLANCE_TEST_WITH_RABBITMQ=0 skips it)"
    fi
    export GLANCE_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
    note "RabbitMQ node $RABBIT_NODE on 127.0.0.1:$RABBIT_PORT (epmd $EPMD_PORT, dist $RABBIT_DIST_PORT)"
    note "GLANCE_TEST_AMQP_URL=$GLANCE_TEST_AMQP_URL"
}

stop_rabbitmq() {
    if [[ -n $RABBIT_PID ]]; then
        # SIGTERM to the group: the wrapper script, beam.smp and its port programs.
        kill -TERM -- "-$RABBIT_PID" 2>/dev/null || true
        for _ in $(seq 1 60); do
            kill -0 -- "-$RABBIT_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$RABBIT_PID" 2>/dev/null || true
        wait "$RABBIT_PID" 2>/dev/null || true
        RABBIT_PID=""
    fi
    if [[ -n $EPMD_PID ]]; then
        kill -TERM "$EPMD_PID" 2>/dev/null || true
        wait "$EPMD_PID" 2>/dev/null || true
        EPMD_PID=""
    fi
}

# ---------------------------------------------------------------------------------------------
# Keystone: the reference Keystone (uWSGI, SQLite, fernet tokens, users demo/alt/reader and a
# glance service user) with its state under the temp dir and its venv under target/, reused.

keystone_ctl() {  # keystone_ctl start|stop [ENV=VALUE...]
    local action=$1
    shift
    env KEYSTONE_REF_HOME="$KEYSTONE_HOME" VENV="$KEYSTONE_VENV" KEYSTONE_REF_PORT="$KEYSTONE_PORT" \
        "$@" "$KEYSTONE_SCRIPTS/$action.sh"
}

start_keystone() {
    [[ -x $KEYSTONE_SCRIPTS/start.sh ]] \
        || die "the reference Keystone is not at $KEYSTONE_SCRIPTS (shared/ beside the repository; KEYSTONE_SCRIPTS to point elsewhere, GLANCE_TEST_WITH_KEYSTONE=0 to skip)"
    KEYSTONE_HOME=$TMPROOT/keystone
    local attempt
    for attempt in 1 2 3; do
        KEYSTONE_PORT=$(free_port)
        # The first run pip-installs Keystone and builds uWSGI, whose parallel build has
        # been seen to fail once and pass on a retry.
        if keystone_ctl start >>"$TMPROOT/keystone-start.log" 2>&1; then
            break
        fi
        note "Keystone did not start on port $KEYSTONE_PORT (attempt $attempt)"
        tail -n 20 "$TMPROOT/keystone-start.log" >&2 || true
        keystone_ctl stop >/dev/null 2>&1 || true
        KEYSTONE_PORT=""
    done
    [[ -n $KEYSTONE_PORT ]] || die "Keystone would not start (log: $TMPROOT/keystone-start.log)"
    export GLANCE_TEST_KEYSTONE_URL="http://127.0.0.1:$KEYSTONE_PORT"
    note "Keystone 30 on $GLANCE_TEST_KEYSTONE_URL (state $KEYSTONE_HOME, venv $KEYSTONE_VENV)"
}

stop_keystone() {
    [[ -n $KEYSTONE_HOME && -n $KEYSTONE_PORT ]] || return 0
    keystone_ctl stop >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------------------------
# The real clients, in a venv that is reused while the pinned versions are unchanged.

ensure_venv() {
    local venv=$ROOT/target/venv
    local stamp=$venv/.glance-test-requirements
    local want="python-glanceclient==$GLANCECLIENT_VERSION openstacksdk==$OPENSTACKSDK_VERSION python-openstackclient==$OPENSTACKCLIENT_VERSION schemathesis==$SCHEMATHESIS_VERSION"
    if [[ -f $stamp && $(<"$stamp") == "$want" ]] && "$venv/bin/python" -c 'import glanceclient, openstack, schemathesis' 2>/dev/null; then
        note "reusing $venv ($want)"
        return 0
    fi
    if ! "$venv/bin/python" -c 'pass' 2>/dev/null; then
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv failed"
    fi
    # shellcheck disable=SC2086 # $want is a list of requirements
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet --no-input $want \
        || die "pip install $want failed"
    "$venv/bin/glance" --version >/dev/null 2>&1 || die "glance CLI not usable in $venv"
    printf '%s' "$want" >"$stamp"
    note "installed $want in $venv"
}

# python-glareclient in target/glare-venv, pinned as the reference Glare pins it, with the
# reference's two one-line Python 3 fixes (`x.next()` -> `next(x)`, for `glare download`).
ensure_glare_venv() {
    local venv=$ROOT/target/glare-venv
    local constraints=${GLARE_REFERENCE:-$ROOT/../shared/reference-glare}/constraints.txt
    local stamp=$venv/.glance-test-requirements
    local want="python-glareclient==$GLARECLIENT_VERSION $(cksum <"$constraints" 2>/dev/null)"
    if [[ -f $stamp && $(<"$stamp") == "$want" ]] && [[ -x $venv/bin/glare ]]; then
        note "reusing $venv ($want)"
        return 0
    fi
    [[ -f $constraints ]] || { note "no $constraints: the glare smoke will say so"; return 1; }
    rm -rf "$venv"
    python3 -m venv "$venv" || return 1
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet --no-input \
        -c "$constraints" "python-glareclient==$GLARECLIENT_VERSION" || return 1
    local site
    site=$("$venv/bin/python" -c 'import glareclient, os; print(os.path.dirname(glareclient.__file__))')
    sed -i -e 's/self\.iter\.next()/next(self.iter)/' "$site/common/utils.py"
    sed -i -e 's/self\._wrapped\.next()/next(self._wrapped)/' "$site/common/progressbar.py"
    printf '%s' "$want" >"$stamp"
    note "installed python-glareclient $GLARECLIENT_VERSION in $venv"
}

# ---------------------------------------------------------------------------------------------
# Steps whose failure does not stop the run: the rest still runs, the end says what failed.

step() {
    local name=$1
    shift
    phase "$name"
    local t0=$SECONDS rc=0 log="$STEP_LOGS/$name.log"
    # The output is kept as well as shown, so that the end of the run can say what failed in
    # a step whose output has long scrolled away (a CI report may show only the last lines).
    # A process substitution, not a pipe: the step runs in this shell and may set globals.
    # Not waited for: a server a step restarts (the fault campaign restarts RabbitMQ and
    # PostgreSQL) inherits the pipe, so tee ends only when that server does.
    "$@" > >(tee "$log") 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
        SUMMARY+=("ok      $name ($((SECONDS - t0))s)")
        # nextest retries a failed test once (.config/nextest.toml): one that passed on its
        # second try is flaky, and said so here rather than lost in the scroll.
        if grep -q -E '^ *FLAKY ' "$log"; then
            DIGEST+=("$(failure_digest "$name (passed, with flaky tests)" "$log")")
        fi
    else
        SUMMARY+=("FAILED  $name (exit $rc, $((SECONDS - t0))s)")
        FAILED+=("$name")
        sleep 0.5 # tee's last lines
        DIGEST+=("$(failure_digest "$name" "$log")")
    fi
    return "$rc"
}

# A few lines that say why a step failed: the tests that failed and where each panicked
# (nextest's and cargo test's formats), else the step's last lines.
failure_digest() {
    local name=$1 log=$2 lines
    lines=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E \
        -e '^ *(FAIL|FLAKY|TRY [0-9] FAIL|TIMEOUT|SIGSEGV|SIGABRT|SIGKILL|LEAK-FAIL) \[' \
        -e "^thread '.*' panicked at" -e '^test .* \.\.\. FAILED$' -A1 |
        grep -v -E '^(--|note: run with)' | sed 's/^ *//' | awk '!seen[$0]++' | head -n 14 || true)
    [[ -n $lines ]] || lines=$(tail -n 6 "$log")
    printf '%s:\n%s\n' "$name" "$(cut -c1-160 <<<"$lines" | sed 's/^/      /')"
}

# Echo a command, then run it.
show() {
    printf '    $ %s\n' "$*"
    "$@"
}

# Glance's shipped metadef definition files, which tests/tests/metadefs.rs and the metadefs
# smoke load, come from the reference Glance's venv; its start.sh creates the venv on first
# use, so start (and stop) a throwaway reference once when they are missing.
ensure_glance_metadefs() {
    local ref=${REFERENCE_DIR:-$ROOT/../shared/reference-glance}
    local dir=${GLANCE_REF_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/reference-glance}/venv/etc/glance/metadefs
    if [[ ! -f $dir/compute-cpu-pinning.json && -x $ref/start.sh ]]; then
        ANCHOR_RUN=$TMPROOT/reference-metadefs GLANCE_REF_PORT=$(free_port) "$ref/start.sh" --fresh >/dev/null || true
        ANCHOR_RUN=$TMPROOT/reference-metadefs "$ref/stop.sh" >/dev/null 2>&1 || true
    fi
    [[ -f $dir/compute-cpu-pinning.json ]] || { note "no Glance metadef files at $dir"; return 1; }
    export GLANCE_TEST_METADEFS_DIR=$dir
    note "Glance's metadef files: $dir"
}

run_tests() {
    # The cross-process tests start the real binaries.
    show cargo build --workspace --bins || return 1
    # The full-disk tests mount small tmpfs volumes, which takes root.
    local left_out=() skip=()
    if [[ $EUID -ne 0 ]]; then
        note "SKIPPED: tests/tests/full_disk.rs (it mounts a tmpfs; run as root to include it)"
        left_out+=('binary(full_disk)')
        skip+=(--skip uploading_more_than_the_store --skip a_full_database_volume)
    fi
    # Tests that need a service fail without it; one left out on purpose leaves its tests out.
    if [[ $WITH_KEYSTONE != 1 ]]; then
        note "SKIPPED: tests/tests/keystone.rs and the Keystone tests of import_download.rs (GLANCE_TEST_WITH_KEYSTONE=$WITH_KEYSTONE)"
        left_out+=('binary(keystone)' '(binary(import_download) & test(keystone))')
        skip+=(--skip keystone)
    fi
    local filter=()
    if [[ ${#left_out[@]} -gt 0 ]]; then
        local expr
        expr=$(IFS='|'; echo "${left_out[*]}")
        filter=(-E "not (${expr//|/ | })")
        skip=(-- "${skip[@]}")
    fi
    if cargo nextest --version >/dev/null 2>&1; then
        # The broker restart test and the fault campaign take the shared broker and
        # database away: they are #[ignore]d here and run alone, below.
        show cargo nextest run --workspace --no-fail-fast "${filter[@]}"
    else
        show cargo test --workspace --no-fail-fast "${skip[@]}"
    fi
}

# Writes $TMPROOT/rabbitmqctl and $TMPROOT/pg_ctl: rabbitmqctl bound to our broker node and
# pg_ctl bound to our database cluster (as the postgres user when we are root).
write_control_scripts() {
    local ctl="$TMPROOT/rabbitmqctl" pgctl="$TMPROOT/pg_ctl"
    if [[ $WITH_RABBITMQ == 1 ]]; then
        rabbit_env
        {
            echo '#!/usr/bin/env bash'
            printf 'exec env'
            printf ' %q' "${RABBIT_ENV[@]}"
            printf ' %q -n %q "$@"\n' "$(dirname "$(find_rabbitmq_server)")/rabbitmqctl" "$RABBIT_NODE"
        } >"$ctl"
    fi
    {
        echo '#!/usr/bin/env bash'
        printf 'cd %q || exit 1\n' "$PG_DIR"
        [[ $EUID -eq 0 ]] && printf 'exec runuser -u postgres -- ' || printf 'exec '
        printf '%q -D %q -l %q -w -t 60 "$@"\n' "$PG_BINDIR/pg_ctl" "$PG_DIR/data" "$PG_DIR/server.log"
    } >"$pgctl"
    chmod 755 "$pgctl"
    [[ ! -e $ctl ]] || chmod 755 "$ctl"
}

# Stops and starts the test broker and database under running services (the broker
# restart test and the fault campaign, both #[ignore]d in the main run); alone and one at a
# time, so no other test loses its broker or database. The tests get control scripts bound
# to our broker node and database cluster.
run_broker_restart() {
    [[ $WITH_RABBITMQ == 1 ]] || { note "skipped: no RabbitMQ"; return 0; }
    write_control_scripts
    local ctl="$TMPROOT/rabbitmqctl" pgctl="$TMPROOT/pg_ctl"
    local env=(env GLANCE_TEST_RABBITMQCTL="$ctl" GLANCE_TEST_PG_CTL="$pgctl")
    # The campaign fills small tmpfs volumes, which takes root.
    local filter='binary(broker_restart) | binary(fault_campaign)' tests=(--test broker_restart --test fault_campaign)
    if [[ $EUID -ne 0 ]]; then
        note "SKIPPED: the fault campaign (it mounts tmpfs volumes; run as root to include it)"
        filter='binary(broker_restart)' tests=(--test broker_restart)
    fi
    if cargo nextest --version >/dev/null 2>&1; then
        show "${env[@]}" cargo nextest run -p glance-tests --no-fail-fast --run-ignored only \
            --test-threads 1 --success-output final -E "$filter"
    else
        show "${env[@]}" cargo test -p glance-tests "${tests[@]}" \
            -- --ignored --test-threads 1 --nocapture
    fi
}

run_compose_check() {
    show docker-compose -f "$ROOT/docker-compose.yml" config -q
}

# The compose stack across containers (scripts/compose-test.sh), on the debug binaries the
# tests step built: images made here, the stack up, scaled, broken and restarted.
# The compose stack's stand-in base images (debootstrap, apt: mostly waiting on the mirror)
# are made in the background while the Rust steps run; a machine that has them skips this.
start_standins() {
    [[ $WITH_DOCKER == 1 && $EUID -eq 0 ]] || return 0
    docker info >/dev/null 2>&1 || return 0
    bash "$ROOT/scripts/compose-images.sh" --standins-only >"$TMPROOT/standins.log" 2>&1 </dev/null &
    STANDINS_PID=$!
    note "making the compose stack's stand-in images in the background (log: $TMPROOT/standins.log)"
}

# Free space, in GiB, on the file system holding $1.
free_gib() { df -P -k "$1" 2>/dev/null | awk 'NR == 2 { printf "%d", $4 / 1048576 }'; }

# The compose stack's image needs a few GiB on the Docker engine's disk (the binaries, their
# build context and the layer). A CI machine's disk once filled there, so what only sped up
# earlier steps goes first when space is short: the fuzz build and the incremental caches.
make_room_for_images() {
    local target=${CARGO_TARGET_DIR:-$ROOT/target} docker_root free
    docker_root=$(docker info -f '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)
    [[ -d $docker_root ]] || docker_root=/
    free=$(free_gib "$docker_root")
    note "free disk: ${free} GiB under $docker_root, $(free_gib "$target") GiB under $target"
    ((free >= 8)) && return 0
    note "under 8 GiB free: removing fuzz/target, $target/debug/incremental and dangling images"
    rm -rf "$ROOT/fuzz/target" "$target/debug/incremental"
    docker image prune -f >/dev/null 2>&1 || true
    note "free disk now: $(free_gib "$docker_root") GiB under $docker_root"
}

run_compose_stack() {
    if [[ $WITH_DOCKER == 0 ]]; then
        note "skipped (GLANCE_TEST_WITH_DOCKER=0)"
        return 0
    fi
    make_room_for_images
    if [[ -n $STANDINS_PID ]]; then
        local t0=$SECONDS
        if wait "$STANDINS_PID"; then
            note "stand-in images ready (waited $((SECONDS - t0))s): $(grep -c 'made\|present' "$TMPROOT/standins.log") of 3"
        else
            note "making the stand-in images in the background failed; compose-test.sh tries again:"
            tail -n 20 "$TMPROOT/standins.log" | sed 's/^/      /'
        fi
        STANDINS_PID=""
    fi
    # Named here so that cleanup can remove what the run left even if compose-test.sh itself
    # was killed before its own clean-up.
    COMPOSE_PROJECT=glancetest$(python3 -c 'import secrets; print(secrets.token_hex(4))')
    show env GLANCE_BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug" GLANCE_VENV="$ROOT/target/venv" \
        GLANCE_COMPOSE_PROJECT="$COMPOSE_PROJECT" bash "$ROOT/scripts/compose-test.sh"
}

# Whatever the compose run left behind (normally nothing: compose-test.sh removes its stack):
# the project's containers, volumes and network, and the image it made.
remove_compose_leftovers() {
    [[ -n $COMPOSE_PROJECT ]] || return 0
    command -v docker >/dev/null || return 0
    local label="label=com.docker.compose.project=$COMPOSE_PROJECT" ids
    ids=$(docker ps -aq --filter "$label" 2>/dev/null || true)
    if [[ -n $ids ]]; then
        note "removing containers left by $COMPOSE_PROJECT"
        # shellcheck disable=SC2086 # a list of ids
        docker rm -f $ids >/dev/null 2>&1 || true
    fi
    ids=$(docker network ls -q --filter "$label" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [[ -z $ids ]] || docker network rm $ids >/dev/null 2>&1 || true
    ids=$(docker volume ls -q --filter "$label" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [[ -z $ids ]] || docker volume rm -f $ids >/dev/null 2>&1 || true
    docker rmi "glance-rs:$COMPOSE_PROJECT" >/dev/null 2>&1 || true
    return 0
}

# The HTTP suite again, every spawned app on a fresh database of the throwaway PostgreSQL.
run_tests_on_postgres() {
    if cargo nextest --version >/dev/null 2>&1; then
        show env GLANCE_TEST_DATABASE=postgres cargo nextest run -p glance-tests --no-fail-fast -E 'binary(images_api) | binary(sharing) | binary(callers) | binary(metadefs) | binary(metadefs_access) | binary(metadefs_manage) | binary(glare) | binary(glare_data) | binary(glare_delete)'
    else
        show env GLANCE_TEST_DATABASE=postgres cargo test -p glance-tests --no-fail-fast --test images_api --test sharing --test callers --test metadefs --test metadefs_access --test metadefs_manage --test glare --test glare_data --test glare_delete
    fi
}

# A bounded fuzz run of the three targets with cargo-fuzz, on this stable toolchain
# (RUSTC_BOOTSTRAP), FUZZ_SECONDS split between them; none needs the API crate (the parsers
# are in shared/request), so one build of about a minute serves all three. The seed corpora
# are read-only; new inputs go to the temp dir.
run_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        show cargo install --locked cargo-fuzz || return 1
    fi
    local targets=(format_inspector json_patch list_query) target rc=0
    local each=$((FUZZ_SECONDS / ${#targets[@]}))
    ((each > 0)) || each=1
    (cd "$ROOT/fuzz" && show env -u CARGO_TARGET_DIR RUSTC_BOOTSTRAP=1 cargo fuzz build \
        --sanitizer none) || return 1
    for target in "${targets[@]}"; do
        mkdir -p "$TMPROOT/fuzz-corpus/$target"
        (cd "$ROOT/fuzz" && show env -u CARGO_TARGET_DIR RUSTC_BOOTSTRAP=1 cargo fuzz run \
            --sanitizer none "$target" "$TMPROOT/fuzz-corpus/$target" "corpus/$target" \
            -- -max_total_time="$each") || rc=1
    done
    return "$rc"
}

ensure_cargo_tools() {
    local component
    for component in rustfmt clippy; do
        [[ $QUICK == 1 ]] && break
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            command -v rustup >/dev/null || die "cargo ${component/rustfmt/fmt} is missing and there is no rustup"
            rustup component add "$component" || die "rustup component add $component failed"
        fi
    done
    if cargo nextest --version >/dev/null 2>&1; then
        note "$(cargo --version); $(cargo nextest --version 2>/dev/null | head -n 1)"
    else
        note "$(cargo --version); no cargo-nextest, using cargo test"
    fi
}

cleanup() {
    local rc=$?
    set +e
    if [[ -n $STANDINS_PID ]]; then
        kill -TERM "$STANDINS_PID" 2>/dev/null
        wait "$STANDINS_PID" 2>/dev/null
    fi
    stop_rabbitmq
    stop_postgres
    stop_keystone
    remove_compose_leftovers
    if [[ $POLICY_RC_CREATED == 1 ]]; then as_root rm -f /usr/sbin/policy-rc.d; fi
    if [[ -n $TMPROOT && -d $TMPROOT ]]; then
        if [[ ${GLANCE_TEST_KEEP_TMP:-0} == 1 ]]; then
            printf 'test.sh: kept %s\n' "$TMPROOT" >&2
        else
            rm -rf "$TMPROOT"
        fi
    fi
    exit "$rc"
}

main() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --quick) QUICK=1 ;;
            --services)
                SERVICES_FILE=${2:?--services needs a file}
                shift
                ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
        shift
    done
    cd "$ROOT"
    STEP_LOGS=${CARGO_TARGET_DIR:-$ROOT/target}/test-logs
    rm -rf "$STEP_LOGS" && mkdir -p "$STEP_LOGS"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [[ ${CI:-} == true ]]; then
        export CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
    fi

    phase "system packages"
    note "free disk: $(free_gib "$ROOT") GiB under $ROOT"
    ensure_packages
    ensure_cargo_tools

    TMPROOT=$(mktemp -d "${TMPDIR:-/tmp}/glance-test.XXXXXX")
    # The postgres user must be able to reach its directory below this one.
    chmod 755 "$TMPROOT"
    [[ -n $SERVICES_FILE ]] || start_standins

    phase "PostgreSQL"
    start_postgres

    if [[ $WITH_RABBITMQ == 1 ]]; then
        phase "RabbitMQ"
        start_rabbitmq
    else
        phase "RabbitMQ: skipped (GLANCE_TEST_WITH_RABBITMQ=$WITH_RABBITMQ)"
    fi

    if [[ $WITH_KEYSTONE == 1 ]]; then
        phase "Keystone"
        start_keystone
    else
        phase "Keystone: skipped (GLANCE_TEST_WITH_KEYSTONE=$WITH_KEYSTONE)"
    fi

    if [[ -n $SERVICES_FILE ]]; then
        {
            printf 'export GLANCE_TEST_POSTGRES_URL=%q\n' "$GLANCE_TEST_POSTGRES_URL"
            write_control_scripts
            printf 'export GLANCE_TEST_PG_CTL=%q\n' "$TMPROOT/pg_ctl"
            if [[ $WITH_RABBITMQ == 1 ]]; then
                printf 'export GLANCE_TEST_AMQP_URL=%q\n' "$GLANCE_TEST_AMQP_URL"
                printf 'export GLANCE_TEST_RABBITMQCTL=%q\n' "$TMPROOT/rabbitmqctl"
            fi
            if [[ $WITH_KEYSTONE == 1 ]]; then
                printf 'export GLANCE_TEST_KEYSTONE_URL=%q\n' "$GLANCE_TEST_KEYSTONE_URL"
                printf 'export KEYSTONE_HOME=%q KEYSTONE_VENV=%q KEYSTONE_PORT=%q\n' \
                    "$KEYSTONE_HOME" "$KEYSTONE_VENV" "$KEYSTONE_PORT"
            fi
        } >"$SERVICES_FILE"
        phase "services up; URLs in $SERVICES_FILE; stop with kill $$"
        while true; do sleep 3600; done
    fi

    phase "Python clients (target/venv)"
    ensure_venv

    if [[ $QUICK == 0 ]]; then
        step fmt show cargo fmt --all -- --check || true
        step clippy show cargo clippy --workspace --all-targets -- -D warnings || true
    fi
    step metadefs-files ensure_glance_metadefs || true
    step tests run_tests || true
    step tests-postgres run_tests_on_postgres || true
    step broker-restart run_broker_restart || true
    step compose run_compose_check || true
    # The smoke tests drive the binary the tests step built (a release build would double
    # the compile time of a cold run for the same code).
    local bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/glance-all-in-one"
    step smoke show env GLANCE_BIN="$bin" GLANCE_VENV="$ROOT/target/venv" \
        bash tests/smoke/glanceclient_smoke.sh || true
    step smoke-sharing show env GLANCE_BIN="$bin" GLANCE_VENV="$ROOT/target/venv" \
        bash tests/smoke/sharing_smoke.sh || true
    step smoke-metadefs show env GLANCE_BIN="$bin" GLANCE_VENV="$ROOT/target/venv" \
        bash tests/smoke/metadefs_smoke.sh || true
    step schemathesis show env GLANCE_BIN="$bin" GLANCE_VENV="$ROOT/target/venv" \
        bash tests/openapi/schemathesis.sh || true
    # The reference Glare's smoke.sh against our artifact API, with Keystone tokens when
    # Keystone runs (else a token file), and the glare CLI.
    ensure_glare_venv || true
    if [[ $WITH_KEYSTONE == 1 ]]; then
        step smoke-glare show env GLANCE_BIN="$bin" GLANCE_VENV="$ROOT/target/glare-venv" \
            KEYSTONE_HOME="$KEYSTONE_HOME" KEYSTONE_VENV="$KEYSTONE_VENV" \
            KEYSTONE_PORT="$KEYSTONE_PORT" bash tests/smoke/glare_smoke.sh || true
    else
        step smoke-glare show env GLANCE_BIN="$bin" GLANCE_VENV="$ROOT/target/glare-venv" \
            bash tests/smoke/glare_smoke.sh || true
    fi
    # Last: it stops and restarts Keystone.
    if [[ $WITH_KEYSTONE == 1 ]]; then
        step smoke-keystone show env GLANCE_BIN="$bin" GLANCE_VENV="$ROOT/target/venv" \
            KEYSTONE_SCRIPTS="$KEYSTONE_SCRIPTS" KEYSTONE_HOME="$KEYSTONE_HOME" \
            KEYSTONE_VENV="$KEYSTONE_VENV" KEYSTONE_PORT="$KEYSTONE_PORT" \
            bash tests/smoke/keystone_smoke.sh || true
    fi
    if [[ $FUZZ_SECONDS -gt 0 ]]; then
        step fuzz run_fuzz || true
    else
        phase "fuzz: skipped (GLANCE_TEST_FUZZ_SECONDS=$FUZZ_SECONDS)"
    fi
    if [[ $WITH_PARITY == 1 ]]; then
        step parity show env GLANCE_BIN="$bin" bash tests/parity/run.sh || true
        step parity-glare show env GLANCE_BIN="$bin" bash tests/parity/glare_run.sh || true
        step parity-plugins show env GLANCE_BIN="$bin" bash tests/parity/plugins_run.sh || true
    else
        phase "parity: skipped (GLANCE_TEST_PARITY=$WITH_PARITY)"
    fi
    step compose-stack run_compose_stack || true

    phase "summary"
    printf '    %s\n' "${SUMMARY[@]}"
    if [[ ${#DIGEST[@]} -gt 0 ]]; then
        printf '\n==> what failed or was flaky (the whole output of each step: %s/STEP.log)\n' "$STEP_LOGS"
        printf '    %s\n' "${DIGEST[@]}"
    fi
    local elapsed=$((SECONDS - START))
    if [[ ${#FAILED[@]} -eq 0 ]]; then
        printf '\n==> test.sh: PASSED, every step, in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
    else
        printf '\n==> test.sh: FAILED: %s (after %dm%02ds)\n' "${FAILED[*]}" $((elapsed / 60)) $((elapsed % 60))
        exit 1
    fi
}

# Sourcing the file only defines the functions (handy for starting the services by hand).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
