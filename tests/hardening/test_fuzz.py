"""Property-based fuzzing of what a store hands zarrcore: metadata documents and chunk bytes.

Every example is a valid document or chunk mutated by hypothesis (fields replaced by any JSON, keys
dropped or added, bytes cut, flipped or replaced). Whatever it is, opening and reading it either
works or raises a :class:`~zarrcore.errors.ZarrcoreError`; it allocates no more than a small bound
(traced by :mod:`tracemalloc`, which sees numpy's buffers and Python's alike); and it writes nothing.
Each test stops drawing new work at its time budget; the counts it printed are in the docs.
"""

from __future__ import annotations

import copy
import json
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zarrcore
from zarrcore.errors import ZarrcoreError
from zarrcore.storage import MemoryStore

#: Seconds of fuzzing per test at most (4,000 examples take about 13 s here); examples drawn after it are skipped.
BUDGET = 25.0
#: The most one example may allocate at its peak.
MEMORY = 64 << 20
FUZZ = settings(max_examples=4000, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))  # fmt: skip

BYTES = {"name": "bytes", "configuration": {"endian": "little"}}
GRID = {"name": "regular", "configuration": {"chunk_shape": [2, 3]}}
V3_ARRAY = {"zarr_format": 3, "node_type": "array", "shape": [4, 5], "data_type": "float32", "chunk_grid": GRID,
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}}, "fill_value": 0,
            "codecs": [BYTES, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}],
            "attributes": {"units": "m"}, "dimension_names": ["y", "x"]}  # fmt: skip
SHARDED = {**V3_ARRAY, "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 6]}},
           "codecs": [{"name": "sharding_indexed", "configuration": {
               "chunk_shape": [2, 3], "codecs": [BYTES, {"name": "gzip", "configuration": {"level": 1}}],
               "index_codecs": [BYTES, {"name": "crc32c"}], "index_location": "end"}}]}  # fmt: skip
STRINGS = {**V3_ARRAY, "data_type": "string", "fill_value": "", "codecs": [{"name": "vlen-utf8"}]}
V2_ARRAY = {"zarr_format": 2, "shape": [4, 5], "chunks": [2, 3], "dtype": "<i8", "order": "C", "fill_value": 0,
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
            "filters": [{"id": "delta", "dtype": "<i8"}], "dimension_separator": "."}  # fmt: skip
V3_GROUP = {"zarr_format": 3, "node_type": "group", "attributes": {"title": "t"}}
V2_GROUP = {"zarr_format": 2}
#: (file name, document) of every node kind zarrcore opens.
DOCUMENTS = [("zarr.json", V3_ARRAY), ("zarr.json", SHARDED), ("zarr.json", STRINGS), (".zarray", V2_ARRAY),
             ("zarr.json", V3_GROUP), (".zgroup", V2_GROUP)]  # fmt: skip
HOSTILE_VALUES = [-1, 0, 1, 2**31, 2**63, 2**64, 10**30, -(10**30), 1e308, "NaN", "", "\x00", [], {}, [[]], None,
                  True, [2**62, 2**62], [0], [-1, 3], "float32", "|O", {"name": None}]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.sampled_from(HOSTILE_VALUES),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document: object keys and list positions, at any depth."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*here, key)
            yield from _paths(value, (*here, key))
    elif isinstance(doc, list):
        for n, value in enumerate(doc):
            yield (*here, n)
            yield from _paths(value, (*here, n))


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    name, base = draw(st.sampled_from(DOCUMENTS))
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(doc))
        action = draw(st.sampled_from(["replace", "delete", "add"] if places else ["add"]))
        if action == "add":
            parent, key = doc, draw(st.text(max_size=12) | st.sampled_from(["node_type", "storage_transformers"]))
        else:
            *up, key = draw(st.sampled_from(places))
            parent = doc
            for step in up:
                parent = parent[step]
        if action == "delete":
            del parent[key]
        elif isinstance(parent, list) and not isinstance(key, int):
            parent.append(copy.deepcopy(draw(json_values)))  # drawn values may be shared
        else:
            parent[key] = copy.deepcopy(draw(json_values))
    data = json.dumps(doc).encode()
    if draw(st.booleans()) and draw(st.booleans()):  # a quarter of them also damaged as text
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) + data[cut + draw(st.integers(0, 4)) :]
    return name, data


def snapshot(store: MemoryStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list()}


class Fuzz:
    """Runs examples within the budget and memory bound, and counts what each one ended in."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + BUDGET
        self.outcomes: Counter[str] = Counter()
        #: Once an example failed, hypothesis replays and shrinks it whatever the time.
        self.failing = False

    def run(self, store: MemoryStore, work: Callable[[], Any]) -> None:
        if time.monotonic() > self.deadline and not self.failing:
            return
        before = snapshot(store)
        self.failing = True  # until this example passes
        tracemalloc.start()
        try:
            work()
            self.outcomes["ok"] += 1
        except ZarrcoreError as exc:
            self.outcomes[type(exc).__name__] += 1
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < MEMORY, f"an example allocated {peak >> 20} MiB"
        assert snapshot(store) == before, "reading wrote to the store"
        self.failing = False

    def report(self, what: str) -> None:
        total = sum(self.outcomes.values())
        print(f"\n{what}: {total} cases; outcomes {dict(self.outcomes.most_common())}")
        assert total >= 200, f"only {total} cases ran in {BUDGET} s"


def read_some(node: Any) -> None:
    """What a reader does first: the metadata, a corner of an array (or each array of a group)."""
    if isinstance(node, zarrcore.Group):
        for member in node.members().values():
            read_some(member)
        return
    _ = node.attrs, node.dtype, node.fill_value
    node[tuple(slice(0, 2) for _ in node.shape)]


@pytest.fixture(scope="module")
def metadata_fuzz() -> Iterator[Fuzz]:
    fuzz = Fuzz()
    yield fuzz
    fuzz.report("metadata documents")


@FUZZ
@given(document=mutated_documents(), entry=st.sampled_from(["open", "open_group", "consolidated"]))
def test_fuzzed_metadata_opens_or_raises_a_typed_error(metadata_fuzz: Fuzz, document: tuple[str, bytes],
                                                        entry: str) -> None:  # fmt: skip
    name, data = document
    store = MemoryStore()
    if entry == "consolidated":  # the document as a member of a consolidated v3 group
        try:
            member = json.loads(data)
        except ValueError:
            member = data.decode("latin-1")
        root = {"zarr_format": 3, "node_type": "group", "attributes": {},
                "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": {"a": member}}}
        store.put("zarr.json", json.dumps(root).encode())  # fmt: skip
        metadata_fuzz.run(store, lambda: read_some(zarrcore.open_group(store)))
        return
    store.put(name, data)
    opener = zarrcore.open if entry == "open" else zarrcore.open_group
    metadata_fuzz.run(store, lambda: read_some(opener(store)))


def _arrays() -> dict[str, tuple[MemoryStore, np.ndarray]]:
    """A few small arrays with every kind of chunk encoding, each in a store of its own."""
    made = {}
    blosc = {"name": "blosc", "configuration": {"cname": "zstd"}}
    for name, doc in [("zstd", V3_ARRAY), ("sharded", SHARDED), ("strings", STRINGS), ("v2 blosc+delta", V2_ARRAY),
                      ("crc32c", {**V3_ARRAY, "codecs": [BYTES, {"name": "crc32c"}]}),
                      ("blosc", {**V3_ARRAY, "codecs": [BYTES, blosc]}),
                      ("v2 zlib", {**V2_ARRAY, "compressor": {"id": "zlib"}, "filters": None})]:  # fmt: skip
        store = MemoryStore()
        store.put("zarr.json" if doc["zarr_format"] == 3 else ".zarray", json.dumps(doc).encode())
        array = zarrcore.open_array(store, mode="r+")
        data = np.arange(20).reshape(4, 5).astype(array.dtype) if array.dtype.kind != "O" else \
            np.array([f"s{n}" * n for n in range(20)], dtype=object).reshape(4, 5)  # fmt: skip
        array[...] = data
        made[name] = (store, data)
    return made


ARRAYS = _arrays()


@st.composite
def damaged_chunks(draw: st.DrawFn) -> tuple[str, str, bytes]:
    name = draw(st.sampled_from(sorted(ARRAYS)))
    store, _ = ARRAYS[name]
    key = draw(st.sampled_from(sorted(k for k in store.list() if not k.endswith((".zarray", "zarr.json")))))
    data = bytearray(store.get(key))
    how = draw(st.sampled_from(["random", "flip", "cut", "extend", "splice"]))
    if how == "random":
        return name, key, draw(st.binary(max_size=4096))
    if how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    elif how == "cut":
        del data[draw(st.integers(0, len(data))) :]
    elif how == "extend":
        data += draw(st.binary(min_size=1, max_size=64))
    else:
        at = draw(st.integers(0, len(data)))
        data[at : at + 8] = draw(st.binary(min_size=1, max_size=16))
    return name, key, bytes(data)


@pytest.fixture(scope="module")
def chunk_fuzz() -> Iterator[Fuzz]:
    fuzz = Fuzz()
    yield fuzz
    fuzz.report("chunk bytes")


@FUZZ
@given(damaged=damaged_chunks())
def test_fuzzed_chunk_bytes_read_or_raise_a_typed_error(chunk_fuzz: Fuzz, damaged: tuple[str, str, bytes]) -> None:
    name, key, data = damaged
    original, expected = ARRAYS[name]
    store = MemoryStore()
    for k in original.list():
        store.put(k, original.get(k))
    store.put(key, data)
    seen: list[np.ndarray] = []
    chunk_fuzz.run(store, lambda: seen.append(zarrcore.open_array(store)[...]))
    if seen and data == original.get(key):
        np.testing.assert_array_equal(seen[0], expected)
