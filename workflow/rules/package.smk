# The lazyphase package of a workflow that runs without it installed (docs/deploy.md).
# The rules need the package at parse time (grid, budget) and in every job's script, and it is
# on no package index: an installed lazyphase is used as it is; otherwise the package comes from
# this workflow's own source at the same commit as these rules, with no install step:
# - a local source (a clone, a `module` with a local path): its src/ folder;
# - a git-hosted module (snakedeploy from GitHub/GitLab): Snakemake keeps a bare clone of the
#   repository in its source cache; src/ and scripts/ of the module's commit are extracted from
#   it once, into .snakemake/lazyphase-source/<commit>.
# Either way sys.path (this process) and PYTHONPATH (the jobs, local or submitted: each job
# parses this file again) get the folder. This cannot live in the package: it finds it.
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger


def _extract_hosted_source(source) -> list[Path]:
    """src/ and scripts/ of a git-hosted workflow source at its commit, from Snakemake's bare
    clone (no network: Snakemake fetched it to read this file). Returns the import folders."""
    git_dir = str(source.hosted_repo.repo_clone)
    git = ["git", "--git-dir", git_dir]
    commit = subprocess.run(
        [*git, "rev-parse", f"{source.ref}^{{commit}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = Path(".snakemake", "lazyphase-source", commit).resolve()
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f"{commit}."))
        archive = subprocess.run(
            [*git, "archive", "--format=tar", commit, "src", "scripts"],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            # the "data" filter: Python >= 3.11.4 (the archive is this repository's own)
            tar.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        try:
            tmp.rename(dest)  # atomic: a concurrent job that won the race keeps its copy
        except OSError:
            shutil.rmtree(tmp)
    return [dest / "src", dest / "scripts"]


def _lazyphase_folders() -> list[Path]:
    """The folders that make this workflow's lazyphase importable (empty: it is installed)."""
    if importlib.util.find_spec("lazyphase") is not None:
        return []
    source = workflow.current_basedir  # workflow/rules of this workflow's source
    if source.is_local:
        return [Path(source.get_path_or_uri(secret_free=True)).resolve().parents[1] / "src"]
    if hasattr(source, "hosted_repo"):
        return _extract_hosted_source(source)
    raise WorkflowError(
        f"lazyphase is not installed and the workflow source {source} is neither local nor "
        "git-hosted: install it (pip install <a clone of the repository>; docs/deploy.md)"
    )


LAZYPHASE_FOLDERS = [str(p) for p in _lazyphase_folders()]
if LAZYPHASE_FOLDERS:
    sys.path[:0] = LAZYPHASE_FOLDERS
    # set, not required: no `envvars:` (the submitted jobs parse this file and set it again)
    os.environ.update(
        PYTHONPATH=os.pathsep.join([*LAZYPHASE_FOLDERS, *filter(None, [os.getenv("PYTHONPATH")])])
    )
    try:
        import lazyphase
    except ImportError as exc:
        raise WorkflowError(
            f"lazyphase from the workflow source ({LAZYPHASE_FOLDERS[0]}) needs {exc.name or exc}: "
            "install the dependencies of pyproject.toml (docs/deploy.md)"
        ) from None
    logger.info(f"lazyphase: not installed; using the workflow's own {lazyphase.__file__}")
