"""Checks shared by the tests of the command lines: a failure a user can cause is one line on stderr, no
traceback, exit status 2."""
from __future__ import annotations

import pytest


def assert_one_line_error(capsys, *fragments: str, prefix: str = "error: ") -> str:
    """stderr (read from capsys) is one line starting with prefix and holding every fragment; returns it."""
    out, err = capsys.readouterr()
    assert err.startswith(prefix) and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def assert_parser_refuses(capsys, call, prog: str, flag: str, fragment: str) -> None:
    """call() exits with status 2 and the one-line message of prog's parser about flag, holding fragment."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code == 2
    assert_one_line_error(capsys, f"argument {flag}: ", fragment, prefix=f"python -m {prog}: error: ")
