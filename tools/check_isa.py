"""Fail if an x86-64 wheel's extension modules hold AVX code outside the dispatched variants.

A wheel must run on any x86-64 CPU, so the baseline code has to stay within SSE2: AVX2 and
AVX-512 instructions may appear only in the functions compiled for them with target attributes
(named ``*avx2*`` / ``*avx512*``, or ``*_fused`` for the FMA scalar kernels), which the kernels
call only after checking the CPU. A build
with ``-march=native`` or ``-mavx2`` would put VEX-encoded instructions everywhere; this finds
them by disassembling every extension module with objdump.

    python tools/check_isa.py dist/cnnative-...-x86_64.whl
"""
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
INSTRUCTION = re.compile(r"^\s*[0-9a-f]+:\s+(?P<mnemonic>\S+)(?P<operands>.*)$")
# VEX/EVEX-encoded instructions all have mnemonics starting with "v" in AT&T syntax (the VMX
# instructions that also do never occur in user code); ymm/zmm/mask registers need AVX too.
AVX_OPERAND = re.compile(r"%(?:[yz]mm\d+|k[0-7])\b")
# The scalar kernels with fused multiply-adds (the rounding of scipy's aarch64 builds) are
# compiled for AVX2 + FMA on x86-64 and run only where cn_fused_available() (rounding.h) found them.
DISPATCHED = re.compile(r"avx|_fused", re.IGNORECASE)


def offending_functions(library):
    """Names of functions in ``library`` that use AVX but are not dispatched variants."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)],
                             check=True, capture_output=True, text=True).stdout
    bad, function = set(), "?"
    for line in listing.splitlines():
        header = FUNCTION.match(line)
        if header:
            function = header["name"]
            continue
        instruction = INSTRUCTION.match(line)
        if instruction is None or DISPATCHED.search(function):
            continue
        if instruction["mnemonic"].startswith("v") or AVX_OPERAND.search(instruction["operands"]):
            bad.add(function)
    return sorted(bad)


def main(wheel):
    if not wheel.endswith("x86_64.whl"):
        print(f"check_isa: {Path(wheel).name} is not an x86-64 wheel; nothing to check")
        return 0
    if shutil.which("objdump") is None:
        print("check_isa: objdump (binutils) not found", file=sys.stderr)
        return 2
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as archive:
            libraries = [name for name in archive.namelist() if name.endswith(".so")]
            archive.extractall(tmp, members=libraries)
        if not libraries:
            print("check_isa: no extension modules in the wheel", file=sys.stderr)
            return 1
        for name in libraries:
            bad = offending_functions(Path(tmp) / name)
            status = "ok" if not bad else "AVX outside dispatched variants: " + ", ".join(bad)
            print(f"check_isa: {name}: {status}")
            failures += bool(bad)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
