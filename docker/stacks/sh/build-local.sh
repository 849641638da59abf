#!/bin/sh
# Builds the `sh` stack image (default ferrum/stack-sh:2) from Debian bookworm without a
# registry. Runtime `sh` is what IronWorker's official Node and Ruby clients upload: their
# `__runner__.sh` ends with `exec node FILE` / `exec ruby FILE`, and IronWorker's default image
# had those interpreters, so this stack has them too: bash, nodejs (18), ruby (3.1), GNU wget
# and curl with CA certificates (so `sh` workers make HTTP(S) calls). Every busybox applet
# Debian does not ship (nc, nslookup, vi, …) is linked into /usr/local/bin from Debian's
# (dynamic, glibc) busybox, so scripts written for the earlier busybox-only image still run.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
exec sh "$HERE/../debian-local.sh" "${1:-ferrum/stack-sh:2}" sh \
    bash,nodejs,ruby,wget,curl,ca-certificates,busybox \
    'export PATH=/usr/sbin:/usr/bin:/sbin:/bin
     for applet in $(busybox --list); do
         command -v "$applet" >/dev/null 2>&1 || ln -s /bin/busybox "/usr/local/bin/$applet"
     done'
