# Kernel baselines beside the network (train, B1, B2) and condensation at depth (B2).


rule compute_kernel_baselines:
    input:
        experiment_batches,
    output:
        baselines=report_table("results/{experiment}/kernel_baselines.csv", "kernel_baselines.csv"),
    log:
        "logs/compute_kernel_baselines/{experiment}.log",
    benchmark:
        "logs/benchmarks/compute_kernel_baselines/{experiment}.tsv"
    wildcard_constraints:
        experiment=TRAIN_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        paths=experiment_runs,
        code=CODE,
    script:
        "../../scripts/compute_kernel_baselines.py"


rule compute_deep_condensation:
    input:
        experiment_batches,
    output:
        condensation=report_table(
            "results/{experiment}/deep_condensation.csv", "deep_condensation.csv"
        ),
    log:
        "logs/compute_deep_condensation/{experiment}.log",
    wildcard_constraints:
        experiment=DEEP_PHASE_EXPERIMENTS,
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        paths=experiment_runs,
        code=CODE,
    script:
        "../../scripts/compute_deep_condensation.py"
