#!/usr/bin/env bash
# The test suite and a fuzz run against the extension modules built with AddressSanitizer and
# UndefinedBehaviorSanitizer (GCC on Linux; its libasan and libubsan must be installed):
#  1. copy the working tree (tracked and untracked files, nothing git ignores: no built .so,
#     no generated .c) into a temporary directory, and create a fresh virtual environment there
#     with the build requirements, the dependencies and the test extra from pyproject.toml;
#  2. build and install the copy with -fsanitize=address,undefined -fno-sanitize-recover=undefined
#     -O1 -g (the project's -ffp-contract=off kept; CNNATIVE_OPT replaces setup.py's -O3), and
#     check that every extension module links the ASan runtime;
#  3. check that the run catches a heap overflow and a signed overflow in a tiny probe library;
#  4. run the whole pytest suite, then tools/fuzz.py (FUZZ_CASES cases, default 8000, split over
#     every fuzz target), with the runtimes preloaded into the uninstrumented python.
# Any sanitizer report ends the process it happens in and fails the run; the logs are searched
# for reports as well.  NumPy, SciPy and CPython are not instrumented, so this checks cnnative's
# own C code (and what it does with the memory they hand it).  On failure the temporary
# directory is kept for its logs.  About 6-7 minutes on 2 cores.
# Environment: PYTHON (default python3), CC (default gcc), FUZZ_CASES, FUZZ_JOBS (default 1).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python=${PYTHON:-python3}
cc=${CC:-gcc}
fuzz_cases=${FUZZ_CASES:-8000}
fuzz_jobs=${FUZZ_JOBS:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/cnnative-sanitize.XXXXXX")
ok=0
trap 'if [ "$ok" = 1 ]; then rm -rf "$work"; else echo "sanitize: FAILED; logs kept in $work" >&2; fi' EXIT

timings=()
step_name=""
step_start=$SECONDS
step() {
    finish_step
    step_name="$*"
    step_start=$SECONDS
    printf '\n== %s (at %ds)\n' "$step_name" "$SECONDS"
}
finish_step() {
    if [ -n "$step_name" ]; then
        timings+=("$(printf '%5ds  %s' $((SECONDS - step_start)) "$step_name")")
    fi
}

# Where the compiler keeps its runtimes; -print-file-name echoes the bare name when it has none.
runtime() {
    local path
    path=$("$cc" -print-file-name="$1")
    [ -e "$path" ] || { echo "sanitize: $cc has no $1 (install its ASan/UBSan runtime)" >&2; exit 1; }
    readlink -f "$path"
}
libasan=$(runtime libasan.so)
libubsan=$(runtime libubsan.so)

san_flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"
# The environment of every instrumented run.  detect_leaks=0: CPython does not free everything
# at exit.  allocator_may_return_null + max_allocation_size_mb: a call that asks for an output
# of many GiB gets MemoryError (as under the RLIMIT_AS that tests/test_fuzz.py and tools/fuzz.py
# set in plain runs, which they skip when ASan is preloaded) instead of a sanitizer abort or the
# machine's memory.  PYTHONMALLOC=malloc: Python's own objects go through ASan's allocator too.
run_env=(
    env "LD_PRELOAD=$libasan:$libubsan"
    "ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=4096"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
    PYTHONMALLOC=malloc
    "TMPDIR=$work/tmp"
)
mkdir "$work/tmp"
reports='ERROR: AddressSanitizer|SUMMARY: AddressSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

# Runs "$@" with its output teed to $work/<log>; fails on a non-zero status or on a report in
# the log or in the files the run left in tmp/ (a crashed fuzz child's whole stderr: tools/fuzz.py
# prints only its tail).
checked() {
    local log="$work/$1"
    shift
    local status=0
    "$@" 2>&1 | tee "$log" || status=$?
    if grep -rEq "$reports" "$log" "$work/tmp"; then
        echo "sanitize: sanitizer reports:" >&2
        grep -rE -m 3 "$reports" "$log" "$work/tmp" | head -n 30 >&2
        exit 1
    fi
    if [ "$status" -ne 0 ]; then
        echo "sanitize: exit status $status (log: $log)" >&2
        exit 1
    fi
}

step "copy of the working tree"
src="$work/src"
mkdir "$src"
if git -C "$repo" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -C "$src" -xf -
else
    tar -C "$repo" --exclude=.git --exclude='.venv*' --exclude=build --exclude=dist \
        --exclude='*.so' --exclude='native/*.c' --exclude=__pycache__ -cf - . | tar -C "$src" -xf -
fi
echo "$(find "$src" -type f | wc -l) files from $repo"

step "fresh environment with the build and test requirements"
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"
# pyproject.toml's build-system requires, dependencies and test extra (markers left to pip).
mapfile -t requirements < <("$py" - "$src/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10: the same lists, by hand
    print(*["setuptools>=68", "Cython>=3.0", "numpy>=2.0", "scipy>=1.11", "tqdm>=4.60",
            "pytest>=7", "hypothesis>=6"], sep="\n")
    sys.exit()
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
print(*project["build-system"]["requires"], *project["project"]["dependencies"],
      *project["project"]["optional-dependencies"]["test"], sep="\n")
EOF
)
echo "${requirements[*]}"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q "${requirements[@]}"

step "build with $san_flags -O1"
# setuptools puts CFLAGS before setup.py's flags (whose -O3 would win, hence CNNATIVE_OPT) and
# LDFLAGS on the link line, where -fsanitize pulls in the runtimes.  Recent setuptools let CFLAGS
# replace Python's own (-fwrapv among them), so signed overflow is checked too.
(cd "$src" && CC="$cc" CFLAGS="$san_flags" LDFLAGS="-fsanitize=address,undefined" \
    CNNATIVE_OPT=-O1 "$work/venv/bin/pip" install -v --no-build-isolation --no-deps . \
    > "$work/build.log" 2>&1) || { tail -n 40 "$work/build.log"; exit 1; }
grep -E -m1 -- "-fsanitize=address,undefined.* -O1 -ffp-contract=off" "$work/build.log" ||
    { echo "sanitize: no compile line with the sanitizer flags and -O1 last" >&2; exit 1; }
# (Located without importing: an ASan-linked module refuses to load without the preload.)
modules=$("$py" -c '
import importlib.util, pathlib
package = pathlib.Path(importlib.util.find_spec("cnnative").submodule_search_locations[0])
print(*sorted(package.glob("_native/*.so")), sep="\n")')
[ "$(echo "$modules" | wc -l)" -ge 4 ] || { echo "sanitize: modules missing: $modules" >&2; exit 1; }
for module in $modules; do
    case "$module" in "$work/venv/"*) ;; *) echo "sanitize: $module not from the venv" >&2; exit 1 ;; esac
    readelf -d "$module" | grep -q 'NEEDED.*libasan' ||
        { echo "sanitize: $module does not link libasan" >&2; exit 1; }
    echo "instrumented: $(basename "$module")"
done

step "the run catches a heap overflow and a signed overflow in a probe"
cat > "$work/probe.c" <<'EOF'
#include <stdlib.h>
int heap_overflow(int n) {
    volatile double *a = malloc(n * sizeof(double));
    a[n] = 1.0;  /* one past the end */
    int r = (int)a[0];
    free((void *)a);
    return r;
}
int add(int a, int b) { return a + b; }
EOF
"$cc" $san_flags -O1 -shared -fPIC -o "$work/probe.so" "$work/probe.c"
for probe in "heap_overflow(7)" "add(2**31 - 1, 1)"; do
    status=0
    "${run_env[@]}" "$py" -c "import ctypes; print(ctypes.CDLL('$work/probe.so').$probe)" \
        > "$work/probe.log" 2>&1 || status=$?
    if [ "$status" -eq 0 ] || ! grep -Eq "$reports" "$work/probe.log"; then
        cat "$work/probe.log"
        echo "sanitize: $probe went unreported (status $status)" >&2
        exit 1
    fi
    echo "$probe: caught, status $status: $(grep -E -m1 "$reports" "$work/probe.log")"
done

step "test suite"
cd "$src"
# --capture=sys: pytest captures Python's sys.stdout/stderr but not file descriptor 2, so a
# report written by the runtimes just before they end the process reaches the log.
checked pytest.log "${run_env[@]}" CNNATIVE_REQUIRE_INSTALLED=1 \
    "$py" -m pytest -q -p no:cacheprovider --capture=sys

step "fuzz run: $fuzz_cases cases"
checked fuzz.log "${run_env[@]}" "$py" tools/fuzz.py --cases "$fuzz_cases" --jobs "$fuzz_jobs"

finish_step
printf '\n== sanitize: no sanitizer reports; the suite and %s fuzz cases passed\n' "$fuzz_cases"
printf '%s\n' "${timings[@]}"
printf '%5ds  total\n' "$SECONDS"
ok=1
