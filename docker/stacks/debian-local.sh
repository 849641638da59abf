#!/bin/sh
# Shared by the Debian-based stacks: builds an image from a `debootstrap --variant=minbase`
# rootfs with extra packages, a non-root `ferrum` user (uid 1000) and no apt caches, then
# imports it with `docker import`. No registry needed, only a Debian mirror.
# Usage: debian-local.sh IMAGE STACK PACKAGES [POST_CHROOT_SHELL]
# Env: SUITE (bookworm), MIRROR (http://deb.debian.org/debian).
set -eu
IMAGE="$1"; STACK="$2"; PACKAGES="$3"; POST="${4:-true}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
command -v debootstrap >/dev/null || { echo "debian-local.sh: install debootstrap" >&2; exit 1; }

ROOT="$(mktemp -d /var/tmp/ferrum-stack-XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >&2
chroot "$ROOT" /bin/sh -eu -c "
    groupadd -g 1000 ferrum
    useradd -u 1000 -g 1000 -m -d /home/ferrum -s /bin/sh ferrum
    mkdir -p /mnt/task
    $POST
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /tmp/*
"
chmod 1777 "$ROOT/tmp"

tar --numeric-owner -C "$ROOT" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV HOME=/home/ferrum' \
    -c "LABEL ferrum.stack=$STACK" \
    -c 'CMD ["sh"]' \
    - "$IMAGE" >/dev/null
echo "built $IMAGE"
