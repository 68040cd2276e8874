"""The demo's report: report.json, report.md and PNG plots.

Everything here reads artifacts the stages wrote (judge validation JSON,
the trainer's `summary.json` and `metrics.jsonl`, the evaluation JSON), so
the report can be rebuilt from a finished run without training again.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The bar: the non-vegetarian rate falls by at least 70% relative.
TARGET_RELATIVE_DROP = 0.70


def repo_relative(path: Path) -> str:
    """`path` relative to the repo root when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def read_metrics(path: Path) -> list[dict]:
    """Rows of the trainer's per-step `metrics.jsonl` (missing file: none)."""
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def relative_drop(before: float | None, after: float | None) -> float | None:
    """(before - after) / before; None when undefined (before is 0 or unknown)."""
    if before is None or after is None or before == 0:
        return None
    return (before - after) / before


def build_report(
    *,
    validation: dict,
    evaluation: dict,
    train_summary: dict,
    timings_s: dict,
    artifacts: dict,
    seeds: dict,
    settings: dict,
) -> dict:
    """The report.json document (the shape the issue asks for, and more)."""
    base, tuned = evaluation["base"], evaluation["tuned"]
    drop_judge = relative_drop(base["non_veg_rate_judge"], tuned["non_veg_rate_judge"])
    drop_lexicon = relative_drop(
        base["non_veg_rate_lexicon"], tuned["non_veg_rate_lexicon"]
    )
    score_up = (tuned["mean_score"] or 0) > (base["mean_score"] or 0)
    return {
        "judge_validation": {
            key: validation.get(key)
            for key in (
                "n",
                "accuracy",
                "precision",
                "recall",
                "f1",
                "confusion_matrix",
                "invalid",
                "mean_score_good",
                "mean_score_bad",
            )
        },
        "base": base,
        "tuned": tuned,
        "train": {
            "algo": train_summary.get("algo"),
            "steps": train_summary.get("steps"),
            "reward_mean_first": train_summary.get("reward_mean_first"),
            "reward_mean_last": train_summary.get("reward_mean_last"),
            "kl_last": train_summary.get("kl_last"),
            "score_mean_first": train_summary.get("score_mean_first"),
            "score_mean_last": train_summary.get("score_mean_last"),
            "status": train_summary.get("status"),
            "wall_s": train_summary.get("wall_s"),
        },
        "target": {
            "relative_drop_judge": drop_judge,
            "relative_drop_lexicon": drop_lexicon,
            "mean_score_up": score_up,
            "goal_relative_drop": TARGET_RELATIVE_DROP,
            "met": bool(drop_judge is not None and drop_judge >= TARGET_RELATIVE_DROP)
            and score_up,
        },
        "timings_s": timings_s,
        "artifacts": {name: repo_relative(path) for name, path in artifacts.items()},
        "seeds": seeds,
        "settings": settings,
    }


def plot_training(metrics: list[dict], out: Path) -> Path:
    """Reward mean with a +-std band, and KL, over PPO steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row.get("step", index + 1) for index, row in enumerate(metrics)]
    mean = [row.get("reward/mean", float("nan")) for row in metrics]
    std = [row.get("reward/std", 0.0) or 0.0 for row in metrics]
    kl = [row.get("objective/kl", float("nan")) for row in metrics]
    figure, (reward_axis, kl_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    reward_axis.plot(steps, mean, color="tab:green", label="reward mean")
    reward_axis.fill_between(
        steps,
        [m - s for m, s in zip(mean, std, strict=True)],
        [m + s for m, s in zip(mean, std, strict=True)],
        color="tab:green",
        alpha=0.2,
        label="+- std",
    )
    reward_axis.set(xlabel="PPO step", ylabel="reward (judge logit)", title="Reward")
    reward_axis.legend(loc="lower right")
    kl_axis.plot(steps, kl, color="tab:purple")
    kl_axis.set(xlabel="PPO step", ylabel="KL to base", title="KL")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def plot_before_after(evaluation: dict, out: Path) -> Path:
    """Bars: non-vegetarian rate (judge, lexicon) and mean score, base vs tuned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["non-veg (judge)", "non-veg (lexicon)", "mean judge score"]
    keys = ["non_veg_rate_judge", "non_veg_rate_lexicon", "mean_score"]
    base = [evaluation["base"][key] or 0.0 for key in keys]
    tuned = [evaluation["tuned"][key] or 0.0 for key in keys]
    positions = range(len(labels))
    figure, axis = plt.subplots(figsize=(7, 3.6))
    axis.bar([p - 0.2 for p in positions], base, 0.4, label="base", color="tab:red")
    axis.bar([p + 0.2 for p in positions], tuned, 0.4, label="tuned", color="tab:green")
    axis.set_xticks(list(positions), labels)
    axis.set_ylim(0, 1)
    axis.set_title(f"Hold-out questions (n={evaluation['base']['n']})")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _fmt(value, kind: str = "f") -> str:
    if value is None:
        return "n/a"
    if kind == "%":
        return f"{value:.0%}"
    return f"{value:.3f}"


def headline_table(report: dict) -> str:
    """The table the terminal shows and report.md opens with (Markdown)."""
    base, tuned, target = report["base"], report["tuned"], report["target"]
    dpo = report.get("dpo")  # present with `rlaif demo --with-dpo`
    rows = [
        ("non-veg rate (judge, score < 0.5)", "non_veg_rate_judge", "%"),
        ("non-veg rate (lexicon)", "non_veg_rate_lexicon", "%"),
        ("mean judge score", "mean_score", "f"),
        ("answers that stop at EOS", "stopped_rate", "%"),
    ]
    models = [base, tuned] + ([dpo] if dpo else [])
    algo = (report.get("train") or {}).get("algo") or "tuned"
    header = f"| base | tuned ({algo}) | dpo |" if dpo else "| base | tuned |"
    lines = [
        f"| hold-out (n={base['n']}) {header}",
        "|---" + "|---:" * len(models) + "|",
    ]
    for label, key, kind in rows:
        cells = " | ".join(_fmt(model.get(key), kind) for model in models)
        lines.append(f"| {label} | {cells} |")
    lines.append(
        f"| relative drop (judge / lexicon) | | "
        f"{_fmt(target['relative_drop_judge'], '%')} / "
        f"{_fmt(target['relative_drop_lexicon'], '%')} |"
        + (f" {_dpo_drops(base, dpo)} |" if dpo else "")
    )
    return "\n".join(lines)


def _dpo_drops(base: dict, dpo: dict) -> str:
    judge = relative_drop(base["non_veg_rate_judge"], dpo["non_veg_rate_judge"])
    lexicon = relative_drop(base["non_veg_rate_lexicon"], dpo["non_veg_rate_lexicon"])
    return f"{_fmt(judge, '%')} / {_fmt(lexicon, '%')}"


def _examples(evaluation: dict, limit: int = 6) -> list[str]:
    """Answers side by side, preferring questions where the verdict changed."""
    answers = evaluation.get("answers", [])
    changed = [
        row
        for row in answers
        if row["base"]["valid"]
        and row["tuned"]["valid"]
        and row["base"]["score"] < 0.5 <= row["tuned"]["score"]
    ]
    lines = ["| question | base (score) | tuned (score) |", "|---|---|---|"]
    for row in (changed or answers)[:limit]:
        cells = [row["question"]] + [
            f"{row[side]['text']} ({_fmt(row[side]['score'])})"
            for side in ("base", "tuned")
        ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return lines


def render_markdown(report: dict, evaluation: dict, plots: dict[str, Path]) -> str:
    validation, train, target = (
        report["judge_validation"],
        report["train"],
        report["target"],
    )
    verdict = "met" if target["met"] else "NOT met"
    lines = [
        "# RLAIF demo report",
        "",
        f"Target ({target['goal_relative_drop']:.0%} relative drop of the "
        f"non-vegetarian rate, mean judge score up): **{verdict}**.",
        "",
        headline_table(report),
        "",
        "## Judge validation",
        "",
        f"n={validation['n']}, accuracy {_fmt(validation['accuracy'])}, precision "
        f"{_fmt(validation['precision'])}, recall {_fmt(validation['recall'])}, "
        f"F1 {_fmt(validation['f1'])}.",
        "",
        "## Training",
        "",
        f"{train['algo']}, {train['steps']} steps: reward mean "
        f"{_fmt(train['reward_mean_first'])} -> {_fmt(train['reward_mean_last'])}, "
        f"KL at the end {_fmt(train['kl_last'])}.",
        "",
    ]
    if report.get("dpo_train"):
        dpo = report["dpo_train"]
        lines += [
            f"dpo, {dpo['steps']} steps on {dpo['pairs']} judge-labelled pairs: "
            f"loss {_fmt(dpo['loss_first'])} -> {_fmt(dpo['loss_last'])}, reward "
            f"margin {_fmt(dpo['margin_first'])} -> {_fmt(dpo['margin_last'])}.",
            "",
        ]
    for name, path in plots.items():
        # report.md sits next to the plots folder.
        lines += [f"![{name}](plots/{Path(path).name})", ""]
    lines += ["## Answers side by side", "", *_examples(evaluation), ""]
    lines += ["## Timings (s)", "", "| stage | seconds |", "|---|---:|"]
    lines += [
        f"| {stage} | {seconds:.1f} |" for stage, seconds in report["timings_s"].items()
    ]
    lines += ["", "## Artifacts", ""]
    lines += [f"- {name}: `{path}`" for name, path in report["artifacts"].items()]
    lines += ["", f"Seeds: `{json.dumps(report['seeds'])}`", ""]
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict, evaluation: dict, metrics: list[dict]):
    """Write report.json, report.md and the plots into `out_dir`."""
    plot_root = out_dir / "plots"
    plot_root.mkdir(parents=True, exist_ok=True)
    plots = {
        "reward and KL over PPO steps": plot_training(
            metrics, plot_root / "training.png"
        ),
        "base vs tuned": plot_before_after(evaluation, plot_root / "before_after.png"),
    }
    report["artifacts"].update(
        {f"plot_{path.stem}": repo_relative(path) for path in plots.values()}
    )
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report, evaluation, plots))
    return out_dir / "report.json", out_dir / "report.md"
