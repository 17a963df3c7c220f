"""Faults injected, not imagined: damaged and concurrently filled caches, a kill while a cache fills, a full disk under
each kind of output, a training run that diverges. Each is handled as the project promises: one line naming the path
(or a warning where the result stays right), nothing already written lost, never a silently wrong result."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import polars as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from audfer import AudferError
from audfer.au.folder import read_au_dir
from audfer.cli import main
from audfer.data.cache import ClipCache, read_entry
from audfer.data.datasets import read_frames
from audfer.engine import train
from audfer.files import write_json
from audfer.io import write_csv

from conftest import TINY, tiny_config


def _clips(synth, n=None):
    return sorted((synth / "Clip" / "clip_32x32").iterdir())[:n]


def _full(exc_path="x"):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), exc_path)


# ------------------------------------------------------------------------------------------------ clip cache
def test_a_cut_off_or_edited_clip_cache_entry_is_detected_and_rebuilt(synth, tmp_path):
    clip = _clips(synth, 1)[0]
    truth = ClipCache(tmp_path / "c", 32).get(clip).copy()
    entry = ClipCache(tmp_path / "c", 32).entry(clip)
    data = entry.read_bytes()
    for damaged in (data[: len(data) - 100], data[:-1] + bytes([data[-1] ^ 1])):  # cut off; one pixel edited
        entry.write_bytes(damaged)
        fresh = ClipCache(tmp_path / "c", 32, memory_mb=0)
        with pytest.warns(UserWarning, match="damaged clip-cache entry"):
            np.testing.assert_array_equal(fresh.get(clip), truth)
        assert fresh.misses == 1
        np.testing.assert_array_equal(read_entry(entry), truth)  # rebuilt on disk too


def _fill(root, clips, out):
    cache = ClipCache(root, 32, memory_mb=0)
    np.save(out, np.stack([cache.get(c).astype(np.int64).sum(axis=(1, 2, 3)) for c in clips]))


@pytest.mark.slow
def test_two_processes_filling_one_cache_agree_with_a_plain_decode(synth, tmp_path):
    clips = [str(c) for c in _clips(synth)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_fill, args=(tmp_path / "c", clips, tmp_path / f"{i}.npy")) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    plain = np.stack([read_frames(c).astype(np.int64).sum(axis=(1, 2, 3)) for c in clips])
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), plain)
    entries = list((tmp_path / "c").rglob("*.clip"))
    assert len(entries) == len(clips) and not list((tmp_path / "c").rglob("*.part"))


KILLED_FILLER = """
import sys
from audfer.data.cache import ClipCache
cache = ClipCache(sys.argv[1], 32, memory_mb=0)
for _ in range(1000):
    for clip in sys.argv[2:]:
        cache.entry(clip).unlink(missing_ok=True)  # keep writing entries until killed
        cache.get(clip)
"""


def test_a_kill_while_the_cache_fills_leaves_only_whole_entries(synth, tmp_path):
    clips = [str(c) for c in _clips(synth, 20)]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_FILLER, str(tmp_path / "c"), *clips])
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp_path / "c").rglob("*.clip"))) < 5:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    for entry in (tmp_path / "c").rglob("*.clip"):
        read_entry(entry)  # every entry a reader can see is whole (raises otherwise)
    cache = ClipCache(tmp_path / "c", 32)
    for clip in clips:
        np.testing.assert_array_equal(cache.get(clip), read_frames(clip))


def test_a_full_disk_under_the_clip_cache_keeps_training_data_right(synth, tmp_path, monkeypatch):
    import audfer.data.cache as cache_mod

    clip = _clips(synth, 1)[0]

    def full(*a, **k):
        raise _full()

    monkeypatch.setattr(cache_mod.os, "fdopen", full)
    with pytest.warns(UserWarning, match=r"\.clip: cannot store the decoded clip .*No space left on device"):
        frames = ClipCache(tmp_path / "c", 32).get(clip)
    np.testing.assert_array_equal(frames, read_frames(clip))
    assert not list((tmp_path / "c").rglob("*.clip")) and not list((tmp_path / "c").rglob("*.part"))


# ------------------------------------------------------------------------------------------------ AU folder cache
def _au(synth, tmp_path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_au_dir(synth / "OpenFace", cache_dir=tmp_path / "au", **kw)


@pytest.mark.slow
def test_a_damaged_au_cache_is_detected_and_the_files_are_read_again(synth, tmp_path):
    truth = read_au_dir(synth / "OpenFace", cache=False).frames
    assert _au(synth, tmp_path).from_cache == 0
    (parquet,) = (tmp_path / "au").rglob("frames*.parquet")
    data = parquet.read_bytes()
    for damaged in (data[: len(data) // 2], data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]):
        parquet.write_bytes(damaged)
        with pytest.warns(UserWarning, match="damaged AU cache"):
            folder = read_au_dir(synth / "OpenFace", cache_dir=tmp_path / "au")
        assert folder.from_cache == 0 and folder.frames.equals(truth)
        (parquet,) = (tmp_path / "au").rglob("frames*.parquet")  # written again
        assert _au(synth, tmp_path).from_cache == len(folder.clips)
        data = parquet.read_bytes()


@pytest.mark.slow
def test_a_kill_between_the_au_cache_files_never_pairs_a_manifest_with_other_frames(synth, tmp_path, monkeypatch):
    import audfer.au.cache as au_cache

    truth = read_au_dir(synth / "OpenFace", cache=False).frames
    _au(synth, tmp_path)
    first = next((synth / "OpenFace").glob("*.csv"))
    os.utime(first, ns=(time.time_ns(), time.time_ns() + 10**9))  # one file changed: the cache is rewritten

    def killed(*a, **k):
        raise KeyboardInterrupt  # the process dies after the new Parquet file, before its manifest

    monkeypatch.setattr(au_cache, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        read_au_dir(synth / "OpenFace", cache_dir=tmp_path / "au")
    monkeypatch.undo()
    folder = _au(synth, tmp_path)
    assert folder.frames.equals(truth) and folder.from_cache == len(folder.clips) - 1


def _read_au(folder, cache_dir, out):
    frames = read_au_dir(folder, cache_dir=cache_dir, workers=1).frames
    frames.write_parquet(out)


@pytest.mark.slow
def test_two_processes_filling_one_au_cache(synth, tmp_path):
    truth = read_au_dir(synth / "OpenFace", cache=False).frames
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_read_au, args=(synth / "OpenFace", tmp_path / "au", tmp_path / f"{i}.parquet"))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    for i in range(2):
        assert pl.read_parquet(tmp_path / f"{i}.parquet").equals(truth)
    folder = _au(synth, tmp_path)
    assert folder.from_cache == len(folder.clips) and folder.frames.equals(truth)
    assert len(list((tmp_path / "au").rglob("frames*.parquet"))) == 1


@pytest.mark.slow
def test_a_full_disk_under_the_au_cache_still_gives_the_result(synth, tmp_path, monkeypatch):
    truth = read_au_dir(synth / "OpenFace", cache=False).frames

    import pyarrow.parquet as pq

    def full(self, *a, **k):
        raise _full("frames.parquet")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    with pytest.warns(UserWarning, match="could not write the AU cache .*No space left on device"):
        folder = read_au_dir(synth / "OpenFace", cache_dir=tmp_path / "au")
    assert folder.frames.equals(truth)
    assert not list((tmp_path / "au").rglob("*.parquet*")) and not list((tmp_path / "au").rglob("manifest.json"))


# ------------------------------------------------------------------------------------------------ full disk
def test_a_full_disk_while_writing_a_table_or_report_keeps_the_previous_file(tmp_path, monkeypatch, capsys):
    table, report = tmp_path / "table.csv", tmp_path / "report.json"
    write_csv(pl.DataFrame({"a": [1]}), table)
    write_json({"old": True}, report)
    before = table.read_bytes(), report.read_bytes()

    def full(self, path, *a, **k):
        with open(path, "wb") as fh:
            fh.write(b"half")
        raise OSError(f"No space left on device (os error {errno.ENOSPC})")  # how polars says it

    monkeypatch.setattr(pl.DataFrame, "write_csv", full)
    with pytest.raises(AudferError, match=r"table\.csv: cannot write here \(No space left on device\); the previous"):
        write_csv(pl.DataFrame({"a": [2]}), table)
    monkeypatch.setattr("pathlib.Path.write_text", lambda self, *a, **k: (_ for _ in ()).throw(_full(str(self))))
    with pytest.raises(AudferError, match=r"report\.json: cannot write here \(No space left on device\); the previous"):
        write_json({"new": True}, report)
    assert (table.read_bytes(), report.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "table.csv"]  # no temporary file left


@pytest.mark.slow
def test_a_full_disk_while_a_checkpoint_is_written_keeps_the_previous_one(synth, tmp_path, monkeypatch, capsys):
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    out = tmp_path / "run"
    argv = ["train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY]
    assert main([*argv, "train.epochs=1"]) == 0
    last = out / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def full(self, checkpoint, path, storage_options=None):
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise _full(str(path))

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", full)
    capsys.readouterr()
    assert main([*argv, "train.epochs=2", "--resume", "--accept-changes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("audfer: error: ") and str(last) in err[-1]
    assert "No space left on device" in err[-1] and "the previous last.ckpt is intact" in err[-1]
    assert last.read_bytes() == before and not list(last.parent.glob(".*partial"))


# ------------------------------------------------------------------------------------------------ divergence
class _Poison(Callback):
    """Fault injection: the weights become NaN at the given epoch's second batch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


@pytest.mark.slow
def test_a_diverging_run_stops_naming_epoch_step_and_lr_and_keeps_no_nan_checkpoint(synth, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(synth, out, "train.epochs=3")
    with pytest.raises(AudferError, match=r"training diverged: the loss is nan at epoch 2, step \d+ \(lr [\d.e+-]+\)"):
        train(cfg, callbacks=[_Poison(1)], log=lambda m: None, evaluate=False)
    ck = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["epoch"] == 0 and all(torch.isfinite(v).all() for v in ck["state_dict"].values())


class _PoisonAfterLastStep(Callback):
    """Fault injection: one weight becomes inf after the given epoch's last step (the loss stayed finite, so only
    the end-of-epoch weight check can see it)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx + 1 == trainer.num_training_batches:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("inf")


@pytest.mark.slow
def test_weights_found_not_finite_at_the_end_of_an_epoch_name_the_step_and_lr(synth, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(synth, out, "train.epochs=2")
    with pytest.raises(
        AudferError, match=r"weight tensor\(s\) are not finite after epoch 2, step \d+ \(lr [\d.e+-]+; e\.g\. "
    ):
        train(cfg, callbacks=[_PoisonAfterLastStep(1)], log=lambda m: None, evaluate=False)
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0


def test_a_learning_rate_far_too_high_is_reported_as_divergence(synth, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY, "train.epochs=3", "optim.lr=1e30"]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("audfer: error: training diverged") and "optim.lr" in line
    for name in ("last.ckpt", "previous.ckpt"):
        if (out / "checkpoints" / name).is_file():
            ck = torch.load(out / "checkpoints" / name, weights_only=True)
            assert all(torch.isfinite(v).all() for v in ck["state_dict"].values())


KILLED_READER = """
import sys
from audfer.au.folder import read_au_dir
from audfer.method.labels import video_au_labels
read_au_dir(sys.argv[1], cache_dir=sys.argv[2], workers=1, reduce=video_au_labels)
"""


@pytest.mark.slow
def test_a_kill_during_the_first_ingestion_leaves_a_cache_that_reads_right(tmp_path):
    from audfer.synth.openface_writer import render_openface_csv

    from conftest import make_frames

    folder = tmp_path / "of"
    folder.mkdir()
    for i in range(400):
        (folder / f"{i:05d}.csv").write_bytes(render_openface_csv(make_frames(40, seed=i), "2.2", full=False))
    truth = read_au_dir(folder, cache=False).frames
    proc = subprocess.Popen([sys.executable, "-c", KILLED_READER, str(folder), str(tmp_path / "au")])
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "au").rglob("*.part")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-ingestion: the cache file is half written
    proc.wait(30)
    assert not list((tmp_path / "au").rglob("manifest.json"))  # nothing published
    (left,) = (tmp_path / "au").rglob("*.part")
    os.utime(left, (time.time() - 7200, time.time() - 7200))  # two hours later
    again = read_au_dir(folder, cache_dir=tmp_path / "au")
    assert again.from_cache == 0 and again.frames.equals(truth)
    assert not list((tmp_path / "au").rglob("*.part"))  # the killed filler's partial file is cleaned up
    assert read_au_dir(folder, cache_dir=tmp_path / "au").from_cache == 400  # and the next run uses the new cache


def _rewrite_same_size_and_mtime(path, column):
    """Move every value of an OpenFace intensity ``column`` below 1 up by 4 (same width: ``0.xx`` -> ``4.xx``),
    in place (same inode, same size), and put the file's modification time back (``touch -r``)."""
    st = path.stat()
    lines = path.read_text().splitlines(keepends=True)
    col = [c.strip() for c in lines[0].split(",")].index(column)
    moved = 0
    for i in range(1, len(lines)):
        cells = lines[i].split(",")
        if cells[col].strip().startswith("0."):
            cells[col] = cells[col].replace("0.", "4.", 1)
            moved += 1
        lines[i] = ",".join(cells)
    data = "".join(lines).encode()
    assert moved and len(data) == st.st_size
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_au_caches_reread_a_file_rewritten_in_place_with_its_size_and_mtime_put_back(tmp_path):
    """Both AU caches (the Parquet frames cache and the finished-labels cache) key each file by size, mtime and
    ctime: an edit that restores size and mtime is still re-read, and cached results equal uncached ones."""
    from audfer.synth.openface_writer import write_openface_csv

    from conftest import make_frames

    folder = tmp_path / "of"
    folder.mkdir()
    for i in range(3):
        write_openface_csv(folder / f"clip{i}.csv", make_frames(20, seed=i))
    cache = tmp_path / "au"
    assert read_au_dir(folder, cache_dir=cache).from_cache == 0
    assert read_au_dir(folder, cache_dir=cache).from_cache == 3

    def labels(out, *extra):
        assert main(["au-labels", str(folder), "--out", str(out), "--cache-dir", str(cache), *extra]) == 0
        return out.read_bytes()

    labels(tmp_path / "warm.csv")
    target = folder / "clip1.csv"
    _rewrite_same_size_and_mtime(target, "AU12_r")
    uncached = read_au_dir(folder, cache=False)
    got = read_au_dir(folder, cache_dir=cache)
    assert got.from_cache == 2 and got.frames.equals(uncached.frames)
    assert labels(tmp_path / "cached.csv") == labels(tmp_path / "fresh.csv", "--no-cache")
