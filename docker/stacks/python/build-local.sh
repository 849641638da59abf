#!/bin/sh
# Builds the `python` stack image (default ferrum/stack-python:1) from Debian bookworm's
# python3 (3.11) without a registry. `python` resolves to python3 (contract §6.2 runs
# `python -u FILE`).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
exec sh "$HERE/../debian-local.sh" "${1:-ferrum/stack-python:1}" python python3,ca-certificates \
    'ln -sf python3 /usr/bin/python'
