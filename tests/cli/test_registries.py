"""The commands' choices are the library's name registries, and the registries build what they name."""

import argparse

import pytest

from bridge import interpolants as I
from bridge import sb
from bridge.cli import build_parser
from bridge.cli.solve import CLI_COUPLINGS
from bridge.data import DATASETS
from bridge.interpolants import GAMMAS, INTERPOLANTS, make_interpolant
from bridge.likelihood.divergence import PROBE_DISTRIBUTIONS
from bridge.models.mlp import ACTIVATIONS
from bridge.samplers import ODE_SOLVERS, SDE_SOLVERS
from bridge.train import FIELD_SETS


def _option(command, option):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return next(a for a in sub._actions if option in a.option_strings)


@pytest.mark.parametrize(
    "command, option, registry",
    [
        ("fit", "--interpolant", INTERPOLANTS),
        ("fit", "--gamma", GAMMAS),
        ("fit", "--activation", ACTIVATIONS),
        ("likelihood", "--distribution", PROBE_DISTRIBUTIONS),
        ("solve", "--drift-form", sb.DRIFT_FORMS),
        ("solve", "--interpolant", sb.INTERPOLANTS),
    ],
)
def test_choices_are_the_registries(command, option, registry):
    assert tuple(_option(command, option).choices) == tuple(registry)


def test_couplings_are_the_solvers_but_paired():
    """`bridge solve` splits source and target rows independently, so it cannot keep pairs."""
    assert CLI_COUPLINGS == tuple(c for c in sb.COUPLINGS if c != "paired")
    assert tuple(_option("solve", "--coupling").choices) == CLI_COUPLINGS


def test_help_lists_the_library_names():
    fields = _option("fit", "--fields").help
    assert all(",".join(s) in fields for s in FIELD_SETS)
    for command, option in (("fit", "--source"), ("solve", "--target")):
        assert all(name in _option(command, option).help for name in DATASETS)
    solver = _option("likelihood", "--solver").help
    assert all(name in solver for name in (*ODE_SOLVERS, *SDE_SOLVERS))


@pytest.mark.parametrize("method, table", [("ode", ODE_SOLVERS), ("sde", SDE_SOLVERS)])
def test_every_solver_name_builds_its_solver(method, table):
    from bridge.cli.likelihood import _solver

    for name, cls in table.items():
        args = argparse.Namespace(method=method, solver=name, rtol=1e-3, atol=1e-4)
        got, solver = _solver(args)
        assert got == name and type(solver) is cls


CLASSES = {
    "linear": I.Linear,
    "trig": I.Trig,
    "encoder-decoder": I.EncoderDecoder,
    "one-sided-linear": I.OneSidedLinear,
    "one-sided-trig": I.OneSidedTrig,
    "one-sided-vp": I.OneSidedVP,
    "mirror": I.Mirror,
}


@pytest.mark.parametrize("name", list(INTERPOLANTS))
def test_make_interpolant_builds_each_family(name):
    interp = make_interpolant(name, "quadratic", 0.5)
    assert type(interp) is CLASSES[name]
    assert interp.one_sided == name.startswith("one-sided")
    if name in ("linear", "trig", "mirror"):  # the families that take any gamma
        assert repr(interp.gamma_schedule) == "QuadraticGamma(a=0.5)"


@pytest.mark.parametrize("name, cls", [("brownian", I.BrownianGamma), ("quadratic", I.QuadraticGamma),
                                       ("sin2", I.SinSquaredGamma), ("sigmoid", I.SigmoidGamma), ("zero", I.ZeroGamma)])  # fmt: skip
def test_gamma_names(name, cls):
    assert type(GAMMAS[name](2.0)) is cls
    assert repr(make_interpolant("linear", name, 2.0).gamma_schedule) == repr(GAMMAS[name](2.0))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="interpolant: expected one of linear"):
        make_interpolant("spline")
    with pytest.raises(ValueError, match="gamma: expected one of brownian"):
        make_interpolant("linear", "cubic")
    with pytest.raises(TypeError):
        INTERPOLANTS["spline"] = None  # the registries are read-only
