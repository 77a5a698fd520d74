"""What a person reads: listings with local date-times and no None/NaN cells, the CLI's
tables and summary (JSON with --json), a refusal that says how to give a token, and
--predict inputs as people write them (a row, rows, .npy, .csv)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import seed_predict
from test_cli import tfaas_cli  # noqa: F401 - the fixture

from tfaas_jupyter.client.inputfiles import InputFileError, read_input
from tfaas_jupyter.client.present import (
    format_time,
    keys_frame,
    keys_rows,
    model_rows,
    models_frame,
    text_table,
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def zurich(monkeypatch: pytest.MonkeyPatch):
    """Local time is Geneva's (UTC+1 in December)."""
    monkeypatch.setenv("TZ", "Europe/Zurich")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_local_date_times(zurich: None) -> None:
    stamp = 1796636460.0  # 2026-12-07 09:41 UTC
    assert format_time(stamp) == time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))
    assert format_time(stamp) == "2026-12-07 10:41"
    assert format_time("2026-12-07T09:41:00Z") == "2026-12-07 10:41"
    assert format_time(None) == "never" and format_time(float("nan")) == "never"
    assert format_time(None, missing="") == ""


def test_key_and_model_listings_have_no_none_or_nan(zurich: None) -> None:
    keys = [{"name": "grid", "models": ["vk"], "scopes": ["predict"], "created": 1796636460.0,
             "last_used": None},
            {"name": "all", "models": None, "scopes": ["manage", "predict"],
             "created": 1796636460.0, "last_used": 1796640060.0}]
    assert keys_rows(keys) == [
        {"name": "grid", "models": "vk", "scopes": "predict", "created": "2026-12-07 10:41",
         "last used": "never"},
        {"name": "all", "models": "all models", "scopes": "manage, predict",
         "created": "2026-12-07 10:41", "last used": "2026-12-07 11:41"}]
    models = [{"name": "vk", "version": 2, "versions": [1, 2], "format": "graphdef",
               "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 42]}],
               "outputs": [], "label_names": ["signal"], "keys": None,
               "created": "2026-12-07T09:41:00Z"},
              {"name": "bare", "version": 1, "versions": [1], "format": "keras"}]
    rows = model_rows(models)
    assert rows[0]["versions"] == "1, 2" and rows[0]["created"] == "2026-12-07 10:41"
    assert rows[0]["inputs"] == "x float32 [?, 42]" and rows[0]["labels"] == "signal"
    assert rows[1]["labels"] == "" and rows[1]["created"] == ""
    for frame in (keys_frame(keys), models_frame(models)):
        text = frame.to_string()
        assert "None" not in text and "NaN" not in text and "e+09" not in text, text
    table = text_table(rows, ("name", "versions", "labels"))
    assert table.splitlines() == ["name  versions  labels", "vk    1, 2      signal",
                                  "bare  1"]


def test_predict_inputs_as_people_write_them(tmp_path: Path) -> None:
    row = [1.5, 2, -3.25]
    (tmp_path / "row.json").write_text(json.dumps(row))
    assert read_input(tmp_path / "row.json") == {"values": row}
    (tmp_path / "rows.json").write_text(json.dumps([row, row]))
    assert read_input(tmp_path / "rows.json") == {"values": [row, row]}
    (tmp_path / "doc.json").write_text(json.dumps({"model": "m", "values": row}))
    assert read_input(tmp_path / "doc.json") == {"model": "m", "values": row}
    np.save(tmp_path / "rows.npy", np.array([row, row], dtype=np.float32))
    got = read_input(tmp_path / "rows.npy")["values"]
    assert got.dtype == np.float32 and got.shape == (2, 3)
    (tmp_path / "plain.csv").write_text("1.5,2,-3.25\n4,5,6\n")
    assert read_input(tmp_path / "plain.csv") == {"values": [row, [4, 5, 6]]}
    (tmp_path / "head.csv").write_text("a,b,c\n1.5,2,-3.25\n")
    assert read_input(tmp_path / "head.csv") == {"keys": ["a", "b", "c"], "values": row}
    (tmp_path / "bad.json").write_text('"text"')
    with pytest.raises(InputFileError, match="a row or a list of rows"):
        read_input(tmp_path / "bad.json")
    np.save(tmp_path / "s.npy", np.array(["a"]))
    with pytest.raises(InputFileError, match="numbers"):
        read_input(tmp_path / "s.npy")


async def test_cli_prints_tables_and_says_how_to_give_a_token(
    tfaas_cli, seed_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    r = await tfaas_cli(f"--upload={seed_dir / 'upload.json'}")
    assert r.code == 0, r.err
    r = await tfaas_cli("--models")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["name", "versions", "format", "inputs", "labels"]
    assert lines[1].split()[:3] == ["vk", "1", "graphdef"] and len(lines) == 2
    r = await tfaas_cli("--status")
    assert r.code == 0, r.err
    assert len(r.out.splitlines()) <= 8 and "worker:" in r.out and "{" not in r.out
    r = await tfaas_cli("--status", "--json")
    assert json.loads(r.out)["models_on_disk"] == ["vk"]

    r = await tfaas_cli("--models", env={"TFAAS_TOKEN": "wrong"})
    assert r.code == 1 and "403" in r.err and len(r.err.strip().splitlines()) == 1
    for way in ("--token-file", "TFAAS_TOKEN", "?token="):
        assert way in r.err, r.err

    # --predict: the talk's row as a bare row, rows, .npy and .csv give the same answers
    row = json.loads((seed_dir / "input.json").read_text())["values"]
    want = seed_predict(row)
    (tmp_path / "row.json").write_text(json.dumps(row))
    (tmp_path / "rows.json").write_text(json.dumps([row, row]))
    np.save(tmp_path / "rows.npy", np.array([row, row], dtype=np.float32))
    (tmp_path / "rows.csv").write_text("\n".join(",".join(map(str, r)) for r in [row, row]))
    for name, rows in (("row.json", 1), ("rows.json", 2), ("rows.npy", 2), ("rows.csv", 2)):
        r = await tfaas_cli(f"--predict={tmp_path / name}", "--model=vk")
        assert r.code == 0, (name, r.err)
        got = json.loads(r.out)
        np.testing.assert_allclose(got if rows == 2 else [got], [want] * rows, rtol=1e-5)
