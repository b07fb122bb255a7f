# B1: bisection of the linear/condensed boundary in gamma, the S_w table and the phase diagram.


rule refine_phase_boundary:
    input:
        runs="results/{experiment}/runs.parquet",
        dataset="results/{experiment}/dataset.h5",
    output:
        directory("results/{experiment}/refine"),
    log:
        "logs/refine_phase_boundary/{experiment}.log",
    benchmark:
        "logs/benchmarks/refine_phase_boundary/{experiment}.tsv"
    wildcard_constraints:
        experiment=PHASE_EXPERIMENTS,
    conda:
        "../envs/lazyphase.yaml"
    threads: 1
    resources:
        **BUDGET_RESOURCES,
        mem_mb=refine_mem_mb,
        runtime=refine_runtime,
        gpu=0,
    params:
        study="phase",
        cells=experiment_cells,
        tol=experiment_setting("refine_tol"),
        rounds=experiment_setting("refine_rounds"),
        refine_on=experiment_setting("refine_on"),
        code=CODE,
    script:
        "../../scripts/refine_boundary.py"


rule aggregate_phase:
    input:
        runs="results/{experiment}/runs.parquet",
        refine="results/{experiment}/refine",
        precision=precision_runs,
    output:
        phase=report_table("results/{experiment}/phase.csv", "phase.csv"),
        boundary=report_table("results/{experiment}/boundary.csv", "boundary.csv"),
    log:
        "logs/aggregate_phase/{experiment}.log",
    wildcard_constraints:
        experiment=PHASE_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        study="phase",
        n_boot=experiment_setting("n_boot"),
        ci=experiment_setting("ci"),
        r2_min=experiment_setting("r2_min"),
        refine_on=experiment_setting("refine_on"),
        code=CODE,
    script:
        "../../scripts/aggregate_boundary.py"
