"""Compiles every Triton kernel of the GPU backend for an sm_90 GPU (H100) — on any machine, no GPU needed —
for each kind of kernel sum, dtype and precision, in its default tile configuration and in its largest one,
with the specialisation the JIT applies to the headline shapes (pointers, d and the row strides divisible by
16), and checks that each fits in the GPU's shared memory.

    python tests/aot_compile_triton.py                      # one line per kernel variant
    python tests/aot_compile_triton.py --report FILE.csv    # and the static report of each (below)

Run with TRITON_INTERPRET unset (tests/test_triton_compile.py does): exits 1 if any variant fails to compile
or asks for more shared memory than the GPU has. The report, read from the cubin with the cuobjdump that
ships with triton (our only speed signal without a GPU): registers, stack and local memory (spills),
shared memory, and how many programs an SM runs at once by those; wgmma (HGMMA), mma.sync (HMMA), TMA loads
(UTMALDG), spill traffic (LDL/STL) and MUFU instructions; the SASS instructions of the kernel's main loop
(see main_loop: a static count), its MUFU and spill instructions, and, for the kernels whose loop walks
tiles of BM × BN pairs, those instructions per pair of a thread's share (loop instructions × 32 × warps /
(BM·BN)).
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("run without TRITON_INTERPRET: the interpreter does not compile")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from fastmmd.backends._triton import configs  # noqa: E402
from fastmmd.backends._triton.coef_chunk import coef_chunk_kernel  # noqa: E402
from fastmmd.backends._triton.matvec import matvec_kernel  # noqa: E402
from fastmmd.backends._triton.owner_grad import owner_grad_kernel  # noqa: E402
from fastmmd.backends._triton.stats import stats_tiles_kernel  # noqa: E402
from fastmmd.backends._triton.terms import FAMILY_BITS  # noqa: E402
from fastmmd.backends._triton.value import value_persistent_kernel, value_tiles_kernel  # noqa: E402
from fastmmd.backends._triton.value_rows import value_rows_kernel  # noqa: E402
from fastmmd.kernels import Family  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
SHARED_LIMIT = 232448  # bytes per block on an H100
# What one H100/H200 SM holds at once: registers, warps, shared memory (1 KiB of it reserved per block), blocks.
SM_REGISTERS, SM_WARPS, SM_SHARED, SM_BLOCKS, BLOCK_RESERVED_SHARED = 65536, 64, 233472, 32, 1024


def families(*codes):
    return sum(int(c) << (FAMILY_BITS * t) for t, c in enumerate(codes)), len(codes)


SMOOTH = families(Family.GAUSSIAN, Family.RATIONAL_QUADRATIC, Family.LINEAR, Family.POLYNOMIAL)
DISTANCE = families(Family.ENERGY, Family.LAPLACIAN)
GAUSSIAN = families(Family.GAUSSIAN)  # the headline kernel
KINDS = {"smooth": SMOOTH, "distance": DISTANCE, "gaussian": GAUSSIAN}
# Integer arguments the JIT specialises as multiples of 16 at the headline shapes (d = 64, 2048, contiguous
# rows): the feature count and the row strides; the row counts are left general.
DIVISIBLE_INTS = ("d", "sa", "sb", "sv", "so", "sg")
TOOLS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


def flags(kind, precision, center=False):
    fams, count = KINDS[kind]
    return dict(FAMS=fams, NT=count, NEEDS_NORM=kind == "distance", NEEDS_DOT=kind == "smooth",
                EXPLICIT=kind == "distance", CENTER=center, PRECISION=precision)


def signature(pointers, ints, dtype, consts, scalars=()):
    ptr = "*fp64" if dtype == torch.float64 else "*fp32"
    sig = {name: ptr for name in pointers}
    sig.update({name: "i32" for name in ints})
    sig.update({name: "fp32" for name in scalars})
    sig.update({name: "constexpr" for name in consts})
    return sig


def with_descriptors(sig, config, dtype=torch.float32):
    """The signature with A and B as tensor descriptors of the configuration's blocks (the TMA variant)."""
    ty = "bf16" if dtype == torch.bfloat16 else "fp32"
    bk = config.kwargs["BK"]
    out = dict(sig)
    out["A"] = f"tensordesc<{ty}[{config.kwargs['BM']}, {bk}]>"
    out["B"] = f"tensordesc<{ty}[{config.kwargs['BN']}, {bk}]>"
    return out


def representative(candidates):
    """The first configuration of a list (the untuned default) and the one needing the most memory (BM·BN·
    stages): compile errors do not depend on the tile sizes, resource limits grow with them."""
    largest = max(candidates, key=lambda c: c.kwargs["BM"] * c.kwargs["BN"] * max(c.num_stages, 1) * c.num_warps)
    return [candidates[0]] + ([largest] if largest is not candidates[0] else [])


def jit_attrs(fn, sig):
    """tt.divisibility 16 on the pointers and DIVISIBLE_INTS, as the JIT sets them for such arguments."""
    return {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name, ty in sig.items()
            if ty.startswith("*") or (ty == "i32" and name in DIVISIBLE_INTS)}


def compile_variant(fn, sig, consts, config):
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=jit_attrs(fn, sig))
    return triton.compile(src, target=TARGET, options=dict(num_warps=config.num_warps,
                                                           num_stages=config.num_stages))


def _count(pattern, text):
    return len(re.findall(pattern, text))


def main_loop(sass: str, interior: bool = False):
    """(instructions, body) of the kernel's main loop: the longest backward branch whose body holds a MUFU or
    an MMA instruction; with `interior`, the shortest one holding a MUFU (the streaming forward runs its
    masked tiles in loops of their own beside the interior loop, whose instructions are the per-pair cost)."""
    program = [(int(m.group(1), 16), m.group(2)) for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    loops = []
    for address, text in program:
        branch = re.search(r"\bBRA\s+(0x[0-9a-f]+)", text)
        if not branch or int(branch.group(1), 16) >= address:
            continue
        start = int(branch.group(1), 16)
        body = "\n".join(t for a, t in program if start <= a <= address)
        if re.search(r"MUFU|HGMMA|HMMA", body):
            loops.append((sum(1 for a, _ in program if start <= a <= address), body))
    if not loops:
        return 0, ""
    with_mufu = [loop for loop in loops if "MUFU" in loop[1]]
    if interior and with_mufu:
        return min(with_mufu, key=lambda loop: loop[0])
    return max(loops, key=lambda loop: loop[0])


def programs_per_sm(registers: int, warps: int, shared: int) -> int:
    """How many programs (CTAs) of a kernel one sm_90 SM runs at once, the least of what its registers (given
    to each warp in units of 256), warps, shared memory and block slots allow."""
    per_warp = -(-registers * 32 // 256) * 256
    by_registers = SM_REGISTERS // per_warp // warps
    by_shared = SM_SHARED // (shared + BLOCK_RESERVED_SHARED)
    return min(by_registers, SM_WARPS // warps, by_shared, SM_BLOCKS)


def static_report(name, kernel, config):
    """The report row of one compiled variant (see the module docstring)."""
    with tempfile.TemporaryDirectory() as folder:
        cubin = os.path.join(folder, "kernel.cubin")
        with open(cubin, "wb") as handle:
            handle.write(kernel.asm["cubin"])
        usage = subprocess.run([os.path.join(TOOLS, "cuobjdump"), "-res-usage", cubin], capture_output=True,
                               text=True, check=True).stdout
        sass = subprocess.run([os.path.join(TOOLS, "cuobjdump"), "--dump-sass", cubin], capture_output=True,
                              text=True, check=True).stdout
    resources = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    walks_tiles = name.split()[0] in ("value_rows", "owner_grad")
    loop, body = main_loop(sass, interior=walks_tiles)
    tile = config.kwargs.get("BM", 0) * config.kwargs.get("BN", 0)
    per_pair = loop * 32 * config.num_warps / tile if walks_tiles and tile else None
    registers = int(resources.get("REG", -1))
    return {"kernel": name, "config": " ".join(f"{k}={v}" for k, v in config.kwargs.items()),
            "triton": triton.__version__,
            "warps": config.num_warps, "stages": config.num_stages, "registers": registers,
            "stack": int(resources.get("STACK", -1)), "local": int(resources.get("LOCAL", -1)),
            "shared": kernel.metadata.shared,
            "programs_per_sm": programs_per_sm(max(registers, 1), config.num_warps, kernel.metadata.shared),
            "hgmma": _count(r"\bHGMMA\b", sass), "hmma": _count(r"\bHMMA\b", sass),
            "tma_loads": _count(r"UTMALDG", sass), "spill_ops": _count(r"\b(LDL|STL)\b", sass),
            "mufu": _count(r"\bMUFU\.", sass), "instructions": _count(r"/\*[0-9a-f]{4,}\*/", sass),
            "loop_instructions": loop, "loop_mufu": _count(r"\bMUFU\.", body),
            "loop_spill_ops": _count(r"\b(LDL|STL)\b", body),
            "instructions_per_pair": "" if per_pair is None else f"{per_pair:.2f}"}


def variants():
    """(name, kernel, signature, constexprs, config) of every kernel in its configurations."""
    cases = [("smooth", torch.float32, p) for p in ("tf32", "bf16", "ieee")]
    cases += [("distance", torch.float32, "ieee"), ("smooth", torch.float64, "ieee")]
    cases += [("gaussian", torch.float32, p) for p in ("tf32", "bf16")]  # the headline kernel
    for kind, dtype, precision in cases:
        explicit = kind == "distance"
        f = flags(kind, precision, center=precision == "ieee")
        # Tensor descriptors replace pointers where the products are on tensor cores without centring.
        tma_modes = (False, True) if not explicit and dtype == torch.float32 and precision != "ieee" else (False,)
        for tma in tma_modes:
            for config in representative(configs._tiled_configs(explicit, dtype, precision, grouped=True)):
                consts = dict(SYMMETRIC=True, EXCLUDE_DIAG=True, TMA=tma, **f, **config.kwargs)
                sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "OUT"],
                                ["n", "m", "d", "sa", "sb", "size_class"], dtype, consts)
                sig = with_descriptors(sig, config) if tma else sig
                yield f"value_tiles {kind} {dtype} {precision} tma={tma}", value_tiles_kernel, sig, consts, config
            yield persistent_variant(kind, dtype, precision, f, tma)
            if kind == "gaussian" and precision == "tf32":  # two 4-warp programs per SM (the four-term
                yield persistent_variant(kind, dtype, precision, f, tma, per_sm=2)  # mixture spills there)
            for config in representative(configs._tiled_configs(explicit, dtype, precision, grouped=False)):
                consts = dict(EXCLUDE_DIAG=True, SAME=True, TMA=tma, **f, **config.kwargs)
                sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "COEF", "ALPHA_PART", "BETA_PART",
                                 "VALUE_PART"], ["n", "m", "d", "sa", "sb", "size_class"], dtype, consts)
                if precision == "bf16":
                    sig.update(COEF="*bf16")  # written as the bf16 GEMMs read them
                sig = with_descriptors(sig, config) if tma else sig
                yield f"coef_chunk {kind} {dtype} {precision} tma={tma}", coef_chunk_kernel, sig, consts, config
        for config in representative(configs._tiled_configs(explicit, dtype, precision, grouped=False)):
            consts = dict(SYMMETRIC=True, EXCLUDE_DIAG=True, **f, **config.kwargs)
            sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "ROW_PART", "COL_PART", "SQ_PART"],
                            ["n", "m", "d", "sa", "sb", "row0", "band", "band_stride", "size_class"], dtype, consts)
            yield f"stats_tiles {kind} {dtype} {precision}", stats_tiles_kernel, sig, consts, config
        # The narrowest and the widest column block of v (a wider one leaves fewer tiles in the budget).
        for pb in sorted({configs.matvec_column_block(1, dtype), configs.matvec_column_block(1 << 20, dtype)}):
            for config in representative(configs._matvec_configs(explicit, dtype, precision, pb)):
                consts = dict(EXCLUDE_DIAG=True, WANT_SQ=True, PB=pb, **f, **config.kwargs)
                sig = signature(["A", "B", "V", "SQA", "SQB", "MU", "P", "OUT", "SQ"],
                                ["n", "m", "p", "d", "sa", "sb", "sv", "so", "size_class"], dtype, consts)
                yield f"matvec {kind} {dtype} {precision} PB={pb}", matvec_kernel, sig, consts, config
        for d in ((64,) if explicit else (64, 128, 256)):
            if kind == "gaussian" and d != 64:
                continue
            bd = configs.padded_dim(d)
            for config in representative(configs._owner_configs(explicit, dtype, d)):
                consts = dict(EXCLUDE_DIAG=True, SAME=True, ACCUMULATE=True, WANT_VALUE=True, BD=bd, **f,
                              **config.kwargs)
                sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "VAL", "GRAD", "SCALES"],
                                ["n", "m", "d", "sa", "sb", "sg", "size_class"], dtype, consts)
                yield f"owner_grad {kind} {dtype} {precision} d={d}", owner_grad_kernel, sig, consts, config
            if explicit:
                continue
            # The lone Gaussian in float32 runs with its constants folded into the norms (FOLD); its
            # general epilogue is compiled beside it ("fold=False") for comparison.
            folds = (True, False) if kind == "gaussian" and dtype == torch.float32 else (False,)
            for fold in folds:
                for tma in tma_modes if fold or len(folds) == 1 else (False,):
                    for config in representative(configs._value_rows_configs(dtype, d, precision)):
                        consts = dict(SYMMETRIC=True, EXCLUDE_DIAG=False, BD=bd, FOLD=fold, TMA=tma, **f,
                                      **config.kwargs)
                        sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "OUT"],
                                        ["n", "m", "d", "sa", "sb", "segment", "size_class"], dtype, consts,
                                        scalars=("fold_scale",))
                        if tma:
                            sig = with_descriptors(sig, triton.Config(dict(config.kwargs, BK=bd)))
                        label = (f"value_rows {kind} {dtype} {precision} d={d}"
                                 + ("" if fold or len(folds) == 1 else " fold=False") + (" tma=True" if tma else ""))
                        yield label, value_rows_kernel, sig, consts, config


def persistent_variant(kind, dtype, precision, f, tma, copies=False, per_sm=1):
    """The persistent forward in the one configuration it runs with (configs.persistent_launcher)."""
    config = configs.persistent_launcher(value_persistent_kernel, f["EXPLICIT"], dtype, precision,
                                         per_sm).candidates[0]
    consts = dict(SYMMETRIC=True, EXCLUDE_DIAG=True, TMA=tma, **f, **config.kwargs)
    sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "TILES", "OUT"],
                    ["n", "m", "d", "sa", "sb", "num_tiles", "programs"], dtype, consts)
    sig.update(TILES="*i32", OUT="*fp64")
    if copies:
        sig.update(A="*bf16", B="*bf16")
    sig = with_descriptors(sig, config, torch.bfloat16 if copies else dtype) if tma else sig
    label = "bf16-copies" if copies else dtype
    name = f"value_persistent {kind} {label} {precision} tma={tma}" + (f" per_sm={per_sm}" if per_sm > 1 else "")
    return name, value_persistent_kernel, sig, consts, config


def bf16_copy_variants():
    """The passes as they run in bf16 on float32 inputs: A and B bfloat16 copies (the gradient chunks'
    coefficients bfloat16 too; the owner kernels' configurations are those of bfloat16 rows)."""
    for kind in ("gaussian", "smooth"):
        f = flags(kind, "bf16")
        for config in representative(configs._tiled_configs(False, torch.float32, "bf16", grouped=True)):
            consts = dict(SYMMETRIC=True, EXCLUDE_DIAG=True, TMA=False, **f, **config.kwargs)
            sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "OUT"],
                            ["n", "m", "d", "sa", "sb", "size_class"], torch.float32, consts)
            sig.update(A="*bf16", B="*bf16")
            yield f"value_tiles {kind} bf16-copies bf16 tma=False", value_tiles_kernel, sig, consts, config
        for tma in (False, True):
            yield persistent_variant(kind, torch.float32, "bf16", f, tma, copies=True)
            if kind == "gaussian":
                yield persistent_variant(kind, torch.float32, "bf16", f, tma, copies=True, per_sm=2)
        for config in representative(configs._tiled_configs(False, torch.float32, "bf16", grouped=False)):
            consts = dict(SYMMETRIC=True, EXCLUDE_DIAG=True, **f, **config.kwargs)
            sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "ROW_PART", "COL_PART", "SQ_PART"],
                            ["n", "m", "d", "sa", "sb", "row0", "band", "band_stride", "size_class"], torch.float32,
                            consts)
            sig.update(A="*bf16", B="*bf16")
            yield f"stats_tiles {kind} bf16-copies bf16", stats_tiles_kernel, sig, consts, config
        for config in representative(configs._tiled_configs(False, torch.float32, "bf16", grouped=False)):
            consts = dict(EXCLUDE_DIAG=True, SAME=True, TMA=False, **f, **config.kwargs)
            sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "COEF", "ALPHA_PART", "BETA_PART",
                             "VALUE_PART"], ["n", "m", "d", "sa", "sb", "size_class"], torch.float32, consts)
            sig.update(A="*bf16", B="*bf16", COEF="*bf16")
            yield f"coef_chunk {kind} bf16-copies bf16 tma=False", coef_chunk_kernel, sig, consts, config
        bd = configs.padded_dim(64)
        for config in representative(configs._value_rows_configs(torch.float32, 64, "bf16")):
            consts = dict(SYMMETRIC=True, EXCLUDE_DIAG=False, BD=bd, FOLD=kind == "gaussian", TMA=False, **f,
                          **config.kwargs)
            sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "OUT"],
                            ["n", "m", "d", "sa", "sb", "segment", "size_class"], torch.float32, consts,
                            scalars=("fold_scale",))
            sig.update(A="*bf16", B="*bf16")
            yield f"value_rows {kind} bf16-copies bf16 d=64", value_rows_kernel, sig, consts, config
        for config in representative(configs._owner_configs(False, torch.bfloat16, 64)):
            consts = dict(EXCLUDE_DIAG=True, SAME=True, ACCUMULATE=True, WANT_VALUE=True, BD=bd, **f,
                          **config.kwargs)
            sig = signature(["A", "B", "SQA", "SQB", "MU", "P", "VAL", "GRAD", "SCALES"],
                            ["n", "m", "d", "sa", "sb", "sg", "size_class"], torch.float32, consts)
            sig.update(A="*bf16", B="*bf16")
            yield f"owner_grad {kind} bf16-copies bf16 d=64", owner_grad_kernel, sig, consts, config


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    report_path = argv[argv.index("--report") + 1] if "--report" in argv else None
    rows = []
    failures = 0
    for name, fn, sig, consts, config in (*variants(), *bf16_copy_variants()):
        label = f"{name} {config.kwargs} warps={config.num_warps} stages={config.num_stages}"
        try:
            kernel = compile_variant(fn, sig, consts, config)
        except Exception as exc:  # a compiler error of any kind is the finding
            failures += 1
            print(f"FAIL {label}: {type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}")
            continue
        shared = kernel.metadata.shared
        if shared > SHARED_LIMIT:
            failures += 1
            print(f"FAIL {label}: {shared} bytes of shared memory > {SHARED_LIMIT}")
        else:
            print(f"ok   {label}: {shared} bytes of shared memory")
        if report_path:
            rows.append(static_report(name, kernel, config))
    if report_path:
        with open(report_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
