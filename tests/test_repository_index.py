"""A commit updates the repository's index for the one version it adds: the versions
already known are not read from disk again (a model with many versions uploads as fast
as one with a single version), and a version added beside it by another process is
still seen."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tfaas_jupyter.server.modelfiles import META_FILE
from tfaas_jupyter.server.repository import Repository


def _commit(repo: Repository, name: str, payload: bytes) -> int:
    staging = repo.new_staging_dir()
    (staging / "model.pb").write_bytes(payload)
    return repo.commit(name, staging, {"format": "graphdef", "model": "model.pb"}).version


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The versions the repository reads from disk, in order."""
    seen: list[tuple[str, int]] = []
    original = Repository._read_version

    def counting(self: Repository, name: str, version: int, path: Path):  # type: ignore[no-untyped-def]
        seen.append((name, version))
        return original(self, name, version, path)

    monkeypatch.setattr(Repository, "_read_version", counting)
    return seen


def test_a_commit_reads_only_the_version_it_adds(tmp_path: Path,
                                                 reads: list[tuple[str, int]]) -> None:
    repo = Repository(tmp_path / "models")
    for n in range(1, 6):
        assert _commit(repo, "many", f"graph {n}".encode()) == n
    reads.clear()
    assert _commit(repo, "many", b"graph 6") == 6
    assert reads == [("many", 6)]
    reads.clear()
    assert [v.version for v in repo.versions("many")] == [1, 2, 3, 4, 5, 6]
    assert (repo.get("many", 6).model_path).read_bytes() == b"graph 6"
    assert reads == []


def test_a_version_added_by_another_process_is_seen_at_the_next_commit(
        tmp_path: Path, reads: list[tuple[str, int]]) -> None:
    repo = Repository(tmp_path / "models")
    for n in range(1, 4):
        _commit(repo, "shared", f"graph {n}".encode())
    # another server sharing the folder commits version 4 (its own index, its own lock)
    other = Repository(tmp_path / "models")
    assert _commit(other, "shared", b"graph 4") == 4
    reads.clear()
    assert _commit(repo, "shared", b"graph 5") == 5
    # the versions this process knew are not read again; 4 (new to it) and 5 are
    assert sorted(reads) == [("shared", 4), ("shared", 5)]
    assert [v.version for v in repo.versions("shared")] == [1, 2, 3, 4, 5]
    assert repo.get("shared", 4).model_path.read_bytes() == b"graph 4"
    meta = json.loads((tmp_path / "models" / "shared" / "5" / META_FILE).read_text())
    assert meta["version"] == 5


def test_a_version_removed_by_hand_is_gone_after_the_next_commit(tmp_path: Path) -> None:
    repo = Repository(tmp_path / "models")
    for n in range(1, 4):
        _commit(repo, "pruned", f"graph {n}".encode())
    repo.versions("pruned")
    shutil.rmtree(tmp_path / "models" / "pruned" / "2")
    os.utime(tmp_path / "models" / "pruned")
    assert _commit(repo, "pruned", b"graph 4") == 4
    assert [v.version for v in repo.versions("pruned")] == [1, 3, 4]
