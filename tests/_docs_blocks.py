"""Run every pasteable block of README.md and docs/*.md (sybil), or say why it cannot run.

A ``python`` block runs as a doctest when it starts with ``>>>`` (outputs compared), else as
code; a ``bash`` block runs its ``mimicry`` commands one by one through ``experiments.cli.main``
(exit 0 required); a block that cannot run here (GPU, hub downloads, servers, torchrun,
minutes of training) is preceded by ``<!-- skip: next "why" -->``, which sybil turns into a
skip carrying that reason. :func:`fences` lists every fenced block so a test can check that no
command block is left untagged (sybil would silently ignore it).

The docs show real models (32B hubs, ``ckpt/student``) and the spatial suite; here the blocks
run on the model organism and on the demo run: :data:`MODELS` and :data:`SUITE` replace those names, as the
README walk-through test does, and :func:`prepare` writes the few user files a block assumes
(``traces/teacher.jsonl``, ``my_items.csv``...), each made from the demo run or from the doc's
own example. :data:`QUICK` lowers resample counts of the probe commands (the numbers are not
shown in those blocks; the docs' sessions that show numbers run with the defaults).
"""

from __future__ import annotations

import doctest
import glob
import json
import logging
import re
import shlex
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger(__name__)
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
ORG = "organism:student_mastery"
MODELS = [("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", ORG), ("ckpt/student", ORG),
          ("models/student", ORG), ("PATH_OR_HUB_ID", ORG), ("--model PATH ", f"--model {ORG} "),
          ("path/or/hub-id", ORG),
          ('"Qwen/Qwen2.5-1.5B"', repr(str(ROOT / "src/mimicry/organism/checkpoints/teacher")))]
SUITE = [("--tasks spatial", "--tasks organism"), ('"spatial"', '"organism"')]
ORGANISM_FILES = ("cache/demo", "runs/r1.jsonl")   # a block reading these reads organism traces
QUICK = {"align": ["--n-boot", "1000", "--n-perm", "1000"], "difficulty": ["--n-perm", "10", "--n-boot", "100"],
         "entropy": ["--n-perm", "10", "--n-boot", "100"],
         "similarity": ["--n-perm", "10", "--n-boot", "100"],
         "planning": ["--n-perm", "10", "--n-boot", "100"],
         "ablation": ["--n-boot", "100"], "reliance": ["--n-boot", "300"],
         "verdict": ["--n-perm", "10", "--n-boot", "100"],
         "steer": ["--n-random", "3", "--max-new-tokens", "48"], "patch": ["--n-pairs", "6"]}
FENCE = re.compile(r"^[ \t]*```([\w-]*)[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
COMMAND = re.compile(r"^(\$ )?(mimicry|python|PYTHONPATH=|torchrun|pip|make|vllm)\b")


def swap(text: str) -> str:
    """Return ``text`` with the models swapped for the organism's (:data:`MODELS`), and then
    the spatial suite for the organism's (:data:`SUITE`: the organism reads only its own)."""
    new = text
    for a, b in MODELS:
        new = new.replace(a, b)
    if new != text or any(k in text for k in ORGANISM_FILES):
        for a, b in SUITE:
            new = new.replace(a, b)
    return new


def fences(path: Path) -> list[tuple[int, str, str, str]]:
    """Return every fenced block of ``path``: (line, language, body, the line above)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        above = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        out.append((line, m.group(1), m.group(2), above))
    return out


def commands(block: str) -> list[str]:
    """Return a shell block's commands: continuations joined, comments and blanks dropped."""
    cmds, cur = [], ""
    for line in block.splitlines():
        line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].rstrip()
        if not line and not cur:
            continue
        cur += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            cmds.append(cur.strip())
            cur = ""
    return [c for c in cmds if c]


def transcript(block: str) -> list[tuple[str, str]]:
    """Return a ``$ command`` transcript's (command, the output shown under it) pairs."""
    out: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return [(c, "\n".join(lines).strip() + "\n") for c, lines in out]


def run_shell(example) -> None:
    """Run a bash block's commands through the CLI (optional ``[...]`` parts left out).

    A block of ``$ command`` lines is a transcript: what each command prints must match the
    lines shown under it (doctest ``ELLIPSIS``/``NORMALIZE_WHITESPACE``).
    """
    import contextlib
    import io

    from experiments.cli import main

    text = str(example.parsed).replace("experiments/configs/", f"{ROOT}/experiments/configs/")
    if text.startswith("$ "):
        for cmd, want in transcript(text):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = main(shlex.split(cmd)[1:])
            got = buf.getvalue()
            assert rc == 0, f"{example.path}:{example.line}: exit {rc}: {cmd}"
            assert doctest.OutputChecker().check_output(want, got, FLAGS), (
                f"{example.path}:{example.line}: {cmd} printed\n{got}\nthe doc shows\n{want}")
        return
    for cmd in commands(swap(text)):
        cmd = re.sub(r"\s*\[[^\]]*\]", "", cmd)
        argv = shlex.split(cmd)
        assert argv[0] == "mimicry", (
            f"{example.path}:{example.line}: {cmd!r} is not a mimicry command; run it here "
            "or mark the block <!-- skip: next \"why\" -->")
        argv = [x for a in argv[1:] for x in (sorted(glob.glob(a)) if "*" in a else [a])]
        key = argv[1] if argv[0] == "probe" and len(argv) > 1 else argv[0]
        argv += QUICK.get(key, [])
        t0 = time.perf_counter()
        rc = main(argv)
        log.info("%.1f s: %s", time.perf_counter() - t0, cmd)
        assert rc == 0, f"{example.path}:{example.line}: exit {rc}: {cmd}"


def run_python(example) -> None:
    """Run a python code block with :func:`swap` applied (the doctests run unchanged)."""
    src = "\n" * (example.line + example.parsed.line_offset) + swap(str(example.parsed))
    exec(compile(src, example.path, "exec", dont_inherit=True), example.namespace)
    example.namespace.pop("__builtins__", None)


def sybil():
    """Return the Sybil that parses python, bash and skip directives of the docs."""
    from sybil import Sybil
    from sybil.evaluators.doctest import DocTestEvaluator
    from sybil.parsers.abstract.doctest import DocTestStringParser
    from sybil.parsers.markdown import CodeBlockParser, SkipParser

    class Python(CodeBlockParser):
        def __init__(self):
            super().__init__("python", run_python)
            self.doctests = DocTestStringParser(DocTestEvaluator(FLAGS))

        def __call__(self, document):
            for region in super().__call__(document):
                if str(region.parsed).startswith(">>>"):
                    for r in self.doctests(region.parsed, document.path):
                        r.adjust(region, region.parsed)
                        yield r
                else:
                    yield region

    return Sybil(parsers=[Python(), CodeBlockParser("bash", run_shell), SkipParser()],
                 path=str(ROOT))


def _block_after(doc: Path, heading: str, lang: str = "") -> str:
    """Return the first ``lang`` block after ``heading`` in ``doc``."""
    text = doc.read_text(encoding="utf-8").split(heading, 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", text, re.S).group(1)


def prepare(name: str, folder: Path) -> None:
    """Write into ``folder`` the user files the blocks of doc ``name`` assume exist."""
    demo = folder / "cache" / "demo"
    (folder / "traces").mkdir(exist_ok=True)
    if name in ("docs/capture.md", "docs/capture-backends.md", "docs/probes.md"):
        teacher = (demo / "traces" / "teacher.jsonl").read_text(encoding="utf-8")
        (folder / "traces" / "teacher.jsonl").write_text(teacher, encoding="utf-8")
    if name == "docs/alignment.md":   # three models' traces under the names the page uses
        (folder / "runs").mkdir()
        for src, file, model in (("teacher", "r1", "DeepSeek-R1"),
                                 ("student_mastery", "distill", "R1-Distill-Qwen-7B"),
                                 ("base", "qwen", "Qwen2.5-7B")):
            lines = (demo / "traces" / f"{src}.jsonl").read_text(encoding="utf-8").splitlines()
            (folder / "runs" / f"{file}.jsonl").write_text("".join(
                json.dumps({**json.loads(x), "model": model}) + "\n" for x in lines if x.strip()),
                encoding="utf-8")
    if name == "docs/generate.md":   # traces made elsewhere: one row per item, as an API gives
        from mimicry.tasks import load_suite

        for file, suite in (("api_traces.csv", "spatial"), ("api.csv", "organism")):
            rows = [f"{it.item_id},o1,{40 + 7 * k},{str(k % 3 > 0).lower()}"
                    for k, it in enumerate(load_suite(suite))]
            (folder / file).write_text("item_id,model,reasoning_tokens,correct\n"
                                       + "\n".join(rows) + "\n", encoding="utf-8")
    if name == "docs/tasks.md":   # the CSV example of the same page is the user's file
        csv = _block_after(ROOT / name, "## User items files", "csv")
        (folder / "my_items.csv").write_text(csv, encoding="utf-8")
    if name == "docs/probes.md":  # the user's caches and traces, named as the page names them
        run = folder / "cache" / "run"
        run.mkdir(parents=True)
        caches = demo / "caches"
        links = {"t.h5": "teacher.h5", "s.h5": "student_mastery.h5", "b.h5": "base.h5",
                 "s_on_teacher_traces.h5": "student_mastery__on_teacher.h5",
                 "s_on_t.h5": "student_mastery__on_teacher.h5",
                 "s_on_scr.h5": "student_mastery__scrambled.h5",
                 "cache/run/teacher.h5": "teacher.h5", "cache/run/student.h5":
                 "student_mastery.h5", "cache/run/teacher__tokens.h5": "teacher__tokens.h5"}
        for link, target in links.items():   # a cache reads its shards next to the name opened
            (folder / link).symlink_to((caches / target).resolve())
            (folder / f"{link}.parts").symlink_to((caches / f"{target}.parts").resolve())
        rows = [json.loads(x) for x in (demo / "traces" / "student_mastery.jsonl")
                .read_text(encoding="utf-8").splitlines() if x.strip()]
        with open(folder / "traces" / "student.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**r, "model": "student"}) + "\n")
        (folder / "traces" / "base.jsonl").write_text(
            (demo / "traces" / "base.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
        from experiments.cli import main  # --alignment out/align: the models' alignment

        assert main(["align", *(str(folder / "traces" / f"{m}.jsonl")
                                for m in ("teacher", "student", "base")),
                     "--tasks", "organism", "--out", str(folder / "out" / "align"),
                     "--roles", "teacher=teacher,student=student,base=base",
                     "--n-boot", "100", "--n-perm", "100"]) == 0
        _random_init_cache(folder, main)


def _random_init_cache(folder: Path, main) -> None:
    """Capture the teacher's traces with a random-init teacher: ``cache/run/teacher_random.h5``
    (what docs/probes.md, "Making the random-init cache", says to do)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = ROOT / "src/mimicry/organism/checkpoints/teacher"
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src))
    m.save_pretrained(folder / "models" / "teacher-random")
    AutoTokenizer.from_pretrained(src).save_pretrained(folder / "models" / "teacher-random")
    assert main(["capture", "--model", str(folder / "models" / "teacher-random"), "--traces",
                 str(folder / "traces" / "teacher.jsonl"), "--out",
                 str(folder / "cache" / "run" / "teacher_random.h5")]) == 0

