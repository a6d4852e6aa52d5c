"""The ``bridge`` command line (also ``python -m bridge``)."""

from .app import GAMMAS, INTERPOLANTS, build_parser, load_fit_run, main, make_interpolant

__all__ = ["main", "build_parser", "make_interpolant", "load_fit_run", "INTERPOLANTS", "GAMMAS"]
