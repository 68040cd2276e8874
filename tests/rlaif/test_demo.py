"""`rlaif demo --quick` end to end, and the demo's stage bookkeeping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlaif import demo
from rlaif.demo import DemoError, DemoOptions, DemoRun, Stage, run_demo

REPO = Path(__file__).resolve().parents[2]
METRIC_KEYS = {"n", "non_veg_rate_judge", "non_veg_rate_lexicon", "mean_score"}


def _rlaif_demo(out: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rlaif.cli",
            "demo",
            "--quick",
            "--out",
            str(out),
            *flags,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, _rlaif_demo(out)


def test_quick_demo_writes_every_artifact_and_report_field(quick_demo):
    out, result = quick_demo
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())

    validation = report["judge_validation"]
    assert {"n", "accuracy", "precision", "recall", "f1"} <= validation.keys()
    assert validation["n"] >= 200 and 0 <= validation["accuracy"] <= 1
    for side in ("base", "tuned"):
        assert METRIC_KEYS <= report[side].keys()
        assert report[side]["n"] == 20
    train = report["train"]
    assert train["algo"] == "ppo" and train["steps"] == 2
    for key in ("reward_mean_first", "reward_mean_last", "kl_last"):
        assert isinstance(train[key], float)
    stages = ("bootstrap", "prompts", "judge_validation", "train", "eval", "report")
    assert set(stages) <= report["timings_s"].keys()
    assert report["timings_s"]["total"] > 0
    for name in ("base", "adapter"):
        path = report["artifacts"][name]
        assert not Path(path).is_absolute() or not path.startswith(str(REPO))
        assert (REPO / path if not Path(path).is_absolute() else Path(path)).is_dir()
    assert (out / "base" / "config.json").is_file()
    assert (out / "ppo" / "adapter_config.json").is_file()
    assert (out / "prompts" / "holdout.txt").read_text().count("\n") == 20
    assert (out / "plots" / "training.png").stat().st_size > 1000
    assert (out / "plots" / "before_after.png").stat().st_size > 1000
    markdown = (out / "report.md").read_text()
    assert "| non-veg rate (judge, score < 0.5) |" in markdown
    assert "plots/training.png" in markdown
    assert "non-veg rate (judge" in result.stdout  # the headline table
    assert (out / "logs" / "judge_server.log").is_file()


def test_quick_demo_rerun_reuses_finished_stages(quick_demo):
    out, first = quick_demo
    assert first.returncode == 0
    again = _rlaif_demo(out)
    assert again.returncode == 0, again.stderr[-2000:]
    for stage in ("bootstrap", "prompts", "judge_validation", "train", "eval"):
        assert f"reuse  {stage}" in again.stdout
    assert "judge_server" not in again.stdout  # nothing needed the judge


def _fake_run(tmp_path, stages, monkeypatch, **options) -> dict:
    monkeypatch.setattr(demo, "build_stages", lambda _options: stages)
    return run_demo(DemoOptions(out=tmp_path, **options))


def test_failed_stage_names_the_stage_reason_and_log(tmp_path, monkeypatch):
    def boom(run: DemoRun) -> dict:
        run.command("boom", ["no-such-command"])
        return {}

    with pytest.raises(DemoError) as caught:
        _fake_run(tmp_path, [Stage("boom", "fails", boom)], monkeypatch)
    message = str(caught.value)
    assert message.startswith("boom failed: exit code 2")
    assert "invalid choice" in message
    assert str(tmp_path / "logs" / "boom.log") in message


def test_judge_below_the_accuracy_bar_stops_the_demo_unless_forced(
    tmp_path, monkeypatch
):
    def fake_validate(run: DemoRun, stage: str, argv: list[str]) -> None:
        out = Path(argv[argv.index("--out") + 1])
        out.write_text(json.dumps({"n": 200, "accuracy": 0.6}))

    monkeypatch.setattr(DemoRun, "command", fake_validate)
    monkeypatch.setattr(DemoRun, "judge_url", lambda run: "http://127.0.0.1:9")
    stage = Stage("judge_validation", "", demo.stage_judge_validation)
    with pytest.raises(DemoError, match="accuracy 0.6 is below 0.85.*--force"):
        _fake_run(tmp_path, [stage], monkeypatch)
    state = _fake_run(tmp_path, [stage], monkeypatch, force=True)
    assert state["judge_validation"]["result"]["accuracy"] == 0.6


def test_with_dpo_adds_a_dpo_column_and_entry_reusing_the_ppo_stages(quick_demo):
    out, first = quick_demo
    assert first.returncode == 0
    result = _rlaif_demo(out, "--with-dpo")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    for stage in ("bootstrap", "prompts", "judge_validation", "train", "eval"):
        assert f"reuse  {stage}" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert METRIC_KEYS <= report["dpo"].keys() and report["dpo"]["n"] == 20
    assert report["dpo_train"]["algo"] == "dpo" and report["dpo_train"]["steps"] == 2
    assert report["dpo_train"]["pairs"] >= 1
    assert (out / "dpo" / "adapter_config.json").is_file()
    # Same seeds as PPO's eval: the base answers are the very same.
    base_ppo = json.loads((out / "eval.json").read_text())["base"]
    assert json.loads((out / "eval_dpo.json").read_text())["base"] == base_ppo
    assert "| base | tuned (ppo) | dpo |" in (out / "report.md").read_text()
    assert "tuned (ppo) | dpo |" in result.stdout


def test_editing_an_input_file_reruns_that_stage_and_the_later_ones(
    tmp_path, monkeypatch
):
    calls: list[str] = []

    def recorder(name: str):
        def run(run: DemoRun) -> dict:
            calls.append(name)
            run.path(name).write_text("done")
            return {}

        return run

    corpus, config = tmp_path / "corpus.jsonl", tmp_path / "train.yaml"
    corpus.write_text("corpus v1")
    config.write_text("lr: 1")
    stages = [
        Stage("base", "", recorder("base"), outputs=("base",), inputs=("corpus",)),
        Stage("train", "", recorder("train"), outputs=("train",),
              inputs=("train_config",)),
        Stage("eval", "", recorder("eval"), outputs=("eval",)),
    ]  # fmt: skip
    options = {"corpus": corpus, "train_config": config}
    out = tmp_path / "out"
    _fake_run(out, stages, monkeypatch, **options)
    _fake_run(out, stages, monkeypatch, **options)
    assert calls == ["base", "train", "eval"]

    config.write_text("lr: 2")
    _fake_run(out, stages, monkeypatch, **options)
    assert calls[3:] == ["train", "eval"]
