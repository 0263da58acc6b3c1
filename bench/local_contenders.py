"""The local-disk contenders: zarrcore, zarr-python, zarr-python with the zarrs codec pipeline,
tensorstore and "the limit".

Each writes a whole array into a fresh folder and reads it back whole, with the same shape, chunks,
codec chain and fill value (chunks equal to the fill value are skipped by every library; the
source data has none). Opening or creating the array is setup and is not timed; ``write`` and
``read`` are. None of them fsyncs (tensorstore's default ``file_io_sync`` is turned off to match).
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench._common import CODECS, cores


class Contender(Protocol):
    name: str

    def prepare(self, path: Path) -> None:
        """Create the array (metadata only) at ``path``; not timed."""

    def write(self, data: np.ndarray) -> None: ...

    def open(self, path: Path) -> None:
        """Open the array at ``path`` for reading; not timed."""

    def read(self) -> np.ndarray: ...


class Zarrcore:
    name = "zarrcore"

    def __init__(self, shape: tuple[int, ...], chunks: tuple[int, ...], codec: str) -> None:
        self.shape, self.chunks, self.codecs = shape, chunks, CODECS[codec]

    def prepare(self, path: Path) -> None:
        import zarrcore

        self.array = zarrcore.create(
            str(path), shape=self.shape, chunks=self.chunks, dtype="float32", codecs=self.codecs, fill_value=0
        )

    def write(self, data: np.ndarray) -> None:
        self.array[...] = data

    def open(self, path: Path) -> None:
        import zarrcore

        self.array = zarrcore.open_array(str(path))

    def read(self) -> np.ndarray:
        return self.array[...]


def zarr_python_codecs(codec: str) -> dict[str, Any]:
    from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

    compressors: list[Any] = []
    for c in CODECS[codec][1:]:
        cfg = c["configuration"]
        compressors.append(BloscCodec(**cfg) if c["name"] == "blosc" else ZstdCodec(**cfg))
    return {"serializer": BytesCodec(endian="little"), "compressors": compressors or None}


class ZarrPython:
    name = "zarr-python"

    def __init__(self, shape: tuple[int, ...], chunks: tuple[int, ...], codec: str) -> None:
        self.shape, self.chunks, self.codec = shape, chunks, codec

    def prepare(self, path: Path) -> None:
        import zarr

        self.array = zarr.create_array(
            zarr.storage.LocalStore(str(path)),
            shape=self.shape,
            chunks=self.chunks,
            dtype="float32",
            fill_value=0,
            zarr_format=3,
            **zarr_python_codecs(self.codec),
        )

    def write(self, data: np.ndarray) -> None:
        self.array[...] = data

    def open(self, path: Path) -> None:
        import zarr

        self.array = zarr.open_array(zarr.storage.LocalStore(str(path), read_only=True), mode="r")

    def read(self) -> np.ndarray:
        return self.array[...]


#: zarr-python's settings for the Rust codec pipeline of the ``zarrs`` package; ``strict`` makes an
#: array the pipeline cannot handle fail instead of falling back quietly to zarr-python's own.
ZARRS_CONFIG = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "codec_pipeline.strict": True}


def check_zarrs_pipeline(array: Any) -> None:
    """Fail unless ``array`` (a zarr-python array) runs on the zarrs pipeline's Rust implementation."""
    pipeline = array._async_array.codec_pipeline
    if type(pipeline).__name__ != "ZarrsCodecPipeline" or getattr(pipeline, "impl", None) is None:
        raise RuntimeError(f"expected the zarrs codec pipeline, got {type(pipeline).__name__}")


class ZarrPythonZarrs(ZarrPython):
    """zarr-python with ``codec_pipeline.path`` set to zarrs' pipeline for the whole of this process
    (each contender runs in a process of its own, so the plain zarr-python contender never sees it)."""

    name = "zarr-python+zarrs"

    def __init__(self, shape: tuple[int, ...], chunks: tuple[int, ...], codec: str) -> None:
        import zarr

        zarr.config.set(ZARRS_CONFIG)
        super().__init__(shape, chunks, codec)

    def prepare(self, path: Path) -> None:
        super().prepare(path)
        check_zarrs_pipeline(self.array)

    def open(self, path: Path) -> None:
        super().open(path)
        check_zarrs_pipeline(self.array)


class Tensorstore:
    name = "tensorstore"

    def __init__(self, shape: tuple[int, ...], chunks: tuple[int, ...], codec: str) -> None:
        import tensorstore as ts

        self.shape, self.chunks, self.codecs = shape, chunks, CODECS[codec]
        self.context = ts.Context({"file_io_sync": False})

    def _spec(self, path: Path) -> dict[str, Any]:
        return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}

    def prepare(self, path: Path) -> None:
        import tensorstore as ts

        spec = self._spec(path)
        spec["metadata"] = {
            "shape": list(self.shape),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunks)}},
            "chunk_key_encoding": {"name": "default"},
            "data_type": "float32",
            "fill_value": 0,
            "codecs": self.codecs,
        }
        self.array = ts.open(spec, create=True, context=self.context).result()

    def write(self, data: np.ndarray) -> None:
        self.array.write(data).result()

    def open(self, path: Path) -> None:
        import tensorstore as ts

        self.array = ts.open(self._spec(path), open=True, read=True, context=self.context).result()

    def read(self) -> np.ndarray:
        return self.array.read().result()


class Limit:
    """The same chunks encoded and decoded by numcodecs on a thread pool of one thread per core, and
    written and read as plain files in the same ``c/i/j`` layout: no metadata, no atomic rename, no
    fill-value check, reused per-thread buffers. It still gathers each chunk out of (and scatters it
    into) the 2-D array, which any Zarr library must do too."""

    name = "limit"

    def __init__(self, shape: tuple[int, ...], chunks: tuple[int, ...], codec: str) -> None:
        import numcodecs

        if any(s % c for s, c in zip(shape, chunks, strict=True)):
            raise ValueError("the limit contender needs a shape that is a multiple of the chunk shape")
        self.shape, self.chunks = shape, chunks
        self.grid = [s // c for s, c in zip(shape, chunks, strict=True)]
        self.codec: Any = None
        for c in CODECS[codec][1:]:
            cfg = c["configuration"]
            if c["name"] == "blosc":
                shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[cfg["shuffle"]]
                self.codec = numcodecs.Blosc(cname=cfg["cname"], clevel=cfg["clevel"], shuffle=shuffle,
                                             blocksize=cfg["blocksize"], typesize=cfg["typesize"])  # fmt: skip
            else:
                self.codec = numcodecs.Zstd(level=cfg["level"], checksum=cfg["checksum"])
        self.threads = cores()

    def _region(self, idx: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, self.chunks, strict=True))

    def _file(self, idx: tuple[int, ...]) -> str:
        return os.path.join(self.root, "c", *map(str, idx))

    def prepare(self, path: Path) -> None:
        self.root = str(path)

    def write(self, data: np.ndarray) -> None:
        for head in itertools.product(*(range(n) for n in self.grid[:-1])):
            os.makedirs(os.path.join(self.root, "c", *map(str, head)), exist_ok=True)

        def one(idx: tuple[int, ...]) -> None:
            chunk = np.ascontiguousarray(data[self._region(idx)])
            encoded = self.codec.encode(chunk) if self.codec else chunk
            with open(self._file(idx), "wb") as f:
                f.write(encoded)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(one, itertools.product(*(range(n) for n in self.grid))))

    def open(self, path: Path) -> None:
        self.root = str(path)

    def read(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        local = threading.local()

        def one(idx: tuple[int, ...]) -> None:
            tmp = getattr(local, "chunk", None)
            if tmp is None:
                tmp = local.chunk = np.empty(self.chunks, dtype=np.float32)
                local.buf = bytearray(tmp.nbytes + 65536)
            with open(self._file(idx), "rb", buffering=0) as f:
                if self.codec is None:
                    f.readinto(memoryview(tmp).cast("B"))
                else:
                    n = f.readinto(local.buf)
                    self.codec.decode(memoryview(local.buf)[:n], out=tmp)
            out[self._region(idx)] = tmp

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(one, itertools.product(*(range(n) for n in self.grid))))
        return out


CONTENDERS: dict[str, type] = {c.name: c for c in (Limit, Zarrcore, ZarrPython, ZarrPythonZarrs, Tensorstore)}
