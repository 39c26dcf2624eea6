#!/usr/bin/env bash
# Prints the path of a nats-server binary for the tests, building it first when the cache has none.
#
# Debian ships no nats-server binary package, only its Go source (golang-github-nats-io-nats-server-dev, with
# every dependency as a -dev package under /usr/share/gocode) and the Go toolchain (golang-go). So this builds
# it offline in GOPATH mode: the source's go.mod would ask the module proxy for its dependencies, while GOPATH
# mode takes them from /usr/share/gocode, and Go's "minimal module compatibility" resolves the source's
# `github.com/nats-io/nats-server/v2/...` imports to the directory without `/v2`. About half a minute on two
# cores, once per `npm ci` (which empties node_modules, and with it the cache).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/node_modules/.cache/remocal/nats-server"
binary="$cache/nats-server"
gopath=/usr/share/gocode
source_dir="$gopath/src/github.com/nats-io/nats-server"

if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi
if ! command -v go >/dev/null || [[ ! -f "$source_dir/main.go" ]]; then
  echo "nats-server: cannot build it: install Debian's golang-go and golang-github-nats-io-nats-server-dev" >&2
  exit 1
fi

mkdir -p "$cache"
# Test files run in parallel and may all ask at once: one builds, the others wait for it and take its binary.
exec 9>"$cache/.lock"
flock 9
if [[ ! -x "$binary" ]]; then
  work="$(mktemp -d "$cache/build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  # Module mode off (no go.mod, no proxy, no vendor dir), and a build cache of its own that goes with the build.
  GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$gopath" GOCACHE="$work/gocache" CGO_ENABLED=0 \
    go build -trimpath -o "$work/nats-server" github.com/nats-io/nats-server >&2
  # Renamed into place whole, so a reader never runs a half-written binary.
  mv "$work/nats-server" "$binary"
fi
echo "$binary"
