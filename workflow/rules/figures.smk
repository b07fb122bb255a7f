# One rule per figure: tables -> PDF + PNG (seaborn), with a caption for the report.


rule plot_theta_lazy_rd:
    input:
        runs="results/{experiment}/runs.parquet",
        exponents="results/{experiment}/exponents.csv",
    output:
        pdf="results/{experiment}/figures/theta_lazy_rd.pdf",
        png=report(
            "results/{experiment}/figures/theta_lazy_rd.png",
            caption="../report/theta_lazy_rd.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/theta_lazy_rd.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="theta_lazy_rd",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_theta_lazy_threshold:
    input:
        exponents="results/{experiment}/exponents.csv",
        threshold="results/{experiment}/threshold.csv",
    output:
        pdf="results/{experiment}/figures/theta_lazy_threshold.pdf",
        png=report(
            "results/{experiment}/figures/theta_lazy_threshold.png",
            caption="../report/theta_lazy_threshold.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/theta_lazy_threshold.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="theta_lazy_threshold",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_loss_decay:
    input:
        traj="results/{experiment}/trajectory.parquet",
    output:
        pdf="results/{experiment}/figures/loss_decay.pdf",
        png=report(
            "results/{experiment}/figures/loss_decay.png",
            caption="../report/loss_decay.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/loss_decay.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="loss_decay",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_gram_drift:
    input:
        runs="results/{experiment}/runs.parquet",
    output:
        pdf="results/{experiment}/figures/gram_drift.pdf",
        png=report(
            "results/{experiment}/figures/gram_drift.png",
            caption="../report/gram_drift.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/gram_drift.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="gram_drift",
        code=CODE,
    script:
        "../../scripts/plot.py"


rule plot_gram_concentration:
    input:
        table="results/{experiment}/concentration.parquet",
        summary="results/{experiment}/concentration_summary.csv",
    output:
        pdf="results/{experiment}/figures/gram_concentration.pdf",
        png=report(
            "results/{experiment}/figures/gram_concentration.png",
            caption="../report/gram_concentration.rst",
            category="{experiment}",
        ),
    log:
        "logs/plot/{experiment}/gram_concentration.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        figure="gram_concentration",
        code=CODE,
    script:
        "../../scripts/plot.py"
