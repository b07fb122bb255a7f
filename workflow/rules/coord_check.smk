# The coordinate check (docs/conventions.md §7): not part of `all`; build it with
#   snakemake --cores 1 results/coord_check/coord_check_slopes.csv


rule check_coordinates:
    output:
        sizes="results/coord_check/coord_check.csv",
        slopes="results/coord_check/coord_check_slopes.csv",
        pdf="results/coord_check/coord_check.pdf",
        png="results/coord_check/coord_check.png",
    log:
        "logs/check_coordinates.log",
    benchmark:
        "logs/benchmarks/check_coordinates.tsv"
    conda:
        "../envs/lazyphase.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=0,
    params:
        code=CODE,
    script:
        "../../scripts/check_coordinates.py"
