"""The workflow deployed the way Snakemake users take workflows (docs/deploy.md): snakedeploy
writes a module Snakefile into an empty folder, and that folder runs to completion in a Python
environment that has the dependencies but not lazyphase.

What is real and what stands in, and why:

- snakedeploy 0.17.1 (the dev extra's pin) runs unmodified. Its plain-path source ("Local"
  provider) cannot deploy any workflow: it declares the module as ``"workflow/Snakefile"``,
  which Snakemake resolves against the deployed ``workflow/`` folder. So the source is a
  ``file://`` URL of a bare clone of this repository whose path ends in
  ``github/lazyphase/lazyphase``: snakedeploy's GitHub provider clones it (git, no network) and
  writes what a user deploying from GitHub gets, ``github("lazyphase/lazyphase",
  path="workflow/Snakefile", commit=...)``.
- Snakemake reads such a module from a bare clone in its source cache, fetching only what it
  lacks. The cache (``XDG_CACHE_HOME``) is seeded with a clone of the same commit, so nothing is
  fetched: the run is offline and reads the same files a GitHub deployment would.
- The environment: a venv whose site-packages holds links to every package of the test's own
  environment except lazyphase (its dist-info and editable-install hook included); the test
  checks that ``import lazyphase`` fails there. No install, so it costs a second.

The deployed commit is HEAD of this checkout: uncommitted changes are not in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TINY

OWNER_REPO = "lazyphase/lazyphase"
GIT_CACHE = "snakemake/snakemake/source-cache/snakemake-git-cache/github.com"


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def _venv_without_lazyphase(path: Path) -> Path:
    """A venv with this environment's packages (links), lazyphase left out; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())  # fmt: skip
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "lazyphase" not in entry.name.lower():
            (site / entry.name).symlink_to(entry)
    return python


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_TOKEN")}
    return {**env, "XDG_CACHE_HOME": str(cache), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """snakedeploy's deployment of HEAD into an empty folder: (dest, python, env)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to deploy from")
    tmp = tmp_path_factory.mktemp("deploy")
    commit = _git("rev-parse", "HEAD")
    hub = tmp / "hub" / "github" / OWNER_REPO
    _git("clone", "--quiet", "--bare", str(ROOT), str(hub))
    _git("clone", "--quiet", "--bare", str(hub), str(tmp / "cache" / GIT_CACHE / OWNER_REPO))
    dest = tmp / "dest"
    snakedeploy = Path(sys.executable).parent / "snakedeploy"
    r = subprocess.run([str(snakedeploy), "deploy-workflow", f"file://{hub}", str(dest),
                        "--commit", commit], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return dest, _venv_without_lazyphase(tmp / "venv"), _env(tmp / "cache"), commit


def test_snakedeploy_writes_the_catalog_layout(deployed):
    dest, _, _, commit = deployed
    module = (dest / "workflow" / "Snakefile").read_text()
    assert f'github("{OWNER_REPO}", path="workflow/Snakefile", commit="{commit}")' in module
    assert 'configfile: "config/config.yaml"' in module
    # the default config and its documentation, as files (the root config.yaml link is not copied)
    for name in ("config.yaml", "README.md", "paper.yaml"):
        copied = dest / "config" / name
        assert (
            not copied.is_symlink() and copied.read_text() == (ROOT / "config" / name).read_text()
        )
    assert (dest / "profiles" / "slurm" / "config.yaml").exists()


def test_deployed_default_config_dry_runs(deployed):
    """The failure of the issue: `snakemake -n` in the deployed folder, with its own config."""
    dest, python, env, _ = deployed
    r = subprocess.run([str(python), "-m", "snakemake", "-n", "-q", "rules"], cwd=dest, env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "train_cell" in r.stdout


def test_deployed_workflow_runs_without_lazyphase_installed(deployed, tmp_path):
    dest, python, env, commit = deployed
    probe = subprocess.run([str(python), "-c", "import torch, snakemake; import lazyphase"],
                           env=env, capture_output=True, text=True)  # fmt: skip
    assert "No module named 'lazyphase'" in probe.stderr, probe.stderr
    # the tiny config's experiment A (every theta_lazy figure); the user's config file
    tiny = yaml.safe_load(TINY.read_text())["experiments"]
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({"experiments": {"theta_lazy": tiny["theta_lazy"]}}))
    start = time.perf_counter()
    r = subprocess.run([str(python), "-m", "snakemake", "--cores", "2", "--configfile",
                        str(config), "--replace-workflow-config"], cwd=dest, env=env,
                       capture_output=True, text=True)  # fmt: skip
    print(f"deployed tiny run: {time.perf_counter() - start:.1f} s")
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    source = dest / ".snakemake" / "lazyphase-source" / commit
    assert f"using the workflow's own {source / 'src' / 'lazyphase' / '__init__.py'}" in log
    results = dest / "results" / "theta_lazy"
    for fig in tiny["theta_lazy"]["figures"]:
        assert (results / "figures" / f"{fig}.png").stat().st_size, fig
    assert (results / "manifest.json").exists()
    # nothing was fetched: the module came from the seeded cache
    assert "Fetching" not in log and "Cloning" not in log


def test_a_local_source_uses_its_src_folder(deployed, tmp_path):
    """The other source: this checkout's own Snakefile, lazyphase not installed."""
    _, python, env, _ = deployed
    r = subprocess.run([str(python), "-m", "snakemake", "-n", "-q", "rules", "--snakefile",
                        str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                        str(TINY), "--replace-workflow-config"], env=env, capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    own = ROOT / "src" / "lazyphase" / "__init__.py"
    assert f"using the workflow's own {own}" in r.stdout + r.stderr
