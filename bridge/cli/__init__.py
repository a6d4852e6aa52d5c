"""The ``bridge`` command line (also ``python -m bridge``), one module per subcommand.

* ``bridge fit`` (:mod:`bridge.cli.fit`): train the fields of a fixed interpolant between two
  data sets, sample them, write a checkpoint, ``metrics.json`` and ``samples.png``.
* ``bridge likelihood`` (:mod:`bridge.cli.likelihood`): the per-point negative log-likelihood
  of data under a fit or solve run's model (docs/math.md §4).
* ``bridge solve`` (:mod:`bridge.cli.solve`): the Schrödinger bridge by max–min over
  interpolants (docs/math.md §5), checked against POT's entropic plan on held-out samples.
* ``bridge sample`` (:mod:`bridge.cli.sample`): K forward-SDE samples of x1 per source point
  from a solved bridge.

The option choices come from the library's name registries (:data:`bridge.interpolants.INTERPOLANTS`,
:data:`bridge.sb.COUPLINGS`, ...); :mod:`bridge.cli.app` assembles the parser and decides how a
run ends (:mod:`bridge.cli.errors`).
"""

from .app import build_parser, main

__all__ = ["main", "build_parser"]
