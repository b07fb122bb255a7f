"""Hostile run files: every variant of one real run file (truncated, bit flips, wrong dtype or
shape, NaN/inf, missing groups, huge attributes, foreign HDF5, ...) gets a one-line error naming
the file and what is wrong from ``inspect``, ``verify`` and aggregation; never a traceback, never
a table built from it (docs/integrity.md counts the cases)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from lazyphase.pipeline import cli
from lazyphase.pipeline.jobs import train_cells
from lazyphase.pipeline.steps import aggregate_experiment
from lazyphase.store.runs import SCHEMA_VERSION, RunFileError

CELL = dict(m=16, depth=1, s=0.25, seeds=[0, 1], max_steps=100, n=8, d=4, n_test=16,
            n_snapshots=10, n_gram_snapshots=2, lr_c=50.0)  # fmt: skip  (lr_c: safeguard events)


def _bytes(fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(fn(p.read_bytes()))


def _h5(fn: Callable[[h5py.File], None], **kw) -> Callable[[Path], None]:
    def edit(p: Path) -> None:
        with h5py.File(p, "a", **kw) as f:
            fn(f)

    return edit


def _flip(dataset: str, byte: int = 7, mask: int = 0x40) -> Callable[[Path], None]:
    def edit(p: Path) -> None:
        with h5py.File(p) as f:
            off = f[dataset].id.get_chunk_info(0).byte_offset
        data = bytearray(p.read_bytes())
        data[off + byte] ^= mask
        p.write_bytes(bytes(data))

    return edit


def _replace(name: str, make: Callable[[np.ndarray], np.ndarray], keep_attrs: bool = True):
    def fn(f: h5py.File) -> None:
        old = f[name]
        attrs = dict(old.attrs)
        data = make(old[()])
        del f[name]
        new = f.create_dataset(name, data=data)
        if keep_attrs:
            new.attrs.update(attrs)

    return _h5(fn)


def _foreign(p: Path) -> None:
    p.unlink()
    with h5py.File(p, "w") as f:  # a valid HDF5 file of another program
        f.create_dataset("images", data=np.zeros((4, 4)))
        f.attrs["creator"] = "some other tool"


def _mimic(p: Path) -> None:
    p.unlink()
    with h5py.File(p, "w") as f:  # another program's file that claims lazyphase's attributes
        f.attrs.update({"complete": True, "schema_version": SCHEMA_VERSION, "lazyphase_version": "0"})
        f.create_dataset("trajectory/rd", data=np.zeros(3))


def _huge_group(f: h5py.File) -> None:
    f.create_group("junk").attrs["x"] = np.zeros(300_000)


def _huge_root(p: Path) -> None:
    p.unlink()
    with h5py.File(p, "w", libver="latest") as f:
        f.attrs.update({"complete": True, "schema_version": SCHEMA_VERSION, "lazyphase_version": "0"})
        f.attrs["config_json"] = np.bytes_(b"x" * 3_000_000)


#: name → (mutation, a phrase the error must contain)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated_third": (_bytes(lambda b: b[: len(b) // 3]), "not a readable HDF5"),
    "truncated_end": (_bytes(lambda b: b[:-100]), "not a readable HDF5"),
    "empty": (_bytes(lambda b: b""), "not a readable HDF5"),
    "garbage": (_bytes(lambda b: bytes(range(256)) * 40), "not a readable HDF5"),
    "superblock_flip": (_bytes(lambda b: b[:2] + bytes([b[2] ^ 0xFF]) + b[3:]), "not a readable"),
    "flip_rd": (_flip("trajectory/rd"), "trajectory/rd fails its fletcher32 checksum"),
    "flip_gram": (_flip("gram/theta", 3, 0x01), "gram/theta fails its fletcher32 checksum"),
    "flip_seed": (_flip("replicas/seed", 0, 0x01), "replicas/seed fails its fletcher32"),
    "flip_events": (_flip("events", 0, 0x01), "events fails its fletcher32 checksum"),
    "flip_x_train": (_flip("data/x_train", 5, 0x10), "data/x_train fails its fletcher32"),
    "wrong_dtype": (_replace("trajectory/rd", lambda a: a.astype(np.int32)),
                    "trajectory/rd has dtype int32, expected float"),
    "wrong_dtype_step": (_replace("trajectory/step", lambda a: a.astype(np.float32)),
                         "trajectory/step has dtype float32, expected integer"),
    "wrong_shape": (_replace("trajectory/t", lambda a: a[:, :-1]), "trajectory/t has shape"),
    "wrong_shape_rd": (_replace("trajectory/rd", lambda a: a[..., :1]), "trajectory/rd has shape"),
    "nan": (_h5(lambda f: f["trajectory/train_loss"].__setitem__((0, 0), np.nan)),
            "trajectory/train_loss: content differs from what lazyphase wrote (sha256 mismatch, "
            "now holds NaN/inf"),
    "inf": (_h5(lambda f: f["replicas/lr0"].__setitem__(0, np.inf)), "replicas/lr0: content"),
    "value_changed": (_h5(lambda f: f["trajectory/rd"].__setitem__((0, 0, 0), 2.0)),
                      "trajectory/rd: content differs"),
    "no_sha_attr": (_replace("trajectory/lr", lambda a: a, keep_attrs=False),
                    "trajectory/lr has no 'sha256' attribute"),
    "missing_group": (_h5(lambda f: f.__delitem__("trajectory")), "missing datasets"),
    "missing_gram": (_h5(lambda f: f.__delitem__("gram/theta")), "missing datasets ['gram/theta']"),
    "missing_optional": (_h5(lambda f: f.__delitem__("replicas/lr0")), "attrs_sha256 mismatch"),
    "extra_dataset": (_h5(lambda f: f.create_dataset("extra", data=[1.0])),
                      "dataset extra has no 'sha256' attribute"),
    "extra_attr": (_h5(lambda f: f["trajectory"].attrs.__setitem__("x", 1)), "attrs_sha256"),
    # attributes over 64 kB need HDF5's dense attribute storage (libver latest): on a new
    # group of the run file, and at the root of a file made from scratch
    "huge_group_attr": (_h5(_huge_group, libver="latest"), "attribute of junk: 'x' is 2400000 bytes"),
    "huge_root_attr": (_huge_root, "root attribute 'config_json' is 3000000 bytes"),
    "attr_changed": (_h5(lambda f: f.attrs.__setitem__("kappa", 1.0)), "attrs_sha256 mismatch"),
    "attr_wrong_type": (_h5(lambda f: f.attrs.__setitem__("seeds", "zero")),
                        "trajectory/t has shape (2, 9), expected (4, 9)"),
    "status_short": (_h5(lambda f: f.attrs.__setitem__("status", np.array([b"converged"]))),
                     "attribute status has 1 entries"),
    "no_seal": (_h5(lambda f: f.attrs.__delitem__("attrs_sha256")), "no attribute 'attrs_sha256'"),
    "incomplete": (_h5(lambda f: f.attrs.__delitem__("complete")), "incomplete run file"),
    "schema_99": (_h5(lambda f: f.attrs.__setitem__("schema_version", 99)), "schema_version 99"),
    "foreign_hdf5": (_foreign, "not a lazyphase run file"),
    "foreign_mimic": (_mimic, "missing datasets"),
}


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """``results/exp/runs/b/<case>.h5`` for every case, and the pristine file."""
    work = tmp_path_factory.mktemp("fuzz")
    good = work / "good.h5"
    train_cells([CELL], [str(good)])
    with h5py.File(good) as f:
        assert len(f["events"]) > 0  # the compound dataset has a chunk to corrupt
    out = {}
    for name, (mutate, _) in CASES.items():
        p = work / "results" / "exp" / "runs" / "b" / f"{name}.h5"
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(good, p)
        mutate(p)
        out[name] = p
    return work, good, out


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_inspect_and_aggregation_give_one_line_naming_file_and_fault(variants, case, capsys, tmp_path):
    _, good, files = variants
    path, phrase = files[case], CASES[case][1]
    assert cli.main(["inspect", str(path)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"lazyphase: error: {path}: ") and phrase in err, err
    outs = {k: str(tmp_path / f"{k}.{ext}") for k, ext in
            (("runs", "parquet"), ("traj", "parquet"), ("exponents", "csv"), ("threshold", "csv"))}  # fmt: skip
    with pytest.raises(RunFileError) as exc:
        aggregate_experiment([str(good), str(path)], "exp", outs, n_boot=10)
    head, line = str(exc.value).splitlines()
    assert head.startswith("1 bad input file(s), nothing written")
    assert line.startswith(f"{path}: ") and "rebuild: snakemake --cores 2 -R" in line
    assert not list(tmp_path.iterdir())  # no table built


def test_verify_lists_every_variant_once_and_exits_2(variants, capsys):
    work, _, _ = variants
    assert cli.main(["verify", str(work / "results")]) == 2
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(CASES)
    for name, (_, phrase) in CASES.items():
        line = next(ln for ln in out if ln.startswith(f"results/exp/runs/b/{name}.h5: "))
        assert line.endswith("rebuild: snakemake --cores 2 -R results/exp/runs/b"), line
        # verify drops the readers' "delete it and rerun" tail; the phrase stays
        assert phrase.split(" (")[0] in line, (name, line)


def test_the_real_cli_on_two_variants(variants):
    """The same through ``python -m lazyphase`` (exit code 2, stderr one line, no traceback)."""
    work, _, files = variants
    for case in ("flip_rd", "foreign_hdf5"):
        r = subprocess.run([sys.executable, "-m", "lazyphase", "inspect", str(files[case])],
                           capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 2 and str(files[case]) in _one_line(r.stderr)
    r = subprocess.run([sys.executable, "-m", "lazyphase", "verify", str(work / "results")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stdout.splitlines()) == len(CASES)
