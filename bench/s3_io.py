"""Case 3: write and read a whole float32 array on an S3 server (moto) on 127.0.0.1.

    python -m bench.s3_io                        # 256 MiB, 4 MiB chunks, zstd level 1
    python -m bench.s3_io --chunk-kib 256 --size-mib 64
    python -m bench.s3_io --quick
    python -m bench.s3_io --unsigned-payload     # every contender skips the SHA-256 of each body

Contenders, all with the same number of requests in flight (``--concurrency``, default 16):
zarrcore's S3Store (boto3), zarr-python on obstore, and raw boto3 PUT/GET of the very objects the
codec produces (encoded before timing) from a thread pool: the server's ceiling. The moto server
runs in its own process, started here and stopped by its PID; every run gets a fresh bucket.

Client settings: zarrcore and zarr-python run with their defaults (both sign a SHA-256 of every body
over http, neither adds a CRC) and the ceiling with botocore's defaults (SHA-256 and a CRC32 of every
body). ``--unsigned-payload`` sends ``UNSIGNED-PAYLOAD`` from every contender (zarrcore
``payload_signing=False``, obstore ``unsigned_payload``) and gives the ceiling the very client S3Store
builds (no CRC either, bodies sent as bytes), so that the three are compared with identical client work.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from bench._common import (
    CODECS,
    MiB,
    Row,
    Timing,
    chunk_shape,
    format_table,
    rss_bytes,
    run_rounds,
    save_rows,
    source_file,
    square_shape,
    timed,
    warm_memory,
    workdir,
)

ORDER = ["boto3", "zarrcore", "zarr-python"]
REFS = ["boto3", "zarr-python"]
KEY, SECRET, REGION = "bench-access-key", "bench-secret-key", "us-east-1"


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    """A moto S3 server on a free 127.0.0.1 port; yields its endpoint URL and process id."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    argv = [exe] if os.path.exists(exe) else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen([*argv, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def reset(endpoint: str) -> None:
    """Drop every bucket and object on the server (frees its memory between runs)."""
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"), timeout=30).read()


def boto3_client(endpoint: str, pool: int, unsigned: bool = False) -> Any:
    """botocore's defaults, or with ``unsigned`` the client S3Store builds with ``payload_signing=False``
    (no CRC, UNSIGNED-PAYLOAD, PUT bodies sent as bytes rather than wrapped in a BytesIO)."""
    import boto3
    from botocore.config import Config

    s3: dict[str, Any] = {"addressing_style": "path"}
    lean: dict[str, Any] = {}
    if unsigned:
        s3["payload_signing_enabled"] = False
        lean = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}
    cfg = Config(max_pool_connections=pool, retries={"total_max_attempts": 1}, s3=s3, **lean)
    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY,
                          aws_secret_access_key=SECRET, config=cfg)  # fmt: skip
    if unsigned:
        from botocore.handlers import convert_body_to_file_like_object

        client.meta.events.unregister("before-parameter-build.s3.PutObject", convert_body_to_file_like_object)
    return client


class Boto3Ceiling:
    """Raw PUT/GET of the already-encoded chunk objects: no codec work, no Zarr, just the server."""

    name = "boto3"

    def __init__(self, a: dict[str, Any], data: np.ndarray) -> None:
        import numcodecs

        self.client = boto3_client(a["endpoint"], a["concurrency"] + 4, a["unsigned"])
        self.bucket, self.concurrency = a["bucket"], a["concurrency"]
        chunks = tuple(a["chunks"])
        grid = [s // c for s, c in zip(data.shape, chunks, strict=True)]
        codec = None
        for c in CODECS[a["codec"]][1:]:
            cfg = c["configuration"]
            codec = (numcodecs.Zstd(level=cfg["level"]) if c["name"] == "zstd" else
                     numcodecs.Blosc(cname=cfg["cname"], clevel=cfg["clevel"], shuffle=1, typesize=4))  # fmt: skip
        self.objects: dict[str, bytes] = {}
        for idx in itertools.product(*(range(n) for n in grid)):
            region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks, strict=True))
            chunk = np.ascontiguousarray(data[region])
            self.objects["a.zarr/c/" + "/".join(map(str, idx))] = bytes(codec.encode(chunk) if codec else chunk)

    def write(self, data: np.ndarray) -> None:
        def put(key: str) -> None:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=self.objects[key])

        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(put, self.objects))

    def read(self) -> None:
        def get(key: str) -> int:
            return len(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(get, self.objects))

    def stored(self) -> int:
        return sum(len(v) for v in self.objects.values())


class Zarrcore:
    name = "zarrcore"

    def __init__(self, a: dict[str, Any], data: np.ndarray) -> None:
        import zarrcore
        from zarrcore.pool import set_io_concurrency
        from zarrcore.storage.cloud.s3 import S3Store

        set_io_concurrency(a["concurrency"])
        store = S3Store(a["bucket"], "a.zarr", endpoint_url=a["endpoint"], region=REGION, access_key_id=KEY,
                        secret_access_key=SECRET, addressing_style="path", max_pool_connections=a["concurrency"] + 4,
                        payload_signing=False if a["unsigned"] else None)  # fmt: skip
        self.array = zarrcore.create(store, shape=data.shape, chunks=tuple(a["chunks"]), dtype="float32",
                                     codecs=CODECS[a["codec"]], fill_value=0)  # fmt: skip

    def write(self, data: np.ndarray) -> None:
        self.array[...] = data

    def read(self) -> np.ndarray:
        return self.array[...]


class ZarrPython:
    name = "zarr-python"

    def __init__(self, a: dict[str, Any], data: np.ndarray) -> None:
        import obstore.store
        import zarr

        from bench.local_contenders import zarr_python_codecs

        zarr.config.set({"async.concurrency": a["concurrency"]})
        s3 = obstore.store.S3Store(a["bucket"], prefix="a.zarr", endpoint=a["endpoint"], access_key_id=KEY,
                                   secret_access_key=SECRET, region=REGION,
                                   client_options={"allow_http": True},
                                   **({"unsigned_payload": True} if a["unsigned"] else {}))  # fmt: skip
        self.array = zarr.create_array(zarr.storage.ObjectStore(s3), shape=data.shape, chunks=tuple(a["chunks"]),
                                       dtype="float32", fill_value=0, zarr_format=3,
                                       **zarr_python_codecs(a["codec"]))  # fmt: skip

    def write(self, data: np.ndarray) -> None:
        self.array[...] = data

    def read(self) -> np.ndarray:
        return self.array[...]


CONTENDERS = {c.name: c for c in (Boto3Ceiling, Zarrcore, ZarrPython)}


def worker(a: dict[str, Any]) -> dict[str, Any]:
    data = np.load(a["source"])
    boto3_client(a["endpoint"], 1).create_bucket(Bucket=a["bucket"])
    contender = CONTENDERS[a["contender"]](a, data)
    gc.collect()
    base = rss_bytes()
    write, read = Timing(), Timing()
    warm_memory(2 * data.nbytes)
    timed(lambda: contender.write(data), write, server_pid=a["server_pid"])
    warm_memory(2 * data.nbytes)
    out = timed(contender.read, read, server_pid=a["server_pid"])
    if a["verify"] and out is not None and not np.array_equal(out, data):
        raise AssertionError(f"{a['contender']} read back different data")
    stored = contender.stored() if isinstance(contender, Boto3Ceiling) else 0
    return {"write": write.__dict__, "read": read.__dict__, "base_rss": base, "stored": stored,
            "nbytes": int(data.nbytes)}  # fmt: skip


def run(*, chunk_kib: int, size_mib: float, codecs: list[str], contenders: list[str], repeat: int,
        concurrency: int, quiet_wait: float = 0.0, unsigned: bool = False) -> tuple[list[Row], str]:  # fmt: skip
    shape, chunks = square_shape(size_mib), chunk_shape(chunk_kib)
    n = (shape[0] // chunks[0]) * (shape[1] // chunks[1])
    case = f"s3 {chunk_kib} KiB chunks"
    title = (f"{case}: moto on 127.0.0.1, float32 {shape[0]}x{shape[1]} ({shape[0] * shape[1] * 4 / MiB:.0f} MiB), "
             f"chunks {chunks[0]}x{chunks[1]} ({chunk_kib} KiB, {n} objects), {concurrency} requests in flight, "
             f"{'unsigned payloads, ' if unsigned else ''}best of {repeat}")  # fmt: skip
    print(f"[{title}]", file=sys.stderr, flush=True)
    with workdir() as tmp, moto_server() as (endpoint, server_pid):
        source = source_file(tmp, shape)

        def args(codec: str, name: str, rnd: int) -> dict[str, Any]:
            reset(endpoint)
            return {"contender": name, "codec": codec, "chunks": chunks, "source": str(source), "endpoint": endpoint,
                    "bucket": f"bench-{uuid.uuid4().hex[:12]}", "concurrency": concurrency,
                    "verify": rnd == 0, "unsigned": unsigned, "server_pid": server_pid}  # fmt: skip

        rows = run_rounds("bench.s3_io", case, codecs, contenders, repeat, args, quiet_wait=quiet_wait)
        reset(endpoint)
    rank = {c: i for i, c in enumerate(ORDER)}
    rows.sort(key=lambda r: (codecs.index(r.group), r.op != "write", rank.get(r.contender, 99)))
    return rows, title


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--chunk-kib", type=int, default=4096)
    p.add_argument("--size-mib", type=float, default=256)
    p.add_argument("--codecs", default="zstd", help="comma-separated, from: " + ", ".join(CODECS))
    p.add_argument("--contenders", default=",".join(ORDER))
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quiet-wait", type=float, default=15.0)
    p.add_argument("--quick", action="store_true", help="smoke run: 32 MiB, one round")
    p.add_argument("--unsigned-payload", action="store_true",
                   help="every contender sends UNSIGNED-PAYLOAD (no SHA-256 of each body); the boto3 ceiling "
                        "then runs zarrcore's client settings")  # fmt: skip
    p.add_argument("--json")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return
    if a.quick:
        a.size_mib, a.repeat, a.quiet_wait = 32, 1, 0
    rows, title = run(chunk_kib=a.chunk_kib, size_mib=a.size_mib, codecs=a.codecs.split(","),
                      contenders=a.contenders.split(","), repeat=a.repeat, concurrency=a.concurrency,
                      quiet_wait=a.quiet_wait, unsigned=a.unsigned_payload)  # fmt: skip
    print(format_table(rows, REFS, title=title))
    if a.json:
        save_rows(rows, a.json)


if __name__ == "__main__":
    main()
