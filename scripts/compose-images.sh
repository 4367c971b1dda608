#!/usr/bin/env bash
# Makes every image docker-compose.yml names, on a machine that can reach Debian's packages
# but no container registry:
#
#   debian:bookworm-slim   a debootstrap (minbase) root file system, imported
#   postgres:15-bookworm   that plus Debian's postgresql, with an entry point honouring
#                          POSTGRES_USER/PASSWORD/DB (deploy/standins/postgres-entrypoint.sh)
#   rabbitmq:3.10          that plus Debian's rabbitmq-server, honouring
#                          RABBITMQ_DEFAULT_USER/PASS (deploy/standins/rabbitmq-entrypoint.sh)
#   glance-rs:latest       our image: ./Dockerfile's runtime stage around binaries built on
#                          the host, since the rust:1-bookworm build stage cannot be pulled
#                          (--tag names it otherwise: compose-test.sh makes one per run, so
#                          runs that share a Docker engine do not swap each other's binaries)
#
#   scripts/compose-images.sh [--bin-dir DIR] [--tag NAME] [--standins-only] [--rebuild]
#
# The stand-ins are cached: one that exists is not made again (--rebuild remakes them). Our
# image is always rebuilt from DIR (default target/debug), which is quick. The stand-ins are
# Debian's versions of the same servers, which is why the compose file names those versions.
# Needs root (debootstrap, chroot) and a running Docker engine.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=debian:bookworm-slim
POSTGRES=postgres:15-bookworm
RABBITMQ=rabbitmq:3.10
GLANCE=glance-rs:latest
BIN_DIR=$ROOT/target/debug
STANDINS_ONLY=0
REBUILD=0
WORK=""

note() { printf '    %s\n' "$*"; }
die() {
    printf 'compose-images.sh: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local rc=$? m
    if [[ -n $WORK ]]; then
        # Whatever debootstrap or a chroot left mounted goes before the directory does.
        for m in $(findmnt -rn -o TARGET | grep "^$WORK/" | sort -r); do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
        rm -rf "$WORK"
    fi
    exit "$rc"
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_debootstrap() {
    command -v debootstrap >/dev/null && return 0
    note "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap </dev/null
}

# A root file system as an image: `import DIR NAME [--change ...]`.
import_rootfs() {
    local dir=$1 name=$2
    shift 2
    tar --numeric-owner -C "$dir" -c . | docker import "$@" - "$name" >/dev/null
    note "made $name ($(docker image inspect -f '{{.Size}}' "$name" | awk '{printf "%d MiB", $1/1048576}'))"
}

make_base() {
    local dir=$WORK/base t0=$SECONDS
    ensure_debootstrap
    note "debootstrap $SUITE (minbase) from $MIRROR"
    debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    cat >"$dir/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
    # What the slim image leaves out of a minbase system.
    chroot "$dir" apt-get clean
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/usr/share/doc/* \
        "$dir"/usr/share/man/* "$dir"/usr/share/info/*
    : >"$dir/etc/resolv.conf"
    import_rootfs "$dir" "$BASE" --change 'CMD ["bash"]'
    note "($((SECONDS - t0))s)"
}

# The base image's files plus Debian packages, installed in a chroot on the host (so no
# container needs a network): `derive NAME ENTRYPOINT PACKAGE... -- DOCKER_IMPORT_CHANGES...`.
derive() {
    local name=$1 entrypoint=$2 dir t0=$SECONDS
    shift 2
    local packages=()
    while [[ $1 != -- ]]; do packages+=("$1"); shift; done
    shift
    dir=$WORK/$(echo "$name" | tr ':/' '__')
    mkdir -p "$dir"
    local cid
    cid=$(docker create "$BASE" true)
    docker export "$cid" | tar --numeric-owner -x -C "$dir"
    docker rm "$cid" >/dev/null
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    # The images make their clusters at first start, in their volume, as the official ones.
    mkdir -p "$dir/etc/postgresql-common/createcluster.d"
    echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.d/standin.conf"
    mount -t proc proc "$dir/proc"
    note "installing ${packages[*]} for $name"
    {
        chroot "$dir" apt-get update -qq &&
            chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends "${packages[@]}" </dev/null
    } >"$dir.apt.log" 2>&1 || { tail -n 30 "$dir.apt.log" >&2; die "apt-get in the $name chroot failed"; }
    chroot "$dir" apt-get clean
    umount "$dir/proc"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir/usr/sbin/policy-rc.d" "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
    : >"$dir/etc/resolv.conf"
    install -m 755 "$ROOT/deploy/standins/$entrypoint" "$dir/usr/local/bin/docker-entrypoint.sh"
    import_rootfs "$dir" "$name" --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' "$@"
    rm -rf "$dir"
    note "($((SECONDS - t0))s)"
}

make_postgres() {
    derive "$POSTGRES" postgres-entrypoint.sh postgresql -- \
        --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV PGDATA=/var/lib/postgresql/data' \
        --change 'VOLUME /var/lib/postgresql/data' \
        --change 'EXPOSE 5432'
}

make_rabbitmq() {
    derive "$RABBITMQ" rabbitmq-entrypoint.sh rabbitmq-server -- \
        --change 'VOLUME /var/lib/rabbitmq' \
        --change 'EXPOSE 5672'
}

# Our image from the host's binaries: the runtime stage of ./Dockerfile as it is, with the
# binaries copied from the build context instead of from the rust:1-bookworm stage. Debug info
# is stripped from the copies (CI's debug binaries are what goes in, not their symbols).
make_glance() {
    local ctx=$ROOT/target/compose-image t0=$SECONDS
    [[ -x $BIN_DIR/glance-api ]] || die "no glance binaries in $BIN_DIR (cargo build --workspace --bins first)"
    rm -rf "$ctx"
    mkdir -p "$ctx/out"
    # Two at a time: each is a few hundred MiB of debug binary to read and write.
    find "$BIN_DIR" -maxdepth 1 -type f -executable -name 'glance-*' -print0 \
        | xargs -0 -P 2 -I{} sh -c 'objcopy --strip-debug "$1" "$2/$(basename "$1")"' _ {} "$ctx/out" \
        || die "objcopy of the binaries in $BIN_DIR failed"
    awk '/^FROM .* AS runtime$/ { on = 1 } on' "$ROOT/Dockerfile" \
        | sed 's|^COPY --from=build /out/ |COPY out/ |' >"$ctx/Dockerfile"
    grep -q '^COPY out/ ' "$ctx/Dockerfile" || die "Dockerfile has no runtime stage copying /out/ from build"
    local old
    old=$(docker image inspect -f '{{.Id}}' "$GLANCE" 2>/dev/null || true)
    docker build -q -t "$GLANCE" "$ctx" >/dev/null || die "docker build of $GLANCE failed"
    rm -rf "$ctx"
    # The image this one replaces would stay behind untagged, a few hundred MiB a run.
    if [[ -n $old && $old != "$(docker image inspect -f '{{.Id}}' "$GLANCE")" ]]; then
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
    note "made $GLANCE from $BIN_DIR ($((SECONDS - t0))s)"
}

main() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --bin-dir) BIN_DIR=${2:?}; shift ;;
            --tag) GLANCE=${2:?}; shift ;;
            --standins-only) STANDINS_ONLY=1 ;;
            --rebuild) REBUILD=1 ;;
            *) sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
        esac
        shift
    done
    [[ $EUID -eq 0 ]] || die "needs root (debootstrap and chroot)"
    docker info >/dev/null 2>&1 || die "no Docker engine answers"
    trap cleanup EXIT
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/compose-images.XXXXXX")
    if [[ $REBUILD == 1 ]]; then
        docker rmi -f "$RABBITMQ" "$POSTGRES" "$BASE" >/dev/null 2>&1 || true
    fi
    if have_image "$BASE"; then note "$BASE: present"; else make_base; fi
    # The two servers are made side by side: most of each is waiting on the mirror.
    local jobs=() job failed=0
    if have_image "$POSTGRES"; then note "$POSTGRES: present"; else make_postgres & jobs+=($!); fi
    if have_image "$RABBITMQ"; then note "$RABBITMQ: present"; else make_rabbitmq & jobs+=($!); fi
    for job in "${jobs[@]}"; do wait "$job" || failed=1; done
    [[ $failed == 0 ]] || die "a stand-in image could not be made (above)"
    [[ $STANDINS_ONLY == 1 ]] || make_glance
}

main "$@"
