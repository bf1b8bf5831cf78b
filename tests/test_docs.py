"""The documentation keeps up with the code: every command and option of the CLI is in
docs/cli.md, the README stays a short user's guide, and no tracked file names a path of
the machine it was written on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest
import typer

from simlib.cli import app

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 12_000


def commands(group: click.Group, prefix: str = "simlib") -> dict[str, click.Command]:
    """Every command of the CLI by its full name, subcommands of groups included."""
    found = {}
    for name, command in group.commands.items():
        full = f"{prefix} {name}"
        found[full] = command
        if isinstance(command, click.Group):
            found |= commands(command, full)
    return found


def sections(markdown: str) -> dict[str, str]:
    """The text under each `## simlib ...` or `### simlib ...` heading, by command name."""
    parts = re.split(r"^#{2,3} `?(simlib[^`\n]*)`?\s*$", markdown, flags=re.MULTILINE)
    return {name.strip(): text for name, text in zip(parts[1::2], parts[2::2], strict=True)}


CLI = commands(typer.main.get_command(app))


@pytest.mark.parametrize("name", sorted(CLI))
def test_every_command_and_option_is_in_the_cli_reference(name: str) -> None:
    documented = sections((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
    assert name in documented, f"docs/cli.md has no section for `{name}`"
    options = [o for p in CLI[name].params for o in p.opts if o.startswith("--")]
    missing = [o for o in options if o not in documented[name]]
    assert not missing, f"docs/cli.md, `{name}`: options not described: {missing}"


def test_the_sections_are_found_the_way_the_test_reads_them() -> None:
    text = "## simlib scan\n`--home` ...\n### `simlib roots remove`\n`--dry-run`\n"
    found = sections(text)
    assert found == {"simlib scan": "\n`--home` ...\n", "simlib roots remove": "\n`--dry-run`\n"}


def test_the_readme_is_a_short_guide() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme) <= README_LIMIT
    assert "bash .ci/run" in readme and "python3 -m venv" in readme


def test_no_tracked_file_names_a_path_of_this_machine() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    machine = re.compile(r"(?<![\w.~])/(root|work|home/\w+|tmp/[\w-]+/)\b")
    offenders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".pt", ".onnx") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            if machine.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:80]}")
    assert not offenders, "\n".join(offenders)
