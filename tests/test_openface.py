import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from audfer import AudferError
from audfer.au.folder import read_openface_dir
from audfer.au.openface import read_openface
from audfer.au.schema import CANONICAL_COLUMNS, OpenFaceWarning
from audfer.synth.openface_writer import STYLES, full_header, render_openface_csv, write_openface_csv
from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

from conftest import make_frames

AU_COLS = list(INTENSITY_COLUMNS + PRESENCE_COLUMNS)


def _pandas_reference(path):
    df = pd.read_csv(path, skipinitialspace=True)
    df.columns = [c.strip() for c in df.columns]
    return df


@pytest.mark.parametrize(
    "name",
    [
        "featureextraction_full_doublespace_opendbm_subj01_t01_head40.csv",
        "legacy_nofaceid_pyfeat_OpenFace_Test_head40.csv",
    ],
)
def test_real_files_match_pandas(fixtures, name):
    path = fixtures / "openface" / name
    ours = read_openface(path)
    ref = _pandas_reference(path)
    assert ours.columns == list(CANONICAL_COLUMNS)
    assert ours.height == len(ref) == 40
    assert ours["frame"].to_list() == ref["frame"].astype(int).tolist()
    np.testing.assert_allclose(ours["confidence"].to_numpy(), ref["confidence"].to_numpy())
    for c in AU_COLS:
        np.testing.assert_allclose(
            ours[c].to_numpy().astype(float), ref[c].to_numpy().astype(float), atol=1e-6, err_msg=c
        )
    assert ours["face_id"].unique().to_list() == [0]  # legacy file has no face_id column
    assert ours["AU01_c"].dtype == pl.Int8 and ours["AU01_r"].dtype == pl.Float32


def test_full_header_has_714_columns_like_real_output(fixtures):
    real = (
        (fixtures / "openface" / "featureextraction_full_doublespace_opendbm_subj01_t01_head40.csv")
        .read_text()
        .splitlines()[0]
    )
    assert [c.strip() for c in real.split(",")] == full_header()
    assert len(full_header()) == 714


@pytest.mark.parametrize("style", STYLES)
def test_each_style_round_trips(tmp_path, style):
    frames = make_frames(25, seed=3)
    path = tmp_path / f"clip_{style}.csv"
    write_openface_csv(path, frames, style, full=style == "2.2")
    ours = read_openface(path)
    if style == "img":  # one image: all rows are faces of frame 1; the face with most successes is kept
        assert ours["frame"].unique().to_list() == [1]
        return
    assert ours.height == 25
    assert ours["frame"].to_list() == list(range(1, 26))  # windows: frame 0 everywhere -> timestamp order
    for c in AU_COLS:
        np.testing.assert_allclose(
            ours[c].to_numpy().astype(float), frames[c].to_numpy().astype(float), atol=1e-6, err_msg=c
        )
    np.testing.assert_array_equal(ours["success"].to_numpy(), frames["success"].to_numpy())


@pytest.mark.parametrize("style", STYLES)
def test_fast_and_careful_parsers_agree_and_every_layout_takes_the_fast_path(tmp_path, style):
    """``read_openface`` parses in one polars pass and only re-parses cell by cell when something is off;
    both paths must give the same table, and no well-formed layout may fall to the slow path."""
    from audfer.au import openface as of

    frames = make_frames(25, seed=5)
    path = tmp_path / f"clip_{style}.csv"
    write_openface_csv(path, frames, style, full=style == "2.2")
    raw = path.read_bytes()
    header = raw[: raw.find(b"\n")]
    names = header.replace(b"\r", b"").replace(b" ", b"").replace(b"\t", b"").decode().split(",")
    names = ["face_id" if n == "face" and "frame" not in names else n for n in names]
    wanted = [c for c in ("frame", "face_id", "timestamp", "confidence", "success") if c in names] + AU_COLS
    fast = of._parse_fast(raw, header, names, wanted)
    assert fast is not None, f"{style}: a well-formed file fell to the slow parser"
    careful = of._parse_careful(path, raw, names, wanted)
    assert fast.columns == careful.columns == wanted
    np.testing.assert_array_equal(fast.to_numpy(), careful.to_numpy())


def test_a_blank_line_falls_to_the_careful_path_which_names_its_row(tmp_path):
    from audfer.au import openface as of

    frames = make_frames(6, seed=6)
    path = tmp_path / "odd.csv"
    write_openface_csv(path, frames, "2.2", full=False)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:3] + [b""] + lines[3:]))  # a blank line as row 4
    raw = path.read_bytes()
    header = raw[: raw.find(b"\n")]
    names = header.replace(b" ", b"").decode().split(",")
    assert (
        of._parse_fast(raw, header, names, ["frame", "face_id", "timestamp", "confidence", "success", *AU_COLS]) is None
    )
    with pytest.raises(AudferError, match=r"odd\.csv: row 4, column frame: empty cell"):
        read_openface(path)


def test_windows_style_bytes_look_like_windows_output():
    data = render_openface_csv(make_frames(3), "windows", full=False)
    lines = data.split(b"\r\n")
    assert lines[1].startswith(b"0, 0, ") and lines[2].startswith(b"0, 0, ")


def test_constant_frame_without_timestamps_uses_row_order(tmp_path):
    frames = make_frames(5).with_columns(pl.lit(0.0).alias("timestamp"))
    path = tmp_path / "w.csv"
    write_openface_csv(path, frames, "windows", full=False)
    assert read_openface(path)["frame"].to_list() == [1, 2, 3, 4, 5]


def test_multiface_picks_most_successful_face_or_the_one_asked(tmp_path):
    a = make_frames(10, seed=1, face_id=0, success=[1] * 4 + [0] * 6)
    b = make_frames(10, seed=2, face_id=1, success=[1] * 9 + [0])
    both = pl.concat([a, b]).sort("frame", maintain_order=True)  # FaceLandmarkVidMulti interleaves faces per frame
    path = tmp_path / "multi.csv"
    write_openface_csv(path, both, "2.2", full=False)
    got = read_openface(path)
    assert got["face_id"].unique().to_list() == [1] and got.height == 10
    np.testing.assert_allclose(got["AU12_r"].to_numpy(), b["AU12_r"].to_numpy(), atol=1e-6)
    assert read_openface(path, face_id=0)["success"].sum() == 4
    with pytest.raises(AudferError, match="face_id 7 not found"):
        read_openface(path, face_id=7)


def test_multiface_tie_takes_smallest_id(tmp_path):
    both = pl.concat([make_frames(4, face_id=3, success=[1] * 4), make_frames(4, face_id=2, success=[1] * 4)])
    path = tmp_path / "tie.csv"
    write_openface_csv(path, both, "plain", full=False)
    assert read_openface(path)["face_id"].unique().to_list() == [2]


def test_cut_off_last_row_is_dropped_with_warning_or_raises_when_strict(tmp_path):
    data = render_openface_csv(make_frames(6), "2.2")
    path = tmp_path / "cut.csv"
    path.write_bytes(data[: len(data) - 1500])  # cut mid-row, no final newline
    with pytest.warns(OpenFaceWarning, match="row 7 is cut off"):
        got = read_openface(path)
    assert got.height == 5
    with pytest.raises(AudferError, match=r"cut\.csv: row 7 is cut off"):
        read_openface(path, strict=True)


def test_complete_last_row_without_newline_is_kept(tmp_path):
    path = tmp_path / "nonl.csv"
    path.write_bytes(render_openface_csv(make_frames(6), "plain", full=False).rstrip(b"\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_openface(path).height == 6


def test_landmarks_only_run_names_missing_columns(tmp_path):
    path = tmp_path / "lmk.csv"
    path.write_text("frame, face_id, timestamp, confidence, success, x_0, y_0\n1, 0, 0.0, 0.9, 1, 3.0, 4.0\n")
    with pytest.raises(AudferError, match=r"missing AU column\(s\) AU01_r, AU02_r.*AU45_c.*-aus"):
        read_openface(path)


def test_partially_missing_au_columns_are_listed(tmp_path):
    data = render_openface_csv(make_frames(3), "plain", full=False).decode().replace("AU28_c", "AU99_c")
    path = tmp_path / "p.csv"
    path.write_text(data)
    with pytest.raises(AudferError, match=r"missing AU column\(s\) AU28_c$"):
        read_openface(path)


def test_non_numeric_cell_names_file_row_and_column(tmp_path):
    lines = render_openface_csv(make_frames(5), "2.2", full=False).decode().split("\n")
    cells = lines[3].split(", ")
    col = (
        ("frame, face_id, timestamp, confidence, success, " + ", ".join(INTENSITY_COLUMNS)).split(", ").index("AU04_r")
    )
    cells[col] = "n/a"
    lines[3] = ", ".join(cells)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(AudferError, match=r"bad\.csv: row 4, column AU04_r: 'n/a' is not a number"):
        read_openface(path)


def test_presence_must_be_binary(tmp_path):
    df = make_frames(3).with_columns(pl.lit(0).alias("AU45_c"))
    path = tmp_path / "c.csv"
    path.write_bytes(render_openface_csv(df, "plain", full=False).replace(b",0.0\n", b",0.5\n", 1))
    with pytest.raises(AudferError, match=r"c\.csv: row 2, column AU45_c: 0\.5; expected 0 or 1"):
        read_openface(path)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("")
    with pytest.raises(AudferError, match="empty file"):
        read_openface(path)


# ------------------------------------------------------------------ folders and cache


def _make_folder(root, n_clips, frames=8):
    root.mkdir()
    for i in range(n_clips):
        write_openface_csv(root / f"{i + 1:05d}.csv", make_frames(frames, seed=i), "2.2", full=False)
    return root


def test_folder_keeps_clip_ids_as_strings_and_caches(tmp_path):
    root = _make_folder(tmp_path / "of", 5)
    first = read_openface_dir(root)
    assert first.clips == ["00001", "00002", "00003", "00004", "00005"]
    assert first.frames["clip_id"].dtype == pl.String and first.frames["clip_id"][0] == "00001"
    assert first.from_cache == 0 and first.frames.height == 40
    second = read_openface_dir(root)
    assert second.from_cache == 5
    assert second.frames.equals(first.frames)
    # change one file: only it is re-read and its new values show up
    write_openface_csv(root / "00003.csv", make_frames(8, seed=99), "2.2", full=False)
    third = read_openface_dir(root)
    assert third.from_cache == 4
    new = third.frames.filter(pl.col("clip_id") == "00003")["AU12_r"].to_numpy()
    np.testing.assert_allclose(new, make_frames(8, seed=99)["AU12_r"].to_numpy(), atol=1e-6)
    (root / "00005.csv").unlink()
    assert "00005" not in read_openface_dir(root).frames["clip_id"].to_list()


def test_parallel_read_equals_serial(tmp_path):
    root = _make_folder(tmp_path / "of", 40, frames=5)
    par = read_openface_dir(root, workers=2, cache=False)
    ser = read_openface_dir(root, workers=1, cache=False)
    assert par.frames.equals(ser.frames) and par.frames.height == 200


def test_folder_bad_file_raises_or_is_skipped(tmp_path):
    root = _make_folder(tmp_path / "of", 3)
    (root / "00002.csv").write_text("frame, x_0\n1, 2\n")
    with pytest.raises(AudferError, match=r"00002\.csv: missing AU column"):
        read_openface_dir(root)
    got = read_openface_dir(root, on_error="skip")
    assert [c for c, _ in got.skipped] == ["00002"]
    assert sorted(got.frames["clip_id"].unique().to_list()) == ["00001", "00003"]


def test_folder_errors(tmp_path):
    with pytest.raises(AudferError, match="AU folder not found"):
        read_openface_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudferError, match="no AU .csv files"):
        read_openface_dir(tmp_path / "empty")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_labels_streamed_chunk_by_chunk_equal_the_whole_folder_path(tmp_path, workers):
    """``read_au_dir(reduce=...)`` (what ``audfer au-labels`` runs, never holding the folder's frames) gives the same
    Eq. 4 labels as reducing the whole frames table, cold, cached and after one file changed, with 1 or 2 workers."""
    import os
    import time

    from audfer.method.labels import video_au_labels, with_clips

    folder = tmp_path / "of"
    folder.mkdir()
    for i in range(150):  # > 64 files: several chunks
        n = 0 if i == 7 else 20 + i % 9  # clip 00007: a header only
        frames = make_frames(n, seed=i)
        (folder / f"{i:05d}.csv").write_bytes(render_openface_csv(frames, "2.2", full=False))
    cache = tmp_path / "cache"
    whole = read_openface_dir(folder, cache=False)
    truth = video_au_labels(whole.frames, whole.clips)
    reduce = lambda f: video_au_labels(f)  # noqa: E731
    for step in ("cold", "cached", "one changed"):
        if step == "one changed":
            target = folder / "00042.csv"
            target.write_bytes(render_openface_csv(make_frames(30, seed=999), "2.2", full=False))
            os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
            whole = read_openface_dir(folder, cache=False)
            truth = video_au_labels(whole.frames, whole.clips)
        got = read_openface_dir(folder, cache_dir=cache, workers=workers, reduce=reduce)
        assert got.frames.height == 0 and got.n_frames == whole.frames.height  # frames never held
        assert with_clips(got.reduced, got.clips).equals(truth), step
        assert got.from_cache == {"cold": 0, "cached": 150, "one changed": 149}[step]
    # the cache written chunk by chunk holds the same frames as the whole-folder reader
    assert read_openface_dir(folder, cache_dir=cache).frames.equals(whole.frames)


def test_au_labels_from_the_labels_cache_equal_a_fresh_computation_and_follow_every_change(tmp_path):
    """The labels cache is incidental: a cached run writes the same bytes and sidecar as a computed one, and a
    changed file, other options or a damaged entry make it compute again."""
    import json
    import os
    import time

    from audfer.cli import main

    folder = tmp_path / "of"
    folder.mkdir()
    for i in range(4):
        write_openface_csv(folder / f"clip{i}.csv", make_frames(30, seed=i))
    cache = tmp_path / "cache"

    def run(out, *extra):
        assert main(["au-labels", str(folder), "--out", str(out), "--cache-dir", str(cache), *extra]) == 0
        return out.read_bytes(), json.loads((tmp_path / f"{out.name}.provenance.json").read_text())

    fresh = run(tmp_path / "a.csv", "--no-cache")
    first = run(tmp_path / "b.csv")
    second = run(tmp_path / "c.csv")
    assert fresh == first == second
    entries = list((cache / "labels").iterdir())
    assert len(entries) == 1
    # a changed AU file: computed again, and the result follows the change
    f = folder / "clip0.csv"
    write_openface_csv(f, make_frames(30, seed=99))
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = run(tmp_path / "d.csv")
    assert changed[0] != second[0] and changed == run(tmp_path / "e.csv", "--no-cache")
    # other options are another entry
    run(tmp_path / "f.csv", "--min-confidence", "0.9")
    assert len(list((cache / "labels").iterdir())) == 2
    # a damaged entry is not used
    for entry in (cache / "labels").iterdir():
        (entry / "labels.csv").write_bytes(b"clip_id\nbroken\n")
    assert run(tmp_path / "g.csv") == changed


def test_a_folder_read_by_threads_or_by_processes_gives_the_same_table(tmp_path, monkeypatch):
    """Large files are read by threads, small ones by spawned processes (``THREADS_FROM_BYTES``): the same frames
    and notes either way, in file order."""
    import audfer.au.folder as folder_mod
    from audfer.au.folder import read_au_dir
    from audfer.synth.openface_writer import write_openface_csv

    root = tmp_path / "of"
    root.mkdir()
    for i in range(40):
        write_openface_csv(root / f"c{i:02d}.csv", make_frames(20 + i, seed=i))
    (root / "c05.csv").write_bytes((root / "c05.csv").read_bytes()[:-40])  # a cut-off last row: a note
    got = {}
    for mode, threshold in (("threads", 0), ("processes", 1 << 40)):
        monkeypatch.setattr(folder_mod, "THREADS_FROM_BYTES", threshold)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            folder = read_au_dir(root, cache=False, workers=2)
        got[mode] = (folder.frames, [str(w.message) for w in caught if issubclass(w.category, OpenFaceWarning)])
    assert got["threads"][0].equals(got["processes"][0]) and got["threads"][0].height > 0
    assert got["threads"][1] == got["processes"][1] and any("c05" in m for m in got["threads"][1])
