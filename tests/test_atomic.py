"""Atomic writes: the destination is either the old or the new file, never a half-written one, and gets
the permissions of a plainly created file."""
from __future__ import annotations

import os

import pytest

from gan.atomic import write_atomically, write_text_atomically


def test_new_file_has_the_usual_permissions(tmp_path):
    write_text_atomically(tmp_path / "a.json", "{}")
    plain = tmp_path / "plain"
    plain.write_text("")
    assert (tmp_path / "a.json").read_text() == "{}"
    assert os.stat(tmp_path / "a.json").st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("old")

    def fail(name):
        with open(name, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
