#!/bin/sh
# Builds the `sh` stack image (default ferrum/stack-sh:1) without a registry: a rootfs made of
# the host's static busybox, imported with `docker import`.
# Needs: busybox-static (apt-get install busybox-static), docker.
set -eu
IMAGE="${1:-ferrum/stack-sh:1}"
BUSYBOX="${BUSYBOX:-$(command -v busybox)}"
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
    echo "build-local.sh: no usable busybox (install busybox-static)" >&2
    exit 1
fi
case "$(file -L "$BUSYBOX" 2>/dev/null || echo static)" in
    *dynamically*) echo "build-local.sh: $BUSYBOX is dynamically linked; install busybox-static" >&2; exit 1 ;;
esac

ROOT="$(mktemp -d)"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/etc" \
    "$ROOT/home/ferrum" "$ROOT/tmp" "$ROOT/mnt/task" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev"
cp "$BUSYBOX" "$ROOT/bin/busybox"
chmod 0755 "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$ROOT/bin/$applet"
done
# Shebangs commonly name /usr/bin/env.
ln -sf ../../bin/busybox "$ROOT/usr/bin/env"
chmod 1777 "$ROOT/tmp"
cat > "$ROOT/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
ferrum:x:1000:1000:ferrum task user:/home/ferrum:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$ROOT/etc/group" <<'GROUP'
root:x:0:
ferrum:x:1000:
nogroup:x:65534:
GROUP
chown 1000:1000 "$ROOT/home/ferrum"

tar --numeric-owner -C "$ROOT" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV HOME=/home/ferrum' \
    -c 'LABEL ferrum.stack=sh' \
    -c 'CMD ["sh"]' \
    - "$IMAGE" >/dev/null
echo "built $IMAGE"
