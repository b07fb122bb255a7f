# One plot rule per figure of the catalog (lazyphase.studies.catalog.FIGURES): tables -> PDF
# and PNG, with a caption for the report (the PNG: labelled and placed in catalog order,
# lazyphase.pipeline.report). The rule of figure F is named plot_F.


for fig in FIGURES.values():

    rule:
        name:
            f"plot_{fig.name}"
        input:
            **fig.input_paths("results/{experiment}"),
        output:
            pdf=f"results/{{experiment}}/figures/{fig.name}.pdf",
            png=report(
                f"results/{{experiment}}/figures/{fig.name}.png",
                caption=f"../report/{fig.name}.rst",
                category=report_category(fig.name),
                subcategory=report_subcategory(fig.name),
                labels=figure_labels(fig),
            ),
        log:
            f"logs/plot/{{experiment}}/{fig.name}.log",
        localrule: True
        conda:
            "../envs/lazyphase.yaml"
        params:
            figure=fig.name,
            code=CODE,
        script:
            "../../scripts/plot.py"
