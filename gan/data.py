"""Image datasets for GAN training, held in memory as uint8 (N, C, H, W) and served as float32 in [-1, 1].

    load_dataset("digits")                 # scikit-learn's 8×8 digits upsampled to 32×32; offline, no download
    load_dataset("cifar10", data_root=…)   # torchvision's CIFAR-10 (downloaded into data_root unless download=False)
    load_dataset("folder:PATH")            # every png/jpg/jpeg/bmp/webp under PATH (recursive), as RGB (Pillow)
    load_dataset("npz:PATH")               # an array in a .npz (key "images", or its only key) or a .npy

Every image is made square by a center crop (of the larger side) and resized to image_size × image_size
(bilinear; antialiased when shrinking). `split` ("train", "test" or "all") only matters for digits and cifar10.

The digits split is fixed, whatever the global RNG state: the 360 images at the first positions of
numpy.random.default_rng(0).permutation(1797) are "test", the other 1437 are "train"; both keep the order
of load_digits().
"""
from __future__ import annotations

import os
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DataError", "ImageData", "load_dataset", "digits_images", "default_data_root", "SPECS", "SPLITS"]

SPECS = ("digits", "cifar10", "folder:PATH", "npz:PATH")
SPLITS = ("train", "test", "all")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DIGITS_COUNT = 1797
DIGITS_TEST_COUNT = 360
_RESIZE_CHUNK = 1024  # images resized at once: bounds the float32 copy of a large dataset


class DataError(ValueError):
    """Bad or missing data; str(error) is one line, fit for a command line's "error: …"."""


@dataclass(frozen=True)
class ImageData:
    """images: uint8 (N, C, H, W), contiguous, C in {1, 3}, H == W; name: where they came from."""

    images: torch.Tensor
    name: str

    def __post_init__(self):
        x = self.images
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3]:
            raise DataError(f"{self.name}: images must be uint8 (N, C, S, S) with C in {{1, 3}}, "
                            f"got {x.dtype} {tuple(x.shape)}")
        if not x.is_contiguous():
            object.__setattr__(self, "images", x.contiguous())

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """indices: (B,) int64 -> float32 (B, C, S, S) in [-1, 1]."""
        return _to_signed_float(self.images[indices])

    def as_float(self) -> torch.Tensor:
        """All images, float32 (N, C, S, S) in [-1, 1]."""
        return _to_signed_float(self.images)


def load_dataset(spec: str, image_size: int = 32, data_root: Union[str, Path, None] = None, split: str = "train",
                 download: bool = True) -> ImageData:
    """The dataset named by spec (one of SPECS), as image_size × image_size uint8 images; raises DataError."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size!r}")
    kind, _, path = spec.partition(":")
    if spec == "digits":
        return ImageData(digits_images(split, image_size)[0], "digits")
    if spec == "cifar10":
        return ImageData(_cifar10(image_size, data_root, split, download), "cifar10")
    if kind in ("folder", "npz") and path:
        location = Path(path).expanduser()
        read = _folder if kind == "folder" else _npz
        return ImageData(read(location, image_size), f"{kind}:{location}")
    raise DataError(f"unknown dataset {spec!r}; valid: {', '.join(SPECS)}")


def default_data_root() -> Path:
    """$GAN_DATA if set, else ~/.cache/gan/data."""
    return Path(os.environ.get("GAN_DATA") or Path.home() / ".cache" / "gan" / "data").expanduser()


# ---- digits ------------------------------------------------------------------------------------------------

def digits_images(split: str = "train", image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits: (uint8 images (N, 1, S, S) in 0..255, int64 labels (N,)); N = 1437 for
    "train", 360 for "test", 1797 for "all" (the fixed split of the module's docstring)."""
    from sklearn.datasets import load_digits

    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    digits = load_digits()
    images = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)  # (1797, 1, 8, 8) in [0, 1]
    labels = torch.from_numpy(digits.target).long()
    keep = _digits_indices(split)
    return _to_uint8(_resize(images[keep], image_size)), labels[keep]


def _digits_indices(split: str) -> torch.Tensor:
    """Sorted indices into load_digits() of the split; a local RNG, so the global state does not matter."""
    order = np.random.default_rng(0).permutation(DIGITS_COUNT)
    chosen = {"test": order[:DIGITS_TEST_COUNT], "train": order[DIGITS_TEST_COUNT:], "all": order}[split]
    return torch.from_numpy(np.sort(chosen))


# ---- CIFAR-10 ----------------------------------------------------------------------------------------------

def _cifar10(image_size: int, data_root, split: str, download: bool) -> torch.Tensor:
    """uint8 (N, 3, S, S): the 50000 training images for "train", the 10000 test images for "test", and
    both for "all"."""
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    parts = [True, False] if split == "all" else [split == "train"]
    images = torch.cat([_cifar10_part(root, train, download) for train in parts])
    return _resize_uint8(images, image_size)


def _cifar10_part(root: Path, train: bool, download: bool) -> torch.Tensor:
    from torchvision.datasets import CIFAR10

    try:
        data = CIFAR10(root=str(root), train=train, download=download).data  # (N, 32, 32, 3) uint8
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        what = f"download into {root} failed ({_one_line(error)})" if download else \
            f"cifar-10-batches-py/ missing or incomplete in {root}, and downloading is off"
        raise DataError(f"cifar10: {what}; put the extracted cifar-10-batches-py/ in a folder and pass "
                        f"--data-root FOLDER") from error
    return torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()


# ---- folder of image files ---------------------------------------------------------------------------------

def _folder(folder: Path, image_size: int) -> torch.Tensor:
    """uint8 (N, 3, S, S): the image files under folder in sorted path order, decoded as RGB."""
    if not folder.is_dir():
        raise DataError(f"folder:{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"folder:{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it or below it")
    return torch.cat([_resize_uint8(_center_crop(_read_image(p)[None]), image_size) for p in files])


def _read_image(path: Path) -> torch.Tensor:
    """uint8 (3, H, W). Pillow (a dependency of torchvision) rather than torchvision.io: that cannot decode
    BMP, and its image decoding is deprecated since torchvision 0.29."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"folder: cannot read image {path}: {_one_line(error)}") from error
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


# ---- arrays in .npz / .npy ---------------------------------------------------------------------------------

def _npz(path: Path, image_size: int) -> torch.Tensor:
    """uint8 (N, C, S, S) from an array laid out (N, H, W), (N, H, W, C) or (N, C, H, W), C in {1, 3}."""
    array = _read_array(path)
    images = _to_nchw(array, path)
    if images.shape[0] == 0:
        raise DataError(f"npz:{path}: no images (shape {array.shape})")
    if images.shape[2] == 0 or images.shape[3] == 0:
        raise DataError(f"npz:{path}: images of shape {array.shape} are empty (zero height or width)")
    return _resize_uint8(_center_crop(_array_to_uint8(images, path)), image_size)


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"npz:{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            return loaded[_npz_key(loaded.files, path)]
    except DataError:  # a ValueError, but already the message to show
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if not _has_numpy_magic(path):  # numpy then tries pickle and blames "pickled data"
            raise DataError(f"npz:{path}: not a .npz or .npy file (neither a zip archive nor a NumPy "
                            f"header)") from error
        if isinstance(error, ValueError) and "allow_pickle" in str(error):
            raise DataError(f"npz:{path}: holds an object array, which is refused: loading it would run "
                            f"pickled code; save the images as a uint8 or float array") from error
        raise DataError(f"npz:{path}: cannot read it as .npz or .npy ({_one_line(error)})") from error


_NUMPY_MAGIC = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")  # .npy; .npz (a zip, or an empty one)


def _has_numpy_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(6).startswith(_NUMPY_MAGIC)
    except OSError:
        return False


def _npz_key(keys: List[str], path: Path) -> str:
    if "images" in keys:
        return "images"
    if len(keys) == 1:
        return keys[0]
    raise DataError(f"npz:{path}: no array named 'images' and {len(keys)} arrays to choose from "
                    f"(keys: {', '.join(keys) or 'none'})")


def _to_nchw(array: np.ndarray, path: Path) -> torch.Tensor:
    """Layout detection: 3-d is (N, H, W); 4-d is (N, C, H, W) if dim 1 is 1 or 3, else (N, H, W, C) if the last
    dim is 1 or 3 (so an (N, 3, H, 3) array is read as channels first)."""
    if array.ndim == 3:
        return torch.from_numpy(array).unsqueeze(1)
    if array.ndim == 4 and array.shape[1] in (1, 3):
        return torch.from_numpy(array)
    if array.ndim == 4 and array.shape[3] in (1, 3):
        return torch.from_numpy(array).permute(0, 3, 1, 2)
    raise DataError(f"npz:{path}: images of shape {array.shape}; expected (N, H, W), (N, H, W, C) or "
                    f"(N, C, H, W) with C in {{1, 3}}")


def _array_to_uint8(images: torch.Tensor, path: Path) -> torch.Tensor:
    """uint8 as is; floats must be finite and in [0, 1]."""
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise DataError(f"npz:{path}: dtype {images.dtype} not accepted; use uint8 (0..255) or float in [0, 1]")
    if not bool(torch.isfinite(images).all()):
        raise DataError(f"npz:{path}: images contain NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise DataError(f"npz:{path}: float images must lie in [0, 1], found values in [{low:g}, {high:g}]")
    return _to_uint8(images.float())


# ---- pixel helpers -----------------------------------------------------------------------------------------

def _center_crop(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, S, S) with S = min(H, W), cut from the middle."""
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top:top + side, left:left + side]


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """float (N, C, H, H) -> float (N, C, size, size), bilinear, antialiased when shrinking."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < images.shape[-1])


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, H) -> uint8 (N, C, size, size), contiguous; in chunks to bound the float copy."""
    if images.shape[-1] == size:
        return images.contiguous()
    chunks = [_to_uint8(_resize(chunk.float() / 255.0, size)) for chunk in images.split(_RESIZE_CHUNK)]
    return torch.cat(chunks)


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 in 0..255, rounded."""
    return images.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).contiguous()


def _to_signed_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
