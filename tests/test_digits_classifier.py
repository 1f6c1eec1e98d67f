"""gan/digits_classifier.py: trained once per session into a temporary cache, then read back from it."""
from __future__ import annotations

import pytest
import torch

from gan import digits_classifier
from gan.data import digits_images
from gan.digits_classifier import CACHE_NAME, FEATURES, VERSION, DigitsFeatures, load_digits_classifier
from gan.embedding import Embedding


@pytest.fixture(scope="module")
def trained(digits_cache):
    """(the session's cache folder, the DigitsFeatures trained into it once per session)."""
    return digits_cache, load_digits_classifier(cache_dir=digits_cache)


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the classifier was retrained")

    monkeypatch.setattr(digits_classifier, "train_digits_classifier", fail)


@pytest.fixture
def copied_cache(trained, tmp_path):
    """A private copy of the session's cache folder, for tests that spoil it."""
    cache, _ = trained
    (tmp_path / CACHE_NAME).write_bytes((cache / CACHE_NAME).read_bytes())
    return tmp_path


def test_trained_accuracy(trained):
    _, features = trained
    assert isinstance(features, DigitsFeatures) and features.name == "digits-classifier"
    assert features.test_accuracy >= 0.97
    images, labels = digits_images("test")
    logits = features.embed(images.float() / 127.5 - 1).logits
    assert (logits.argmax(1) == labels).float().mean().item() == pytest.approx(features.test_accuracy)


def test_embed_shapes_and_batching(trained):
    _, features = trained
    images = torch.rand(7, 1, 32, 32, dtype=torch.float64) * 2 - 1
    whole = features.embed(images)
    assert isinstance(whole, Embedding)
    assert whole.features.shape == (7, FEATURES) and whole.logits.shape == (7, 10)
    assert whole.features.dtype == whole.logits.dtype == torch.float32
    assert whole.features.device.type == "cpu" and not whole.features.requires_grad
    assert (whole.features >= 0).all()  # after a ReLU
    chunked = features.embed(images, batch_size=3)
    torch.testing.assert_close(chunked.features, whole.features)
    torch.testing.assert_close(chunked.logits, whole.logits)
    empty = features.embed(torch.zeros(0, 1, 32, 32))
    assert empty.features.shape == (0, FEATURES) and empty.logits.shape == (0, 10)


def test_embed_checks_its_input(trained):
    _, features = trained
    with pytest.raises(ValueError, match="32"):
        features.embed(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="float"):
        features.embed(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))


def test_embed_batch_matches_forward(trained):
    _, features = trained
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        embedding = features.model.embed_batch(images)
        torch.testing.assert_close(embedding.logits, features.model(images))


def test_cache_file_loads_with_weights_only(trained):
    cache, features = trained
    payload = torch.load(cache / CACHE_NAME, weights_only=True)
    assert payload["version"] == VERSION and payload["feature_dim"] == FEATURES
    assert payload["test_accuracy"] == features.test_accuracy
    assert set(payload["state_dict"]) == set(features.model.state_dict())
    assert not list(cache.glob(".*"))  # no temporary file left behind


def test_second_load_reads_the_cache(trained, no_training):
    cache, features = trained
    again = load_digits_classifier(cache_dir=cache)
    assert again.test_accuracy == features.test_accuracy
    for name, tensor in features.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], tensor), name


def spoil_with_garbage(path):
    path.write_bytes(b"this is not a checkpoint")


def spoil_by_truncating(path):
    path.write_bytes(path.read_bytes()[:1000])


def spoil_the_version(path):
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": VERSION + 1}, path)


def spoil_a_shape(path):
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["head.weight"] = torch.zeros(3, 3)
    torch.save(payload, path)


@pytest.mark.parametrize("spoil", [spoil_with_garbage, spoil_by_truncating, spoil_the_version, spoil_a_shape])
def test_spoilt_cache_is_retrained_and_replaced(copied_cache, monkeypatch, spoil, trained):
    _, features = trained
    path = copied_cache / CACHE_NAME
    spoil(path)
    calls = []

    def train_quickly():  # the session's model stands in for a real retraining
        calls.append(1)
        return features.model, features.test_accuracy

    monkeypatch.setattr(digits_classifier, "train_digits_classifier", train_quickly)
    replaced = load_digits_classifier(cache_dir=copied_cache)
    assert calls == [1] and replaced.test_accuracy == features.test_accuracy
    assert torch.load(path, weights_only=True)["version"] == VERSION
    load_digits_classifier(cache_dir=copied_cache)
    assert calls == [1]


def test_training_is_deterministic_and_leaves_global_state_alone():
    """On a one-epoch run, to keep the test fast."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    config = digits_classifier.TrainConfig(epochs=1)
    model, accuracy = digits_classifier.train_digits_classifier(config)
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.are_deterministic_algorithms_enabled()
    again, accuracy_again = digits_classifier.train_digits_classifier(config)
    assert accuracy == accuracy_again
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_translate_moves_each_image_within_the_shift():
    images = torch.full((50, 1, 8, 8), -1.0)
    images[:, :, 4, 4] = 1.0
    moved = digits_classifier._translate(images, 2, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape
    assert (moved == 1).sum(dim=(1, 2, 3)).eq(1).all()  # the bright pixel stays inside the frame
    rows, cols = (moved[:, 0] == 1).nonzero()[:, 1:].T
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5
    assert torch.equal(digits_classifier._translate(images, 0, torch.Generator()), images)


def test_verbose_prints_one_line_when_training(trained, tmp_path, monkeypatch, capsys):
    _, features = trained
    monkeypatch.setattr(digits_classifier, "train_digits_classifier",
                        lambda: (features.model, features.test_accuracy))
    load_digits_classifier(cache_dir=tmp_path / "new", verbose=True)
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "accuracy" in printed
    load_digits_classifier(cache_dir=tmp_path / "new", verbose=True)
    assert capsys.readouterr().out == ""


def test_features_have_unit_mean_square_on_the_training_digits(trained):
    from gan.data import digits_images

    images, _ = digits_images("train")
    features = trained[1].embed(images.float() / 127.5 - 1).features
    assert float(features.pow(2).mean()) == pytest.approx(1.0, rel=1e-4)
