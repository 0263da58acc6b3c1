"""Arrays written by zarr-python 2 itself (``data/zarr2.zarr``, made once by ``data/make_zarr2.py`` in
an environment with zarr 2.18): variable-length strings with ``fill_value: 0``, blosc with bitshuffle,
datetime64, F order with a delta filter and big-endian ints, consolidated metadata. zarrcore reads
each as zarr-python 2 wrote it and as zarr-python 3 reads it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

import zarrcore

DATA = Path(__file__).parent / "data" / "zarr2.zarr"
EXPECTED = json.loads((DATA.parent / "zarr2.zarr.expected.json").read_text())


@pytest.fixture(params=["consolidated", "documents"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> zarrcore.Group:
    if request.param == "documents":  # the same tree without .zmetadata
        import shutil

        shutil.copytree(DATA, tmp_path / "copy.zarr")
        (tmp_path / "copy.zarr" / ".zmetadata").unlink()
        return zarrcore.open_group(str(tmp_path / "copy.zarr"))
    return zarrcore.open_group(str(DATA))


def theirs(name: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(zarr.open_group(str(DATA), mode="r")[name][...])


def test_zarr_python_2_files_read_as_written(root: zarrcore.Group) -> None:
    assert root.attrs["title"] == EXPECTED["title"]
    assert list(root["strings"][:4]) == EXPECTED["strings"]
    np.testing.assert_array_equal(root["floats"][...], np.array(EXPECTED["floats"], dtype="f4"))
    np.testing.assert_array_equal(root["times"][...].astype("int64"), EXPECTED["times"])
    np.testing.assert_array_equal(root["ints"][...], EXPECTED["ints"])
    assert root["ints"].attrs["units"] == "m" and root["ints"].metadata.order == "F"


@pytest.mark.parametrize("name", ["strings", "floats", "times", "ints"])
def test_zarrcore_reads_what_zarr_python_3_reads(root: zarrcore.Group, name: str) -> None:
    ours = np.asarray(root[name][...])
    if ours.dtype.kind == "O":
        assert list(ours) == list(theirs(name))  # the never-written chunk included (the fill value)
    else:
        np.testing.assert_array_equal(ours, theirs(name))
