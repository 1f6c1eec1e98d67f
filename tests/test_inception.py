"""The FID Inception network (gan.inception) with random weights: layout, preprocessing, the block variants of
the FID graph, and the weights file's resolution and checks. Never touches the network: downloads are
replaced by stubs. One test uses the real weights file, only when it is already on this machine."""
from __future__ import annotations

import hashlib
import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import inception as tv_inception

import gan.inception as inception
from gan.embedding import Embedding
from gan.inception import FIDInception, InceptionFeatures, InceptionWeightsError, load_inception

# pytorch-fid's fid_inception_v3 is torchvision's Inception3(num_classes=1008, aux_logits=False) with the A, C
# and E blocks replaced by subclasses that add no parameters, so that model's state dict is the reference
# layout; these numbers are derived from it (94 conv+BN units, 5 entries per BN, conv weight, fc weight+bias).
REFERENCE_ENTRIES = 94 * 6 + 2
REFERENCE_PARAMETERS = 23_850_960
REFERENCE_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def _real_weights():
    env = os.environ.get(inception.WEIGHTS_ENV)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / inception.WEIGHTS_FILE
    for candidate in ([Path(env)] if env else []) + [cached]:
        if candidate.is_file():
            return candidate
    return None


REAL_WEIGHTS = _real_weights()


def _random_model(seed=0):
    torch.manual_seed(seed)
    return FIDInception().eval()


def _images(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty torch.hub directory, no GAN_INCEPTION_WEIGHTS, and a download that fails the test if called."""
    directory = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(directory))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)

    def no_network(*args, **kwargs):
        pytest.fail("the test tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return directory


def _one_line_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------------------
# Layout and forward


def test_state_dict_matches_the_reference_layout():
    ours = {key: tuple(value.shape) for key, value in _random_model().state_dict().items()}
    reference_model = tv_inception.Inception3(num_classes=1008, aux_logits=False, transform_input=False,
                                              init_weights=False)
    reference = {key: tuple(value.shape) for key, value in reference_model.state_dict().items()}
    assert ours == reference
    assert len(ours) == REFERENCE_ENTRIES
    for key, shape in REFERENCE_SHAPES.items():
        assert ours[key] == shape, key
    assert not any(key.startswith("AuxLogits") for key in ours)
    assert sum(p.numel() for p in _random_model().parameters()) == REFERENCE_PARAMETERS


@pytest.mark.parametrize("channels", [3, 1])
def test_forward_shapes(channels):
    model = _random_model()
    with torch.no_grad():
        features, logits = model(_images((2, channels, 32, 32)))
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    assert (features >= 0).all()  # a global average of ReLU outputs


def test_preprocess_repeats_channels_and_resizes_like_pytorch_fid():
    gray = _images((2, 1, 17, 23))
    out = FIDInception.preprocess(gray)
    assert out.shape == (2, 3, 299, 299)
    assert torch.equal(out[:, 0], out[:, 2])
    # pytorch-fid resizes [0, 1] images and then maps them to [-1, 1]: the same numbers up to rounding
    unit = (gray.expand(-1, 3, -1, -1) + 1) / 2
    theirs = 2 * F.interpolate(unit, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert torch.allclose(out, theirs, atol=1e-6)
    exact = _images((1, 3, 299, 299))
    assert FIDInception.preprocess(exact) is exact


def test_block_pools_follow_the_fid_graph():
    torch.manual_seed(0)
    model = FIDInception().eval()
    x = torch.rand(1, 288, 9, 9)
    with torch.no_grad():
        # A, C and the first E block: average pools that leave the zero padding out
        for block, channels in ((model.Mixed_5d, 64), (model.Mixed_6b, 192)):
            inp = x if block is model.Mixed_5d else torch.rand(1, 768, 9, 9)
            pooled = F.avg_pool2d(inp, 3, stride=1, padding=1, count_include_pad=False)
            assert torch.allclose(block(inp)[:, -channels:], block.branch_pool(pooled), atol=1e-6)
        x7 = torch.rand(1, 1280, 8, 8)
        pooled = F.avg_pool2d(x7, 3, stride=1, padding=1, count_include_pad=False)
        assert torch.allclose(model.Mixed_7b(x7)[:, -192:], model.Mixed_7b.branch_pool(pooled), atol=1e-6)
        # the last E block: a max pool
        x8 = torch.rand(1, 2048, 8, 8)
        pooled = F.max_pool2d(x8, 3, stride=1, padding=1)
        assert torch.allclose(model.Mixed_7c(x8)[:, -192:], model.Mixed_7c.branch_pool(pooled), atol=1e-6)
        # and torchvision's own block (padding counted) differs on the border
        reference = tv_inception.InceptionA(288, pool_features=64).eval()
        reference.load_state_dict(model.Mixed_5d.state_dict())
        assert not torch.allclose(reference(x), model.Mixed_5d(x), atol=1e-6)


def test_embed_batches_and_returns_cpu_float32():
    model = _random_model()
    features = InceptionFeatures(model)
    assert features.name == "inception-2015-12-05"
    images = _images((2, 1, 20, 20), seed=1)
    emb = features.embed(images.double(), batch_size=1)
    assert isinstance(emb, Embedding)
    assert emb.features.shape == (2, 2048) and emb.logits.shape == (2, 1008)
    assert emb.features.dtype == torch.float32 and emb.features.device.type == "cpu"
    with torch.no_grad():
        direct, biased = model(images)
    assert torch.allclose(emb.features, direct, rtol=1e-4, atol=1e-6)
    # logits without the fc bias by default (the IS convention), with it on request
    assert torch.allclose(emb.logits, emb.features @ model.fc.weight.detach().T, rtol=1e-4, atol=1e-5)
    assert torch.allclose(biased, direct @ model.fc.weight.detach().T + model.fc.bias.detach(), atol=1e-5)
    assert emb.features.grad_fn is None and emb.logits.grad_fn is None


@pytest.mark.parametrize("images, message", [
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "floating point"),
    (torch.full((2, 3, 8, 8), 255.0), r"in \[-1, 1\]"),
    (torch.zeros(2, 2, 8, 8), r"\(N, 1 or 3, H, W\)"),
    (torch.zeros(3, 8, 8), r"\(N, 1 or 3, H, W\)"),
    (torch.full((2, 3, 8, 8), float("nan")), "non-finite"),
])
def test_embed_rejects_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        InceptionFeatures(_random_model()).embed(images)


# ---------------------------------------------------------------------------------------------------------
# Weights: resolution, checksum, download


def _write_state(path, state, legacy=False):
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wrong_file_is_rejected_by_sha256(hub, tmp_path):
    wrong = tmp_path / "weights.pth"
    wrong.write_bytes(b"not the inception weights")
    with pytest.raises(InceptionWeightsError) as excinfo:
        load_inception(weights=wrong)
    message = _one_line_error(excinfo)
    assert str(wrong) in message and inception.WEIGHTS_SHA256 in message
    assert hashlib.sha256(b"not the inception weights").hexdigest() in message


def test_missing_explicit_file_is_reported(hub, tmp_path):
    with pytest.raises(InceptionWeightsError) as excinfo:
        load_inception(weights=tmp_path / "absent.pth")
    message = _one_line_error(excinfo)
    assert "absent.pth" in message and "does not exist" in message


def test_missing_file_without_download(hub):
    with pytest.raises(InceptionWeightsError) as excinfo:
        load_inception(download=False)
    message = _one_line_error(excinfo)
    assert str(hub / "checkpoints" / inception.WEIGHTS_FILE) in message
    assert "--inception-weights PATH" in message and "GAN_INCEPTION_WEIGHTS" in message


def test_environment_variable_pointing_at_a_missing_file(hub, monkeypatch, tmp_path):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(InceptionWeightsError) as excinfo:
        load_inception()
    message = _one_line_error(excinfo)
    assert "nowhere.pth" in message and "GAN_INCEPTION_WEIGHTS" in message


def test_environment_variable_takes_precedence_over_the_cache(hub, monkeypatch, tmp_path):
    wrong = tmp_path / "env.pth"
    wrong.write_bytes(b"x")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(wrong))
    with pytest.raises(InceptionWeightsError, match="wrong SHA-256"):
        load_inception()


def test_failed_download_is_one_line_and_leaves_nothing(hub, monkeypatch):
    def offline(url, dst, *args, **kwargs):
        Path(dst).write_bytes(b"partial")
        raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(InceptionWeightsError) as excinfo:
        load_inception()
    message = _one_line_error(excinfo)
    assert "cannot download" in message and "--inception-weights PATH" in message
    assert "GAN_INCEPTION_WEIGHTS" in message
    assert list((hub / "checkpoints").iterdir()) == []


def test_corrupt_download_is_rejected_and_not_kept(hub, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, *args, **kwargs: Path(dst).write_bytes(b"html error page"))
    with pytest.raises(InceptionWeightsError, match="wrong SHA-256"):
        load_inception()
    assert list((hub / "checkpoints").iterdir()) == []


def test_weights_round_trip_through_download_and_cache(hub, monkeypatch, tmp_path):
    source = _random_model(seed=3)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    served = tmp_path / "served.pth"
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", _write_state(served, state, legacy=True))
    calls = []

    def fake_download(url, dst, *args, **kwargs):
        calls.append(url)
        Path(dst).write_bytes(served.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    loaded = load_inception()
    assert calls == [inception.WEIGHTS_URL]
    assert sorted(p.name for p in (hub / "checkpoints").iterdir()) == [inception.WEIGHTS_FILE]
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.model.state_dict()[key], value), key
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())
    load_inception(download=False)  # now from the cache, checked again, no second download
    assert len(calls) == 1


def test_checked_file_that_does_not_fit_the_network(hub, monkeypatch, tmp_path):
    path = tmp_path / "partial.pth"
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", _write_state(path, {"fc.weight": torch.zeros(1008, 2048)}))
    with pytest.raises(InceptionWeightsError) as excinfo:
        load_inception(weights=path)
    assert "do not fit" in _one_line_error(excinfo)


@pytest.mark.skipif(REAL_WEIGHTS is None, reason="the FID Inception weights file is not on this machine")
def test_real_weights():
    net = load_inception(weights=REAL_WEIGHTS)
    emb = net.embed(_images((2, 3, 64, 64)))
    assert emb.features.shape == (2, 2048) and emb.logits.shape == (2, 1008)
    assert torch.isfinite(emb.features).all() and (emb.features >= 0).all()
