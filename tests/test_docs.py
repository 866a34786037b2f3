"""The README and docs/ stay walkable: every relative link and anchor resolves, and every
``caloclouds VERB --option`` written in them names a verb and options that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from caloclouds.cli import DEPRECATED_VERBS, VERBS, verb_parser

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
    return set(verb_parser(verb)._option_string_actions)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands_exist(doc: Path) -> None:
    bad = []
    for command in _commands(doc):
        words = shlex.split(command.replace("[", " ").replace("]", " ").replace("...", " "))
        verb = words[1]
        verb = DEPRECATED_VERBS.get(verb, (verb,))[0]  # an old verb runs its successor (bench-flow: bench flow)
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


def test_export_size_in_the_user_guide_is_the_exports(tmp_path: Path) -> None:
    """The user guide's size of the TorchScript export is that of an export of the shipped model
    (issue 26: it said 1.5 MB for a 2.5 MB file), to the 0.1 MB the export command prints."""
    from caloclouds.export.torchscript import export_torchscript
    from caloclouds.generation.bundle import load_bundle

    guide = (ROOT / "docs" / "user-guide.md").read_text()
    quoted = re.findall(r"caloclouds export --model default -o \S+ +# TorchScript, ([\d.]+) MB", guide)
    assert quoted, "docs/user-guide.md no longer quotes the export's size: drop this test"
    path = tmp_path / "caloclouds_ddml.pt"
    export_torchscript(load_bundle("default"), path)
    assert {float(q) for q in quoted} == {round(path.stat().st_size / 1e6, 1)}


PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.fixture(scope="module")
def doc_files(tmp_path_factory, shared):  # noqa: ANN001, ANN201
    """The files the docs' Python snippets open, made small: generated showers, a production folder
    and an export of the shipped model."""
    from caloclouds.cli import main

    out = tmp_path_factory.mktemp("docs")
    shared("g4_photons_val_fixed.h5")
    assert main(["generate", "--energies", "50", "-n", "2", "--cells", "ild", "-o", str(out / "showers.root")]) == 0
    (out / "prod_root").mkdir()
    (out / "prod_root" / "shard-00000.root").write_bytes((out / "showers.root").read_bytes())
    assert main(["export", "-o", str(out / "caloclouds_ddml.pt")]) == 0
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_snippets_run(doc: Path, doc_files: Path, shared, monkeypatch) -> None:  # noqa: ANN001
    """Every ```python block of the docs runs as written (issue 26: one raised NameError), with the
    files it names replaced by small ones."""
    data = shared("g4_photons_val_fixed.h5").parent
    names = {
        '"demo_showers.root"': f'"{doc_files / "showers.root"}"',
        '"showers.root"': f'"{doc_files / "showers.root"}"',
        '"prod_root/': f'"{doc_files / "prod_root"}/',
        '"caloclouds_ddml.pt"': f'"{doc_files / "caloclouds_ddml.pt"}"',
        '"../shared/data/': f'"{data}/',
    }
    monkeypatch.chdir(ROOT)
    for i, block in enumerate(PYTHON_BLOCK.findall(doc.read_text())):
        for name, path in names.items():
            block = block.replace(name, path)
        exec(compile(block, f"{doc.name}, python block {i + 1}", "exec"), {})  # noqa: S102


def test_figures_that_can_drift_are_the_code_s() -> None:
    """The MIP values and the parameter count the user guide quotes are recomputed here."""
    from caloclouds.generation.bundle import load_bundle
    from projection.mip import mip_mev_for_thickness

    guide = (ROOT / "docs" / "user-guide.md").read_text()
    quoted = re.search(r"0\.5 MIP cuts at ([\d.]+), ([\d.]+) and ([\d.]+) MeV", guide)
    assert quoted, "the user guide no longer quotes the HGCal half-MIP cuts: drop this check"
    half = 0.5 * mip_mev_for_thickness(np.array([300.0, 200.0, 120.0]), reference_mip_mev=0.147)
    assert [float(v) for v in quoted.groups()] == [round(float(v), 3) for v in half]
    count = re.search(r"ConcatSquash layers 32/64/128/64/32, ([\d,]+)\s+parameters", guide)
    assert count, "the user guide no longer quotes the parameter count: drop this check"
    net = load_bundle("default").point_model("cm").denoiser
    assert int(count.group(1).replace(",", "")) == sum(p.numel() for p in net.parameters())


def test_the_readme_test_count_is_the_suite_s(request) -> None:  # noqa: ANN001
    """The README's 'N passed' is within 5 % of the tests collected by a full `make test` run."""
    items = request.session.items
    if not any(i.nodeid.startswith("tests/voxel/") for i in items) or len(items) < 300:
        pytest.skip("only a full `make test` run knows the suite's size")
    quoted = re.search(r"`make test` took [^(]*\((\d+) passed", (ROOT / "README.md").read_text())
    assert quoted, "the README no longer quotes the suite's size: drop this check"
    assert abs(int(quoted.group(1)) - len(items)) <= 0.05 * len(items), (quoted.group(1), len(items))
