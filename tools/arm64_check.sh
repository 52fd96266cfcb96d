#!/usr/bin/env bash
# Build and test cnnative on arm64 (aarch64) under qemu-user emulation, against PyPI's aarch64
# wheels of numpy and scipy, so that scipy parity is checked against *that* platform's scipy.
#
#   bash tools/arm64_check.sh                 # build/refresh everything, run the focused suite
#   bash tools/arm64_check.sh python tools/arm64/parity.py      # any command, run in the root
#   bash tools/arm64_check.sh --shell         # an interactive shell in the root
#   bash tools/arm64_check.sh --no-build CMD  # keep the last build even if the tree changed
#
# Steps, each skipped when already done (so a second run only re-syncs and, if the tree changed,
# rebuilds): install qemu-user-static, binfmt-support and debootstrap on the host (apt); mount
# binfmt_misc and enable qemu-aarch64; debootstrap a minimal arm64 root of the host's Debian
# release (python3, python3-venv, python3-dev, gcc, g++) under $CNNATIVE_ARM64_CACHE
# (default /var/cache/cnnative-arm64); copy the host's CA bundle in (pip verifies PyPI with it);
# make a venv in the root with numpy/scipy's aarch64 wheels, Cython, setuptools, pytest,
# hypothesis; copy the working tree (git's tracked and unignored files: no build dirs, no .so)
# to /src in the root and build cnnative there; run the command inside the root from /src with
# the venv first on PATH.  Commands run in a private mount namespace (unshare), so the root's
# /proc, /dev and /sys mounts disappear with the script.
#
# Exit status: 0 with a line "SKIP: reason" when this machine cannot emulate arm64 (not root,
# no apt, qemu does not install, binfmt_misc cannot be mounted or qemu-aarch64 not enabled);
# otherwise that of the command, and non-zero on any real failure of a step.
#
# Environment: CNNATIVE_ARM64_CACHE (cache dir), CNNATIVE_ARM64_SUITE (codename, default the
# host's), CNNATIVE_ARM64_MIRROR (default the host's Debian mirror or deb.debian.org),
# NUMPY_VERSION / SCIPY_VERSION (default 2.4.6 / 1.17.1), CNNATIVE_ARM64_JOBS (parallel
# compiles, default nproc), CNNATIVE_ARM64_HOST_PYTHON (a host Python with this tree's cnnative,
# for the default command's training comparison; default .venv/bin/python of the tree).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="${CNNATIVE_ARM64_CACHE:-/var/cache/cnnative-arm64}"
ROOT="$CACHE/root"
NUMPY_VERSION="${NUMPY_VERSION:-2.4.6}"
SCIPY_VERSION="${SCIPY_VERSION:-1.17.1}"
JOBS="${CNNATIVE_ARM64_JOBS:-$(nproc 2>/dev/null || echo 2)}"
VENV=/opt/venv
T0=$SECONDS

log() { printf '[arm64 %4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
skip() { echo "SKIP: $*"; exit 0; }
die() { echo "arm64_check: error: $*" >&2; exit 1; }

# The focused default: scipy parity of correlate2d/convolve2d and of the N-d correlate (every
# SIMD variant), the layer kernels against their references, then 5,001 random parity cases
# (tools/arm64/parity.py --strict).  Test files missing from the tree are left out.
DEFAULT_TESTS=(tests/test_signal.py tests/test_signal_nd.py tests/test_simd_variants.py
               tests/test_conv.py)

SHELL_MODE=0
NO_BUILD=0
DEFAULT_MODE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --shell) SHELL_MODE=1; shift ;;
        --no-build) NO_BUILD=1; shift ;;
        --help|-h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
done
if [ $# -gt 0 ]; then
    CMD=("$@")
    CMD_LABEL="$*"
else
    # Every part runs whatever the others gave; the status is non-zero if any failed.
    CMD=(sh -c 'tests=""; for t in "$@"; do [ -e "$t" ] && tests="$tests $t"; done; rc=0
                python -m pytest -q -p no:cacheprovider $tests || rc=1
                python tools/arm64/parity.py --strict || rc=1
                if [ -e /tmp/cnnative-host-weights.npz ]; then
                    python tools/arm64/train_compare.py --compare /tmp/cnnative-host-weights.npz || rc=1
                else
                    echo "train_compare: FAIL: no weights from the host to compare with"; rc=1
                fi
                exit $rc' sh "${DEFAULT_TESTS[@]}")
    CMD_LABEL="pytest ${DEFAULT_TESTS[*]}; python tools/arm64/parity.py --strict; python tools/arm64/train_compare.py"
    DEFAULT_MODE=1
fi

# ---------------------------------------------------------------- can this machine do it?
[ "$(id -u)" -eq 0 ] || skip "arm64 emulation needs root (debootstrap, binfmt_misc, chroot)"
case "$(uname -m)" in
    aarch64|arm64) skip "the host is arm64 already: run the suite natively" ;;
esac
command -v apt-get >/dev/null 2>&1 || skip "no apt-get: cannot install qemu-user-static/debootstrap"
for tool in unshare chroot mount flock; do
    command -v "$tool" >/dev/null 2>&1 || skip "no $tool on this machine"
done
unshare --mount --propagation private true 2>/dev/null \
    || skip "cannot make a private mount namespace here (unshare --mount)"

need_pkgs=()
command -v qemu-aarch64-static >/dev/null 2>&1 || need_pkgs+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need_pkgs+=(binfmt-support)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing on the host: ${need_pkgs[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "${need_pkgs[@]}" >/dev/null; } || skip "could not install ${need_pkgs[*]} with apt-get"
fi

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
        || skip "binfmt_misc cannot be mounted here (a container without the privilege?)"
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    # No binfmt-support entry (or no update-binfmts service): register qemu directly, with the
    # F flag so the interpreter is found from inside the chroot.
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        > /proc/sys/fs/binfmt_misc/register 2>/dev/null || true
fi
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || skip "qemu-aarch64 could not be registered with binfmt_misc"
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || skip "qemu-aarch64 is registered without the F (fix-binary) flag: it won't run in a chroot"

# ---------------------------------------------------------------- the arm64 root
# Runs a command in the root: a private mount namespace with /proc, /sys and /dev, a clean
# environment (the host's PIP_* settings point at host paths), the venv first on PATH.
in_root() {
    unshare --mount --propagation private -- /bin/sh -c '
        set -e; r=$1; shift
        mount -t proc proc "$r/proc"
        mount --rbind /sys "$r/sys"
        mount --rbind /dev "$r/dev"
        exec chroot "$r" "$@"' sh "$ROOT" \
        /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        PIP_CERT=/etc/cnnative-host-ca.crt SSL_CERT_FILE=/etc/cnnative-host-ca.crt \
        REQUESTS_CA_BUNDLE=/etc/cnnative-host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_DEFAULT_TIMEOUT=180 PIP_PROGRESS_BAR=off PYTHONDONTWRITEBYTECODE=1 \
        DIST_EXTRA_CONFIG=/etc/cnnative-build.cfg CI="${CI:-}" \
        CC="ccache gcc" CXX="ccache g++" CCACHE_DIR=/var/cache/ccache CCACHE_MAXSIZE=2G \
        CCACHE_NOHASHDIR=1 CCACHE_BASEDIR=/src \
        "$@"
}

suite="${CNNATIVE_ARM64_SUITE:-}"
if [ -z "$suite" ]; then
    suite="$(. /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}")" || true
    [ -n "$suite" ] || suite=bookworm
fi
mirror="${CNNATIVE_ARM64_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror="$(grep -rhoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
              | grep -v security | head -n1 | tr -d ' ')" || true
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

# ccache keeps the compiled objects of unchanged modules across rebuilds (a compile under
# emulation is what makes a build take minutes).
ROOT_PKGS=(python3 python3-venv python3-dev gcc g++ libc6-dev ca-certificates ccache)

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -w 3600 9 || die "another arm64_check holds $CACHE/lock"

stamp="$ROOT/.cnnative-root-$suite"
if [ ! -e "$stamp" ]; then
    [ -d "$ROOT" ] && { log "removing an unfinished root"; rm -rf --one-file-system "$ROOT"; }
    log "debootstrap --arch=arm64 $suite from $mirror (several minutes under emulation)"
    t=$SECONDS
    nice -n 10 debootstrap --arch=arm64 --variant=minbase --include="$(echo "${ROOT_PKGS[@]}" | tr ' ' ,)" \
        "$suite" "$ROOT" "$mirror" > "$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    log "debootstrap done in $((SECONDS - t)) s"
    touch "$stamp"
fi
[ "$(in_root uname -m)" = aarch64 ] || die "the root does not run as aarch64"
# A root made by an older version of this script may lack a package added since.
missing=()
for pkg in "${ROOT_PKGS[@]}"; do
    in_root dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing in the root: ${missing[*]}"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    { in_root apt-get update -qq && in_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"; } > "$CACHE/apt.log" 2>&1 \
        || { tail -n 20 "$CACHE/apt.log" >&2; die "apt-get install in the root failed"; }
fi

# DNS and the host's CA bundle (pip must verify PyPI through whatever this network presents).
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
ca=""
for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -n "$f" ] && [ -f "$f" ]; then ca="$f"; break; fi
done
[ -n "$ca" ] || die "no CA bundle found on the host"
cp -L "$ca" "$ROOT/etc/cnnative-host-ca.crt"
printf '[build_ext]\nparallel = %s\n' "$JOBS" > "$ROOT/etc/cnnative-build.cfg"

# ---------------------------------------------------------------- the venv
venv_stamp="$ROOT$VENV/.cnnative-numpy-$NUMPY_VERSION-scipy-$SCIPY_VERSION"
if [ ! -e "$venv_stamp" ]; then
    log "venv with numpy==$NUMPY_VERSION scipy==$SCIPY_VERSION (aarch64 wheels from PyPI)"
    t=$SECONDS
    rm -rf "${ROOT:?}$VENV"
    in_root python3 -m venv "$VENV"
    in_root nice -n 10 pip install -q --upgrade pip
    in_root nice -n 10 pip install -q --only-binary=numpy,scipy \
        "numpy==$NUMPY_VERSION" "scipy==$SCIPY_VERSION" "Cython>=3.0" "setuptools>=77" \
        "pytest>=7" "hypothesis>=6" "tqdm>=4.60" \
        || die "pip install in the root failed"
    touch "$venv_stamp"
    log "venv done in $((SECONDS - t)) s"
fi

# ---------------------------------------------------------------- the project
log "copying the working tree to $ROOT/src"
mkdir -p "$ROOT/src"
list="$CACHE/files.txt"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked-but-not-ignored files, as they are in the working tree now.
    git -C "$REPO" ls-files -co --exclude-standard -z \
        | while IFS= read -r -d '' f; do [ -f "$REPO/$f" ] && printf '%s\0' "$f"; done > "$list"
    rsync -a --from0 --files-from="$list" "$REPO/" "$ROOT/src/"
    # --files-from does not delete files gone from the list: prune them.
    (cd "$ROOT/src" && find . -type f ! -path './build/*' ! -name '*.so' ! -path './native/*.c' \
        -printf '%P\0') | sort -z > "$CACHE/have.txt"
    sort -z "$list" > "$CACHE/want.txt"
    comm -z -23 "$CACHE/have.txt" "$CACHE/want.txt" | (cd "$ROOT/src" && xargs -0 -r rm -f --)
else
    rsync -a --delete --exclude .git --exclude build --exclude dist --exclude '.venv*' \
        --exclude '*.so' --exclude '*.egg-info' --exclude '.hypothesis' --exclude '.pytest_cache' \
        --exclude '.mypy_cache' --exclude 'native/*.c' --exclude 'docs/_build' \
        --exclude __pycache__ "$REPO/" "$ROOT/src/"
fi

# Rebuild only when the sources changed since the last successful build.
hash="$(cd "$ROOT/src" && find native setup.py pyproject.toml src -type f ! -name '*.so' \
        ! -name '*.c' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
build_stamp="$ROOT$VENV/.cnnative-build-$hash"
if [ ! -e "$build_stamp" ] && [ "$NO_BUILD" -eq 1 ] \
        && compgen -G "$ROOT$VENV/.cnnative-build-*" >/dev/null; then
    log "--no-build: keeping the build of an earlier tree (the sources changed since)"
elif [ ! -e "$build_stamp" ]; then
    log "building cnnative in the root (about 5 minutes under emulation)"
    t=$SECONDS
    rm -f "$ROOT$VENV"/.cnnative-build-*
    in_root sh -c 'cd /src && rm -rf build native/*.c &&
        nice -n 10 pip install -q --no-build-isolation --no-deps .' \
        > "$CACHE/build.log" 2>&1 \
        || { tail -n 40 "$CACHE/build.log" >&2; die "building cnnative failed (log: $CACHE/build.log)"; }
    touch "$build_stamp"
    log "build done in $((SECONDS - t)) s"
fi
log "cnnative info:"
in_root sh -c 'cd / && cnnative info' >&2 || die "cnnative info failed in the root"

# ---------------------------------------------------------------- the host's weights
# The default command compares a short training run with the same run on the host: a host Python
# with this tree's cnnative trains first ($CNNATIVE_ARM64_HOST_PYTHON, else CI's .venv).
if [ "$DEFAULT_MODE" -eq 1 ] && [ "$SHELL_MODE" -eq 0 ]; then
    rm -f "$ROOT/tmp/cnnative-host-weights.npz"
    host_py=""
    for py in "${CNNATIVE_ARM64_HOST_PYTHON:-}" "$REPO/.venv/bin/python"; do
        if [ -n "$py" ] && (cd /tmp && "$py" -c 'import cnnative') >/dev/null 2>&1; then
            host_py="$py"; break
        fi
    done
    if [ -n "$host_py" ]; then
        log "training on the host with $host_py (the weights the arm64 run must match)"
        (cd /tmp && "$host_py" "$REPO/tools/arm64/train_compare.py" \
            --save "$ROOT/tmp/cnnative-host-weights.npz") >&2 || die "the host's training run failed"
    else
        log "no host Python with cnnative (set CNNATIVE_ARM64_HOST_PYTHON): the comparison fails"
    fi
fi

# ---------------------------------------------------------------- the command
if [ "$SHELL_MODE" -eq 1 ]; then
    in_root sh -c 'cd /src && exec bash -i'
    exit $?
fi
log "running in the root: $CMD_LABEL"
set +e
in_root sh -c 'cd /src && exec nice -n 10 "$@"' sh "${CMD[@]}"
rc=$?
set -e
log "finished with exit status $rc"
exit "$rc"
