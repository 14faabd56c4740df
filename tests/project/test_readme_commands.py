"""Every `kshot ...` command line in README.md and docs/*.md code blocks resolves to a command of the CLI, and
every flag it uses is one of that command's options: the docs cannot drift from `kshot --help`. A few cheap
commands also run for real."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kshot.cli import app

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # docs/notes/ is a dated log: not checked
ROOT_CMD = typer.main.get_command(app)


def is_group(cmd) -> bool:
    return hasattr(cmd, "commands")  # typer's groups (typer vendors its own click)


def code_blocks(text: str):
    """(first line number, body) of each fenced code block."""
    for m in re.finditer(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        yield text.count("\n", 0, m.start()) + 2, m.group(1)


def logical_lines(body: str, first: int):
    """Lines with their backslash continuations joined, comments dropped."""
    acc, start = "", first
    for i, line in enumerate(body.splitlines()):
        if not acc:
            start = first + i
        if line.rstrip().endswith("\\"):
            acc += line.rstrip()[:-1] + " "
            continue
        yield start, acc + line
        acc = ""
    if acc:
        yield start, acc


def kshot_invocations(line: str):
    """The argument lists given to kshot on one shell line: `kshot ...`, `.venv/bin/kshot ...`, `VAR=x kshot
    ...`, `nice kshot ...`, `torchrun ... -m kshot ...`; each simple command of `a && b`, `a; b`, `a | b`."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # a Python line with an apostrophe, say
        return
    commands, command = [], []
    for tok in tokens + [";"]:
        if tok in {"&&", "||", ";", "|", "&"}:
            commands.append(command)
            command = []
        else:
            command.append(tok)
    for cmd in commands:
        for i, tok in enumerate(cmd):
            if tok != "kshot" and not tok.endswith("/kshot"):
                continue
            before = cmd[:i]
            if (
                all("=" in t for t in before)
                or (before and before[-1] == "-m")
                or (before and before[0] in {"nice", "flock", "time", "exec"})
            ):
                yield [t.strip("[]") for t in cmd[i + 1 :]]
            break


def all_invocations():
    found = []
    for page in PAGES:
        for first, body in code_blocks(page.read_text()):
            for lineno, line in logical_lines(body, first):
                for args in kshot_invocations(line):
                    found.append((f"{page.relative_to(ROOT)}:{lineno}", args))
    return found


INVOCATIONS = all_invocations()


def resolve(args: list[str]):
    """The click command that `kshot ARGS` runs, its path, and the arguments left for it."""
    cmd, path, rest = ROOT_CMD, ["kshot"], list(args)
    while is_group(cmd) and rest:
        if rest[0] in cmd.commands:
            cmd = cmd.commands[rest[0]]
            path.append(rest.pop(0))
        elif (
            cmd.invoke_without_command and not rest[0].startswith("-") and len(rest) > 1 and rest[1] in cmd.commands
        ):  # `kshot serve MODEL_DIR keys ...`: the group's argument first
            rest.pop(0)
        else:
            break
    return cmd, path, rest


def options(cmd) -> dict:
    """Every spelling of every option of ``cmd`` -> the option (``--help`` -> None)."""
    out = {}
    for p in cmd.params:
        if p.param_type_name == "option":
            for name in (*p.opts, *p.secondary_opts):
                out[name] = p
    out["--help"] = None
    return out


def test_the_docs_show_commands_of_every_domain():
    assert len(INVOCATIONS) >= 40, INVOCATIONS
    paths = {tuple(resolve(args)[1][:2]) for _, args in INVOCATIONS}
    for domain in ("image", "text", "tag", "recsys", "serve"):
        assert ("kshot", domain) in paths, f"no `kshot {domain} ...` command in README.md or docs/"
    for page in (
        "README.md",
        "docs/index.md",
        "docs/images.md",
        "docs/text.md",
        "docs/tagging.md",
        "docs/recsys.md",
        "docs/serve.md",
    ):
        assert any(where.startswith(page + ":") for where, _ in INVOCATIONS), f"{page} shows no kshot command"


@pytest.mark.parametrize("where,args", INVOCATIONS, ids=[w for w, _ in INVOCATIONS])
def test_command_and_flags_exist(where, args):
    assert args, f"{where}: a bare `kshot`"
    cmd, path, rest = resolve(args)
    assert not (is_group(cmd) and not cmd.invoke_without_command), (
        f"{where}: `{' '.join(path)}` is a group, not a command; its commands: {', '.join(cmd.commands)}"
    )
    known = options(cmd)
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok.startswith("-") and tok != "-" and not re.fullmatch(r"-\d.*", tok):
            name = tok.split("=", 1)[0]
            assert name in known, (
                f"{where}: `{' '.join(path)}` has no option {name}; it has {', '.join(sorted(k for k in known if k))}"
            )
            opt = known[name]
            if opt is not None and not opt.is_flag and not opt.count and "=" not in tok:
                assert i + 1 < len(rest), f"{where}: {name} needs a value"
                i += 1  # its value (may itself start with '-', e.g. `--output -`)
        i += 1


def test_the_parser_sees_through_shorthands_and_groups():
    assert resolve(["fit", "a.csv", "--out", "m"])[1] == ["kshot", "fit"]
    assert resolve(["serve", "model", "--db", "x"])[1] == ["kshot", "serve"]
    assert resolve(["serve", "keys", "create", "--role", "read"])[1] == ["kshot", "serve", "keys", "create"]
    assert list(kshot_invocations("KSHOT_DATA=x OMP_NUM_THREADS=1 kshot image eval r --json  # note")) == [
        ["image", "eval", "r", "--json"]
    ]
    assert list(kshot_invocations("torchrun --nproc-per-node 8 -m kshot image train --out r")) == [
        ["image", "train", "--out", "r"]
    ]
    assert list(kshot_invocations("python benchmarks/x.py --kshot")) == []
    # a flag that does not exist is caught
    cmd, _, rest = resolve(["text", "fit", "a.csv", "--no-such-flag"])
    assert "--no-such-flag" not in options(cmd) and "--out" in options(cmd)


def test_cheap_commands_run(tmp_path):
    """`kshot datasets` runs as written; every documented command path answers --help."""
    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "omniglot" in result.output
    seen = set()
    for _, args in INVOCATIONS:
        path = tuple(resolve(args)[1])
        if path in seen:
            continue
        seen.add(path)
        result = runner.invoke(app, [*path[1:], "--help"])
        assert result.exit_code == 0, (path, result.output)
