"""Training drills: a Ray Train worker SIGKILLed in the middle of a step (DeepSpeed, 2 workers).

The fault is ``engine.drill_kill_at_step``: the last worker kills itself with SIGKILL after its backward and before
its optimizer step, once, on the attempt that began without a checkpoint. What the drill reads afterwards is what
the run itself records: ``RUN/attempts.jsonl`` (where each attempt resumed, its step, epoch position and LR),
``RUN/drill_kill.json`` (when and at which step the worker died) and the final checkpoint's ``train_state.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from fas.drills import DrillResult


def kill_mid_step(cfg, kill_at: int):
    """Train ``cfg`` with its last worker SIGKILLed in the middle of step ``kill_at``: (TrainRun, DrillResult)."""
    from fas.config import replace
    from fas.engine import train
    from fas.engine.loop import ATTEMPTS_FILE, DRILL_FILE, STATE_FILE
    from fas.ray_utils import storage_uri

    run = cfg.engine
    if run.max_failures < 1:
        raise ValueError(f"run {run.name!r}: the drill needs max_failures >= 1 to resume")
    result = train(replace(cfg, drill_kill_at_step=kill_at))
    run_dir = Path(storage_uri(run.storage_path)) / run.name
    killed = json.loads((run_dir / DRILL_FILE).read_text())
    attempts = [json.loads(line) for line in (run_dir / ATTEMPTS_FILE).read_text().splitlines()]
    state = json.loads((Path(result.checkpoint.path) / STATE_FILE).read_text())
    return result, judge(run, state, attempts, killed)


def checkpoint_indices(run) -> list[int]:
    """The epochs (0-based) or steps at which an uninterrupted run reports."""
    if run.unit == "epoch":
        return [e for e in range(run.total) if (e + 1) % run.checkpoint_every == 0 or e + 1 == run.total]
    return [s for s in range(1, run.total + 1) if s % run.checkpoint_every == 0 or s == run.total]


def judge(run, state: dict, attempts: list[dict], killed: dict) -> DrillResult:
    """What the kill cost, from the run's own records, and whether every promise held."""
    history = state["history"]
    resumed = attempts[-1]  # the attempt that finished
    redone = killed["step"] - resumed["step"]  # steps run again: those after the checkpoint, the killed one included
    resumed_at = {h[run.unit]: h for h in history}.get(resumed["resumed_from"] - (run.unit == "epoch"))
    lr_continues = resumed["resumed_from"] == 0 or (resumed_at is not None and resumed_at["lr"] == resumed["lr"])
    steps_per_unit = 1 if run.unit == "step" else max(1, state["step"] // run.total)
    figures = {
        "killed_at_step": killed["step"], "attempts": len(attempts), "resumed_from": resumed["resumed_from"],
        "resumed_at_step": resumed["step"], "steps_redone": redone,
        "bound_steps": run.checkpoint_every * steps_per_unit,
        "reported": [h[run.unit] for h in history], "expected_reports": checkpoint_indices(run),
        "final_step": state["step"], "lr_continues": lr_continues,
        "resumed_position": {"epoch": resumed["epoch"], "epoch_batches": resumed["epoch_batches"]},
        "recovery_s": round(resumed["started_at"] - killed["killed_at"], 2),
    }
    passed = (len(attempts) == 2 and 0 < redone <= figures["bound_steps"] and lr_continues
              and figures["reported"] == figures["expected_reports"]
              and all(h["resumed_from"] <= resumed["resumed_from"] for h in history))
    unit = "epochs" if run.unit == "epoch" else "steps"
    return DrillResult(
        name=f"worker_killed_{run.name}", fault=f"a DeepSpeed worker SIGKILLed mid-step {killed['step']}",
        outcome=f"resumed from {run.unit} {resumed['resumed_from']}, LR and step counter continued, finished at "
                f"step {state['step']}", work_lost=f"{redone} steps (checkpoint every {run.checkpoint_every} {unit})",
        data_lost="none", recovery_s=figures["recovery_s"], passed=passed, figures=figures)


def _drill(workdir: Path, method: str, config: dict, kill_at: int, cache: Path | None) -> DrillResult:
    from fas.config import from_dict
    from fas.drills.fixtures import generated_cache
    from fas.methods import get_method

    cache = cache or generated_cache(workdir)
    cfg = from_dict(get_method(method).config, dict(cache=str(cache), storage_path=str(Path(workdir) / "runs"),
                                                    **config))
    return kill_mid_step(cfg, kill_at)[1]


PDLE_TINY = dict(name="pdle", model="pdle-tiny", pretrained=None, epochs=3, batch_size=32, lr=1e-3, image_size=64,
                 crop_size=56, num_workers=2, cpus_per_worker=0.5, engine="deepspeed", label_encoding=True)
OANET_TINY = dict(name="oanet", model="oanet-tiny", pretrained=None, cue_pretrained=None, steps=9, checkpoint_every=3,
                  per_group=4, pool_size=32, stream_batch=32, lr=1e-3, num_workers=2, cpus_per_worker=0.5,
                  engine="deepspeed", use_gpu=False)


def worker_killed_pdle(workdir: Path, cache: Path | None = None) -> DrillResult:
    """PDLE (an epoch run): killed in its second epoch, it resumes from the end of the first."""
    return _drill(workdir, "pdle", PDLE_TINY, kill_at=4, cache=cache)


def worker_killed_oanet(workdir: Path, cues: Path | None = None) -> DrillResult:
    """OA-Net on a cue cache (a step run): killed between its first and second checkpoint."""
    if cues is None:
        from fas.drills.fixtures import generated_cache, tiny_cues, tiny_generator

        cache = generated_cache(workdir)
        cues = tiny_cues(workdir, cache, tiny_generator(workdir, cache))
    return _drill(workdir, "oanet", OANET_TINY, kill_at=5, cache=cues)


def worker_killed_dfg(workdir: Path, cache: Path | None = None) -> DrillResult:
    """The De-fake Face Generator (a step run): killed between its first and second checkpoint."""
    from fas.drills.fixtures import DFG_TINY

    return _drill(workdir, "dfg", {**DFG_TINY, "name": "dfg"}, kill_at=6, cache=cache)
