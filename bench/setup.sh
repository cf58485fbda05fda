#!/usr/bin/env bash
# Installs what `paxosd bench` needs for its peers (docs/benchmarks.md):
#
#   1. Debian packages: the servers (etcd-server, zookeeper), the Go toolchain and the Go
#      client libraries the load generator builds against, redis-tools (redis-benchmark).
#   2. pysyncobj==0.3.17 into the project's .venv if there is one, else into bench/.venv-peers.
#   3. bench/bin/loadgen, built from bench/loadgen/main.go in GOPATH mode (no module download).
#
# Idempotent: packages already installed are not asked for again, and the loadgen is rebuilt
# only when its source is newer. Run from anywhere as root:  bash bench/setup.sh [--no-apt]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    etcd-server                           # etcd 3.4.23 (/usr/bin/etcd)
    zookeeper                             # ZooKeeper 3.8.0 (/usr/share/java/zookeeper.jar), pulls default-jre
    golang-go                             # Go 1.19
    golang-etcd-server-dev                # go.etcd.io/etcd/clientv3 under /usr/share/gocode
    golang-github-samuel-go-zookeeper-dev # github.com/samuel/go-zookeeper/zk
    redis-tools                           # redis-benchmark, for paxosd's RESP port
)
PYSYNCOBJ="pysyncobj==0.3.17"

if [[ "${1:-}" != "--no-apt" ]]; then
    missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "bench/setup.sh: apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# pysyncobj, in the project's venv when it exists (bench/peers.py looks in both places).
if [[ -x .venv/bin/python ]]; then
    venv=.venv
else
    venv=bench/.venv-peers
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import sys; from pysyncobj.version import VERSION; sys.exit(VERSION != "0.3.17")' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet "$PYSYNCOBJ"
fi

# The Go load generator, against Debian's Go packages only.
binary=bench/bin/loadgen
if [[ ! -x "$binary" || bench/loadgen/main.go -nt "$binary" ]]; then
    gopath="$(mktemp -d)"
    trap 'rm -rf "$gopath"' EXIT
    export GOCACHE="${GOCACHE:-${HOME:-$PWD/bench}/.cache/go-build}"
    mkdir -p bench/bin
    (cd bench/loadgen && GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" \
        go build -o ../bin/loadgen .)
fi
echo "bench/setup.sh: ready: $(etcd --version | head -1); zookeeper $(dpkg-query -W -f='${Version}' zookeeper);" \
    "pysyncobj in $venv; $binary"
