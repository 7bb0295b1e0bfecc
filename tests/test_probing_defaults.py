"""One set of probe defaults; unknown options are errors naming the valid ones; organism:ROLE."""

from __future__ import annotations

import inspect

import pytest

from experiments.inputs import common_options
from experiments.probing import PROBE_DEFAULTS, probe_functions, probe_options
from mimicry.errors import InputError, MimicryError

# where a run deliberately differs from the probe's own default (compute decodes the gold
# answer, which every task has; the running value is the organism's own target)
RUN_CHOICES = {("compute", "target"): "answer"}


def test_defaults_are_the_probes_own():
    # so probes.suite.run_all and a probe called alone agree with every experiments entry point
    fns = probe_functions()
    assert set(PROBE_DEFAULTS) == set(fns)
    for name, defaults in PROBE_DEFAULTS.items():
        params = inspect.signature(fns[name]).parameters
        for k, v in defaults.items():
            want = RUN_CHOICES.get((name, k), params[k].default)
            assert v == want or tuple(v) == tuple(want), (name, k)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(InputError) as e:
        probe_options("difficulty", {"folds": 5})
    msg = e.value.render()
    assert "'folds'" in msg and "n_folds" in msg and "n_perm" in msg
    assert probe_options("difficulty", {"n_folds": 10})["n_folds"] == 10
    with pytest.raises(InputError, match="unknown probe 'difficult'"):
        probe_options("difficult")
    with pytest.raises(InputError, match="has no option"):  # set by the glue, not an option
        probe_options("similarity", {"site": "last_prompt"})


def test_common_options_go_where_they_fit_and_nowhere_else():
    got = common_options(["difficulty", "ablation", "verdict"], {"n_perm": 7, "n_boot": 9})
    assert got == {"difficulty": {"n_perm": 7, "n_boot": 9}, "ablation": {"n_boot": 9}}
    with pytest.raises(InputError, match=r"\['n_prem'\]"):
        common_options(["difficulty"], {"n_prem": 7})


def test_organism_role_resolves_in_model_spec_and_cli(tmp_path, capsys):
    org = pytest.importorskip("mimicry.organism")
    from experiments.cli import main
    from mimicry.models import ModelSpec

    if not (org.CHECKPOINTS / "teacher" / "config.json").exists():
        pytest.skip("organism checkpoints not committed")
    assert ModelSpec("organism:teacher").name_or_path == str(org.checkpoint_path("teacher"))
    with pytest.raises(MimicryError, match="unknown organism role 'nobody'"):
        ModelSpec("organism:nobody")
    out = tmp_path / "t.jsonl"
    assert main(["generate", "--model", "organism:teacher", "--tasks", "organism", "--out",
                 str(out), "--limit", "2", "--max-new-tokens", "8"]) == 0
    assert len(out.read_text().splitlines()) == 2
