"""Every command the README shows runs on a fresh clone as written.

Each ``bash`` block is read line by line. Every ``ciaosr`` command in it (also after
``torchrun ... -m``) must parse with the real parser, and every relative path it reads
must exist in the repository, be written by an earlier command of the same block, be
fetched by an earlier ``ciaosr data fetch`` of the block (``datasets/...``), or be one of
the block's own stand-ins for the user's files (a comment line "X, Y and Z stand for your
own images"). The commands that need neither the network, a GPU, several processes nor
hours are then run as written, in a folder holding what a fresh clone holds; so are the
``python`` blocks, top to bottom.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ciaosr.cli.main import build_parser, main

from conftest import REPO

README = REPO / "README.md"
# What a run must not do here: reach the network, need GPUs or several processes, train for hours.
NOT_RUN = {
    "fetch": "downloads a data set",
    "torchrun": "several processes",
    "serve": "a server that runs until stopped",
    "configs/edsr-baseline-ciaosr.yaml": "the paper's training run (days)",
    "configs/realworld-smoke.yaml": "needs VGG19 weights from the network",
}
STAND_IN = re.compile(r"^#\s*(?P<names>.+?)\s+stands? for your own", re.IGNORECASE)
OUTPUT_OPTIONS = {"-o", "--output", "--json"}
PATH_OPTIONS = {"--data-root", "--input", "--config", "-c", "--root", "--vgg", "--gt", "--hr"}  # their value is read


def blocks(language: str) -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    return [b.splitlines() for b in re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)]


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``&&``, ``|``, ``;``), comments and
    redirections left out."""
    lex = shlex.shlex(line, posix=True, punctuation_chars="&|;<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    out, cur, skip_next = [], [], False
    for tok in lex:
        if skip_next:
            skip_next = False
        elif tok in ("&&", "|", ";", "||"):
            out.append(cur)
            cur = []
        elif tok in (">", "<", ">>"):
            skip_next = True
        else:
            cur.append(tok)
    return [c for c in out + [cur] if c]


def ciaosr_argv(cmd: list[str]) -> list[str] | None:
    """The arguments after ``ciaosr`` (or ``-m ciaosr``), or None for another program."""
    if cmd[0] == "ciaosr":
        return cmd[1:]
    if "-m" in cmd and cmd[cmd.index("-m") + 1:cmd.index("-m") + 2] == ["ciaosr"]:
        return cmd[cmd.index("-m") + 2:]
    return None


def looks_like_path(tok: str) -> bool:
    return not tok.startswith("-") and ("/" in tok or bool(re.search(r"\.(png|jpe?g|webp|ya?ml|pth|json)$", tok)))


def inputs_and_outputs(argv: list[str]) -> tuple[list[str], list[str]]:
    ins, outs = [], []
    for i, tok in enumerate(argv):
        option = argv[i - 1] if i else ""
        if option in OUTPUT_OPTIONS:
            outs.append(tok)
        elif option in PATH_OPTIONS or (looks_like_path(tok) and "=" not in tok):
            ins.append(tok)
    return ins, outs


def from_fetch(path: str) -> bool:
    norm = path.rstrip("/")
    return norm == "datasets" or norm.startswith("datasets/")


def covered(path: str, made: set[str], fetched: bool) -> bool:
    norm = path.rstrip("/")
    if (REPO / norm).exists() or norm in made:
        return True
    if any(norm.startswith(m.rstrip("/") + "/") for m in made):
        return True
    return fetched and from_fetch(norm)


def walk_bash():
    """Per simple command of every bash block: (its line, the command, its ciaosr argv or
    None, the block's stand-ins so far, the paths made before it, whether a fetch came before)."""
    for block in blocks("bash"):
        stand_ins: set[str] = set()
        made: set[str] = set()
        fetched = False
        for line in block:
            m = STAND_IN.match(line.strip())
            if m:
                stand_ins |= {n.strip().rstrip("/") for n in re.split(r",|\band\b", m.group("names")) if n.strip()}
                continue
            for cmd in commands(line):
                argv = ciaosr_argv(cmd)
                yield line, cmd, argv, set(stand_ins), set(made), fetched
                if argv is None:
                    continue
                _, outs = inputs_and_outputs(argv)
                made |= {o.rstrip("/") for o in outs}
                if argv[:2] == ["data", "fetch"]:
                    fetched = True
                if argv[:1] == ["train"]:
                    made.add("runs")


def test_the_readme_shows_commands_and_each_parses():
    parser = build_parser()
    seen = 0
    for line, _, argv, *_ in walk_bash():
        if argv is None:
            continue
        seen += 1
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"README command does not parse ({exc.code}): {line}")
    assert seen >= 20


def test_every_file_a_readme_command_reads_is_there_or_made_first():
    problems = []
    for line, _, argv, stand_ins, made, fetched in walk_bash():
        if argv is None:
            continue
        ins, _ = inputs_and_outputs(argv)
        for path in ins:
            if path.rstrip("/") in stand_ins or path == "-":
                continue
            if not covered(path, made, fetched):
                problems.append(f"{path!r} in: {line}")
    assert not problems, "README commands read files a fresh clone lacks:\n" + "\n".join(problems)


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """What a fresh clone holds that the README's commands read, as the current folder."""
    for name in ("samples", "configs"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_stand_ins(folder: Path, names: set[str]) -> None:
    """The user's files of a block, made from the sample image (a photo-sized copy)."""
    sample = Image.open(REPO / "samples" / "landscape.png").convert("RGB").resize((64, 48))
    for name in names:
        if "." in Path(name).name:
            sample.save(folder / name)
        else:
            (folder / name).mkdir(exist_ok=True)
            for i in range(2):
                sample.rotate(90 * i, expand=True).save(folder / name / f"img{i}.png")


def should_run(cmd: list[str], argv: list[str] | None) -> str | None:
    """None to run it, else why not."""
    if argv is None:
        return "not a ciaosr command"
    for key, why in NOT_RUN.items():
        if key in cmd:
            return why
    if "-" in argv:
        return "reads stdin or writes stdout"
    if any(from_fetch(p) for p in inputs_and_outputs(argv)[0]):
        return "reads a data set fetched above"
    return None


def is_large(argv: list[str]) -> bool:
    """An exact output size of over a megapixel: a minute or more on a CPU."""
    if "--size" not in argv:
        return False
    w, _, h = argv[argv.index("--size") + 1].partition("x")
    return int(w or h) * int(h or w) > 1_000_000


def run_bash_commands(folder: Path, capsys, large: bool) -> list[str]:
    """Run the README's runnable commands (the large ones, or the others) in order."""
    ran = []
    for line, cmd, argv, stand_ins, _, _ in walk_bash():
        make_stand_ins(folder, {s for s in stand_ins if not (folder / s).exists()})
        if should_run(cmd, argv) is not None or is_large(argv) != large:
            continue
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 0, f"{line}\n{err[-2000:]}"
        ran.append(line)
    return ran


def test_the_readme_commands_run_as_written(fresh_clone, capsys):
    ran = run_bash_commands(fresh_clone, capsys, large=False)
    assert any("upscale" in r for r in ran) and any("smoke.yaml" in r for r in ran), ran
    assert (fresh_clone / "outputs" / "landscape_x3.7.png").is_file()  # the quick start's
    assert (fresh_clone / "runs" / "smoke" / "last.safetensors").is_file()
    assert Image.open(fresh_clone / "flat.png").size == (128, 24)  # --scale 2x0.5 of the 64x48 stand-in


@pytest.mark.slow
def test_the_readme_commands_with_large_outputs_run_as_written(fresh_clone, capsys):
    ran = run_bash_commands(fresh_clone, capsys, large=True)
    assert len(ran) >= 2, ran
    assert Image.open(fresh_clone / "hd.png").size == (1920, 1080)


def test_the_readme_python_blocks_run_as_written(fresh_clone):
    code = blocks("python")
    assert len(code) >= 3
    namespace: dict = {}
    for lines in code:  # in order, each as written
        exec(compile("\n".join(lines), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert Image.open(fresh_clone / "big.png").size == (474, 355)
    assert np.asarray(namespace["big"]).shape == (300, 400, 3)
    assert tuple(namespace["sr"].shape) == (1, 3, 80, 120) and tuple(namespace["rgb"].shape) == (1, 5000, 3)
    assert (fresh_clone / "rdn4-ciaosr.safetensors").is_file()


def test_ci_runs_the_quick_start_as_written():
    """.ci/run takes the quick start's two lines from the README itself and runs them."""
    ci = (REPO / ".ci" / "run").read_text()
    lines = blocks("bash")[0]  # the quick start's
    assert len(lines) == 2 and lines[1] == 'pip install -e ".[test]" && python -m pytest -q'
    extract = next(line for line in ci.splitlines() if line.startswith("mapfile -t QUICK"))
    got = subprocess.run(["bash", "-c", f'{extract}; printf "%s\\n" "${{QUICK[@]}}"'], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert got == lines
    assert 'bash -euo pipefail -c "${QUICK[0]}"' in ci and 'bash -euo pipefail -c "${QUICK[1]}"' in ci
    assert 'git clone -q "$REPO" "$WORK/ciaosr"' in ci and "python -m venv .venv" in ci  # a clone named ciaosr
