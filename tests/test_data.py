"""Tests for bridge.data: built-in data sets, loaders, validation helpers.

Statistical tolerances (fixed seeds, n samples):

| check                               | tolerance                  | reason                                        |
|-------------------------------------|----------------------------|-----------------------------------------------|
| checkerboard cell counts (n=16000)  | |count - n/8| < 5 sd       | multinomial sd = sqrt(n (1/8)(7/8)) ~ 42      |
| 8gaussians mode counts (n=16000)    | |count - n/8| < 5 sd       | same                                          |
| 8gaussians per-mode std (n=16000)   | 5% relative                | sd of a std estimate ~ 1/sqrt(2 * 4000) ~ 1%  |
| moons / spirals / rings mean        | |mean| < 5 sd              | sd = coordinate std / sqrt(n)                 |
| rings radial residual               | < 5 noise sd for all rows  | P(|N(0,1)| > 5) ~ 6e-7 per row                |
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bridge.data import (
    DATASETS,
    RINGS_RADII,
    RINGS_STD,
    check_same_dim,
    checkerboard,
    eight_gaussians,
    gaussian,
    is_standard_normal,
    load_samples,
    make_dataset,
    resolve_pair,
    resolve_samples,
    rings,
    split_train_test,
)

NAMES = ["gaussian", "checkerboard", "8gaussians", "moons", "spirals", "rings"]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------
# built-in data sets
# --------------------------------------------------------------------------------------------


def test_registry_names():
    assert list(DATASETS) == NAMES


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_finite(name, dtype):
    x = make_dataset(name, 257, generator=gen(), dtype=dtype)
    assert x.shape == (257, 2) and x.dtype == dtype
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", NAMES)
def test_seeding_is_deterministic(name):
    a = make_dataset(name, 100, generator=gen(3), dtype=torch.float64)
    b = make_dataset(name, 100, generator=gen(3), dtype=torch.float64)
    c = make_dataset(name, 100, generator=gen(4), dtype=torch.float64)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert make_dataset(name, 5).shape == (5, 2)  # generator=None uses torch's default RNG


def test_checkerboard_occupies_the_dark_squares():
    n = 16000
    x = checkerboard(n, generator=gen(), dtype=torch.float64)
    assert (x.abs() <= 4).all()
    cells = torch.floor(x / 2).long()  # indices in {-2, ..., 1}^2, squares of side 2
    assert ((cells.sum(1) % 2) == 0).all()  # only squares with an even index sum
    counts = torch.zeros(4, 4)
    for i, j in (cells + 2).tolist():
        counts[i, j] += 1
    occupied = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)) % 2 == 0
    sd = math.sqrt(n * (1 / 8) * (7 / 8))
    assert (counts[~occupied] == 0).all()
    assert ((counts[occupied] - n / 8).abs() < 5 * sd).all()


def test_eight_gaussians_modes_and_spread():
    n = 16000
    x = eight_gaussians(n, generator=gen(), dtype=torch.float64)
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = 2 * math.sqrt(2) * torch.stack([angles.cos(), angles.sin()], 1)
    k = torch.cdist(x, centres).argmin(1)
    counts = torch.bincount(k, minlength=8).double()
    assert ((counts - n / 8).abs() < 5 * math.sqrt(n * 7 / 64)).all()
    resid = x - centres[k]
    # nearest-centre assignment is exact up to ~1e-5 misassigned mass (centres 2.16 apart, sd 0.354)
    assert resid.std(0).sub(0.5 / math.sqrt(2)).abs().max() < 0.05 * 0.5 / math.sqrt(2)


@pytest.mark.parametrize("name", ["moons", "spirals", "rings"])
def test_centred(name):
    n = 20000
    x = make_dataset(name, n, generator=gen(), dtype=torch.float64)
    assert (x.mean(0).abs() < 5 * x.std(0) / math.sqrt(n)).all()


def test_spirals_are_point_symmetric_and_bounded():
    x = make_dataset("spirals", 4000, generator=gen(), dtype=torch.float64)
    assert x.norm(dim=1).max() < math.pi + 5 * 0.1 * math.sqrt(2)
    # the law is symmetric under x -> -x, so odd statistics such as x * |x| have mean 0
    r = x.norm(dim=1)
    assert abs(float((x[:, 0] * r).mean())) < 5 * float((x[:, 0] * r).std()) / math.sqrt(4000)


def test_rings_radii():
    x = rings(5000, generator=gen(), dtype=torch.float64)
    radii = torch.tensor(RINGS_RADII, dtype=torch.float64)
    resid = (x.norm(dim=1, keepdim=True) - radii).abs().min(1).values
    assert (resid < 5 * RINGS_STD).all()


@pytest.mark.parametrize("bad_n", [0, -3, 2.5, True, "10"])
def test_bad_n(bad_n):
    with pytest.raises(ValueError, match="n: expected a positive int"):
        make_dataset("gaussian", bad_n)


def test_bad_dtype_and_generator():
    with pytest.raises(TypeError, match="dtype"):
        make_dataset("moons", 3, dtype=torch.int64)
    with pytest.raises(TypeError, match="generator"):
        make_dataset("moons", 3, generator=0)


def test_make_dataset_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        make_dataset("swissroll", 10)
    msg = str(err.value)
    assert "'swissroll'" in msg and all(name in msg for name in NAMES)


# --------------------------------------------------------------------------------------------
# loaders: round trips
# --------------------------------------------------------------------------------------------


@pytest.fixture
def arr():
    return np.random.default_rng(0).normal(size=(7, 3))


def test_npy_round_trip(tmp_path, arr):
    f = tmp_path / "x.npy"
    np.save(f, arr)
    x = load_samples(f, dtype=torch.float64)
    assert x.dtype == torch.float64 and torch.equal(x, torch.from_numpy(arr))
    assert load_samples(str(f)).dtype == torch.float32


def test_npy_integer_values_are_accepted(tmp_path):
    f = tmp_path / "i.npy"
    np.save(f, np.arange(6).reshape(3, 2))
    assert torch.equal(load_samples(f, dtype=torch.float64), torch.arange(6.0, dtype=torch.float64).view(3, 2))


def test_npz_single_array_any_name(tmp_path, arr):
    f = tmp_path / "a.npz"
    np.savez(f, whatever=arr)
    assert torch.equal(load_samples(f, dtype=torch.float64), torch.from_numpy(arr))


@pytest.mark.parametrize("key", ["x", "samples", "arr_0"])
def test_npz_known_key_among_several(tmp_path, arr, key):
    f = tmp_path / "b.npz"
    np.savez(f, **{key: arr, "labels": np.zeros(7)})
    assert torch.equal(load_samples(f, dtype=torch.float64), torch.from_numpy(arr))


def test_npz_key_preference(tmp_path, arr):
    f = tmp_path / "c.npz"
    np.savez_compressed(f, samples=arr + 1, x=arr, arr_0=arr + 2)
    assert torch.equal(load_samples(f, dtype=torch.float64), torch.from_numpy(arr))


def test_csv_round_trip_without_and_with_header(tmp_path, arr):
    plain = tmp_path / "plain.csv"
    np.savetxt(plain, arr, delimiter=",", fmt="%.17g")
    header = tmp_path / "header.CSV"  # extension is case-insensitive
    np.savetxt(header, arr, delimiter=",", fmt="%.17g", header="a,b,c", comments="")
    for f in (plain, header):
        assert torch.equal(load_samples(f, dtype=torch.float64), torch.from_numpy(arr))


def test_csv_blank_lines_and_spaces(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("x, y\n\n1, 2\n 3 ,4\n\n")
    assert load_samples(f).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_one_dimensional_arrays_become_a_column(tmp_path):
    f = tmp_path / "v.npy"
    np.save(f, np.arange(5.0))
    assert load_samples(f).shape == (5, 1)
    c = tmp_path / "v.csv"
    c.write_text("value\n1\n2\n3\n")
    assert load_samples(c).tolist() == [[1.0], [2.0], [3.0]]


# --------------------------------------------------------------------------------------------
# loaders: each bad input gives one ValueError naming the file and the problem
# --------------------------------------------------------------------------------------------


def write_npy(path, value):
    np.save(path, value)


BAD_NUMPY_CASES = [
    ("zero_rows.npy", np.zeros((0, 2)), "0 samples"),
    ("zero_cols.npy", np.zeros((4, 0)), "0 coordinates"),
    ("rank3.npy", np.zeros((2, 3, 4)), "rank 3"),
    ("scalar.npy", np.array(1.0), "scalar (rank 0)"),
    ("strings.npy", np.array([["a", "b"], ["c", "d"]]), "non-numeric"),
    ("complex.npy", np.ones((3, 2), dtype=complex), "complex"),
    ("one.npy", np.ones((1, 2)), "at least 2"),
    ("objects.npy", None, "refusing to unpickle"),
]


@pytest.mark.parametrize("fname,value,problem", BAD_NUMPY_CASES)
def test_bad_numpy_content(tmp_path, fname, value, problem):
    f = tmp_path / fname
    if value is None:
        np.save(f, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    else:
        np.save(f, value)
    with pytest.raises(ValueError) as err:
        load_samples(f)
    msg = str(err.value)
    assert str(f) in msg and problem in msg and "\n" not in msg


def test_nan_and_inf_count_rows(tmp_path):
    a = np.zeros((6, 2))
    a[1, 0], a[1, 1], a[4, 1] = np.nan, np.inf, -np.inf
    f = tmp_path / "nan.npy"
    np.save(f, a)
    with pytest.raises(ValueError, match=r"NaN or Inf in 2 of 6 rows \(first at sample index 1\)") as err:
        load_samples(f)
    assert str(f) in str(err.value)
    c = tmp_path / "nan.csv"
    c.write_text("1,2\nnan,3\n4,5\n")
    with pytest.raises(ValueError, match="NaN or Inf in 1 of 3 rows"):
        load_samples(c)


@pytest.mark.parametrize(
    "fname,content,problem",
    [
        ("empty.csv", "", "empty"),
        ("blank.csv", "\n\n  \n", "empty (0 rows)"),
        ("header_only.csv", "a,b\n", "0 data rows"),
        ("word.csv", "1,2\n3,abc\n", "non-numeric value 'abc' at line 2, column 2"),
        ("hole.csv", "a,b\n1,2\n3,\n", "non-numeric value '' at line 3, column 2"),
        ("ragged.csv", "1,2\n3,4,5\n", "line 2 has 3 columns, expected 2"),
        ("single.csv", "x,y\n1,2\n", "at least 2"),
        ("empty.npy", "", "empty"),
        ("garbage.npy", "not numpy at all", "not a readable NumPy file"),
        ("garbage.npz", "PK not a zip", "not a readable NumPy file"),
        ("data.txt", "1,2\n3,4\n", "unknown extension '.txt'"),
        ("noext", "1,2\n", "unknown extension '(none)'"),
    ],
)
def test_bad_text_files(tmp_path, fname, content, problem):
    f = tmp_path / fname
    f.write_text(content)
    with pytest.raises(ValueError) as err:
        load_samples(f)
    msg = str(err.value)
    assert str(f) in msg and problem in msg and "\n" not in msg


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="no such file") as err:
        load_samples(tmp_path / "nope.npy")
    assert "nope.npy" in str(err.value)
    with pytest.raises(ValueError, match="is a directory"):
        load_samples(tmp_path)


def test_npz_several_arrays_without_known_key_lists_keys(tmp_path):
    f = tmp_path / "multi.npz"
    np.savez(f, a=np.zeros((3, 2)), b=np.ones((3, 2)))
    with pytest.raises(ValueError) as err:
        load_samples(f)
    msg = str(err.value)
    assert str(f) in msg and "several arrays (a, b)" in msg and "x / samples / arr_0" in msg


def test_npz_without_arrays(tmp_path):
    f = tmp_path / "none.npz"
    np.savez(f)
    with pytest.raises(ValueError, match="holds no arrays"):
        load_samples(f)


def test_npz_object_array_is_not_unpickled(tmp_path):
    f = tmp_path / "obj.npz"
    np.savez(f, x=np.array([None, 1], dtype=object))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_samples(f)


def test_loader_argument_types(tmp_path):
    with pytest.raises(TypeError, match="path"):
        load_samples(3)
    with pytest.raises(TypeError, match="dtype"):
        load_samples(tmp_path / "x.npy", dtype=torch.int32)


# --------------------------------------------------------------------------------------------
# gaussian in any dimension: gaussian:D, and a plain gaussian taking the other side's dimension
# --------------------------------------------------------------------------------------------


def test_gaussian_in_any_dimension():
    x = make_dataset("gaussian:3", 4000, generator=gen(), dtype=torch.float64)
    assert x.shape == (4000, 3)
    # N(0, I_3): mean 0 and covariance I within 5 standard errors (sd of a mean 1/sqrt(n), of a
    # covariance entry <= sqrt(2/n))
    assert (x.mean(0).abs() < 5 / math.sqrt(4000)).all()
    assert (torch.cov(x.T) - torch.eye(3, dtype=torch.float64)).abs().max() < 5 * math.sqrt(2 / 4000)
    assert torch.equal(gaussian(7, dim=3, generator=gen(2)), resolve_samples("gaussian:3", 7, generator=gen(2)))
    assert make_dataset("gaussian", 5, dim=4).shape == (5, 4)  # dim: what a plain gaussian takes
    assert make_dataset("gaussian:1", 5, dim=4).shape == (5, 1)  # an explicit D wins
    assert make_dataset("moons", 5, dim=4).shape == (5, 2)  # the other sets are 2-D


def test_gaussian_2d_draws_unchanged():
    """The 2-D default draws exactly what it always drew: torch.randn(n, 2) from the generator."""
    want = torch.randn(50, 2, generator=gen(1))
    for x in (gaussian(50, generator=gen(1)), make_dataset("gaussian:2", 50, generator=gen(1))):
        assert torch.equal(x, want)
    x0, x1 = resolve_pair("gaussian", "checkerboard", 50, generator=gen(1))
    g = gen(1)
    assert torch.equal(x0, torch.randn(50, 2, generator=g)) and torch.equal(x1, checkerboard(50, generator=g))


@pytest.mark.parametrize("spec", ["gaussian:0", "gaussian:x", "gaussian:", "gaussian:-1", "gaussian:2.5"])
def test_gaussian_bad_dimension(spec):
    with pytest.raises(ValueError, match=r"gaussian:D.*positive integer") as err:
        make_dataset(spec, 10)
    assert repr(spec) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="gaussian:D"):
        resolve_samples(spec, 10)


def test_only_gaussian_takes_a_dimension():
    with pytest.raises(ValueError, match="only gaussian takes a dimension"):
        resolve_samples("moons:3", 10)


def test_plain_gaussian_takes_the_other_sides_dimension(tmp_path):
    f3 = tmp_path / "x3.npy"
    np.save(f3, np.random.default_rng(0).normal(size=(20, 3)))
    x0, x1 = resolve_pair("gaussian", str(f3), 30, generator=gen())
    assert x0.shape == (30, 3) and x1.shape == (20, 3)
    x0, x1 = resolve_pair(str(f3), "gaussian", 30, generator=gen())
    assert x0.shape == (20, 3) and x1.shape == (30, 3)
    assert resolve_pair("gaussian", "gaussian:4", 5)[0].shape == (5, 4)
    assert resolve_pair("gaussian", "gaussian", 5)[1].shape == (5, 2)  # both plain: 2-D
    assert resolve_pair("gaussian", "moons", 5)[0].shape == (5, 2)
    with pytest.raises(ValueError, match="^source has dimension 2 but target has dimension 3$"):
        resolve_pair("gaussian:2", str(f3), 5)
    with pytest.raises(ValueError, match="^--source x has dimension 2 but --target y has dimension 3$"):
        resolve_pair("moons", str(f3), 5, names=("--source x", "--target y"))
    assert resolve_samples("gaussian", 6, dim=3).shape == (6, 3)


def test_is_standard_normal(tmp_path):
    assert is_standard_normal("gaussian") and is_standard_normal("gaussian:7")
    assert not is_standard_normal("moons") and not is_standard_normal(str(tmp_path / "x.npy"))
    with pytest.raises(ValueError, match="gaussian:D"):
        is_standard_normal("gaussian:0")


# --------------------------------------------------------------------------------------------
# resolve_samples, check_same_dim, split_train_test
# --------------------------------------------------------------------------------------------


def test_resolve_builtin_and_file(tmp_path, arr):
    x = resolve_samples("8gaussians", 11, generator=gen(1), dtype=torch.float64)
    assert torch.equal(x, eight_gaussians(11, generator=gen(1), dtype=torch.float64))
    f = tmp_path / "x.npy"
    np.save(f, arr)
    assert torch.equal(resolve_samples(str(f), 2, dtype=torch.float64), torch.from_numpy(arr))  # n ignored
    assert resolve_samples(f).shape == (7, 3)


def test_resolve_unknown_spec():
    with pytest.raises(ValueError) as err:
        resolve_samples("foo", 10)
    msg = str(err.value)
    assert (
        msg.startswith("'foo' is neither a built-in data set (gaussian, checkerboard") and "nor an existing file" in msg
    )


def test_resolve_builtin_needs_n():
    with pytest.raises(ValueError, match="n: needed"):
        resolve_samples("moons")


def test_check_same_dim():
    check_same_dim(torch.zeros(3, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="^source has dimension 2 but target has dimension 3$"):
        check_same_dim(torch.zeros(3, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="^x0 has dimension 1 but x1 has dimension 4$"):
        check_same_dim(torch.zeros(3, 1), torch.zeros(5, 4), names=("x0", "x1"))
    with pytest.raises(ValueError, match=r"target: expected a 2-D tensor of shape \(n, d\), got shape \(5,\)"):
        check_same_dim(torch.zeros(3, 1), torch.zeros(5))
    with pytest.raises(TypeError, match="source"):
        check_same_dim(np.zeros((3, 1)), torch.zeros(5, 1))


def test_split_train_test():
    x = torch.arange(20.0).view(10, 2)
    train, test = split_train_test(x, 3, generator=gen())
    assert train.shape == (7, 2) and test.shape == (3, 2)
    rows = torch.cat([train, test])[:, 0].sort().values
    assert torch.equal(rows, x[:, 0])  # a partition of the rows
    again = split_train_test(x, 3, generator=gen())
    assert torch.equal(again.train, train) and torch.equal(again.test, test)
    for bad in (0, 10, -1, 1.5):
        with pytest.raises(ValueError, match="n_test"):
            split_train_test(x, bad)
