# Shared by scripts/services and scripts/quickstart: bring a Debian host (as root) up to what
# Ferrum needs. Source it; it defines functions only.

# install_missing CMD:PACKAGE... — apt-get installs each PACKAGE whose CMD (a command name or
# an absolute path) is missing.
install_missing() {
  local need=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if [[ $cmd == /* ]]; then [ -x "$cmd" ] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
    need+=("$pkg")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "installing ${need[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
}

# ensure_dockerd — starts dockerd unless a Docker engine already answers; waits up to 30 s.
ensure_dockerd() {
  docker version >/dev/null 2>&1 && return 0
  echo "starting dockerd (log: /var/log/ferrum-dockerd.log)" >&2
  (dockerd >/var/log/ferrum-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "dockerd did not start; see /var/log/ferrum-dockerd.log" >&2
  return 1
}
