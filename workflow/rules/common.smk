# Config validation, the grid of cells and the input functions of the rules.
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from lazyphase.cells import ConfigError
from lazyphase.pipeline.config import grid_warnings
from lazyphase.pipeline.grid import expand_config
from lazyphase.pipeline.budget import (
    budget_block,
    budget_from_config,
    calibration_for,
    job_mem_mb,
    job_runtime_min,
    job_runtime_resource,
    job_segments,
)
from lazyphase.pipeline.jobs import estimate_mem_mb
from lazyphase.pipeline.fingerprint import code_fingerprint
from lazyphase.pipeline import report as _report
from lazyphase.pipeline.report import figure_labels
from lazyphase.pipeline.verify import experiment_products as _products
from lazyphase.studies.catalog import FIGURES

# `--config budget={...}` (the profiles) gives strings: typed before the schema sees them
if config.get("budget"):
    config["budget"] = budget_block(config["budget"])
validate(config, schema="../schemas/config.schema.yaml")

try:
    # the job budget (config `budget`, set by the profiles; docs/scale.md) and this machine's
    # calibrated throughput split batches into jobs that fit and size their resources
    BUDGET = budget_from_config(config)
    CALIBRATION = calibration_for(BUDGET)
    CELLS = expand_config(config, budget=BUDGET, calibration=CALIBRATION)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
for _warning in grid_warnings(CELLS, config):
    logger.warning(f"lazyphase: warning: {_warning}")

EXPERIMENTS = list(config["experiments"])
KINDS = {name: exp["kind"] for name, exp in config["experiments"].items()}
# regexes of the experiment names of each kind ("(?!)" matches nothing)
TRAIN_EXPERIMENTS = (
    "|".join(n for n, k in KINDS.items() if k in ("train", "phase_diagram", "deep_phase_diagram"))
    or "(?!)"
)
PHASE_EXPERIMENTS = "|".join(n for n, k in KINDS.items() if k == "phase_diagram") or "(?!)"
DEEP_PHASE_EXPERIMENTS = (
    "|".join(n for n, k in KINDS.items() if k == "deep_phase_diagram") or "(?!)"
)
CONC_EXPERIMENTS = "|".join(n for n, k in KINDS.items() if k == "gram_concentration") or "(?!)"
CODE = code_fingerprint()
# (experiment, job) -> cells and output paths, built once: input functions run per job. A job is
# a batch, or a part `<batch>_part~<k>` of one that exceeds the budget; the rules' {batch}
# wildcard takes the job names.
BATCHES = {
    key: (list(frame["params"]), list(frame["path"]))
    for key, frame in CELLS.groupby(["experiment", "job"], sort=False)
}
# the budget reaches the training jobs as resources (not params: a new budget must not rerun
# finished jobs; a job's results do not depend on its chunks, docs/scale.md)
BUDGET_RESOURCES = dict(budget_mem_mb=BUDGET.mem_mb, device_mem_mb=BUDGET.device_mem_mb)


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    batch=r"[^/]+",


def batch_cells(wildcards):
    return BATCHES[(wildcards.experiment, wildcards.batch)][0]


def batch_outs(wildcards):
    return BATCHES[(wildcards.experiment, wildcards.batch)][1]


def _retry(value, cap, attempt):
    # a retry asks for more, but never past the budget (unless the estimate itself is above it)
    return min(value * attempt, max(value, cap))


def batch_mem_mb(wildcards, attempt):
    # gram_concentration jobs (initialization only)
    return estimate_mem_mb(batch_cells(wildcards)) * attempt


def train_mem_mb(wildcards, attempt):
    return _retry(job_mem_mb(batch_cells(wildcards), BUDGET), BUDGET.mem_mb, attempt)


def train_runtime(wildcards, attempt):
    # a chained job (segments > 1) asks for the partition's limit: each segment resumes
    est = job_runtime_resource(batch_cells(wildcards), BUDGET, CALIBRATION)
    return _retry(est, BUDGET.runtime_min, attempt)


def train_segments(wildcards):
    # the job's segments under the budget's time limit (docs/scale.md): it needs as many
    # attempts (--retries segments-1), each resuming from the checkpoint of the one before
    return job_segments(batch_cells(wildcards), BUDGET, CALIBRATION)


def refine_batches(wildcards):
    # one bisection batch per width: every gamma' at one m (one new gamma each)
    cells = experiment_cells(wildcards)
    out = {}
    for c in cells:
        out.setdefault(c["m"], {}).setdefault(c["scheme"], c)
    return [list(per.values()) for per in out.values()]


def refine_mem_mb(wildcards, attempt):
    est = max(job_mem_mb(b, BUDGET) for b in refine_batches(wildcards))
    return _retry(est, BUDGET.mem_mb, attempt)


def refine_runtime(wildcards, attempt):
    # each round trains one new gamma per gamma' at every width
    rounds = config["experiments"][wildcards.experiment]["refine_rounds"]
    per_round = sum(job_runtime_min(b, BUDGET, CALIBRATION) - 5 for b in refine_batches(wildcards))
    return _retry(int(5 + rounds * per_round), BUDGET.runtime_min, attempt)


def experiment_frame(wildcards):
    return CELLS[CELLS["experiment"] == wildcards.experiment]


def experiment_cells(wildcards):
    return list(experiment_frame(wildcards)["params"])


def experiment_batches(wildcards):
    batches = experiment_frame(wildcards)["job"].unique()
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


# The report (snakemake --report; lazyphase.pipeline.report): category and subcategory of the
# entries of an experiment, which sort in catalog order (A1 ... C8, then the tables)
def report_category(figure=None):
    def get(wildcards):
        return _report.section(config["experiments"], wildcards.experiment, figure)[0]

    return get


def report_subcategory(figure=None):
    def get(wildcards):
        return _report.section(config["experiments"], wildcards.experiment, figure)[1]

    return get


def report_table(path, file):
    """A CSV table of results/{experiment} marked for the report, captioned and labelled."""
    return report(
        path,
        caption=f"../report/tables/{file.removesuffix('.csv')}.rst",
        category=report_category(),
        subcategory=report_subcategory(),
        labels=_report.table_labels(file),
    )


# B2 (deep_phase.smk)
def deep_refine_batches(wildcards):
    # one bisection batch per (m, activation, depth): every gamma_h there (one new s each)
    out = {}
    for c in experiment_cells(wildcards):
        out.setdefault((c["m"], c["activation"], c["depth"]), {}).setdefault(c["scheme"], c)
    return [list(per.values()) for per in out.values()]


def deep_refine_mem_mb(wildcards, attempt):
    est = max(job_mem_mb(b, BUDGET) for b in deep_refine_batches(wildcards))
    return _retry(est, BUDGET.mem_mb, attempt)


def deep_refine_runtime(wildcards, attempt):
    # each round trains at most one new s per layer and gamma_h at every width
    exp = config["experiments"][wildcards.experiment]
    per_round = sum(
        job_runtime_min(b, BUDGET, CALIBRATION) - 5 for b in deep_refine_batches(wildcards)
    )
    return _retry(int(5 + exp["refine_rounds"] * per_round), BUDGET.runtime_min, attempt)


# precision targets (precision.smk)
def precision_refine(wildcards):
    # B1/B2: the precision rounds start from the coarse grid and its bisection points
    if KINDS[wildcards.experiment] == "train":
        return []
    return f"results/{wildcards.experiment}/refine"


def precision_runs(wildcards):
    # the aggregates of B1/B2 read the precision rounds' runs when the experiment has a target
    if config["experiments"][wildcards.experiment].get("target_ci_width") is None:
        return []
    return f"results/{wildcards.experiment}/precision"


def precision_runtime(wildcards, attempt):
    # at most target_rounds rounds; a round adds at most (growth - 1) x the grid's seeds, so
    # it costs at most growth x the coarse grid's jobs (a few more seeds where growth rounds up)
    exp = config["experiments"][wildcards.experiment]
    grid = sum(
        job_runtime_min(cells, BUDGET, CALIBRATION) - 5
        for (name, _), (cells, _) in BATCHES.items()
        if name == wildcards.experiment
    )
    per_round = exp["target_growth"] * grid
    return _retry(int(5 + exp["target_rounds"] * per_round), BUDGET.runtime_min, attempt)


onsuccess:
    # where the results are, the thresholds, boundaries and diverged replicas (issue 19)
    from lazyphase.pipeline.summary import summarize

    logger.info(summarize(config))
