#!/usr/bin/env bash
# Deployment checks, after scripts/test (it needs the build in ${BUILD_DIR:-build}):
#   1. the .deb: cpack builds it; dpkg -i, pooled --version, check-config, dpkg -P;
#   2. docker/compose.yaml and docker/k8s/sidecar.yaml parse;
#   3. the image: podman + runc as shared/CONTAINERS.md says (debootstrap base image,
#      multi-stage build), run read-only as non-root, wait healthy, one request through
#      it to an origin on the host. Skipped (exit 0) only when podman cannot run here.
# Everything it creates (storage, rootfs, image, container, processes) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
log() { echo "container-ci: $*"; }

# ---- 1. package --------------------------------------------------------------------
(cd "$BUILD_DIR" && cpack -G DEB >/dev/null)
DEB=$(ls -t "$BUILD_DIR"/pooled_*.deb | head -1)
log "installing $DEB"
$SUDO dpkg -i "$DEB" >/dev/null
pkg_ok=1
/usr/bin/pooled --version || pkg_ok=0
/usr/bin/pooled check-config /etc/pooled/pooled.yaml || pkg_ok=0
[[ -f /usr/lib/systemd/system/pooled.service && -f /usr/share/man/man8/pooled.8 ]] || pkg_ok=0
$SUDO dpkg -P pooled >/dev/null
[[ $pkg_ok == 1 ]] || { log "FAILED: installed package does not work"; exit 1; }
log "package ok"

# ---- 2. deployment files parse ------------------------------------------------------
python3 - <<'PY'
import yaml
compose = yaml.safe_load(open("docker/compose.yaml"))
assert compose["services"]["app"]["depends_on"]["pooled"]["condition"] == "service_healthy"
docs = list(yaml.safe_load_all(open("docker/k8s/sidecar.yaml")))
pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
assert pod["initContainers"][0]["restartPolicy"] == "Always"
print("container-ci: compose.yaml and k8s/sidecar.yaml parse")
PY

# ---- 3. image -----------------------------------------------------------------------
PKGS=(podman buildah runc slirp4netns uidmap fuse-overlayfs catatonit debootstrap)
missing=()
for p in "${PKGS[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null ||
    { log "SKIPPED image checks: cannot install ${missing[*]}"; echo "1 passed, 0 failed, 1 skipped"; exit 0; }
fi

WORK=$(mktemp -d /var/tmp/pooled-ci.XXXXXX)
ORIGIN_PID=""
CONTAINER=pooled-ci-$$
IMAGE=localhost/pooled:ci-$$
cat > "$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$WORK/containers.conf
pm() { podman --root "$WORK/storage" --runroot "$WORK/run" "$@"; }
cleanup() {
  set +e
  pm rm -f -t 0 "$CONTAINER" >/dev/null 2>&1
  pm rmi -f "$IMAGE" localbase:bookworm docker.io/library/debian:bookworm-slim >/dev/null 2>&1
  [[ -n $ORIGIN_PID ]] && kill "$ORIGIN_PID" 2>/dev/null
  # podman leaves its overlay mount behind; rm alone cannot remove a mount point.
  umount "$WORK/storage/overlay" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! pm info >/dev/null 2>&1; then
  log "SKIPPED image checks: podman cannot run on this machine"
  pm info 2>&1 | tail -3 || true
  echo "2 passed, 0 failed, 1 skipped"
  exit 0
fi

MIRROR=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
MIRROR=${MIRROR:-http://deb.debian.org/debian}
log "debootstrap bookworm from $MIRROR"
$SUDO debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  { tail -20 "$WORK/debootstrap.log"; exit 1; }
tar -C "$WORK/rootfs" -c . | pm import - localbase:bookworm >/dev/null
pm tag localbase:bookworm docker.io/library/debian:bookworm-slim
$SUDO rm -rf "$WORK/rootfs"

log "building the image"
pm build --network=host --pull=never -f docker/Dockerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
  { tail -40 "$WORK/build.log"; exit 1; }
SIZE=$(pm image inspect "$IMAGE" --format '{{.Size}}')
log "image size: $((SIZE / 1000000)) MB"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
# The image's own config, with free ports: the host network is shared in this test.
sed -e "s/127.0.0.1:3128/127.0.0.1:$PROXY_PORT/" -e "s/127.0.0.1:9901/127.0.0.1:$ADMIN_PORT/" \
  docker/pooled.container.yaml >"$WORK/pooled.yaml"
chmod 644 "$WORK/pooled.yaml"

exec 3< <(python3 tests/support/origin.py --port 0)
ORIGIN_PID=$!
read -r _ ORIGIN_PORT <&3
log "origin on 127.0.0.1:$ORIGIN_PORT"

pm run -d --name "$CONTAINER" --network=host --read-only --user 10001:10001 --cap-drop=ALL \
  --security-opt no-new-privileges -v "$WORK/pooled.yaml:/etc/pooled/pooled.yaml:ro" \
  --health-cmd "/usr/bin/pooled healthcheck --admin 127.0.0.1:$ADMIN_PORT --path /readyz" \
  --health-interval disable \
  "$IMAGE" >/dev/null

healthy=0
for _ in $(seq 1 50); do
  if pm healthcheck run "$CONTAINER" >/dev/null 2>&1; then healthy=1; break; fi
  sleep 0.2
done
[[ $healthy == 1 ]] || { log "FAILED: not healthy"; pm logs "$CONTAINER" | tail -20; exit 1; }
log "healthy"

fails=0
uid=$(pm exec "$CONTAINER" id -u)
[[ $uid == 10001 ]] || { log "FAILED: runs as uid $uid"; fails=$((fails + 1)); }
body=$(curl -sS --noproxy '' -x "http://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$ORIGIN_PORT/bytes/10")
[[ $body == ABCDEFGHIJ ]] || { log "FAILED: request through the container: '$body'"; fails=$((fails + 1)); }
# Read the whole page first: grep -q stops early, and under pipefail curl's broken pipe
# would count as a failure.
metrics=$(curl -sS "http://127.0.0.1:$ADMIN_PORT/metrics")
grep -q 'pooled_requests_total{code="2xx"} 1' <<<"$metrics" ||
  { log "FAILED: metrics do not count the request"; fails=$((fails + 1)); }
pm stop -t 15 "$CONTAINER" >/dev/null
code=$(pm inspect "$CONTAINER" --format '{{.State.ExitCode}}')
[[ $code == 0 ]] || { log "FAILED: exit code $code after SIGTERM"; fails=$((fails + 1)); }
((fails == 0)) || exit 1
log "image ok (non-root, read-only, healthy, proxied a request, clean stop)"
echo "3 passed, 0 failed"
