"""Scripts that regenerate the paper's experiments and our Schrödinger-bridge figures.

Each figure is a module run as ``python -m paper_figures.<name> [--quick] [--out DIR] [--replot]``;
``python -m paper_figures all --quick`` runs every one at reduced size. See
``paper_figures/README.md`` for the table of figures, commands, wall times and findings.
"""

FIGURES = (
    "densities",
    "paths",
    "checkerboard",
    "gmm128",
    "digits",
    "schrodinger",
    "likelihood",
)
