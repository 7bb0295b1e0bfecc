"""What the stages share besides paths: model sources and checks (before anything runs), suites.

Paths of the run folder live in :mod:`experiments.layout`; ``organism:ROLE`` names resolve in
:func:`mimicry.models.resolve_name`.
"""

from __future__ import annotations

from pathlib import Path

from mimicry.errors import ModelNotFoundError
from mimicry.models import ModelSpec, resolve_name

from .config import ExperimentConfig, ModelConfig

# ---------------------------------------------------------------- models


def model_source(m: ModelConfig) -> str:
    """Return what to load for ``m``: its local_path, its organism checkpoint, or the hub id."""
    if m.local_path:
        return str(Path(m.local_path).expanduser())
    return resolve_name(m.name)


def model_spec(m: ModelConfig) -> ModelSpec:
    """Return the :class:`ModelSpec` that loads ``m``."""
    return ModelSpec(name_or_path=model_source(m), role=m.role, revision=m.revision,
                     dtype=m.dtype, device_map=m.device_map, chat_template=m.chat_template)


def weights_status(m: ModelConfig) -> str:
    """Return where ``m``'s weights are, without downloading: local / cached / organism / hub."""
    if m.local_path:
        return "local" if (Path(m.local_path).expanduser() / "config.json").exists() else "missing"
    if m.is_organism:
        try:
            return "organism" if Path(model_source(m), "config.json").exists() else "missing"
        except ModelNotFoundError:
            return "missing"
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(m.name, "config.json", revision=m.revision)
    return "cached" if isinstance(hit, str) else "hub"


def check_fetchable(m: ModelConfig, config_file: str) -> None:
    """Raise :class:`ModelNotFoundError` now if ``m``'s weights cannot be had (no download).

    Local paths must hold ``config.json``; hub ids must be in the local cache or, when the
    hub is allowed (``HF_HUB_OFFLINE`` unset), answer an authenticated existence check.
    """
    import os

    how = (f"download it where the hub is reachable (huggingface-cli download {m.name} "
           f"--local-dir DIR), copy DIR here and set local_path = \"DIR\" under the "
           f"[[models]] entry key = \"{m.key}\" in {config_file}")
    status = weights_status(m)
    if status in ("local", "organism"):
        from mimicry.preflight import check_model_folder

        try:  # config + tokenizer now; missing weights are a load failure the stages note
            check_model_folder(model_source(m), weights=False)
        except ModelNotFoundError as e:
            raise ModelNotFoundError(f"model '{m.key}': {e.problem}", file=config_file,
                                     fix=e.fix) from None
    if status == "missing" and m.is_organism and not m.local_path:
        role = m.name.removeprefix("organism:")
        raise ModelNotFoundError(
            f"model '{m.key}': the organism checkpoint '{role}' is not installed",
            file=config_file, fix=f"train it (mimicry organism train "
            f"{'--v2 ' if role.startswith('v2/') else ''}--out DIR) and set "
            f"local_path = \"DIR/{role}\" under key = \"{m.key}\", or run mimicry demo, which "
            "trains it for you")
    if status == "missing":
        where = m.local_path or model_source(m)
        raise ModelNotFoundError(f"model '{m.key}': {where} does not exist or has no "
                                 "config.json", file=config_file, fix=how)
    if status != "hub":
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline:
        raise ModelNotFoundError(
            f"model '{m.key}' ({m.name}) is not in the local Hugging Face cache and "
            "HF_HUB_OFFLINE is set", file=config_file, fix=how)
    from huggingface_hub import auth_check

    try:
        auth_check(m.name)
    except Exception as e:  # network down, gated, not found: all mean "cannot fetch"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ModelNotFoundError(
            f"model '{m.key}' ({m.name}) cannot be fetched from the hub ({first})",
            file=config_file,
            fix=how + "; for gated models (meta-llama) accept the licence and set HF_TOKEN",
        ) from None


# ---------------------------------------------------------------- suites


def load_suites(cfg: ExperimentConfig):
    """Return one :class:`TaskSuite` with the items of all of ``cfg.suites`` (capped per task)."""
    from mimicry.errors import InputError
    from mimicry.tasks.items import TaskSuite
    from mimicry.tasks.registry import load_suite

    items, reliability, synthetic, sources = [], {}, False, []
    seen: set[str] = set()
    for name in cfg.suites:
        s = load_suite(name)
        for it in _spread(s, cfg.max_items_per_task):
            if it.item_id in seen:
                raise InputError(f"item_id '{it.item_id}' appears in two suites",
                                 file=cfg.source, fix="run the suites in separate configs")
            seen.add(it.item_id)
            items.append(it)
        reliability.update(s.reliability)
        synthetic = synthetic or s.synthetic
        sources.append(s.source)
    if len(cfg.suites) == 1:
        name = cfg.suites[0]
    else:
        name = "+".join(cfg.suites)
    return TaskSuite(name, items, source="; ".join(x for x in sources if x),
                     reliability=reliability, synthetic=synthetic)


def _spread(suite, n: int | None) -> list:
    """Return the suite's items, at most ``n`` per task, evenly spaced over the suite's order.

    Suites are often ordered by difficulty, so the first ``n`` items would all be easy ones.
    """
    if n is None:
        return list(suite)
    out = []
    for task in suite.tasks:
        its = [it for it in suite if it.task == task]
        if len(its) <= n:
            out += its
        else:
            out += [its[(i * len(its)) // n] for i in range(n)]
    return out

