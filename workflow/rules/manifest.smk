# The sha256 of every table and figure of an experiment (docs/integrity.md); checked by
# `lazyphase verify`. One writer per experiment: it runs after the experiment's last figure.


rule write_manifest:
    input:
        experiment_products,
    output:
        "results/{experiment}/manifest.json",
    log:
        "logs/write_manifest/{experiment}.log",
    localrule: True
    conda:
        "../envs/lazyphase.yaml"
    params:
        code=CODE,
    script:
        "../../scripts/write_manifest.py"
