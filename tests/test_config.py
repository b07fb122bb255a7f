"""Malformed configurations are refused before any job runs, naming the key and the value."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lazyphase.cells import ConfigError
from lazyphase.pipeline.config import validate_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
TINY = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())


def tiny(edit):
    cfg = copy.deepcopy(TINY)
    edit(cfg)
    return cfg


def grid(**kw):
    return lambda c: c["experiments"]["theta_lazy"]["grid"].update(kw)


def exp(**kw):
    return lambda c: c["experiments"]["theta_lazy"].update(kw)


def fixed(**kw):
    return lambda c: c["experiments"]["theta_lazy"]["fixed"].update(kw)


def conc(**kw):
    return lambda c: c["experiments"]["gram_concentration"].update(kw)


# (edit, words the message must contain)
BAD = {
    "m not an integer": (grid(m=["a"]), ["'m'", "'a'"]),
    "m < 1": (grid(m=[0]), ["'m'", "0"]),
    "unknown scheme": (grid(scheme=["he"]), ["'scheme'", "'he'", "lecun"]),
    "malformed uniform": (grid(scheme=["uniform:abc"]), ["'scheme'", "uniform:abc"]),
    "unknown activation": (grid(activation=["swish"]), ["'activation'", "'swish'", "relu"]),
    "odd m with symmetric centering": (
        lambda c: (grid(m=[15])(c), fixed(centering="symmetric")(c)),
        ["'m'", "15", "even"],
    ),
    "s out of range": (grid(s=[5.0]), ["'s'", "5.0"]),
    "depth 0": (grid(depth=[0]), ["'depth'", "0"]),
    "empty grid": (exp(grid={}), ["grid"]),
    "empty value list": (grid(m=[]), ["m", "[]"]),
    "unknown experiment key": (exp(foo=1), ["theta_lazy.foo", "allowed keys"]),
    "unknown cell key": (fixed(foo=1), ["'foo'", "allowed keys"]),
    "negative tolerance": (fixed(tol_rel=-1.0), ["'tol_rel'", "-1.0"]),
    "n = 0": (fixed(n=0), ["'n'", "0"]),
    "unknown dtype": (fixed(dtype="float16"), ["'dtype'", "'float16'", "float64"]),
    "no seeds": (exp(seeds=[]), ["seeds", "[]"]),
    "repeated seeds": (exp(seeds=[0, 0]), ["'seeds'", "repeat"]),
    "luo at depth 2": (lambda c: grid(scheme=["luo:0.5"], depth=[2])(c), ["'depth'", "luo"]),
    "batch over a shape key": (exp(batch_over=["m"]), ["batch_over", "m"]),
    "exclude names a missing key": (exp(exclude=[{"width": 3}]), ["exclude", "width"]),
    "unknown figure": (exp(figures=["nope"]), ["figures", "'nope'"]),
    "figure of another kind": (
        conc(figures=["theta_lazy_rd"]),
        ["figures", "theta_lazy_rd", "gram_concentration"],
    ),
    "unknown kind": (conc(kind="sgd"), ["kind", "'sgd'"]),
    "confidence level > 1": (exp(ci=1.5), ["'experiments.theta_lazy.ci'", "1.5"]),
    "no figures": (lambda c: c["experiments"]["theta_lazy"].pop("figures"), ["figures"]),
    "bad experiment name": (
        lambda c: c["experiments"].update({"1bad": c["experiments"]["theta_lazy"]}),
        ["1bad"],
    ),
    "no experiments": (lambda c: c.update(experiments={}), ["experiments"]),
    "unknown top-level key": (lambda c: c.update(results="out"), ["'results'"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_config_is_rejected_naming_key_and_value(name):
    edit, words = BAD[name]
    with pytest.raises(ConfigError) as info:
        validate_config(tiny(edit), SCHEMA)
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{name}: {w!r} not in {msg!r}"


def test_at_least_twenty_malformed_configs():
    assert len(BAD) >= 20


def test_valid_configs_pass_and_get_defaults():
    cfg = validate_config(TINY, SCHEMA)
    assert cfg["experiments"]["theta_lazy"]["ci"] == 0.9
    assert cfg["experiments"]["theta_lazy"]["batch_over"] == ["s", "scheme"]
    validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()), SCHEMA)


def test_validate_config_command(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny(grid(activation=["swish"]))))
    exe = [sys.executable, "-m", "lazyphase", "validate-config"]
    r = subprocess.run([*exe, str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "'swish'" in r.stderr
    r = subprocess.run(
        [*exe, str(ROOT / "tests/configs/tiny.yaml")], capture_output=True, text=True
    )
    assert r.returncode == 0 and "theta_lazy: 8 cells in 2 jobs, 16 replicas" in r.stdout


def test_validation_reports_every_problem_at_once_with_suggestions(tmp_path):
    """Two misspelt cell keys and a bad scheme in one experiment, a misspelt experiment key in
    another: one error listing all four, each misspelling with its correction."""
    import yaml as _yaml

    from lazyphase.pipeline.config import validate_config

    schema = _yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    good = dict(grid={"m": [32, 64], "s": [0.0]}, seeds=[0, 1], figures=["theta_lazy_rd"])
    cfg = {"experiments": {
        "a": {**good, "fixed": {"activaton": "relu", "depht": 2, "scheme": "he"}},
        "b": {**good, "n_bot": 100},
    }}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, schema)
    problems = err.value.problems
    assert len(problems) == 1 and "did you mean 'n_boot'" in problems[0]  # schema pass first
    del cfg["experiments"]["b"]["n_bot"]
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, schema)
    text = str(err.value)
    assert len(err.value.problems) == 3 and text.startswith("3 problems:")
    assert "did you mean 'activation'?" in text and "did you mean 'depth'?" in text
    assert "'he'" in text and len(text) < 2000  # no schema dump


def test_small_grids_draw_warnings_not_errors(tmp_path):
    """m: [64] validates (a user may want the run files), but validate-config says that the
    requested fits need 3 widths, the threshold 3 values of s, the bootstrap 5 seeds."""
    small = tmp_path / "small.yaml"
    small.write_text(
        "experiments:\n  a:\n    grid: {m: [64], s: [0.0, 0.5]}\n    seeds: [0, 1]\n"
        "    figures: [theta_lazy_rd, theta_lazy_threshold]\n"
    )
    r = subprocess.run([sys.executable, "-m", "lazyphase", "validate-config", str(small)],
                       capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0 and "valid" in r.stdout
    warnings = [w for w in r.stderr.splitlines() if "warning" in w]
    assert len(warnings) == 3, r.stderr
    assert "1 width(s) [64]" in warnings[0] and "2 value(s) of s" in warnings[1]
    assert "2 seed(s)" in warnings[2]
