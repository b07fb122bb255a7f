# Experiments C1-C8 (Chizat, Oyallon & Bach 2019 and the Note): model: chizat cells are trained
# and aggregated by train.smk / aggregate.smk; here: the landscape (C8) and neuron paths (C4)
# computed from the run files, and one plot rule per C figure.


rule compute_landscape:
    input:
        experiment_batches,
    output:
        grid="results/{experiment}/landscape.parquet",
        points="results/{experiment}/landscape_points.parquet",
    log:
        "logs/compute_landscape/{experiment}.log",
    benchmark:
        "logs/benchmarks/compute_landscape/{experiment}.tsv"
    wildcard_constraints:
        experiment=TRAIN_EXPERIMENTS,
    conda:
        "../envs/lazyphase.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    params:
        paths=experiment_runs,
        code=CODE,
    script:
        "../../scripts/compute_landscape.py"


rule compute_cover:
    input:
        experiment_batches,
    output:
        cover="results/{experiment}/cover.parquet",
        teacher="results/{experiment}/cover_teacher.parquet",
    log:
        "logs/compute_cover/{experiment}.log",
    wildcard_constraints:
        experiment=TRAIN_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        paths=experiment_runs,
        code=CODE,
    script:
        "../../scripts/compute_cover.py"
