"""gan/data.py: the digits split, the npz and folder loaders, and their one-line DataErrors. No network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import write_png

from gan.data import DataError, ImageData, _digits_indices, digits_images, load_dataset


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    text = str(error.value)
    assert "\n" not in text and text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ---- digits ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split, count", [("train", 1437), ("test", 360), ("all", 1797)])
def test_digits_split_sizes_and_format(split, count):
    images, labels = digits_images(split)
    assert images.shape == (count, 1, 32, 32) and images.dtype == torch.uint8 and images.is_contiguous()
    assert labels.shape == (count,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(10))
    assert images.min() == 0 and images.max() == 255


def test_digits_splits_are_disjoint_and_cover_all():
    train, test = _digits_indices("train"), _digits_indices("test")
    assert len(set(train.tolist()) & set(test.tolist())) == 0
    assert sorted(train.tolist() + test.tolist()) == _digits_indices("all").tolist() == list(range(1797))
    (train_x, train_y), (test_x, test_y), (all_x, all_y) = (digits_images(s) for s in ("train", "test", "all"))
    assert torch.equal(all_x[train], train_x) and torch.equal(all_y[train], train_y)
    assert torch.equal(all_x[test], test_x) and torch.equal(all_y[test], test_y)


def test_digits_split_ignores_the_global_rng():
    torch.manual_seed(1)
    np.random.seed(1)
    first = digits_images("test")
    torch.manual_seed(2)
    np.random.seed(2)
    torch.rand(5)
    second = digits_images("test")
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_digits_resize():
    images, _ = digits_images("all", image_size=16)
    assert images.shape == (1797, 1, 16, 16)
    native, _ = digits_images("all", image_size=8)
    assert native.shape == (1797, 1, 8, 8)


def test_load_dataset_digits_batch_range():
    data = load_dataset("digits")
    assert isinstance(data, ImageData) and data.name == "digits"
    assert len(data) == 1437 and data.channels == 1
    batch = data.batch(torch.tensor([0, 5, 7]))
    assert batch.shape == (3, 1, 32, 32) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    everything = data.as_float()
    assert everything.shape == (1437, 1, 32, 32)
    assert everything.min() == -1 and everything.max() == 1
    assert torch.equal(everything[[0, 5, 7]], batch)


def test_bad_split_and_image_size():
    with pytest.raises(DataError) as error:
        load_dataset("digits", split="valid")
    assert_one_line(error, "valid", "train")
    with pytest.raises(DataError):
        load_dataset("digits", image_size=0)


def test_unknown_spec():
    for spec in ("mnist", "folder:", "npz", "zip:/tmp/x"):
        with pytest.raises(DataError) as error:
            load_dataset(spec)
        assert_one_line(error, "digits", "cifar10", "folder:PATH", "npz:PATH")


# ---- npz / npy ---------------------------------------------------------------------------------------------

def pattern(n, h, w, c):
    """uint8 (n, h, w, c) with distinct values."""
    return (np.arange(n * h * w * c) % 251).astype(np.uint8).reshape(n, h, w, c)


def save(tmp_path, name, **arrays):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, arrays["images"])
    else:
        np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize("channels", [1, 3])
def test_npz_layouts_agree(tmp_path, channels):
    nhwc = pattern(4, 8, 8, channels)
    expected = torch.from_numpy(nhwc).permute(0, 3, 1, 2)
    layouts = {"nhwc.npz": nhwc, "nchw.npz": nhwc.transpose(0, 3, 1, 2), "nhwc.npy": nhwc}
    if channels == 1:
        layouts["nhw.npz"] = nhwc[..., 0]
    for name, array in layouts.items():
        data = load_dataset(save(tmp_path, name, images=array), image_size=8)
        assert data.images.shape == (4, channels, 8, 8) and data.images.is_contiguous(), name
        assert torch.equal(data.images, expected), name
        assert data.name == f"npz:{tmp_path / name}"


def test_npz_float_and_single_key_and_resize(tmp_path):
    floats = np.random.default_rng(0).random((3, 10, 10, 3)).astype(np.float32)
    data = load_dataset(save(tmp_path, "f.npz", anything=floats), image_size=10)
    expected = torch.from_numpy(np.round(floats * 255)).to(torch.uint8).permute(0, 3, 1, 2)
    assert torch.equal(data.images, expected)
    assert load_dataset(save(tmp_path, "f.npz", anything=floats), image_size=32).images.shape == (3, 3, 32, 32)
    assert load_dataset(save(tmp_path, "f.npz", anything=floats), image_size=4).images.shape == (3, 3, 4, 4)


def test_npz_non_square_is_center_cropped(tmp_path):
    array = pattern(2, 6, 10, 1)[..., 0]
    data = load_dataset(save(tmp_path, "wide.npz", images=array), image_size=6)
    assert torch.equal(data.images[:, 0], torch.from_numpy(array[:, :, 2:8]))


@pytest.mark.parametrize("arrays, fragments", [
    ({"a": np.zeros((2, 4, 4), np.uint8), "b": np.zeros((2, 4, 4), np.uint8)}, ("images", "a, b")),
    ({"images": np.full((2, 4, 4), np.nan, np.float32)}, ("NaN",)),
    ({"images": np.full((2, 4, 4), 2.0)}, ("[0, 1]", "2")),
    ({"images": np.full((2, 4, 4), -0.5)}, ("[0, 1]",)),
    ({"images": np.zeros((2, 4), np.uint8)}, ("(2, 4)",)),
    ({"images": np.zeros((2, 4, 4, 5), np.uint8)}, ("(2, 4, 4, 5)",)),
    ({"images": np.zeros((2, 4, 4), np.int32)}, ("int32", "uint8")),
    ({"images": np.zeros((0, 4, 4), np.uint8)}, ("no images",)),
    ({"images": np.zeros((10, 0, 0), np.uint8)}, ("(10, 0, 0)", "empty (zero height or width)")),
    ({"images": np.zeros((10, 4, 0, 3), np.float32)}, ("(10, 4, 0, 3)", "empty (zero height or width)")),
])
def test_npz_errors(tmp_path, arrays, fragments):
    spec = save(tmp_path, "bad.npz", **arrays)
    with pytest.raises(DataError) as error:
        load_dataset(spec)
    assert_one_line(error, str(tmp_path / "bad.npz"), *fragments)


def test_npz_missing_or_unreadable(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    assert_one_line(error, "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not numpy")
    with pytest.raises(DataError) as error:
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    assert_one_line(error, "junk.npz")


def test_npz_not_numpy_or_an_object_array(tmp_path):
    """numpy reads any file without its header as a pickle and blames "pickled data": say what it is instead,
    and never suggest allowing pickles."""
    for name in ("text.npz", "text.npy"):
        (tmp_path / name).write_text("1 2 3\n4 5 6\n")
        with pytest.raises(DataError) as error:
            load_dataset(f"npz:{tmp_path / name}")
        assert_one_line(error, str(tmp_path / name), "not a .npz or .npy file (neither a zip archive nor a "
                                                     "NumPy header)")
        assert "pickle" not in str(error.value)
    np.save(tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "objects.npz", images=np.array([[1, "a"]], dtype=object))
    for name in ("objects.npy", "objects.npz"):
        with pytest.raises(DataError) as error:
            load_dataset(f"npz:{tmp_path / name}")
        assert_one_line(error, str(tmp_path / name), "object array, which is refused: loading it would run "
                                                     "pickled code")
        assert "allow_pickle" not in str(error.value)


# ---- folder of images --------------------------------------------------------------------------------------

# torchvision 0.29 deprecates its image codecs; write_png is only used here to make the test files
@pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")
def test_folder_of_images(tmp_path):
    (tmp_path / "sub").mkdir()
    red = torch.zeros(3, 20, 30, dtype=torch.uint8)
    red[0] = 255
    write_png(red, str(tmp_path / "b.png"))
    write_png(torch.full((1, 16, 16), 128, dtype=torch.uint8), str(tmp_path / "sub" / "c.PNG"))
    write_png(torch.full((3, 40, 40), 7, dtype=torch.uint8), str(tmp_path / "a.png"))
    Image.new("RGB", (12, 12), (0, 0, 200)).save(tmp_path / "d.bmp")
    Image.new("L", (24, 24), 60).save(tmp_path / "e.jpeg", quality=100)
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_dataset(f"folder:{tmp_path}", image_size=16)
    assert data.images.shape == (5, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.name == f"folder:{tmp_path}"
    # sorted paths: a.png, b.png, d.bmp, e.jpeg, sub/c.PNG
    assert (data.images[0] == 7).all()
    assert (data.images[1, 0] == 255).all() and (data.images[1, 1:] == 0).all()
    assert (data.images[2, 2] == 200).all() and (data.images[2, :2] == 0).all()
    assert ((data.images[3].int() - 60).abs() <= 1).all()
    assert (data.images[4] == 128).all()


def test_folder_errors(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset(f"folder:{tmp_path}")
    assert_one_line(error, str(tmp_path), "no image files")
    with pytest.raises(DataError) as error:
        load_dataset(f"folder:{tmp_path / 'absent'}")
    assert_one_line(error, str(tmp_path / "absent"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DataError) as error:
        load_dataset(f"folder:{tmp_path}")
    assert_one_line(error, str(tmp_path / "broken.png"))


# ---- CIFAR-10 (never downloaded here) ----------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_missing_files(tmp_path, split):
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_root=tmp_path, split=split, download=False)
    assert_one_line(error, "--data-root", str(tmp_path))
