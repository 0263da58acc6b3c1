"""The Array and Group API: slicing, chunk I/O, empty chunks, resize, append, attributes, hierarchy."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
from zarrcore.errors import MetadataConflictError, SelectionError
from zarrcore.storage.local import LocalStore
from zarrcore.storage.memory import MemoryStore

FORMATS = pytest.mark.parametrize("fmt", [2, 3], ids=["v2", "v3"])


def make(fmt: int = 3, store: Any = None, **kwargs: Any) -> zarrcore.Array:
    """A fresh array in a new memory store (defaults: int32, shape (7, 10, 5), chunks (3, 4, 2))."""
    kwargs = {"shape": (7, 10, 5), "chunks": (3, 4, 2), "dtype": "int32", **kwargs}
    return zarrcore.create(store or MemoryStore(), zarr_format=fmt, **kwargs)


def reference(shape: tuple[int, ...], dtype: str = "int32", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, size=shape).astype(dtype)


def stored_chunks(a: zarrcore.Array) -> set[tuple[int, ...]]:
    return {idx for idx in a.chunk_indices() if a.store.exists(a.chunk_key(idx))}


# -- slicing ------------------------------------------------------------------------------------------

SELECTIONS = [
    (),
    0,
    -1,
    (2, -3),
    (6, 9, 4),
    (-7, -10, -5),
    slice(None, None, 2),
    (slice(1, -1, 3), ..., 1),
    (..., -1),
    ...,
    (slice(5, 2),),
    (slice(-100, 100),),
    (1, slice(None), slice(1, None, 4)),
    (slice(None, None, 5), slice(3, 10, 7), -2),
    (np.int64(3), slice(2, 9)),
    (slice(2, 7), slice(3, 5), slice(1, 2)),
]


@FORMATS
@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_getitem_matches_numpy(fmt: int, selection: Any) -> None:
    ref = reference((7, 10, 5))
    a = make(fmt)
    a[...] = ref
    np.testing.assert_array_equal(a[selection], ref[selection])


@FORMATS
@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_setitem_matches_numpy(fmt: int, selection: Any) -> None:
    ref = reference((7, 10, 5))
    a = make(fmt, fill_value=-5)
    a[...] = ref
    new = reference(np.shape(ref[selection]), seed=1)
    a[selection] = new
    ref[selection] = new
    np.testing.assert_array_equal(a[...], ref)


def _random_selection(rng: random.Random, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Ints (negative too), slices with any bounds and positive steps, an ellipsis, trailing dims left out."""
    sel: list[Any] = []
    for n in shape:
        r = rng.random()
        if r < 0.25 and n:
            sel.append(rng.randrange(-n, n))
        elif r < 0.35 and Ellipsis not in sel:
            sel.append(Ellipsis)
        else:
            bound = [None, rng.randrange(-n - 3, n + 3)]
            sel.append(slice(rng.choice(bound), rng.choice(bound), rng.choice([None, 1, 2, 3, 5])))
    return tuple(sel[:-1] if sel and rng.random() < 0.2 else sel)


def test_random_selections_match_numpy() -> None:
    """Seeded random layouts (0-3 dims, empty dims, both formats and orders) and selections, get and set."""
    rng = random.Random(1)
    for it in range(150):
        nd = rng.randrange(0, 4)
        shape = tuple(rng.randrange(0, 9) for _ in range(nd))
        chunks = tuple(rng.randrange(1, 6) for _ in range(nd))
        a = make(rng.choice([2, 3]), shape=shape, chunks=chunks, order=rng.choice("CF"), fill_value=-9)
        ref = np.full(shape, -9, dtype="int32")
        for _ in range(3):
            sel = _random_selection(rng, shape)
            try:
                value = reference(np.shape(ref[sel]), seed=it)
            except IndexError:  # an ellipsis can shift an integer onto a shorter dimension
                with pytest.raises(SelectionError):
                    a[sel]
                continue
            a[sel] = value
            ref[sel] = value
            np.testing.assert_array_equal(a[sel], ref[sel], err_msg=f"{shape} {chunks} {sel}")
        np.testing.assert_array_equal(a[...], ref, err_msg=f"{shape} {chunks}")


def test_scalar_broadcast_and_dtype_cast() -> None:
    a = make(dtype="float32")
    a[1:3, ::2] = 2.5
    a[0] = np.arange(5)  # broadcast along the middle axis, cast from int
    ref = np.zeros((7, 10, 5), dtype="float32")
    ref[1:3, ::2] = 2.5
    ref[0] = np.arange(5)
    np.testing.assert_array_equal(a[...], ref)
    assert a[0, 0, 4] == 4.0 and isinstance(a[0, 0, 4], np.float32)


@pytest.mark.parametrize(
    "selection",
    [10, (0, -11), (0, 0, 0, 0), slice(None, None, -1), (..., ...), "a", (slice(0, 2), [1, 2])],
    ids=repr,
)
def test_bad_selections_raise_selection_error(selection: Any) -> None:
    a = make()
    with pytest.raises(SelectionError):
        a[selection]


def test_partial_edge_chunks_read_and_write() -> None:
    """Shape (7, 10, 5) with chunks (3, 4, 2): the last chunk in each dimension is cut short."""
    a = make()
    ref = reference(a.shape)
    a[6:, 8:, 4:] = ref[6:, 8:, 4:]  # only the corner edge chunk
    assert stored_chunks(a) == {(2, 2, 2)}
    np.testing.assert_array_equal(a.read_chunk((2, 2, 2)), ref[6:, 8:, 4:])
    a[4:, 9:, 3:] = ref[4:, 9:, 3:]  # straddles edge and inner chunks
    expected = np.zeros_like(ref)
    expected[6:, 8:, 4:] = ref[6:, 8:, 4:]
    expected[4:, 9:, 3:] = ref[4:, 9:, 3:]
    np.testing.assert_array_equal(a[...], expected)
    assert len(stored_chunks(a)) == 4


@FORMATS
@pytest.mark.parametrize("order", ["C", "F"])
def test_integer_index_covering_a_whole_chunk(fmt: int, order: str) -> None:
    """``a[:, 4]`` fills chunk (0, 4) of shape (3, 1) whole, from data that lacks the indexed dimension."""
    a = make(fmt, shape=(3, 5), chunks=(3, 1), order=order)
    a[:, 4] = [1, 2, 3]
    np.testing.assert_array_equal(a[...], [[0, 0, 0, 0, 1], [0, 0, 0, 0, 2], [0, 0, 0, 0, 3]])


def test_zero_dim_and_empty_arrays() -> None:
    scalar = make(shape=(), chunks=(), dtype="float64", fill_value=1.5)
    assert scalar[()] == 1.5 and scalar.nchunks == 1
    scalar[...] = 3.25
    assert scalar[...] == 3.25 and stored_chunks(scalar) == {()}
    empty = make(shape=(0, 4), chunks=(2, 2))
    assert empty[...].shape == (0, 4) and empty.nchunks == 0
    empty[...] = np.zeros((0, 4))
    assert empty.nshards_initialized == 0


# -- chunk-level I/O ---------------------------------------------------------------------------------


@FORMATS
def test_read_write_chunk_region_and_full_shapes(fmt: int) -> None:
    a = make(fmt, fill_value=9)
    edge, inner = (2, 2, 2), (0, 1, 0)
    region = a.chunk_region(edge)
    assert region == (slice(6, 7), slice(8, 10), slice(4, 5))
    assert a.read_chunk(edge).shape == (1, 2, 1)
    assert a.read_chunk(edge, full=True).shape == (3, 4, 2)
    assert (a.read_chunk(edge, full=True) == 9).all()

    small = np.arange(2, dtype="int32").reshape(1, 2, 1)
    assert a.write_chunk(edge, small) is True
    np.testing.assert_array_equal(a.read_chunk(edge), small)
    full = a.read_chunk(edge, full=True)
    assert full[0, :2, 0].tolist() == [0, 1] and (full[1:] == 9).all()  # padding holds the fill

    block = reference((3, 4, 2))
    a.write_chunk(inner, block)
    np.testing.assert_array_equal(a[0:3, 4:8, 0:2], block)
    np.testing.assert_array_equal(a.load_chunk(inner), block)
    assert a.load_chunk((1, 1, 1)) is None
    assert a.read_chunk_bytes((1, 1, 1)) is None
    assert a.read_chunk_bytes(inner) == a.store.get(a.chunk_key(inner))

    with pytest.raises(SelectionError, match=r"chunk \(2, 2, 2\)"):
        a.write_chunk(edge, np.zeros((2, 2, 2)))
    with pytest.raises(SelectionError, match=r"\(3, 0, 0\)"):
        a.read_chunk((3, 0, 0))
    with pytest.raises(SelectionError):
        a.write_chunk((0, 0), block)


def test_encode_and_decode_chunk_are_inverse_and_deterministic() -> None:
    a = make(fmt=3, codecs=[{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "gzip"}])
    block = reference((3, 4, 2))
    first, second = bytes(a.encode_chunk((1, 1, 1), block)), bytes(a.encode_chunk((1, 1, 1), block))
    assert first == second
    np.testing.assert_array_equal(a.decode_chunk((1, 1, 1), first), block)
    a.write_chunk_bytes((1, 1, 1), first)
    np.testing.assert_array_equal(a.read_chunk((1, 1, 1)), block)


@FORMATS
def test_chunk_keys(fmt: int) -> None:
    assert make(fmt).chunk_key((1, 2, 0)) == ("c/1/2/0" if fmt == 3 else "1.2.0")
    assert make(fmt, dimension_separator=".").chunk_key((1, 2, 0)) == ("c.1.2.0" if fmt == 3 else "1.2.0")
    assert make(fmt, dimension_separator="/").chunk_key((1, 2, 0)) == ("c/1/2/0" if fmt == 3 else "1/2/0")
    grouped = zarrcore.create_group(MemoryStore(), zarr_format=fmt).create_array("x", shape=(4,), chunks=(2,),
                                                                                 dtype="u1")  # fmt: skip
    assert grouped.chunk_key((1,)) == ("x/c/1" if fmt == 3 else "x/1")


def test_v3_v2_chunk_key_encoding() -> None:
    assert make(chunk_key_encoding="v2").chunk_key((1, 2, 0)) == "1.2.0"
    assert make(chunk_key_encoding="v2", dimension_separator="/").chunk_key((1, 2, 0)) == "1/2/0"
    assert make(shape=(), chunks=(), chunk_key_encoding="v2").chunk_key(()) == "0"
    assert make(shape=(), chunks=()).chunk_key(()) == "c"


def test_chunk_indices_and_counts() -> None:
    a = make()
    assert a.grid_shape == (3, 3, 3)
    assert a.nchunks == 27
    assert list(a.chunk_indices()) == list(itertools.product(range(3), range(3), range(3)))
    assert a.nshards_initialized == 0
    a[:4, :1, :1] = 1
    assert a.nshards_initialized == 2
    a.attrs["x"] = 1  # metadata documents are not chunks
    assert a.nshards_initialized == 2


# -- empty (fill-valued) chunks -----------------------------------------------------------------------


FILLS = [("int16", 7), ("float64", math.nan), ("complex64", complex(math.nan, 0)), ("bool", True), ("M8[s]", None)]


@pytest.mark.parametrize(
    ("fmt", "dtype", "fill"),
    [(fmt, dt, fill) for fmt in (2, 3) for dt, fill in FILLS],
    ids=str,
)
def test_fill_valued_chunks_are_not_stored(fmt: int, dtype: str, fill: Any) -> None:
    a = make(fmt, shape=(4, 4), chunks=(2, 2), dtype=dtype, fill_value=fill)
    filled = np.full((2, 2), a.metadata.fill, dtype=a.dtype)
    assert a.write_chunk((0, 0), filled) is False
    a[2:, :] = a.metadata.fill
    assert a.nshards_initialized == 0

    other = np.zeros((2, 2), dtype=dtype) if dtype != "bool" else np.zeros((2, 2), dtype=bool)
    a[:2, :2] = other
    assert stored_chunks(a) == {(0, 0)}
    a[:2, :2] = filled  # overwritten with the fill value: the stored object is deleted
    assert stored_chunks(a) == set()


def test_complex_nan_fill_keeps_chunks_that_differ_in_the_other_part() -> None:
    a = make(shape=(3,), chunks=(2,), dtype="complex64", fill_value=complex(math.nan, 0))
    a[...] = np.array([1, 2, complex(math.nan, 1)], dtype="complex64")
    assert stored_chunks(a) == {(0,), (1,)}
    assert a[2].imag == 1


def test_write_empty_chunks_stores_them() -> None:
    a = zarrcore.create(MemoryStore(), shape=(4,), chunks=(2,), dtype="u1", write_empty_chunks=True)
    a[...] = 0
    assert a.nshards_initialized == 2


# -- resize and append --------------------------------------------------------------------------------


@FORMATS
def test_shrink_then_grow_never_resurrects_old_data(fmt: int) -> None:
    store = MemoryStore()
    a = make(fmt, store=store, shape=(10, 6), chunks=(4, 4), fill_value=-1)
    ref = reference((10, 6))
    a[...] = ref
    a.resize(5, 3)
    assert a.shape == (5, 3)
    np.testing.assert_array_equal(a[...], ref[:5, :3])
    assert stored_chunks(a) == {(0, 0), (1, 0)}
    assert not store.exists(a.chunk_key((2, 0)))

    a.resize((10, 6))
    expected = np.full((10, 6), -1, dtype="int32")
    expected[:5, :3] = ref[:5, :3]
    np.testing.assert_array_equal(a[...], expected)
    np.testing.assert_array_equal(zarrcore.open_array(store)[...], expected)  # persisted


def test_random_resizes_match_a_numpy_model() -> None:
    rng = random.Random(2)
    for it in range(60):
        nd = rng.randrange(1, 4)
        shape = tuple(rng.randrange(0, 9) for _ in range(nd))
        store = MemoryStore()
        a = make(rng.choice([2, 3]), store=store, shape=shape, chunks=tuple(rng.randrange(1, 5) for _ in range(nd)),
                 fill_value=-1, order=rng.choice("CF"))  # fmt: skip
        ref = reference(shape, seed=it)
        a[...] = ref
        for _ in range(4):
            new = tuple(rng.randrange(0, 9) for _ in range(nd))
            a.resize(new)
            grown = np.full(new, -1, dtype="int32")
            common = tuple(slice(0, min(old, n)) for old, n in zip(ref.shape, new, strict=True))
            grown[common] = ref[common]
            ref = grown
            np.testing.assert_array_equal(zarrcore.open_array(store)[...], ref)
            assert stored_chunks(a) == {i for i in a.chunk_indices() if store.exists(a.chunk_key(i))}
            assert a.nshards_initialized == len(stored_chunks(a))


def test_resize_to_zero_and_back() -> None:
    a = make(shape=(5,), chunks=(2,))
    a[...] = np.arange(1, 6)
    a.resize(0)
    assert a.nshards_initialized == 0
    a.resize(5)
    np.testing.assert_array_equal(a[...], np.zeros(5))


@pytest.mark.parametrize("bad", [(3,), (-1, 4), (1, 2, 3)], ids=str)
def test_resize_rejects_bad_shapes(bad: tuple[int, ...]) -> None:
    a = make(shape=(4, 4), chunks=(2, 2))
    with pytest.raises(SelectionError):
        a.resize(bad)
    assert a.shape == (4, 4)


@FORMATS
def test_append_along_each_axis(fmt: int) -> None:
    store = MemoryStore()
    a = make(fmt, store=store, shape=(3, 4), chunks=(2, 3))
    ref = reference((3, 4))
    a[...] = ref
    more_rows, more_cols = reference((2, 4), seed=1), reference((5, 3), seed=2)
    assert a.append(more_rows) == (5, 4)
    assert a.append(more_cols, axis=-1) == (5, 7)
    expected = np.concatenate([np.concatenate([ref, more_rows]), more_cols], axis=1)
    np.testing.assert_array_equal(zarrcore.open_array(store)[...], expected)
    with pytest.raises(SelectionError, match="must match"):
        a.append(np.zeros((1, 3)))
    with pytest.raises(SelectionError, match="rank"):
        a.append(np.zeros(7))
    assert a.shape == (5, 7)


# -- metadata: attributes, info, create/attach/overwrite, detection ------------------------------------


@FORMATS
def test_attributes_persist(fmt: int, tmp_path: Path) -> None:
    a = make(fmt, store=LocalStore(tmp_path), attributes={"a": 1})
    a.attrs["b"] = [1, "two", None]
    a.attrs.update(c={"d": 2.5}, a=3)
    del a.attrs["b"]
    assert zarrcore.open(str(tmp_path)).attrs.asdict() == {"a": 3, "c": {"d": 2.5}}
    a.attrs.put({})
    assert zarrcore.open(str(tmp_path)).attrs.asdict() == {}
    if fmt == 2:
        assert not (tmp_path / ".zattrs").exists()


def test_info_describes_the_array() -> None:
    a = make(dimension_names=("t", "y", "x"), fill_value=3)
    info = dict(line.split(" : ", 1) for line in a.info.splitlines())
    info = {k.strip(): v for k, v in info.items()}
    assert info["Type"] == "Array"
    assert info["Zarr format"] == "3"
    assert info["Shape"] == "(7, 10, 5)"
    assert info["Chunk shape"] == "(3, 4, 2)"
    assert info["Data type"] == "int32"
    assert info["Fill value"] == "3"
    assert info["Dimension names"] == "('t', 'y', 'x')"
    assert info["Chunks"] == "27"
    assert "zstd" in info["Codecs"]
    assert repr(a).startswith("<zarrcore.Array memory://")


@FORMATS
def test_create_attaches_to_identical_metadata(fmt: int) -> None:
    store = MemoryStore()
    a = make(fmt, store=store, attributes={"k": "v"})
    a[...] = 5
    again = make(fmt, store=store, attributes={"k": "v"})
    assert again.metadata == a.metadata
    assert (again[...] == 5).all()
    with pytest.raises(MetadataConflictError):
        make(fmt, store=store, attributes={"k": "other"})


@FORMATS
def test_overwrite_replaces_everything(fmt: int) -> None:
    store = MemoryStore()
    a = make(fmt, store=store)
    a[...] = 5
    b = make(fmt, store=store, shape=(2,), chunks=(2,), dtype="float64", overwrite=True)
    assert b.shape == (2,) and b.dtype == np.dtype("float64")
    assert sorted(store.list()) == sorted(b.metadata.to_documents())
    assert zarrcore.open_array(store).shape == (2,)


def test_open_detects_the_format() -> None:
    for fmt in (2, 3):
        store = MemoryStore()
        make(fmt, store=store)
        assert zarrcore.open(store).zarr_format == fmt
        assert isinstance(zarrcore.open_array(store, mode="r+"), zarrcore.Array)
        group_store = MemoryStore()
        zarrcore.create_group(group_store, zarr_format=fmt)
        node = zarrcore.open(group_store)
        assert isinstance(node, zarrcore.Group) and node.zarr_format == fmt
    both, v3 = MemoryStore(), MemoryStore()
    make(2, store=both)
    make(3, store=v3, shape=(1,), chunks=(1,))
    both.put("zarr.json", v3.get("zarr.json"))  # a zarr.json beside a .zarray: v3 is read first
    assert zarrcore.open(both).shape == (1,)


def test_open_mode_controls_writes() -> None:
    store = MemoryStore()
    make(store=store)
    assert zarrcore.open(store).read_only is True
    zarrcore.open(store, mode="r+")[0, 0, 0] = 1
    assert zarrcore.open(store)[0, 0, 0] == 1
    with pytest.raises(ValueError, match="mode"):
        zarrcore.open(store, mode="w")  # type: ignore[arg-type]


def test_array_behaves_like_an_array() -> None:
    a = make(shape=(4, 3), chunks=(2, 2), dtype="uint8")
    a[...] = np.arange(12).reshape(4, 3)
    assert len(a) == 4 and a.ndim == 2 and a.size == 12 and a.nbytes == 12
    np.testing.assert_array_equal(np.asarray(a), np.arange(12).reshape(4, 3))
    with pytest.raises(TypeError):
        len(make(shape=(), chunks=()))


# -- groups -------------------------------------------------------------------------------------------


@FORMATS
def test_group_create_open_children_tree(fmt: int) -> None:
    store = MemoryStore()
    root = zarrcore.create_group(store, zarr_format=fmt, attributes={"root": True})
    sub = root.create_group("sub", attributes={"level": 1})
    sub.create_array("a", shape=(4,), chunks=(2,), dtype="int8")[...] = [1, 2, 3, 4]
    root.create_array("b", shape=(2, 2), chunks=(1, 2), dtype="float32")
    assert root.require_group("sub").attrs.asdict() == {"level": 1}
    root.require_group("new")

    opened = zarrcore.open_group(store)
    assert opened.attrs.asdict() == {"root": True}
    assert list(opened) == ["b", "new", "sub"]
    assert sorted(opened.arrays()) == ["b"]
    assert sorted(opened.groups()) == ["new", "sub"]
    assert "sub" in opened and "sub/a" in opened and "missing" not in opened
    np.testing.assert_array_equal(opened["sub/a"][...], [1, 2, 3, 4])
    assert opened["sub"]["a"].path == "sub/a"
    assert opened.tree().splitlines() == ["/", "├── b (2, 2) float32", "├── new", "└── sub",
                                          "    └── a (4,) int8"]  # fmt: skip
    with pytest.raises(KeyError, match="missing"):
        opened["missing"]
    with pytest.raises(TypeError):
        root.require_group("b")


@FORMATS
def test_nested_names_create_the_groups_between(fmt: int) -> None:
    store = MemoryStore()
    root = zarrcore.create_group(store, zarr_format=fmt)
    root.create_array("a/b/x", shape=(2,), chunks=(2,), dtype="u1")
    root.create_group("a/c", attributes={"k": 1})
    assert zarrcore.open_group(store).tree().splitlines() == [
        "/", "└── a", "    ├── b", "    │   └── x (2,) uint8", "    └── c"]  # fmt: skip
    assert isinstance(zarrcore.open(store, path="a/b"), zarrcore.Group)


@FORMATS
def test_group_consolidate(fmt: int) -> None:
    store = MemoryStore()
    root = zarrcore.create_group(store, zarr_format=fmt)
    root.create_group("g").create_array("x", shape=(3,), chunks=(3,), dtype="u2", attributes={"u": 1})
    consolidated = root.consolidate()
    assert consolidated.metadata.consolidated is not None
    reopened = zarrcore.open_group(store)
    assert reopened.metadata.consolidated == consolidated.metadata.consolidated
    assert reopened["g/x"].attrs.asdict() == {"u": 1}
    assert reopened.tree().splitlines() == ["/", "└── g", "    └── x (3,) uint16"]
    # Creating another child does not rewrite the consolidated document; consolidating again does.
    root.create_array("y", shape=(1,), chunks=(1,), dtype="u1")
    assert "y" not in list(zarrcore.open_group(store))
    assert "y" in list(zarrcore.consolidate_metadata(store))


def test_group_attach_and_conflict() -> None:
    store = MemoryStore()
    zarrcore.create_group(store, attributes={"a": 1})
    assert zarrcore.create_group(store, attributes={"a": 1}).attrs.asdict() == {"a": 1}
    with pytest.raises(MetadataConflictError):
        zarrcore.create_group(store, attributes={"a": 2})
    with pytest.raises(MetadataConflictError):
        zarrcore.create(store, shape=(1,), chunks=(1,), dtype="u1")
    assert zarrcore.create_group(store, attributes={"b": 1}, overwrite=True).attrs.asdict() == {"b": 1}
