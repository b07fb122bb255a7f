# B2: bisection in s of every layer's boundary, the per-layer exponent table and the deep phase
# diagram; B3: the neurons of the condensation runs (Luo et al.'s neuron plots).


rule refine_deep_phase_boundary:
    input:
        runs="results/{experiment}/runs.parquet",
        dataset="results/{experiment}/dataset.h5",
    output:
        directory("results/{experiment}/refine"),
    log:
        "logs/refine_deep_phase_boundary/{experiment}.log",
    benchmark:
        "logs/benchmarks/refine_deep_phase_boundary/{experiment}.tsv"
    wildcard_constraints:
        experiment=DEEP_PHASE_EXPERIMENTS,
    conda:
        "../envs/lazyphase.yaml"
    threads: 1
    resources:
        **BUDGET_RESOURCES,
        mem_mb=deep_refine_mem_mb,
        runtime=deep_refine_runtime,
        gpu=0,
    params:
        study="deep_phase",
        cells=experiment_cells,
        tol=experiment_setting("refine_tol"),
        rounds=experiment_setting("refine_rounds"),
        refine_on=experiment_setting("refine_on"),
        code=CODE,
    script:
        "../../scripts/refine_boundary.py"


rule aggregate_deep_phase:
    input:
        runs="results/{experiment}/runs.parquet",
        refine="results/{experiment}/refine",
        precision=precision_runs,
    output:
        phase=report_table("results/{experiment}/phase.csv", "phase.csv"),
        boundary=report_table("results/{experiment}/boundary.csv", "boundary.csv"),
    log:
        "logs/aggregate_deep_phase/{experiment}.log",
    wildcard_constraints:
        experiment=DEEP_PHASE_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        study="deep_phase",
        n_boot=experiment_setting("n_boot"),
        ci=experiment_setting("ci"),
        r2_min=experiment_setting("r2_min"),
        refine_on=experiment_setting("refine_on"),
        code=CODE,
    script:
        "../../scripts/aggregate_boundary.py"


rule compute_neurons:
    input:
        experiment_batches,
    output:
        neurons="results/{experiment}/neurons.parquet",
        circle="results/{experiment}/circle.parquet",
        condensation=report_table("results/{experiment}/condensation.csv", "condensation.csv"),
    log:
        "logs/compute_neurons/{experiment}.log",
    wildcard_constraints:
        experiment=TRAIN_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        paths=experiment_runs,
        code=CODE,
    script:
        "../../scripts/compute_neurons.py"
