# A4: the per-layer Gram at initialization against the limiting kernels (no training).


rule compute_gram_concentration:
    output:
        "results/{experiment}/concentration/{batch}.h5",
    log:
        "logs/compute_gram_concentration/{experiment}/{batch}.log",
    benchmark:
        "logs/benchmarks/compute_gram_concentration/{experiment}/{batch}.tsv"
    wildcard_constraints:
        experiment=CONC_EXPERIMENTS,
    conda:
        "../envs/lazyphase.yaml"
    threads: 1
    resources:
        mem_mb=batch_mem_mb,
        runtime=30,
        gpu=0,
    params:
        cells=batch_cells,
        code=CODE,
    script:
        "../../scripts/compute_concentration.py"


rule aggregate_concentration:
    input:
        concentration_files,
    output:
        table="results/{experiment}/concentration.parquet",
        summary=report_table(
            "results/{experiment}/concentration_summary.csv", "concentration_summary.csv"
        ),
    log:
        "logs/aggregate_concentration/{experiment}.log",
    wildcard_constraints:
        experiment=CONC_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        n_boot=experiment_setting("n_boot"),
        ci=experiment_setting("ci"),
        code=CODE,
    script:
        "../../scripts/aggregate_concentration.py"
