"""The console script turns user mistakes into one line and exit code 2."""

from __future__ import annotations

import pytest

from rlaif.cli import main


def test_bad_input_file_is_one_line_not_a_traceback(tmp_path, capsys):
    data = tmp_path / "eval.jsonl"
    data.write_text('{"text": "lentil soup"}\n')  # no label

    code = main(
        ["judge", "validate", "--judge-url", "http://127.0.0.1:9", "--data",
         str(data), "--out", str(tmp_path / "out.json")]
    )  # fmt: skip

    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("rlaif judge: error: ")


def test_debug_log_level_shows_the_traceback(tmp_path):
    missing = tmp_path / "missing.jsonl"

    with pytest.raises(OSError):
        main(
            ["--log-level", "DEBUG", "judge", "validate", "--judge-url",
             "http://127.0.0.1:9", "--data", str(missing), "--out",
             str(tmp_path / "out.json")]
        )  # fmt: skip
