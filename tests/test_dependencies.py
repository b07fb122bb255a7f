"""pyproject.toml is the one list of dependencies; the conda files must say the same."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: PyPI name → conda-forge name, where they differ.
CONDA_NAME = {"torch": "pytorch", "snakemake[reports]": "snakemake-minimal"}
#: Packages a conda file may add: the interpreter, pip, and the extra snakemake[reports] needs.
CONDA_ONLY = {"python", "pip", "pygments"}


def _split(req: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", req).groups()
    return name.lower(), spec.replace(" ", "")


def _pyproject() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = dict(_split(r) for r in project["dependencies"])
    dev = dict(_split(r) for r in project["optional-dependencies"]["dev"])
    return runtime, dev


def _conda(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    conda = dict(_split(d.replace("=3.11", "")) for d in deps if isinstance(d, str))
    pip = [d for d in deps if isinstance(d, dict)]
    pip_reqs = dict(_split(r) for r in (pip[0]["pip"] if pip else []) if not r.startswith("-e"))
    return conda, pip_reqs


def _expected(reqs: dict[str, str]) -> dict[str, str]:
    return {CONDA_NAME.get(name, name): spec for name, spec in reqs.items()}


def test_environment_yml_matches_pyproject():
    runtime, dev = _pyproject()
    conda, pip = _conda(ROOT / "environment.yml")
    listed = {k: v for k, v in {**conda, **pip}.items() if k not in CONDA_ONLY}
    assert listed == _expected({**runtime, **dev})
    assert "python=3.11" in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]


def test_rule_environment_matches_pyproject_runtime():
    runtime, _ = _pyproject()
    conda, pip = _conda(ROOT / "workflow" / "envs" / "lazyphase.yaml")
    listed = {k: v for k, v in {**conda, **pip}.items() if k not in CONDA_ONLY}
    # the rules need no snakemake of their own: it is the host's
    assert listed == {k: v for k, v in _expected(runtime).items() if k != "snakemake-minimal"}
