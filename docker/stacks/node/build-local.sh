#!/bin/sh
# Builds the `node` stack image (default ferrum/stack-node:1) from Debian bookworm's nodejs
# (18.x) without a registry.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
exec sh "$HERE/../debian-local.sh" "${1:-ferrum/stack-node:1}" node nodejs,ca-certificates
