"""A sharded array on an S3 server (moto) on 127.0.0.1, or on local disk: zarrcore, zarr-python (on
its own codec pipeline and on the zarrs package's Rust one) and tensorstore side by side.

    python -m bench.sharded_io                  # float32 4096x4096 (64 MiB): 4 MiB shards of 64 KiB chunks, zstd-1
    python -m bench.sharded_io --store local    # the same on local disk (a temporary folder)
    python -m bench.sharded_io --quick          # one round, fewer reads
    python -m bench.sharded_io --store local --contenders zarrcore --ops write --repeat 9   # one op, one contender
    python -m bench.sharded_io --store local --cold   # also cold: a fresh process per round, contender and op

zarrcore creates the array; then each contender, in turn and on the same random positions:

* ``write``: writes the whole array (every shard encoded and stored whole);

* ``point``: ``--reads`` single elements, one after another (each needs a shard's index and one
  inner chunk: two requests, latency-bound);
* ``window``: ``--reads`` 256x256 windows, one after another (up to four shards each, a few inner
  chunks of each);
* ``whole``: the whole array (every shard in one request each);
* ``update``: ``--reads / 5`` writes of 300 elements of one row (a 1x300 window), one after another (each reads and
  rewrites a whole shard object; the values written are those already there, so reads stay valid).

Times are the best of ``--repeat`` rounds; the ``x`` columns are throughput
ratios (above 1: the row's contender is faster). zarrcore keeps the shard indexes it has read, each
pinned to the shard's version (its ETag on S3), so a later small read of a shard it has seen needs one
request; its own writes drop the indexes they change. zarr-python's own pipeline keeps nothing, and tensorstore's
cache pool is left at its default of 0 bytes. Each contender keeps up to ``--concurrency`` requests in
flight. The moto server runs in its own process,
started here and stopped by its PID.

These warm rounds run in one process after a warm-up read by each contender. With ``--cold`` every
(round, contender, op) also runs in a fresh process that imports the library and opens the array
untimed and then does the op once, with nothing read before (no shard index kept, no thread pool
started, no memory touched), as a user's script would; a second table shows bests and medians of
both side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from bench._coldwarm import format_cold_warm
from bench._common import (
    MiB,
    Row,
    Timing,
    format_table,
    keep_best,
    make_source,
    rss_bytes,
    run_worker,
    save_rows,
    timed,
    workdir,
)
from bench.local_contenders import ZARRS_CONFIG, check_zarrs_pipeline
from bench.s3_io import KEY, REGION, SECRET, boto3_client, moto_server

CONTENDERS = ["zarrcore", "zarr-python+zarrs", "zarr-python", "tensorstore"]
REFS = ["zarr-python+zarrs", "zarr-python", "tensorstore"]
BUCKET, PREFIX = "bench-sharded", "a.zarr"
WINDOW = 256
OPS = ["write", "point", "window", "whole", "update"]


class _Sliced:
    """A contender whose array reads and writes with numpy-style slicing."""

    array: Any

    def read(self, selection: Any) -> np.ndarray:
        return np.asarray(self.array[selection])

    def write(self, selection: Any, values: np.ndarray) -> None:
        self.array[selection] = values


def zarrcore_store(where: str, concurrency: int) -> Any:
    """zarrcore's store for ``where``: an ``http://`` S3 endpoint, else a local folder."""
    from zarrcore.storage import LocalStore
    from zarrcore.storage.cloud.s3 import S3Store

    if not where.startswith("http"):
        return LocalStore(where)
    return S3Store(BUCKET, PREFIX, endpoint_url=where, region=REGION, access_key_id=KEY, secret_access_key=SECRET,
                   addressing_style="path", max_pool_connections=concurrency + 4)  # fmt: skip


def check_plain_pipeline(array: Any) -> None:
    """Fail unless ``array`` (a zarr-python array) runs on zarr-python's own codec pipeline."""
    name = type(array._async_array.codec_pipeline).__name__
    if name != "BatchedCodecPipeline":
        raise RuntimeError(f"expected zarr-python's own codec pipeline, got {name}")


class Zarrcore(_Sliced):
    def __init__(self, where: str, concurrency: int) -> None:
        import zarrcore
        from zarrcore.pool import set_io_concurrency

        set_io_concurrency(concurrency)
        self.array = zarrcore.open_array(zarrcore_store(where, concurrency), mode="r+")


class ZarrPython(_Sliced):
    def __init__(self, where: str, concurrency: int) -> None:
        import obstore.store
        import zarr

        zarr.config.set({"async.concurrency": concurrency})
        if not where.startswith("http"):
            self.array = zarr.open_array(where, mode="r+")
            if type(self) is ZarrPython:
                check_plain_pipeline(self.array)
            return
        s3 = obstore.store.S3Store(BUCKET, prefix=PREFIX, endpoint=where, access_key_id=KEY,
                                   secret_access_key=SECRET, region=REGION,
                                   client_options={"allow_http": True})  # fmt: skip
        self.array = zarr.open_array(zarr.storage.ObjectStore(s3), mode="r+")
        if type(self) is ZarrPython:
            check_plain_pipeline(self.array)


class ZarrPythonZarrs(ZarrPython):
    """zarr-python on the zarrs codec pipeline: the setting holds only while this array is opened
    (a zarr-python array keeps the pipeline it was opened with), so the plain contender beside it in
    this process keeps zarr-python's own pipeline; both are checked."""

    def __init__(self, where: str, concurrency: int) -> None:
        import zarr

        with zarr.config.set(ZARRS_CONFIG):
            super().__init__(where, concurrency)
        check_zarrs_pipeline(self.array)


class Tensorstore:
    def __init__(self, where: str, concurrency: int) -> None:
        import tensorstore as ts

        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = KEY, SECRET
        kvstore: dict[str, Any] = {"driver": "file", "path": where}
        if where.startswith("http"):
            kvstore = {"driver": "s3", "bucket": BUCKET, "path": PREFIX + "/", "endpoint": where, "aws_region": REGION,
                       "aws_credentials": {"type": "environment"}}  # fmt: skip
        spec = {
            "driver": "zarr3",
            "kvstore": kvstore,
            "context": {"s3_request_concurrency": {"limit": concurrency},
                        "data_copy_concurrency": {"limit": os.cpu_count() or 1}},
        }  # fmt: skip
        self.array = ts.open(spec, read=True, write=True).result()

    def read(self, selection: Any) -> np.ndarray:
        return np.asarray(self.array[selection].read().result())

    def write(self, selection: Any, values: np.ndarray) -> None:
        self.array[selection].write(values).result()


FACTORIES = {"zarrcore": Zarrcore, "zarr-python+zarrs": ZarrPythonZarrs, "zarr-python": ZarrPython,
             "tensorstore": Tensorstore}  # fmt: skip


def write_array(where: str, data: np.ndarray, shards: tuple[int, int], chunks: tuple[int, int]) -> int:
    """Write the array with zarrcore; returns its stored size."""
    import zarrcore

    if where.startswith("http"):
        boto3_client(where, 1).create_bucket(Bucket=BUCKET)
    store = zarrcore_store(where, 4)
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}},
              {"name": "zstd", "configuration": {"level": 1, "checksum": False}}]  # fmt: skip
    array = zarrcore.create(store, shape=data.shape, chunks=chunks, shards=shards, dtype="float32", codecs=codecs,
                            fill_value=0)  # fmt: skip
    array[...] = data
    return sum(store.size(k) for k in store.list("c/"))


@contextlib.contextmanager
def place(kind: str) -> Iterator[tuple[str, int | None]]:
    """Where the array lives: a moto endpoint (and the server's PID), or a temporary local folder."""
    if kind == "s3":
        with moto_server() as (endpoint, pid):
            yield endpoint, pid
    else:
        with workdir() as tmp:
            yield str(tmp / "sharded.zarr"), None


def positions(side: int, reads: int) -> dict[str, list[Any]]:
    """The points, windows and row updates of a run: the same (seeded) in every process."""
    rng = np.random.default_rng(0)
    points = [(int(y), int(x)) for y, x in rng.integers(0, side, size=(reads, 2))]
    corners = [(int(y), int(x)) for y, x in rng.integers(0, side - WINDOW, size=(reads, 2))]
    windows = [(slice(y, y + WINDOW), slice(x, x + WINDOW)) for y, x in corners]
    # A 1x300 window rather than (row, slice): zarrs' pipeline writes no selection that drops an axis.
    rows = [(slice(int(y), int(y) + 1), slice(int(x), int(x) + 300))
            for y, x in rng.integers(0, side - 300, size=(max(1, reads // 5), 2))]  # fmt: skip
    return {"points": points, "windows": windows, "rows": rows}


def operations(data: np.ndarray, at: dict[str, list[Any]]) -> dict[str, tuple[Any, int]]:
    """Each op as (what it does to a contender, the bytes it moves)."""
    points, windows, rows = at["points"], at["windows"], at["rows"]
    return {
        "write": (lambda r: r.write(..., data), data.nbytes),
        "point": (lambda r: [r.read(p) for p in points], len(points) * 4),
        "window": (lambda r: [r.read(w) for w in windows], len(windows) * WINDOW * WINDOW * 4),
        "whole": (lambda r: r.read(...), data.nbytes),
        "update": (lambda r: [r.write(w, data[w]) for w in rows], len(rows) * 300 * 4),
    }


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """One op by one contender, cold, in this fresh process: the library imported and the array opened
    untimed, nothing read before the op."""
    data = np.load(args["source"])
    fn, nbytes = operations(data, positions(data.shape[0], args["reads"]))[args["op"]]
    base = rss_bytes()
    reader = FACTORIES[args["contender"]](args["where"], args["concurrency"])
    timing = Timing()
    out = timed(lambda: fn(reader), timing, server_pid=args["server_pid"])
    if args["op"] == "whole" and args["verify"]:
        np.testing.assert_array_equal(out, data)
    return {"timing": timing.__dict__, "nbytes": nbytes, "base_rss": base}


def run(*, size_mib: float, shard_kib: int, chunk_kib: int, reads: int, repeat: int, concurrency: int,
        contenders: list[str], store: str = "s3", only: list[str] | None = None,
        cold: bool = False) -> tuple[list[Row], str, list[Row]]:  # fmt: skip
    """The warm rounds' rows (best of the rounds), the title, and with ``cold`` the cold rounds' rows."""
    side = int((size_mib * MiB / 4) ** 0.5)
    shard_side, chunk_side = int((shard_kib * 1024 / 4) ** 0.5), int((chunk_kib * 1024 / 4) ** 0.5)
    data = make_source((side, side))
    at = positions(side, reads)
    points, windows = at["points"], at["windows"]
    where_name = "s3 (moto on 127.0.0.1)" if store == "s3" else "local disk"
    title = (f"sharded array on {where_name}: float32 {side}x{side} ({size_mib:.0f} MiB), shards "
             f"{shard_side}x{shard_side} ({shard_kib} KiB) of {chunk_side}x{chunk_side} chunks ({chunk_kib} KiB), "
             f"zstd-1; whole writes, {reads} points, {reads} {WINDOW}x{WINDOW} windows and {len(at['rows'])} row "
             f"updates one at a time; {concurrency} requests in flight; best of {repeat}")  # fmt: skip
    print(f"[{title}]", file=sys.stderr, flush=True)
    best: dict[tuple[str, ...], Row] = {}
    cold_best: dict[tuple[str, ...], Row] = {}
    ops = {op: job for op, job in operations(data, at).items() if only is None or op in only}

    def row(name: str, op: str, timing: Timing, nbytes: int, stored: int, base: int, server: bool) -> Row:
        out = Row(case="sharded", group="zstd", contender=name, op=op, seconds=timing.best, nbytes=nbytes,
                  stored=stored, peak_rss=timing.peak_rss, base_rss=base, extra={"cpu": timing.cpu[0]})  # fmt: skip
        if server:
            out.extra["server_cpu"] = timing.server_cpu[0]
        return out

    with place(store) as (where, server_pid), workdir() as tmp:
        stored = write_array(where, data, (shard_side, shard_side), (chunk_side, chunk_side))
        opened = {name: FACTORIES[name](where, concurrency) for name in contenders}
        for name, reader in opened.items():  # warm-up, and every contender reads the same values
            assert reader.read(points[0]) == data[points[0]], name
            np.testing.assert_array_equal(reader.read(windows[0]), data[windows[0]])
        for rnd in range(repeat):
            for name, reader in opened.items():
                for op, (fn, nbytes) in ops.items():
                    timing, base = Timing(), rss_bytes()
                    out = timed(lambda fn=fn, reader=reader: fn(reader), timing, server_pid=server_pid)
                    if op == "whole" and rnd == 0:
                        np.testing.assert_array_equal(out, data)
                    keep_best(best, row(name, op, timing, nbytes, stored, base, bool(server_pid)))
            print(f"  round {rnd + 1}/{repeat} done", file=sys.stderr, flush=True)
        del opened
        if cold:
            source = tmp / "source.npy"
            np.save(source, data)
            for rnd in range(repeat):
                for name in contenders:
                    for op in ops:
                        res = run_worker("bench.sharded_io", {
                            "source": str(source), "where": where, "server_pid": server_pid, "reads": reads,
                            "contender": name, "op": op, "concurrency": concurrency, "verify": rnd == 0})  # fmt: skip
                        timing = Timing(**res["timing"])
                        keep_best(cold_best, row(name, op, timing, res["nbytes"], stored, res["base_rss"],
                                                 bool(server_pid)))  # fmt: skip
                print(f"  cold round {rnd + 1}/{repeat} done", file=sys.stderr, flush=True)
    order = {op: i for i, op in enumerate(ops)}

    def ordered(rows: dict[tuple[str, ...], Row]) -> list[Row]:
        return sorted(rows.values(), key=lambda r: (order[r.op], contenders.index(r.contender)))

    return ordered(best), title, ordered(cold_best)


def cold_table(warm: list[Row], cold: list[Row], title: str, repeat: int) -> str:
    """The cold rounds beside the warm ones, under ``title`` (the warm table's)."""
    both = title.replace(f"best of {repeat}", f"cold beside warm, rounds: {repeat}")
    return format_cold_warm(warm, cold, REFS, title=both)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=float, default=64)
    p.add_argument("--shard-kib", type=int, default=4096)
    p.add_argument("--chunk-kib", type=int, default=64)
    p.add_argument("--reads", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--store", choices=["s3", "local"], default="s3")
    p.add_argument("--ops", help=f"comma-separated, from: {', '.join(OPS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="smoke run: 16 MiB, 20 reads, one round")
    p.add_argument("--cold", action="store_true",
                   help="also run every (round, contender, op) cold, in a fresh process, and print both")  # fmt: skip
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--json")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return
    if a.ops and set(a.ops.split(",")) - set(OPS):
        p.error(f"--ops: unknown {sorted(set(a.ops.split(',')) - set(OPS))}; known: {', '.join(OPS)}")
    if a.quick:
        a.size_mib, a.reads, a.repeat = 16, 20, 1
    rows, title, cold = run(size_mib=a.size_mib, shard_kib=a.shard_kib, chunk_kib=a.chunk_kib, reads=a.reads,
                            repeat=a.repeat, concurrency=a.concurrency, contenders=a.contenders.split(","),
                            store=a.store, only=a.ops.split(",") if a.ops else None, cold=a.cold)  # fmt: skip
    print(format_table(rows, REFS, title=title))
    if cold:
        print("\n" + cold_table(rows, cold, title, a.repeat))
    if a.json:
        save_rows(rows + [replace(r, extra={**r.extra, "mode": "cold"}) for r in cold], a.json)


if __name__ == "__main__":
    main()
