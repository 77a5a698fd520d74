"""The high-water mark of a model's version numbers is written before its version is
renamed into place: a disk that fills up between the two leaves no version behind a
507, and a number is at worst skipped, never given twice."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tfaas_jupyter.server import repository
from tfaas_jupyter.server.errors import TFaaSError
from tfaas_jupyter.server.repository import Repository


def _commit(repo: Repository, name: str, payload: bytes) -> int:
    staging = repo.new_staging_dir()
    (staging / "model.pb").write_bytes(payload)
    return repo.commit(name, staging, {"format": "graphdef", "model": "model.pb"}).version


def test_a_full_disk_at_the_mark_leaves_no_version(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repository(tmp_path / "models")
    assert _commit(repo, "vk", b"graph 1") == 1
    written = repository.write_high_water

    def full(folder: Path, version: int, file: str = "") -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(repository, "write_high_water", full)
    with pytest.raises(TFaaSError) as refused:
        _commit(repo, "vk", b"graph 2")
    assert refused.value.status == 507, refused.value
    # neither in the index nor on disk, for this server or a fresh one
    assert [v.version for v in repo.versions("vk")] == [1]
    assert [v.version for v in Repository(tmp_path / "models").versions("vk")] == [1]
    assert not (tmp_path / "models" / "vk" / "2").exists()

    monkeypatch.setattr(repository, "write_high_water", written)
    assert _commit(repo, "vk", b"graph 2") == 2
    assert repo.get("vk", 2).model_path.read_bytes() == b"graph 2"
