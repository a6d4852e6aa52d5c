"""What `bridge fit` reports: samples.png says in words what each panel shows (no abbreviations
such as "ED=" or "SD=", no equation numbers, coordinates that cannot be mistaken for x0 / x1), and
metrics.json's noise floor has the sizes of the model's numbers."""

import re

from matplotlib.figure import Figure

from bridge.cli import main

TINY = ["--steps", "5", "--n-train", "200", "--n-test", "100", "--sample-steps", "5", "--hidden", "8", "--eps", "1"]


def test_fit_figure_text_in_words(tmp_path, monkeypatch):
    seen, save = [], Figure.savefig

    def record(fig, *args, **kwargs):
        seen.append(
            [fig._suptitle.get_text()]
            + [t for ax in fig.axes for t in (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())]
        )
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    assert main(["fit", "--out", str(tmp_path / "run"), *TINY, "--batch-size", "32", "--quiet"]) == 0
    (texts,) = seen
    text = "\n".join(texts)
    assert not re.search(r"\bSI\b|\bEq\.|\b(ED|SD)=|\$x_[12]\$", text), text
    assert "energy distance" in text and "Sinkhorn divergence" in text and "coordinate 1" in text


def test_fit_noise_floor_has_the_model_sample_size(tmp_path):
    """A source file of 40 rows holds out 10 (a quarter): the ODE and SDE samples have 10 rows,
    scored against 100 held-out targets, and so has the floor's training-target sample."""
    import json

    import numpy as np
    import torch

    from bridge.cli.common import load_pair
    from bridge.metrics import energy_distance

    np.save(tmp_path / "x0.npy", np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32))
    src = str(tmp_path / "x0.npy")
    opts = ["--steps", "5", "--n-train", "200", "--n-test", "100", "--sample-steps", "5", "--hidden", "8"]
    assert main(["fit", "--source", src, "--out", str(tmp_path / "run"), *opts, "--eps", "1", "--quiet"]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    data = load_pair(src, "checkerboard", 200, 100, torch.Generator().manual_seed(0))
    assert data.x0_test.shape[0] == 10 and data.x1_test.shape[0] == 100
    want = energy_distance(data.x1_train[:10].float(), data.x1_test.float())
    assert m["noise_floor"]["energy_distance"] == want
    assert m["sizes"]["ode"] == m["sizes"]["noise_floor"] == [10, 100]
