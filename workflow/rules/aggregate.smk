# Run files -> tidy tables, fitted exponents and thresholds.


rule aggregate_experiment:
    input:
        experiment_batches,
    output:
        runs="results/{experiment}/runs.parquet",
        traj="results/{experiment}/trajectory.parquet",
        exponents=report_table("results/{experiment}/exponents.csv", "exponents.csv"),
        threshold=report_table("results/{experiment}/threshold.csv", "threshold.csv"),
        fexponents=report_table(
            "results/{experiment}/function_exponents.csv", "function_exponents.csv"
        ),
    log:
        "logs/aggregate_experiment/{experiment}.log",
    wildcard_constraints:
        experiment=TRAIN_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        paths=experiment_runs,
        n_boot=experiment_setting("n_boot"),
        ci=experiment_setting("ci"),
        code=CODE,
    script:
        "../../scripts/aggregate.py"
