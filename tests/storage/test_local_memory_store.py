"""What only the local and memory stores do: files and folders, temporary files, URLs, named stores."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import zarrcore
from zarrcore.errors import AlreadyExists, NotFound, ReadOnlyError, StoreError
from zarrcore.storage import open_store
from zarrcore.storage.local import TMP_PREFIX, LocalStore
from zarrcore.storage.memory import MemoryStore


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- LocalStore ---------------------------------------------------------------------------------------


def test_put_is_one_file_with_no_temporaries_left(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root", fsync=True)
    store.put("deep/er/key", b"one")
    store.put("deep/er/key", memoryview(b"two-two"))
    store.put("deep/er/key", bytearray(b"3"))
    assert files(tmp_path / "root") == ["deep/er/key"]
    assert (tmp_path / "root/deep/er/key").read_bytes() == b"3"


def test_create_mode_keeps_the_existing_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k", b"first", mode="create")
    with pytest.raises(AlreadyExists, match="'k'"):
        store.put("k", b"second", mode="create")
    assert store.get("k") == b"first"
    assert files(tmp_path) == ["k"]


def test_concurrent_overwrites_leave_one_whole_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    versions = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=lambda v=v: [store.put("k", v) for _ in range(5)]) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("k") in versions
    assert files(tmp_path) == ["k"]


def test_temporary_files_are_never_keys(tmp_path: Path) -> None:
    """A writer killed mid-put leaves its temporary file; listings and reads ignore it."""
    store = LocalStore(tmp_path)
    store.put("a/real", b"x")
    (tmp_path / "a" / f"{TMP_PREFIX}crashed").write_bytes(b"half")
    (tmp_path / "only-temp").mkdir()
    (tmp_path / "only-temp" / f"{TMP_PREFIX}crashed").write_bytes(b"half")
    assert sorted(store.list()) == ["a/real"]
    assert store.list_dir("") == ([], ["a"])
    assert store.list_dir("a") == (["real"], [])


def test_folders_are_not_objects(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("dir/key", b"x")
    for op in (lambda: store.get("dir"), lambda: store.size("dir"), lambda: store.get("dir/key/below")):
        with pytest.raises(NotFound, match="no object at key"):
            op()
    assert not store.exists("dir")
    store.delete("dir")  # deleting a folder name is deleting a missing key
    assert store.get("dir/key") == b"x"
    with pytest.raises(StoreError, match="'dir'"):
        store.put("dir", b"over a folder")


def test_emptied_folders_are_not_listed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("g/a/c/0", b"1")
    store.put("g/b/zarr.json", b"{}")
    store.delete("g/a/c/0")
    assert store.list_dir("g") == ([], ["b"])
    assert store.delete_prefix("g") == 1
    assert store.list_dir("") == ([], [])
    assert list(store.list()) == []


def test_list_prefix_is_a_string_prefix(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for key in ("ab/x", "abc/y", "a/z", "b"):
        store.put(key, b"")
    assert sorted(store.list("ab")) == ["ab/x", "abc/y"]
    assert sorted(store.list("ab/")) == ["ab/x"]
    assert list(store.list("missing/")) == []


@pytest.mark.parametrize("name", ["with space", "ünïcødé", "per%cent"])
def test_urls_round_trip(name: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / name)
    store.put("k", b"v")
    assert store.url.startswith("file:///")
    for url in (store.url, str(tmp_path / name)):
        again = open_store(url)
        assert isinstance(again, LocalStore) and again.root == store.root
        assert again.get("k") == b"v"


def test_relative_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalStore.from_url("rel/x").root == tmp_path / "rel/x"
    assert LocalStore.from_url("file://rel/x").root == tmp_path / "rel/x"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert LocalStore("~/data").root == tmp_path / "home/data"


def test_an_array_on_disk_is_plain_files(tmp_path: Path) -> None:
    a = zarrcore.create(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="u1", dimension_separator=".")
    a[...] = [1, 2, 0, 0]
    assert files(tmp_path / "a.zarr") == ["c.0", "zarr.json"]


def test_read_only_local_store_still_reads(tmp_path: Path) -> None:
    LocalStore(tmp_path).put("k", b"v")
    store = LocalStore(tmp_path, read_only=True)
    assert store.get("k") == b"v" and list(store.list()) == ["k"]
    with pytest.raises(ReadOnlyError):
        store.delete("k")


# -- MemoryStore -----------------------------------------------------------------------------------------


def test_named_memory_stores_are_shared_within_the_process() -> None:
    first = open_store("memory://shared-name-test")
    first.put("k", b"v")
    assert open_store("memory://shared-name-test") is first
    assert open_store("memory://shared-name-test/").get("k") == b"v"
    assert open_store("memory://") is not open_store("memory://")
    assert first.url == "memory://shared-name-test"


def test_memory_store_takes_no_options() -> None:
    with pytest.raises(TypeError, match="no options"):
        MemoryStore.from_url("memory://x", read_only=True)


def test_memory_store_copies_what_it_is_given() -> None:
    store = MemoryStore()
    data = bytearray(b"abc")
    store.put("k", data)
    data[0] = ord("z")
    assert store.get("k") == b"abc"
    assert isinstance(store.get("k"), bytes)


def test_read_only_memory_store() -> None:
    store = MemoryStore(read_only=True)
    for op in (lambda: store.put("k", b"v"), lambda: store.delete("k")):
        with pytest.raises(ReadOnlyError, match="'k'"):
            op()
    assert list(store.list()) == []


def test_memory_store_is_thread_safe() -> None:
    store = MemoryStore()
    winners: list[int] = []

    def claim(i: int) -> None:
        try:
            store.put("lock", str(i).encode(), mode="create")
            winners.append(i)
        except AlreadyExists:
            pass

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and store.get("lock") == str(winners[0]).encode()

