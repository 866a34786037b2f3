"""The README and docs/ stay walkable: every relative link and anchor resolves, and every
``caloclouds VERB --option`` written in them names a verb and options that exist."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from caloclouds.cli import VERBS

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"
    for name in ("user-guide.md", "model-card.md", "benchmarks.md", "experiment-log.md", "architecture.md"):
        assert f"docs/{name}" in "\n".join(lines), f"README.md does not link docs/{name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve(doc: Path) -> None:
    text = FENCE.sub("", doc.read_text())
    bad = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            bad.append(f"{target}: no file {path}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            bad.append(f"{target}: no heading with anchor #{anchor} in {path.name}")
    assert not bad, f"{doc.name}: broken links:\n" + "\n".join(bad)


def _commands(doc: Path) -> list[str]:
    """Every ``caloclouds VERB ...`` line in the code blocks, continuation lines joined."""
    out = []
    for block in FENCE.findall(doc.read_text()):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            line = re.sub(r"^taskset -c \d+ ", "", line)
            if line.startswith("caloclouds ") and not line.startswith("caloclouds_"):
                out.append(line.split("#")[0].strip())
    prose = FENCE.sub("", doc.read_text())
    inline = re.findall(r"`(?:[A-Z_]+=\S+ )?(?:taskset -c \d+ )?(caloclouds [a-z][^`]*)`", prose)
    return out + inline


def _options(verb: str) -> set[str]:
    module, _ = VERBS[verb]
    parser = argparse.ArgumentParser(prog=f"caloclouds {verb}")
    importlib.import_module(f"caloclouds.cli.{module}").add_arguments(parser)
    return set(parser._option_string_actions)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands_exist(doc: Path) -> None:
    bad = []
    for command in _commands(doc):
        words = shlex.split(command.replace("[", " ").replace("]", " ").replace("...", " "))
        verb = words[1]
        if verb not in VERBS:
            bad.append(f"{command}: no verb {verb!r}")
            continue
        options = _options(verb)
        for word in words[2:]:
            if word.startswith("-") and not re.fullmatch(r"-\d[\d.e-]*", word):
                name = word.split("=")[0]
                if name not in options:
                    bad.append(f"{command}: {verb} has no option {name}")
    assert not bad, f"{doc.name}: commands that would fail:\n" + "\n".join(bad)
