"""The demo's DPO stages (`rlaif demo --with-dpo`), after PPO's eval.

    dpo_pairs  -> <out>/dpo_pairs.parquet   the base policy's answers to the
                                            training prompts, ranked by the judge
    dpo_train  -> <out>/dpo                 DPO + LoRA on those pairs, no judge
    dpo_eval   -> <out>/eval_dpo.json       base vs DPO on the same hold-out,
                                            same seeds as PPO's eval

The pairs come from the same base policy and training prompts PPO starts
from, and the evaluation is PPO's, so the report's base, PPO and DPO
columns differ only by the algorithm.
"""

from __future__ import annotations

import json
import shutil

from rlaif.demo import DemoRun, Stage, evaluate_adapter, finished_summary

# --quick: a handful of prompts and two optimiser steps, to test the plumbing.
QUICK_PROMPTS = 24
QUICK_STEPS = 2


def stage_dpo_pairs(run: DemoRun) -> dict:
    options, out = run.options, run.path("dpo_pairs.parquet")
    argv = ["dpo", "pairs", "--config", str(options.dpo_config)]
    argv += ["--policy", str(run.path("base"))]
    argv += ["--prompts", str(run.path("prompts/train.txt"))]
    argv += ["--judge-url", run.judge_url(), "--out", str(out)]
    argv += ["--set", f"optim.seed={options.seed}"]
    if options.quick:
        argv += ["--limit", str(QUICK_PROMPTS)]
    run.command("dpo_pairs", argv)
    return json.loads(run.path("dpo_pairs.stats.json").read_text())


def stage_dpo_train(run: DemoRun) -> dict:
    options, out = run.options, run.path("dpo")
    shutil.rmtree(out, ignore_errors=True)  # an unfinished run starts over
    argv = ["train", "--config", str(options.dpo_config), "--out", str(out)]
    argv += ["--set", f"model.path={run.path('base')}"]
    argv += ["--set", f"dpo.pairs={run.path('dpo_pairs.parquet')}"]
    argv += ["--set", f"prompts.train={run.path('prompts/train.txt')}"]
    argv += ["--set", f"optim.seed={options.seed}"]
    if options.quick:
        argv += ["--max-steps", str(QUICK_STEPS)]
    run.command("dpo_train", argv)
    return finished_summary(run, "dpo_train", out)


def stage_dpo_eval(run: DemoRun) -> dict:
    evaluation = evaluate_adapter(run, "dpo_eval", "dpo", "eval_dpo.json")
    return {"base": evaluation["base"], "dpo": evaluation["tuned"]}


def dpo_stages() -> list[Stage]:
    """The stages `--with-dpo` inserts after PPO's eval."""
    return [
        Stage("dpo_pairs", "judge-ranked answer pairs from the base policy",
              stage_dpo_pairs, outputs=("dpo_pairs.parquet",),
              inputs=("dpo_config", "judge_config")),
        Stage("dpo_train", "DPO + LoRA on the pairs (no judge)", stage_dpo_train,
              outputs=("dpo/summary.json",), inputs=("dpo_config",)),
        Stage("dpo_eval", "base vs DPO on the same hold-out", stage_dpo_eval,
              outputs=("eval_dpo.json",)),
    ]  # fmt: skip
