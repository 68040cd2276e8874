"""`rlaif demo`: the whole pipeline offline on CPU, from corpus to report.

Stages run in order, each a command of its own that the demo runs as a
subprocess with its output in `<out>/logs/<stage>.log` (progress bars are
shown, log lines stay in the file):

    bootstrap  -> <out>/base            tiny Llama trained on data/food_qa.jsonl
    prompts    -> <out>/prompts         train.txt and holdout.txt, leak-free
    judge      -> <out>/judge_validation.json   refuses a judge below 0.85
    train      -> <out>/ppo             PPO + LoRA against the judge over HTTP
    eval       -> <out>/eval.json       base vs tuned on the hold-out questions
    (--with-dpo: dpo_pairs, dpo_train, dpo_eval; see rlaif.demo_dpo)
    report     -> <out>/report.{md,json}, <out>/plots/*.png
    chat       -> <out>/chat.json       one hold-out question asked over HTTP
                                        of the chat service serving the adapter

The judge server is a separate process on a free localhost port, started
only when a stage needs it and always stopped at the end (its log is
`<out>/logs/judge_server.log`). A finished stage is recorded in
`<out>/state.json` and reused by the next run with the same settings, unless
`--fresh`. `build_stages` is the one place to add a stage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.common.process import ServiceProcess

DEFAULT_OUT = Path("runs/demo")
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d+ (DEBUG|INFO) ")
_CHILD_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


class DemoError(Exception):
    """A stage failed; the message names the stage, the reason and the log."""


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    out: Path = DEFAULT_OUT
    quick: bool = False
    fresh: bool = False
    force: bool = False
    seed: int = 0
    min_judge_accuracy: float = 0.85
    corpus: Path = Path("data/food_qa.jsonl")
    topics: Path = Path("configs/prompts/topics.txt")
    judge_config: Path = Path("configs/judge/cpu.yaml")
    judge_eval: Path = Path("data/judge_eval.jsonl")
    train_config: Path = Path("configs/train/cpu-tiny.yaml")
    with_dpo: bool = False
    dpo_config: Path = Path("configs/train/cpu-tiny-dpo.yaml")

    @property
    def sizes(self) -> dict:
        """Question counts and step overrides; `--quick` shrinks everything."""
        if self.quick:
            return {"n_train": 100, "n_holdout": 20, "train_steps": 2, "tokens": 32}
        return {"n_train": 1000, "n_holdout": 100, "train_steps": None, "tokens": 48}

    def fingerprint(self, inputs: tuple[str, ...] = ()) -> dict:
        """Settings and input files a stage depends on: change one, it reruns."""
        files = {}
        for name in inputs:
            path = Path(getattr(self, name))
            content = path.read_bytes() if path.is_file() else b""
            files[name] = hashlib.sha256(content).hexdigest()[:16]
        return {"quick": self.quick, "seed": self.seed, "files": files}


@dataclass(frozen=True)
class Stage:
    """One step of the demo.

    `outputs` (paths under the out dir) must exist for a finished stage to
    be reused; `inputs` name the `DemoOptions` files whose content it
    depends on, so editing the training config reruns training.
    """

    name: str
    what: str
    run: Callable[[DemoRun], dict]
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()


@dataclass
class DemoRun:
    """The state of one `rlaif demo` invocation, shared by its stages."""

    options: DemoOptions
    state: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    judge: ServiceProcess | None = None

    @property
    def out(self) -> Path:
        return self.options.out

    def path(self, name: str) -> Path:
        return self.out / name

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"

    def judge_url(self) -> str:
        """The judge server's URL, starting the server on first use."""
        if self.judge is None:
            say("start", "judge_server", "judge server on a free localhost port")
            started = time.monotonic()
            self.judge = start_judge(
                self.options.judge_config, self.log("judge_server")
            )
            self.timings["judge_server_start"] = time.monotonic() - started
            say(
                "done",
                "judge_server",
                f"{self.judge.url}",
                self.timings["judge_server_start"],
            )
        return self.judge.url

    def command(self, stage: str, argv: list[str]) -> None:
        """Run `rlaif <argv>` as a subprocess logged to the stage's log."""
        run_logged([sys.executable, "-m", "rlaif.cli", *argv], self.log(stage), stage)

    def save_state(self) -> None:
        self.path("state.json").write_text(json.dumps(self.state, indent=2) + "\n")


def say(event: str, stage: str, detail: str = "", seconds: float | None = None):
    """One clear line per stage event on the terminal."""
    timing = f" ({seconds:.1f}s)" if seconds is not None else ""
    sys.stdout.write(f"[demo] {event:<6} {stage:<16} {detail}{timing}\n")
    sys.stdout.flush()


# ------------------------------------------------------------- processes


def run_logged(argv: list[str], log_path: Path, stage: str) -> None:
    """Run `argv`; everything to `log_path`, all but INFO log lines to stderr.

    Progress bars (carriage-return updates) pass through, so a long stage
    shows its progress; the full output stays in the log for a post-mortem.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **_CHILD_ENV}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )
        pending = b""
        while chunk := process.stdout.read1(4096):
            log.write(chunk)
            log.flush()
            pending = _forward(pending + chunk)
        code = process.wait()
    if code != 0:
        raise DemoError(
            f"{stage} failed: exit code {code}: {last_line(log_path)} (log: {log_path})"
        )


def _forward(data: bytes) -> bytes:
    """Write complete non-log segments of `data` to stderr; return the rest."""
    segments = re.split(rb"(\r|\n)", data)
    rest = segments.pop()  # incomplete last segment
    for text, end in zip(segments[::2], segments[1::2], strict=True):
        decoded = text.decode("utf-8", "replace")
        if not _LOG_LINE.match(decoded):
            sys.stderr.write(decoded + end.decode())
    sys.stderr.flush()
    return rest


def last_line(log_path: Path) -> str:
    """The last meaningful line of a log: usually the error."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "no log"
    lines = [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]
    return lines[-1][:300] if lines else "no output"


def start_judge(
    config: Path, log_path: Path, timeout_s: float = 180.0
) -> ServiceProcess:
    """The judge server as a child process on a free port, ready."""
    # services.common pulls in FastAPI and pyarrow: only when a stage needs it.
    from services.common.process import ServiceProcess, ServiceStartError, free_port

    port = free_port()
    argv = [sys.executable, "-m", "rlaif.cli", "judge", "serve"]
    argv += ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    judge = ServiceProcess(
        argv,
        port=port,
        log_path=log_path,
        name="judge_server",
        env=_CHILD_ENV,
        startup_timeout=timeout_s,
    )
    try:
        return judge.start()
    except ServiceStartError as exc:
        if exc.returncode is None:
            reason = f"not ready after {timeout_s:.0f}s"
        else:
            reason = f"exited with {exc.returncode}: {last_line(log_path)}"
        raise DemoError(f"judge_server failed: {reason} (log: {log_path})") from exc


# ---------------------------------------------------------------- stages


def stage_bootstrap(run: DemoRun) -> dict:
    options = run.options
    if not options.corpus.is_file():
        from rlaif.corpus import generate_corpus, write_corpus
        from rlaif.prompt_sources import load_topics

        write_corpus(options.corpus, generate_corpus(load_topics(options.topics), 2000))
    argv = [
        "bootstrap",
        "--corpus",
        str(options.corpus),
        "--out",
        str(run.path("base")),
    ]
    argv += ["--seed", str(options.seed)] + (["--quick"] if options.quick else [])
    run.command("bootstrap", argv)
    return json.loads(run.path("base/bootstrap.json").read_text())


def stage_prompts(run: DemoRun) -> dict:
    options, sizes = run.options, run.options.sizes
    argv = ["prompts", "generate", "--source", "template"]
    argv += ["--topics", str(options.topics), "--seed", str(options.seed)]
    argv += ["--n-train", str(sizes["n_train"]), "--n-holdout", str(sizes["n_holdout"])]
    # The hold-out set must not repeat the bootstrap corpus's questions either.
    argv += ["--out-dir", str(run.path("prompts")), "--exclude", str(options.corpus)]
    run.command("prompts", argv)
    return json.loads(run.path("prompts/stats.json").read_text())


def stage_judge_validation(run: DemoRun) -> dict:
    options, out = run.options, run.path("judge_validation.json")
    argv = ["judge", "validate", "--judge-url", run.judge_url()]
    argv += ["--data", str(options.judge_eval), "--out", str(out)]
    run.command("judge_validation", argv)
    result = json.loads(out.read_text())
    accuracy = result.get("accuracy")
    if accuracy is None or accuracy < options.min_judge_accuracy:
        message = (
            f"judge accuracy {accuracy!r} is below {options.min_judge_accuracy} "
            f"on {options.judge_eval} (details: {out})"
        )
        if not options.force:
            raise DemoError(
                f"judge_validation failed: {message}; --force trains anyway"
            )
        say("warn", "judge_validation", message + "; training anyway (--force)")
    return result


def stage_train(run: DemoRun) -> dict:
    options, sizes, out = run.options, run.options.sizes, run.path("ppo")
    shutil.rmtree(out, ignore_errors=True)  # an unfinished run starts over
    argv = ["train", "--config", str(options.train_config)]
    argv += ["--judge-url", run.judge_url(), "--out", str(out)]
    argv += ["--set", f"model.path={run.path('base')}"]
    argv += ["--set", f"prompts.train={run.path('prompts/train.txt')}"]
    argv += ["--set", f"optim.seed={options.seed}"]
    if sizes["train_steps"]:
        argv += ["--max-steps", str(sizes["train_steps"])]
        argv += [
            "--set",
            "optim.rollout_batch_size=4",
            "--set",
            "optim.micro_batch_size=4",
        ]
    run.command("train", argv)
    return finished_summary(run, "train", out)


def finished_summary(run: DemoRun, stage: str, out: Path) -> dict:
    """A training run's summary.json (less its config); DemoError unless done."""
    summary = json.loads((out / "summary.json").read_text())
    if summary.get("status") != "completed":
        raise DemoError(
            f"{stage} failed: status {summary.get('status')!r}: "
            f"{summary.get('error')} (log: {run.log(stage)})"
        )
    return {key: value for key, value in summary.items() if key != "config"}


def evaluate_adapter(run: DemoRun, stage: str, adapter: str, out_name: str) -> dict:
    """`rlaif eval` of base vs `adapter` on the hold-out; the parsed JSON."""
    options, sizes = run.options, run.options.sizes
    argv = [
        "eval",
        "--base",
        str(run.path("base")),
        "--adapter",
        str(run.path(adapter)),
    ]
    argv += ["--questions", str(run.path("prompts/holdout.txt"))]
    argv += ["--judge-url", run.judge_url(), "--out", str(run.path(out_name))]
    argv += ["--seed", str(options.seed), "--max-new-tokens", str(sizes["tokens"])]
    run.command(stage, argv)
    return json.loads(run.path(out_name).read_text())


def stage_eval(run: DemoRun) -> dict:
    evaluation = evaluate_adapter(run, "eval", "ppo", "eval.json")
    return {"base": evaluation["base"], "tuned": evaluation["tuned"]}


def stage_report(run: DemoRun) -> dict:
    from rlaif.report import (
        build_report,
        headline_table,
        read_metrics,
        repo_relative,
        write_report,
    )

    evaluation = json.loads(run.path("eval.json").read_text())
    timings = {name: round(seconds, 1) for name, seconds in run.timings.items()}
    report = build_report(
        validation=run.state["judge_validation"]["result"],
        evaluation=evaluation,
        train_summary=run.state["train"]["result"],
        timings_s=timings,
        artifacts={
            "base": run.path("base"),
            "adapter": run.path("ppo"),
            "prompts_train": run.path("prompts/train.txt"),
            "prompts_holdout": run.path("prompts/holdout.txt"),
            "judge_validation": run.path("judge_validation.json"),
            "eval": run.path("eval.json"),
            "logs": run.path("logs"),
        },
        seeds={
            "corpus": "shipped file, `python -m rlaif.corpus --seed 0`",
            "bootstrap": run.options.seed,
            "prompts": run.options.seed,
            "train": run.options.seed,
            "eval": run.options.seed,
        },
        settings={
            **{key: str(value) for key, value in asdict(run.options).items()},
            **run.options.sizes,
        },
    )
    if run.options.with_dpo:  # a DPO column next to base and PPO
        report["dpo"] = run.state["dpo_eval"]["result"]["dpo"]
        report["dpo_train"] = run.state["dpo_train"]["result"]
        report["artifacts"]["dpo_adapter"] = repo_relative(run.path("dpo"))
        report["artifacts"]["dpo_pairs"] = repo_relative(run.path("dpo_pairs.parquet"))
        report["artifacts"]["eval_dpo"] = repo_relative(run.path("eval_dpo.json"))
    metrics = read_metrics(run.path("ppo/metrics.jsonl"))
    json_path, md_path = write_report(run.out, report, evaluation, metrics)
    return {"table": headline_table(report), "met": report["target"]["met"]}


def stage_chat(run: DemoRun) -> dict:
    """Serve base + tuned adapter with `rlaif chat serve` and ask one question."""
    from services.chat.smoke import ask_once

    holdout = run.path("prompts/holdout.txt").read_text().splitlines()
    question = next(line for line in holdout if line.strip())
    answer = ask_once(
        run.path("base"),
        run.path("ppo"),
        question,
        max_tokens=run.options.sizes["tokens"],
        log_dir=run.path("logs"),
    )
    result = {"question": question, "answer": answer, "model": "tuned"}
    run.path("chat.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# Stages that are cheap and show this run's state: never reused.
ALWAYS_RUN = ("report", "chat")


def build_stages(options: DemoOptions) -> list[Stage]:
    """The stages of this run, in order: the one place to add a stage."""
    stages = [
        Stage("bootstrap", "train the tiny base policy", stage_bootstrap,
              outputs=("base",), inputs=("corpus",)),
        Stage("prompts", "generate train and hold-out questions", stage_prompts,
              outputs=("prompts/train.txt", "prompts/holdout.txt"),
              inputs=("topics", "corpus")),
        Stage("judge_validation", "validate the judge on labelled texts",
              stage_judge_validation, outputs=("judge_validation.json",),
              inputs=("judge_config", "judge_eval")),
        Stage("train", "PPO + LoRA against the judge over HTTP", stage_train,
              outputs=("ppo/summary.json",), inputs=("train_config",)),
        Stage("eval", "base vs tuned on the hold-out questions", stage_eval,
              outputs=("eval.json",)),
        Stage("report", "report.md, report.json and plots", stage_report,
              outputs=("report.json", "report.md")),
        Stage("chat", "ask the chat service serving the adapter", stage_chat,
              outputs=("chat.json",)),
    ]  # fmt: skip
    if options.with_dpo:  # pairs, DPO training and its eval, before the report
        from rlaif.demo_dpo import dpo_stages

        stages[-2:-2] = dpo_stages()
    return stages


# ----------------------------------------------------------------- driver


def _reusable(run: DemoRun, stage: Stage) -> bool:
    record = run.state.get(stage.name)
    fingerprint = run.options.fingerprint(stage.inputs)
    if not record or record.get("fingerprint") != fingerprint:
        return False
    return all(run.path(output).exists() for output in stage.outputs)


def _run_stage(run: DemoRun, stage: Stage) -> None:
    """Run one stage, record its result and time; failures become DemoError."""
    say("start", stage.name, stage.what)
    started = time.monotonic()
    judge_start_before = run.timings.get("judge_server_start", 0.0)
    try:
        result = stage.run(run)
    except DemoError:
        raise
    except Exception as exc:
        raise DemoError(
            f"{stage.name} failed: {type(exc).__name__}: {exc} "
            f"(log: {run.log(stage.name)})"
        ) from exc
    # A judge server started by this stage is timed on its own.
    judge_start = run.timings.get("judge_server_start", 0.0) - judge_start_before
    seconds = time.monotonic() - started - judge_start
    run.timings[stage.name] = seconds
    run.state[stage.name] = {
        "seconds": seconds,
        "fingerprint": run.options.fingerprint(stage.inputs),
        "result": result,
    }
    run.save_state()
    say("done", stage.name, "", seconds)


def _clean(out: Path) -> None:
    """Remove what an earlier demo wrote into `out` (and nothing else)."""
    for name in ("base", "prompts", "ppo", "dpo", "plots", "logs"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (
        "state.json",
        "judge_validation.json",
        "eval.json",
        "eval_dpo.json",
        "dpo_pairs.parquet",
        "dpo_pairs.stats.json",
        "report.json",
        "report.md",
        "chat.json",
    ):
        (out / name).unlink(missing_ok=True)  # fmt: skip


def run_demo(options: DemoOptions) -> dict:
    """Run (or reuse) every stage; returns the state. Raises `DemoError`."""
    stages = build_stages(options)  # refuses unsupported options before any work
    if options.fresh:
        _clean(options.out)
    options.out.mkdir(parents=True, exist_ok=True)
    run = DemoRun(options=options)
    state_path = run.path("state.json")
    if state_path.is_file():
        run.state = json.loads(state_path.read_text())
    started = time.monotonic()
    try:
        # Once a stage reruns, every later stage reruns: they consume its output.
        rerun = False
        for stage in stages:
            # The report and the chat question reflect this run: always redo.
            if not rerun and stage.name not in ALWAYS_RUN and _reusable(run, stage):
                run.timings[stage.name] = run.state[stage.name]["seconds"]
                say("reuse", stage.name, "finished earlier (--fresh to redo)")
                continue
            rerun = True
            _run_stage(run, stage)
    finally:
        if run.judge is not None:
            run.judge.stop()
            say("stop", "judge_server", "stopped")
    # What the whole pipeline costs (reused stages at their original time),
    # and what this invocation took; then rebuild the report with both.
    run.timings["total"] = sum(run.timings.values())
    run.timings["this_run_wall"] = time.monotonic() - started
    for stage in stages:
        if stage.name == "report":
            run.state["report"]["result"] = stage.run(run)
            run.save_state()
    return run.state


def _handle(args: argparse.Namespace) -> int:
    options = DemoOptions(
        out=args.out,
        quick=args.quick,
        fresh=args.fresh,
        force=args.force,
        seed=args.seed,
        min_judge_accuracy=args.min_judge_accuracy,
        train_config=args.train_config,
        judge_config=args.judge_config,
        with_dpo=args.with_dpo,
        dpo_config=args.dpo_config,
    )
    try:
        state = run_demo(options)
    except NotImplementedError as exc:
        sys.stderr.write(f"rlaif demo: {exc}\n")
        return 2
    except DemoError as exc:
        say("FAILED", "", str(exc))
        return 1
    report = json.loads(options.out.joinpath("report.json").read_text())
    verdict = "met" if report["target"]["met"] else "NOT met"
    chat = state["chat"]["result"]
    sys.stdout.write(
        "\n" + state["report"]["result"]["table"] + "\n\n"
        f"chat service ({chat['model']} adapter, over HTTP):\n"
        f"  Q: {chat['question']}\n  A: {chat['answer']}\n\n"
        f"target (>= 70% relative drop, score up): {verdict}; "
        f"total {report['timings_s'].get('total', 0):.0f}s\n"
        f"report: {options.out / 'report.md'}\n"
    )
    return 0


def register(subparsers) -> None:
    """Add `rlaif demo` to the `rlaif` parser."""
    parser = subparsers.add_parser(
        "demo", help="The whole pipeline offline on CPU, with a report."
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="Smaller everything.")
    parser.add_argument("--fresh", action="store_true", help="Redo every stage.")
    parser.add_argument(
        "--force", action="store_true", help="Train even if the judge fails validation."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-judge-accuracy", type=float, default=0.85)
    parser.add_argument(
        "--train-config", type=Path, default=Path("configs/train/cpu-tiny.yaml")
    )
    parser.add_argument(
        "--judge-config", type=Path, default=Path("configs/judge/cpu.yaml")
    )
    parser.add_argument(
        "--with-dpo",
        action="store_true",
        help="Also run offline DPO (judge-labelled pairs) and report it next to PPO.",
    )
    parser.add_argument(
        "--dpo-config", type=Path, default=Path("configs/train/cpu-tiny-dpo.yaml")
    )
    parser.set_defaults(handler=_handle)
