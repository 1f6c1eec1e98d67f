"""`python -m fastmmd.cli.kid REAL FAKE`: the KID between two files of features, printed as `KID = mean ± std`.

    python -m fastmmd.cli.kid real.npy fake.npy                      # torchmetrics' convention: 100 subsets of 1000
    python -m fastmmd.cli.kid real.npy fake.npz --fake-key pool3 --exact   # all pairs; std of the estimator
    python -m fastmmd.cli.kid real.npy fake.npy --mode tf-gan        # TF-GAN's blocks of at most 1024

REAL and FAKE are .npy files holding an (n, d) float array, or .npz files (the array under --real-key /
--fake-key, by default the only or the first array). A folder of images is not accepted yet: the feature
extractor (the FID Inception network) comes with the gan package. Bad input files and bad options end
with a one-line error on stderr and exit status 2 (0 on success). Object arrays are refused, never
unpickled: loading them would run code from the file.
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from fastmmd.backends import BACKEND_NAMES
from fastmmd.common.validation import PRECISIONS
from fastmmd.formulas.kid_subsets import KID_MODES
from fastmmd.statistics.kid import KIDResult, default_subset_size, kid

__all__ = ["main", "load_features", "format_result"]

PROG = "python -m fastmmd.cli.kid"


class FeatureFileError(ValueError):
    """A features file that cannot be used, with a message naming it."""


def load_features(path: str, key: Optional[str], argument: str) -> np.ndarray:
    """The (n, d) floating-point array of a .npy file, or of the array `key` (default: the only or first
    one) of a .npz file; FeatureFileError naming `argument` and the file otherwise. float16 becomes float32."""
    p = Path(path)
    where = f"{argument} ({path})"
    if p.is_dir():
        raise FeatureFileError(
            f"{where} is a directory: computing features from a folder of images is not available yet (the "
            f"gan package will provide the Inception feature extractor); pass a .npy or .npz file of features"
        )
    if not p.exists():
        raise FeatureFileError(f"{where} does not exist")
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise FeatureFileError(f"{where} must be a .npy or .npz file of features (n, d)")
    if suffix == ".npy" and key is not None:
        raise FeatureFileError(f"{where} is a .npy file; a key applies to .npz files only")
    _check_magic(p, suffix, where)
    try:
        loaded = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ValueError) and "allow_pickle" in str(exc):  # the header is NumPy's: an object array
            raise FeatureFileError(f"{where} holds an object array, which is refused: loading it would run "
                                   f"pickled code; save the features as a float array") from None
        raise FeatureFileError(f"{where} is not a readable {suffix} file: {_one_line(exc)}") from None
    if suffix == ".npz":
        with loaded:
            if not loaded.files:
                raise FeatureFileError(f"{where} holds no arrays")
            name = loaded.files[0] if key is None else key
            if name not in loaded.files:
                raise FeatureFileError(f"{where} has no array {name!r}; it holds {', '.join(loaded.files)}")
            try:
                array = loaded[name]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise FeatureFileError(f"{where}: array {name!r} is an object array, which is refused: "
                                           f"loading it would run pickled code; save the features as a float "
                                           f"array") from None
                raise FeatureFileError(f"{where}: array {name!r} cannot be read: {_one_line(exc)}") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:  # a damaged member
                raise FeatureFileError(f"{where}: array {name!r} cannot be read: {_one_line(exc)}") from None
    else:
        array = loaded
    if array.ndim != 2:
        raise FeatureFileError(f"{where} must hold a 2-D array (n, d) of features; got shape {array.shape}")
    if array.dtype.kind != "f":
        raise FeatureFileError(f"{where} must hold floating-point features; got dtype {array.dtype}")
    return array.astype(np.float32) if array.dtype == np.float16 else array


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (.npz), or an empty one


def _check_magic(p: Path, suffix: str, where: str) -> None:
    """FeatureFileError when the file does not start as its suffix says. Without this, numpy falls back to
    unpickling any other file and reports "pickled data", pointing at allow_pickle, the unsafe option."""
    with open(p, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if not head:
        raise FeatureFileError(f"{where} is empty")
    if suffix == ".npy" and not head.startswith(_NPY_MAGIC):
        raise FeatureFileError(f"{where} is not a .npy file (no NumPy header)")
    if suffix == ".npz" and not head.startswith(_ZIP_MAGIC):
        raise FeatureFileError(f"{where} is not a .npz file (not a zip archive)")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def format_result(result: KIDResult, n: int, m: int, d: int) -> str:
    """`KID = mean ± std  (how; n, m, d)` on one line."""
    if result.mode == "exact":
        how = "exact: unbiased MMD² over all pairs, ± the estimator's std"
    elif result.mode == "tf-gan":
        how = f"mode tf-gan: {result.subsets} blocks of at most {result.subset_size}, ± standard error"
    else:
        how = f"mode {result.mode}: {result.subsets} subsets of {result.subset_size}, ± std across subsets"
    return f"KID = {float(result.mean):.6g} ± {float(result.std):.6g}  ({how}; n = {n}, m = {m}, d = {d})"


class _OneLineParser(argparse.ArgumentParser):
    """Option errors as one line on stderr (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description=__doc__.splitlines()[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("real", metavar="REAL", help="features of the real images: .npy or .npz, (n, d)")
    parser.add_argument("fake", metavar="FAKE", help="features of the generated images: .npy or .npz, (m, d)")
    parser.add_argument("--exact", action="store_true",
                        help="the unbiased MMD² over all pairs (no subsets); the ± is the estimator's std")
    parser.add_argument("--subsets", type=int, default=100, help="number of random subsets (default 100)")
    parser.add_argument("--subset-size", type=int, default=None,
                        help="rows per subset (default 1000; for --mode tf-gan the maximum block size, 1024)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsets (default 0)")
    parser.add_argument("--mode", choices=KID_MODES, default="torchmetrics",
                        help="whose convention to reproduce (default torchmetrics)")
    parser.add_argument("--degree", type=int, default=3, help="polynomial kernel degree (default 3)")
    parser.add_argument("--gamma", type=float, default=None, help="polynomial kernel gamma (default 1/d)")
    parser.add_argument("--coef0", type=float, default=1.0, help="polynomial kernel coef0 (default 1)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="highest")
    parser.add_argument("--device", default="cpu", help="torch device to compute on (default cpu), e.g. cuda")
    parser.add_argument("--float64", action="store_true", help="compute in float64 (2-3x slower on the CPU)")
    parser.add_argument("--real-key", default=None, help="array of REAL when it is an .npz (default: the first)")
    parser.add_argument("--fake-key", default=None, help="array of FAKE when it is an .npz (default: the first)")
    return parser


# The library's errors name its arguments; on the command line, name the options and files instead.
_CLI_NAMES = (("real_feats", "REAL"), ("fake_feats", "FAKE"), ("subsets=None", "--exact"),
              ("subset_size", "--subset-size"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status (0, or 2 for bad input files; bad options exit with
    status 2 from the parser)."""
    args = _parser().parse_args(argv)
    try:
        real = load_features(args.real, args.real_key, "REAL")
        fake = load_features(args.fake, args.fake_key, "FAKE")
        # float32 unless asked for float64 or a file holds float64 (then both, so the dtypes match).
        wide = args.float64 or np.float64 in (real.dtype, fake.dtype)
        dtype = torch.float64 if wide else torch.float32
        device = torch.device(args.device)
        x = torch.from_numpy(real).to(device=device, dtype=dtype)
        y = torch.from_numpy(fake).to(device=device, dtype=dtype)
        subset_size = default_subset_size(args.mode) if args.subset_size is None else args.subset_size
        result = kid(x, y, subsets=None if args.exact else args.subsets, subset_size=subset_size, seed=args.seed,
                     degree=args.degree, gamma=args.gamma, coef0=args.coef0, mode=args.mode,
                     backend=args.backend, precision=args.precision)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        message = " ".join(str(exc).split())
        for api, cli in _CLI_NAMES:
            message = message.replace(api, cli)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    print(format_result(result, real.shape[0], fake.shape[0], real.shape[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
