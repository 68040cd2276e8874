import json

import pytest
from judge_fakes import ScriptedBackend, serve_in_thread

from judge_server.api import create_app
from judge_server.cli import validate_command
from judge_server.config import load_config
from judge_server.errors import JudgeConfigError
from judge_server.validate import read_labelled, validation_report


def test_report_counts_confusion_matrix_and_means():
    labels = [1, 1, 1, 0, 0, 0]
    scores = [0.9, 0.6, 0.2, 0.1, 0.7, None]
    report = validation_report(labels, scores, threshold=0.5)
    assert report["confusion_matrix"] == {
        "true_positive": 2,
        "false_positive": 1,
        "true_negative": 1,
        "false_negative": 1,
    }
    assert report["invalid"] == 1
    assert report["accuracy"] == pytest.approx(3 / 6)  # invalid counts as wrong
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(2 / 3)
    assert report["mean_score_good"] == pytest.approx(1.7 / 3)
    assert report["mean_score_bad"] == pytest.approx(0.4)


def test_bad_data_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n')
    with pytest.raises(JudgeConfigError, match="d.jsonl:2"):
        read_labelled(path)


def test_validate_command_scores_a_live_judge(tmp_path, capsys):
    data = tmp_path / "labelled.jsonl"
    rows = [("tofu", 1), ("beef", 0), ("lentils", 1), ("pork", 0), ("odd", 1)]
    data.write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows)
    )
    replies = {"tofu": "0.9", "beef": "0.1", "lentils": "0.8", "pork": "0.7"}
    replies["odd"] = "no idea"
    config_path = tmp_path / "judge.yaml"
    config_path.write_text(
        f"request_log: {{enabled: false}}\nserver: {{log_dir: {tmp_path}}}\n"
    )
    app = create_app(load_config(config_path), backend=ScriptedBackend(replies))
    out = tmp_path / "report.json"

    with serve_in_thread(app) as url:
        args = type(
            "Args",
            (),
            {
                "judge_url": url,
                "data": data,
                "out": out,
                "threshold": 0.5,
                "rubric": None,
                "min_accuracy": 0.9,
                "api_key_env": "RLAIF_TEST_NO_KEY",
            },
        )
        status = validate_command(args)

    report = json.loads(out.read_text())
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["invalid"] == 1
    assert report["confusion_matrix"]["false_positive"] == 1
    assert status == 1  # below --min-accuracy
    assert "accuracy 0.600" in capsys.readouterr().out
