# Data sets and batched training of the grid cells.


rule make_dataset:
    output:
        "results/{experiment}/dataset.h5",
    log:
        "logs/make_dataset/{experiment}.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        cells=experiment_cells,
        code=CODE,
    script:
        "../../scripts/make_dataset.py"


rule train_cell:
    input:
        dataset="results/{experiment}/dataset.h5",
    output:
        directory("results/{experiment}/runs/{batch}"),
    log:
        "logs/train_cell/{experiment}/{batch}.log",
    benchmark:
        "logs/benchmarks/train_cell/{experiment}/{batch}.tsv"
    wildcard_constraints:
        experiment=TRAIN_EXPERIMENTS,
    conda:
        "../envs/lazyphase.yaml"
    threads: 1
    resources:
        **BUDGET_RESOURCES,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        segments=train_segments,
        gpu=0,
    params:
        cells=batch_cells,
        outs=batch_outs,
        code=CODE,
    script:
        "../../scripts/train_cell.py"
