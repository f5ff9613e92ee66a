"""The shard jobs of both tasks: train K originals or retrains, or apply one unlearning method to
K originals, in one process; score every model before the job ends; write its tables, the
trajectory of the forget examples during unlearning, and the checkpoints.

Outputs are named as the rules name them: ``scores`` (io.SCORES), the task's other tables (text:
``lm_stats``), ``trajectory`` (unlearning), ``ckpt`` (a checkpoint file, when kept). Every file
is written atomically, after all models of the shard are done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import torch

import umia
from umia import io, methods, plan, plugins, tasks
from umia.errors import UmiaError
from umia.runtime import faults, provenance
from umia.runtime.preempt import preemptible
from umia.runtime.scratch import Partial, Scratch, folder_for

log = logging.getLogger(__name__)

TABLE_SCHEMAS = {"scores": io.SCORES, "lm_stats": io.LM_STATS}


# ------------------------------------------------------------------------------------ checkpoints
def save_models(path: str, states: dict[int, dict], meta: dict) -> None:
    """One checkpoint file per shard: {"models": {model_id: state_dict}, "meta": {...}}."""
    with io.atomic_path(path) as tmp:
        torch.save({"models": {str(k): v for k, v in states.items()}, "meta": meta}, tmp)


def load_models(path: str, device: torch.device) -> tuple[dict[int, dict], dict]:
    blob = torch.load(path, map_location=device, weights_only=True)
    return {int(k): v for k, v in blob["models"].items()}, blob["meta"]


def _write(outputs: Mapping[str, str | None], tables: list[dict], config_hash: str, stamp: str) -> None:
    for name, schema in TABLE_SCHEMAS.items():
        if outputs.get(name) and tables and name in tables[0]:
            frame = pd.concat([t[name] for t in tables], ignore_index=True)
            io.write_table(frame, outputs[name], schema, config_hash, stamp if name == "scores" else None)


def _plugin_stamp(names: Sequence[str], settings: Mapping | None = None) -> dict:
    """Provenance of the plug-ins a job ran: name -> sha256 of its source (and, for a method,
    the settings it ran with)."""
    out = {}
    for n in names:
        if plugins.is_plugin(n):
            out[n] = {"sha256": plugins.source_hash(n), **({"settings": dict(settings)} if settings else {})}
            settings = None  # the method comes first
    return out


def _where(data: str, candidates: str, device: str, config_hash: str, threads: int) -> dict:
    """A shard job's task arguments that are not the task's own (``task_args``)."""
    return {"data": data, "candidates": candidates, "device": device, "config_hash": config_hash, "threads": threads}


# ------------------------------------------------------------------------------------ training
def train_shard(
    *,
    task: str,
    data: str,
    candidates: str,
    outputs: Mapping[str, str | None],
    stage: str,
    shard: int,
    shard_size: int,
    seed: int,
    recipe: Mapping,
    device: str,
    config_hash: str,
    threads: int = 0,
    task_args: Mapping | None = None,
) -> None:
    """Train and score the originals (stage "original", on D_i) or retrains (stage "retrain", on
    D_i minus F_i) of one shard of models, then write their tables and, if asked, checkpoints."""
    if stage not in ("original", "retrain"):
        raise ValueError(f"stage must be original or retrain, not {stage!r}")
    t = tasks.build(task, **_where(data, candidates, device, config_hash, threads), **(task_args or {}))
    method = "none" if stage == "original" else "retrain"
    ids = plan.shard_models(shard, shard_size)
    scratch = Scratch(folder_for(outputs["scores"]), config_hash, ids)
    done = _resume(scratch, len(ids), bool(outputs.get("ckpt")))
    keep = {}
    for model_id in ids:
        train, forget = t.masks(seed, model_id)
        keep[model_id] = train & ~forget if stage == "retrain" else train
    todo = {i: k for i, k in keep.items() if i not in done}
    with preemptible(f"{stage} shard {shard}", len(ids), done, scratch.folder) as stop_if_asked:
        for model_id, model, seconds in t.train(todo, recipe, seed):
            scored = t.score(model)
            n = int(keep[model_id].sum())
            log.info(
                "%s model %d: %d examples, %.2f s, %s",
                stage,
                model_id,
                n,
                seconds,
                t.describe(model, scored, keep[model_id]),
            )
            state = t.state(model) if outputs.get("ckpt") else None
            done[model_id] = Partial(t.tables(scored, model_id, stage, method), state)
            scratch.save(model_id, done[model_id])
            faults.model_done(len(done))
            stop_if_asked()
    ran = _plugin_stamp([(task_args or {}).get("network", "")])
    _write(outputs, [done[i].tables for i in ids], config_hash, provenance.job(t.device, ran))
    if outputs.get("ckpt"):
        meta = {"stage": stage, "task": task, "seed": seed, "config_hash": config_hash, **_meta(task_args, ran)}
        save_models(outputs["ckpt"], {i: done[i].state for i in ids}, meta)
    scratch.clear()


def _resume(scratch: Scratch, n_models: int, need_state: bool) -> dict[int, Partial]:
    """The finished models a killed or preempted run of this job kept, logged (without those
    kept with no weights where this job writes a checkpoint: they are recomputed)."""
    done = scratch.load()
    for model_id in [i for i, p in done.items() if need_state and p.state is None]:
        log.warning("scratch of model %d holds no weights, which this job keeps: recomputing it", model_id)
        del done[model_id]
    if done:
        log.info(
            "resuming: %d of %d models were finished by an earlier run (%s); computing the other %d",
            len(done),
            n_models,
            scratch.folder,
            n_models - len(done),
        )
    return done


def _meta(task_args: Mapping | None, plugins_run: Mapping) -> dict:
    """What a checkpoint records beside its weights: the network (or base model), the code
    version and the plug-ins that made it."""
    kept = {k: v for k, v in (task_args or {}).items() if k in ("network", "width", "base", "adapter")}
    return {**kept, "umia": umia.__version__, "source": provenance.source_hash(), "plugins": dict(plugins_run)}


# ------------------------------------------------------------------------------------ unlearning
def retrain_means(paths: Sequence[str], n_pool: int, config_hash: str) -> np.ndarray:
    """Mean phi over the retrain models and the views, per pool example: (n_pool,), NaN where
    no retrain score exists. Every candidate is OUT of every retrain model."""
    total, count = np.zeros(n_pool), np.zeros(n_pool)
    for p in paths:
        t = io.read_table(p, io.SCORES, config_hash, columns=["example_id", "split", "phi"])
        t = t.filter(pc.equal(t["split"], "pool"))
        ids, phi = t["example_id"].to_numpy(), t["phi"].to_numpy().astype(np.float64)
        ok = np.isfinite(phi)
        np.add.at(total, ids[ok], phi[ok])
        np.add.at(count, ids[ok], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


class MethodFailed(UmiaError):
    """A method raised inside a job: its traceback is in the job's log, this is the summary line."""


def unlearn_shard(
    *,
    task: str,
    data: str,
    candidates: str,
    originals: str | Sequence[str],
    outputs: Mapping[str, str | None],
    method: str,
    method_name: str,
    settings: Mapping,
    shard: int,
    shard_size: int,
    seed: int,
    device: str,
    config_hash: str,
    rate_points: int = 4,
    retrain_scores: Sequence[str] = (),
    threads: int = 0,
    task_args: Mapping | None = None,
    source: str | None = None,
) -> None:
    """Apply one unlearning method (``method_name``: a registry name or a plug-in; ``method``: the
    entry's name in tables, overrides included) to each original of a shard (read from the
    checkpoints ``originals``: the training shards it spans)
    (U_i = m(O_i, F_i, D_i minus F_i)), score the unlearned models, and write their tables and,
    if asked, checkpoints. The forget examples' phi is also scored before unlearning, at every
    1/rate_points of the run and at its end, into ``outputs["trajectory"]`` (the rates of unlearning).
    ``source`` (a plug-in's source hash) is there for the rule's rerun trigger only."""
    fn, spec, settings = methods.resolve(method_name, settings)
    log.info("%s (%s) with settings %s", method, method_name, dict(sorted(settings.items())))
    t = tasks.build(task, **_where(data, candidates, device, config_hash, threads), **(task_args or {}))
    states = {}
    for path in [originals] if isinstance(originals, str) else originals:  # the training shards it spans
        found, meta = load_models(path, t.device)
        if meta["config_hash"] != config_hash:
            raise io.TableError(f"{path}: written by another config; use a new experiment name")
        states.update(found)
    target_all = None
    if spec.needs_retrain_scores:
        if not retrain_scores:
            raise ValueError(f"{method_name} needs the retrain models' scores (retrain_scores)")
        target_all = torch.from_numpy(retrain_means(retrain_scores, t.n_pool, config_hash)).float()
    ids = plan.shard_models(shard, shard_size)
    scratch = Scratch(folder_for(outputs["scores"]), config_hash, ids)
    done = _resume(scratch, len(ids), bool(outputs.get("ckpt")))
    with preemptible(f"{method} shard {shard}", len(ids), done, scratch.folder) as stop_if_asked:
        for model_id in ids:
            if model_id in done:
                continue
            done[model_id] = _unlearn_one(
                t,
                fn,
                method,
                method_name,
                settings,
                states[model_id],
                model_id,
                seed,
                rate_points,
                target_all,
                keep_state=bool(outputs.get("ckpt")),
            )
            scratch.save(model_id, done[model_id])
            faults.model_done(len(done))
            stop_if_asked()
    ran = _plugin_stamp([method_name, (task_args or {}).get("network", "")], settings)
    _write(outputs, [done[i].tables for i in ids], config_hash, provenance.job(t.device, ran))
    frame = trajectory_frame([r for i in ids for r in done[i].trajectory], method, t.views, rate_points)
    io.write_table(frame, outputs["trajectory"], io.TRAJECTORY, config_hash)
    if outputs.get("ckpt"):
        meta = {"stage": "unlearned", "method": method, "task": task, "seed": seed, "config_hash": config_hash}
        meta |= {"settings": dict(settings), **_meta(task_args, ran)}
        save_models(outputs["ckpt"], {i: done[i].state for i in ids}, meta)
    scratch.clear()


def _unlearn_one(t, fn, method, method_name, settings, state, model_id, seed, rate_points, target_all, keep_state):
    """One original unlearned, scored and probed: its tables, weights (if kept) and trajectory."""
    train, forget = t.masks(seed, model_id)
    model = t.load_model(state)
    f_data, r_data = t.pool(forget), t.pool(train & ~forget)
    forget_ids = torch.nonzero(forget).squeeze(1).cpu().numpy()
    s = dict(settings)
    if target_all is not None:
        s["target_phi"] = target_all[forget_ids].to(t.device)
    trajectory: list = []

    def record(point: int, step: int, total: int) -> None:
        trajectory.append((model_id, forget_ids, point, step, total, t.phi(model, f_data).cpu().numpy()))  # (V, n)

    record(0, 0, 0)
    probe = methods.Probe(rate_points, record)
    ctx = methods.Context(t, s, probe)
    gen = t.generator(plan.derive_seed(seed, "unlearn", method, model_id))
    t0 = time.perf_counter()
    model.train()
    try:
        with probe.active(model):
            fn(ctx, model, f_data, r_data, s, gen)
    except Exception as e:
        log.error("%s raised on model %d", method_name, model_id, exc_info=True)
        raise MethodFailed(
            f"method {method_name!r} raised {type(e).__name__} on model {model_id}: {e}; "
            "its traceback is in this job's log"
        ) from e
    if t.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if not all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point()):
        log.warning("%s left non-finite weights on model %d: recorded as diverged", method, model_id)
    if probe.steps and not probe.planned:
        log.warning(
            "%s took %d optimiser steps but declared none (ctx.plan): the trajectory has only its ends",
            method,
            probe.steps,
        )
    scored = t.score(model)
    log.info(
        "%s model %d: forgot %d examples in %.2f s (%d steps), %s",
        method,
        model_id,
        len(forget_ids),
        seconds,
        probe.steps,
        t.describe(model, scored, train & ~forget),
    )
    finish_trajectory(trajectory, model_id, forget_ids, rate_points, probe, scored["phi"][:, forget_ids])
    state = t.state(model) if keep_state else None
    return Partial(t.tables(scored, model_id, "unlearned", method), state, trajectory)


def finish_trajectory(
    records: list, model_id: int, ids: np.ndarray, rate_points: int, probe: methods.Probe, phi: np.ndarray
) -> None:
    """Add a model's last point (the unlearned model's phi: (V, n)) and the middle points its run
    never reached. A run that planned its steps and stopped early (or planned fewer steps than
    points) no longer changed the model, so its state there is the final one. A run that declared
    no plan (no steps, as SSD; or its own optimiser without ``ctx.plan``) has no fraction of the
    run to place a point at: NaN there, so no example is said to reach its retrain mean early."""
    seen = {r[2] for r in records if r[0] == model_id}
    unknown = np.full_like(phi, np.nan)
    for point in range(1, rate_points + 1):
        if point not in seen:
            at = phi if point == rate_points or probe.planned else unknown
            records.append((model_id, ids, point, probe.steps, probe.planned, at))


def trajectory_frame(records: list, method: str, views: Sequence[str], rate_points: int) -> pd.DataFrame:
    """Long format of the probe records (model_id, example ids, point, step, total, phi (V, n))."""
    frames = []
    for model_id, ids, point, step, total, phi in records:
        n_v, n = phi.shape
        frames.append(
            pd.DataFrame(
                {
                    "model_id": np.full(n_v * n, model_id, np.int32),
                    "method": method,
                    "example_id": np.tile(ids.astype(np.int64), n_v),
                    "view": np.repeat(np.asarray(views), n),
                    "point": np.full(n_v * n, point, np.int16),
                    "step": np.full(n_v * n, step, np.int32),
                    "total_steps": np.full(n_v * n, total, np.int32),
                    "fraction": np.full(n_v * n, point / rate_points, np.float32),
                    "phi": phi.ravel().astype(np.float32),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
