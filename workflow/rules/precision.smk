# Precision-targeted sampling (docs/statistics.md): seeds, and widths where the fit is limited by
# leverage, added in rounds until every interval meets target_ci_width or a cap is reached. Only
# experiments that set target_ci_width have this rule; it runs after the bisection of B1/B2.
PRECISION_STUDY = {"train": "train", "phase_diagram": "phase", "deep_phase_diagram": "deep_phase"}
PRECISION_EXPERIMENTS = (
    "|".join(
        n
        for n, e in config["experiments"].items()
        if e.get("target_ci_width") is not None and KINDS[n] in PRECISION_STUDY
    )
    or "(?!)"
)


rule target_precision:
    input:
        runs="results/{experiment}/runs.parquet",
        dataset="results/{experiment}/dataset.h5",
        refine=precision_refine,
    output:
        runs=directory("results/{experiment}/precision"),
        table=report_table("results/{experiment}/precision.csv", "precision.csv"),
    log:
        "logs/target_precision/{experiment}.log",
    benchmark:
        "logs/benchmarks/target_precision/{experiment}.tsv"
    wildcard_constraints:
        experiment=PRECISION_EXPERIMENTS,
    conda:
        "../envs/lazyphase.yaml"
    threads: 1
    resources:
        **BUDGET_RESOURCES,
        mem_mb=deep_refine_mem_mb,
        runtime=precision_runtime,
        gpu=0,
    params:
        study=lambda wildcards: PRECISION_STUDY[KINDS[wildcards.experiment]],
        cells=experiment_cells,
        target=lambda wildcards: config["experiments"][wildcards.experiment],
        n_boot=experiment_setting("n_boot"),
        ci=experiment_setting("ci"),
        code=CODE,
    script:
        "../../scripts/target_precision.py"
