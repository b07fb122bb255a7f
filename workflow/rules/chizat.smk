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


rule plot_chizat_tau:
    input:
        runs="results/{experiment}/runs.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_tau.pdf",
        png=report(
            "results/{experiment}/figures/chizat_tau.png",
            caption="../report/chizat_tau.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_tau.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_tau",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_chizat_stepsize:
    input:
        runs="results/{experiment}/runs.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_stepsize.pdf",
        png=report(
            "results/{experiment}/figures/chizat_stepsize.png",
            caption="../report/chizat_stepsize.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_stepsize.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_stepsize",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_chizat_width:
    input:
        runs="results/{experiment}/runs.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_width.pdf",
        png=report(
            "results/{experiment}/figures/chizat_width.png",
            caption="../report/chizat_width.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_width.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_width",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_chizat_population:
    input:
        runs="results/{experiment}/runs.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_population.pdf",
        png=report(
            "results/{experiment}/figures/chizat_population.png",
            caption="../report/chizat_population.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_population.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_population",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_chizat_trajectories:
    input:
        traj="results/{experiment}/trajectory.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_trajectories.pdf",
        png=report(
            "results/{experiment}/figures/chizat_trajectories.png",
            caption="../report/chizat_trajectories.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_trajectories.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_trajectories",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_chizat_alpha_tau:
    input:
        runs="results/{experiment}/runs.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_alpha_tau.pdf",
        png=report(
            "results/{experiment}/figures/chizat_alpha_tau.png",
            caption="../report/chizat_alpha_tau.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_alpha_tau.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_alpha_tau",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_chizat_landscape:
    input:
        grid="results/{experiment}/landscape.parquet",
        points="results/{experiment}/landscape_points.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_landscape.pdf",
        png=report(
            "results/{experiment}/figures/chizat_landscape.png",
            caption="../report/chizat_landscape.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_landscape.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_landscape",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_chizat_cover:
    input:
        cover="results/{experiment}/cover.parquet",
        teacher="results/{experiment}/cover_teacher.parquet",
    output:
        pdf="results/{experiment}/figures/chizat_cover.pdf",
        png=report(
            "results/{experiment}/figures/chizat_cover.png",
            caption="../report/chizat_cover.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/chizat_cover.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="chizat_cover",
        code=CODE,
    script:
        "../../scripts/plot.py"
