# Config validation, the grid of cells and the input functions of the rules.
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from lazyphase.cells import ConfigError
from lazyphase.pipeline.grid import expand_config
from lazyphase.pipeline.jobs import estimate_mem_mb, estimate_runtime_min
from lazyphase.pipeline.fingerprint import code_fingerprint
from lazyphase.pipeline.verify import experiment_products as _products
from lazyphase.studies.catalog import FIGURES

validate(config, schema="../schemas/config.schema.yaml")

try:
    CELLS = expand_config(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

EXPERIMENTS = list(config["experiments"])
KINDS = {name: exp["kind"] for name, exp in config["experiments"].items()}
# regexes of the experiment names of each kind ("(?!)" matches nothing)
TRAIN_EXPERIMENTS = (
    "|".join(n for n, k in KINDS.items() if k in ("train", "phase_diagram")) or "(?!)"
)
PHASE_EXPERIMENTS = "|".join(n for n, k in KINDS.items() if k == "phase_diagram") or "(?!)"
CONC_EXPERIMENTS = "|".join(n for n, k in KINDS.items() if k == "gram_concentration") or "(?!)"
CODE = code_fingerprint()
# (experiment, batch) -> cells and output paths, built once: input functions run per job
BATCHES = {
    key: (list(frame["params"]), list(frame["path"]))
    for key, frame in CELLS.groupby(["experiment", "batch"], sort=False)
}


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    batch=r"[^/]+",


def batch_cells(wildcards):
    return BATCHES[(wildcards.experiment, wildcards.batch)][0]


def batch_outs(wildcards):
    return BATCHES[(wildcards.experiment, wildcards.batch)][1]


def batch_mem_mb(wildcards, attempt):
    return estimate_mem_mb(batch_cells(wildcards)) * attempt


def batch_runtime(wildcards, attempt):
    return estimate_runtime_min(batch_cells(wildcards)) * attempt


def refine_mem_mb(wildcards, attempt):
    # one bisection batch: every gamma' at the widest m
    cells = experiment_cells(wildcards)
    widest = max(c["m"] for c in cells)
    return estimate_mem_mb([c for c in cells if c["m"] == widest]) * attempt


def refine_runtime(wildcards, attempt):
    # each round trains one new gamma per gamma' at every width: 1/len(gamma) of the grid
    exp = config["experiments"][wildcards.experiment]
    cells = experiment_cells(wildcards)
    share = exp["refine_rounds"] / max(len(exp["grid"]["gamma"]), 1)
    total = sum(
        estimate_runtime_min([c for c in cells if c["m"] == m]) for m in {c["m"] for c in cells}
    )
    return int(5 + share * total) * attempt


def experiment_frame(wildcards):
    return CELLS[CELLS["experiment"] == wildcards.experiment]


def experiment_cells(wildcards):
    return list(experiment_frame(wildcards)["params"])


def experiment_batches(wildcards):
    batches = experiment_frame(wildcards)["batch"].unique()
    return [f"results/{wildcards.experiment}/runs/{b}" for b in batches]


def experiment_runs(wildcards):
    return list(experiment_frame(wildcards)["path"])


def concentration_files(wildcards):
    batches = experiment_frame(wildcards)["batch"].unique()
    return [f"results/{wildcards.experiment}/concentration/{b}.h5" for b in batches]


def experiment_setting(key):
    def get(wildcards):
        return config["experiments"][wildcards.experiment][key]

    return get


def experiment_products(wildcards):
    exp = config["experiments"][wildcards.experiment]
    return _products(wildcards.experiment, exp)


def all_targets():
    figures = [
        f"results/{name}/figures/{fig}.{ext}"
        for name, exp in config["experiments"].items()
        for fig in exp["figures"]
        for ext in ("pdf", "png")
    ]
    # the manifest (sha256 of tables and figures) of every experiment that draws figures
    manifests = [
        f"results/{name}/manifest.json"
        for name, exp in config["experiments"].items()
        if exp["figures"]
    ]
    return figures + manifests
