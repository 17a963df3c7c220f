"""``audfer predict`` as a practitioner meets it: windows streamed in bounded memory, inputs checked before the model
loads, folders, globs and standard output, per-video outputs that never collide, the annotated video checked before
it replaces anything, broken numbers never written, progress bars only on a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from audfer.cli import main
from audfer.data.sampling import uniform_indices
from audfer.errors import AudferError, CheckpointError, NoFaceError
from audfer.models import create_model
from audfer.predict.faces import crop_face, detect_faces, track_main_face
from audfer.predict.predictor import predict_video, predict_videos, windows
from audfer.predict.video import distinct_names, find_videos, iter_frames

SRC = str(Path(__file__).resolve().parents[1] / "src")


def square_video(path: Path, n: int, *, size: int = 96, present=None, fps: float = 25.0, seed: int = 0) -> Path:
    """A video of ``n`` frames: grey noise, and a bright 36 px square (the 'face') moving across it on the frames
    where ``present(t)`` is true (default: all)."""
    import cv2

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    for t in range(n):
        img = rng.integers(40, 90, (size, size, 3), dtype=np.uint8)
        if present is None or present(t):
            x = 10 + (t * 3) % (size - 50)
            img[20:56, x : x + 36] = (230, 220 - (t % 7) * 10, 200)
        writer.write(img)
    writer.release()
    return path


def square_detector(frame: np.ndarray) -> np.ndarray:
    """Finds ``square_video``'s bright square: the bounding box of the pixels brighter than 180."""
    ys, xs = np.nonzero(frame.mean(axis=2) > 180)
    if len(xs) < 200:
        return np.zeros((0, 4), np.float32)
    return np.array([[xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]], np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("former_dfer_small", img_size=32, num_frames=4, width=8).eval()


SMALL = ["--model", "former_dfer_small"]


def _cli_model(weights):
    return ["--checkpoint", str(weights), *SMALL]


# ------------------------------------------------------------------------------------------------ streamed windows
def _whole_video_reference(path, model, *, window, stride, margin=0.25):
    """What predict did before it streamed: every face frame of the video cropped into one array first, then each
    window's sampled frames taken from it and run through the model one window at a time."""
    frames = list(iter_frames(path))
    dets, seen, n = detect_faces(iter(frames), square_detector, every=4)
    boxes = track_main_face(dets, times=seen, n_frames=n, every=4)
    face = ~np.isnan(boxes).any(axis=1)
    spec = model.input_spec
    crops = np.zeros((n, spec.size, spec.size, 3), np.uint8)
    for t in np.flatnonzero(face):
        crops[t] = crop_face(frames[t], boxes[t], spec.size, margin)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    out = []
    for s, e in windows(n, window, stride):
        idx = np.flatnonzero(face[s:e]) + s
        if len(idx) * 2 < e - s:
            out.append(None)
            continue
        clip = torch.from_numpy(crops[idx[uniform_indices(len(idx), spec.frames)]]).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            out.append(model(((clip - mean) / std)[None]).logits.softmax(1)[0].numpy())
    return out


def test_streamed_windows_give_what_cropping_the_whole_video_first_gives(small_model, tmp_path):
    # the face leaves for a while and comes back: windows half without it, crops needed by two open windows
    video = square_video(tmp_path / "v.mp4", 90, present=lambda t: not 30 <= t < 52)
    result = predict_video(video, small_model, window=16, stride=5, detector=square_detector, batch_size=3)
    ref = _whole_video_reference(video, small_model, window=16, stride=5)
    assert result.windows.height == len(ref) == len(windows(90, 16, 5))
    probs = result.windows.select(["Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"]).to_numpy()
    flagged = [i for i, r in enumerate(ref) if r is None]
    assert flagged and len(flagged) < len(ref)  # both kinds of window occur
    assert result.windows["has_face"].to_list() == [r is not None for r in ref]
    for i, r in enumerate(ref):
        if r is None:
            assert np.isnan(probs[i]).all()
        else:
            np.testing.assert_allclose(probs[i], r, rtol=1e-5, atol=1e-6)


def test_crops_held_at_once_follow_the_window_not_the_video(small_model, tmp_path, monkeypatch):
    import weakref

    import audfer.predict.predictor as predictor

    alive: list[weakref.ref] = []
    peak = [0]

    def counted(*args, **kwargs):
        crop = crop_face(*args, **kwargs)
        alive.append(weakref.ref(crop))
        peak[0] = max(peak[0], sum(r() is not None for r in alive))
        return crop

    monkeypatch.setattr(predictor, "crop_face", counted)
    peaks = []
    for n in (60, 300):
        alive.clear()
        peak[0] = 0
        predict_video(
            square_video(tmp_path / f"{n}.mp4", n), small_model, window=16, stride=8, detector=square_detector
        )
        peaks.append(peak[0])
    assert 0 < peaks[0] == peaks[1] <= 16  # at most a window's frames, whatever the video's length


@pytest.mark.slow
def test_peak_memory_of_a_ten_minute_video_is_that_of_a_one_minute_one(tmp_path):
    """Peak RSS of `predict` in a fresh process for 1 and 10 minutes of 25 fps video (the whole-video crop array
    of the former code would have added 13,500 x 64 x 64 x 3 bytes = 166 MB for the longer one)."""
    child = (
        "import resource, sys, torch\n"
        "from audfer.models import create_model\n"
        "from audfer.predict.predictor import predict_video\n"
        "torch.manual_seed(0); torch.set_num_threads(1)\n"
        "m = create_model('former_dfer_small', img_size=64, num_frames=4, width=8).eval()\n"
        "r = predict_video(sys.argv[1], m, face='full', window=16, stride=16, batch_size=8)\n"
        "print(r.frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    peaks = {}
    for minutes in (1, 10):
        video = square_video(tmp_path / f"{minutes}.mp4", minutes * 60 * 25, size=48)
        out = subprocess.run(
            [sys.executable, "-c", child, str(video)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
            check=True,
        )
        frames, kb = map(int, out.stdout.split())
        assert frames == minutes * 1500
        peaks[minutes] = kb
    assert peaks[10] <= peaks[1] * 1.03, peaks


# ------------------------------------------------------------------------------------------------ short, broken
def test_a_video_shorter_than_a_face_track_says_so(small_model, tmp_path):
    video = square_video(tmp_path / "short.mp4", 3)
    with pytest.raises(
        NoFaceError,
        match=r"short\.mp4: too short to find a face: 3 frame\(s\), a face track needs at "
        r"least 5 \(the model reads 4 per window",
    ):
        predict_video(video, small_model, detector=square_detector)
    assert predict_video(video, small_model, face="full").windows["has_face"].to_list() == [True]


def test_probabilities_that_are_not_finite_are_never_written(small_model, small_weights, tmp_path, capsys):
    import copy

    broken = copy.deepcopy(small_model)
    with torch.no_grad():
        for param in broken.parameters():
            param.fill_(float("nan"))
    video = square_video(tmp_path / "v.mp4", 40)
    with pytest.raises(
        AudferError,
        match=r"v\.mp4: window 0 \(frames 0-15\): the model gave probabilities that are "
        r"not finite",
    ):
        predict_video(video, broken, detector=square_detector)
    out = tmp_path / "p.json"
    with pytest.raises(AudferError, match="not finite"):
        predict_videos([video], broken, out, log=lambda m: None, detector=square_detector)
    assert not out.exists()
    # through the command line: a checkpoint whose weights are NaN; one line, exit 2, nothing written
    state = torch.load(small_weights, weights_only=True)["state_dict"]
    torch.save(
        {"state_dict": {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}},
        tmp_path / "nan.pth",
    )
    capsys.readouterr()
    code = main(
        ["predict", str(video), "--checkpoint", str(tmp_path / "nan.pth"), *SMALL, "--face", "full", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("audfer: error: ") and not out.exists()
    assert "nan" not in capsys.readouterr().out.lower()


# ------------------------------------------------------------------------------------------------ inputs and names
def test_folders_and_globs_name_videos_and_every_input_is_checked_before_the_model(tmp_path, capsys):
    a = square_video(tmp_path / "in" / "a.mp4", 8)
    b = square_video(tmp_path / "in" / "sub" / "b.mov", 8)
    (tmp_path / "in" / "notes.txt").write_text("not a video")
    (tmp_path / "in" / ".hidden.mp4").write_bytes(b"")
    assert find_videos([tmp_path / "in"]) == [a, b]
    assert find_videos([str(tmp_path / "in" / "*.mp4"), a]) == [a]  # a video named twice is kept once
    assert find_videos([str(tmp_path / "in" / "**" / "*.mov")]) == [b]
    with pytest.raises(AudferError, match=r"nothing\*\.mp4: no file matches"):
        find_videos([str(tmp_path / "nothing*.mp4")])
    # a missing video and one that is text: named before the (missing) checkpoint is ever read
    (tmp_path / "fake.mp4").write_text("hello")
    for bad, says in ((tmp_path / "gone.mp4", "gone.mp4: video not found"), (tmp_path / "fake.mp4", "a text file")):
        assert main(["predict", str(a), str(bad), "--checkpoint", str(tmp_path / "no.ckpt")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err


def test_same_file_names_in_two_folders_get_distinct_outputs():
    names = distinct_names([Path("x/a/clip.mp4"), Path("x/b/clip.mp4"), Path("x/a/clip.mov"), Path("y/other.mp4")])
    assert len(set(names)) == 4 and names[3] == "other"
    assert distinct_names([Path("a/clip.mp4"), Path("b/clip.mp4")]) == ["a__clip", "b__clip"]
    assert distinct_names([Path("d/x.mp4"), Path("d/x.mov")]) == ["x_mp4", "x_mov"]


def test_annotate_with_several_videos_needs_a_folder_and_names_never_collide(small_weights, tmp_path, capsys):
    import cv2

    one = square_video(tmp_path / "a" / "clip.mp4", 20)
    two = square_video(tmp_path / "b" / "clip.mp4", 24, seed=1)
    assert (
        main(
            [
                "predict",
                str(one),
                str(two),
                "--checkpoint",
                str(tmp_path / "no.ckpt"),
                "--annotate",
                str(tmp_path / "two.mp4"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "with 2 videos, --annotate names a folder" in err[0] and not (tmp_path / "two.mp4").exists()
    )
    assert (
        main(["predict", str(one), "--checkpoint", str(tmp_path / "no.ckpt"), "--plot", str(tmp_path / "p.gif")]) == 2
    )
    assert "--plot " in capsys.readouterr().err  # an ending it cannot write, before the model loads
    out, plots = tmp_path / "annotated", tmp_path / "plots"
    args = [
        "predict",
        str(one),
        str(two),
        *_cli_model(small_weights),
        "--face",
        "full",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert main([*args, "--annotate", str(out), "--plot", str(plots), "--quiet"]) == 0
    err = capsys.readouterr().err
    h264 = "(H.264)" in err
    assert err.count("(VP8)" if not h264 else "(H.264)") == 2  # each file names its codec
    assert h264 or "no H.264 encoder; the annotated videos are VP8 .webm" in err
    videos = sorted(out.iterdir())
    assert [v.stem for v in videos] == ["a__clip_annotated", "b__clip_annotated"]
    for video, n in zip(videos, (20, 24)):
        cap = cv2.VideoCapture(str(video))
        count = 0
        while cap.grab():
            count += 1
        assert count == n
        assert int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 384 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) > 384
    pngs = sorted(plots.iterdir())
    assert [p.name for p in pngs] == ["a__clip_timeline.png", "b__clip_timeline.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_results_go_to_standard_output(small_weights, tmp_path, capsys):
    video = square_video(tmp_path / "v.mp4", 20)
    assert main(["predict", str(video), *_cli_model(small_weights), "--face", "full", "--out", "-"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert list(data) == [str(video)] and data[str(video)]["summary"]["frames"] == 20
    assert str(video) in captured.err  # the one-line description goes to stderr
    assert main(["predict", str(video), *_cli_model(small_weights), "--face", "full", "--format", "csv"]) == 0
    import io

    table = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert table.height == 2 and table["video"].to_list() == [str(video)] * 2


def test_a_run_folder_as_checkpoint_points_at_its_checkpoints(tmp_path, capsys):
    video = square_video(tmp_path / "v.mp4", 8)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: {}\n")
    assert main(["predict", str(video), "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a run folder without checkpoints/last.ckpt" in err[0] and "holds none" in err[0]
    (run / "checkpoints" / "best.ckpt").write_bytes(b"not a checkpoint")
    (run / "selection.json").write_text(json.dumps({"checkpoint": "checkpoints/best.ckpt"}))
    assert main(["predict", str(video), "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"{run}: a run folder; using its selected checkpoint {run / 'checkpoints' / 'best.ckpt'}"
    assert str(run / "checkpoints" / "best.ckpt") in err[1]  # then that file is read (here: refused)
    with pytest.raises(CheckpointError):
        from audfer.cli.predict import checkpoint_in_run

        (run / "selection.json").write_text(json.dumps({"checkpoint": "checkpoints/gone.ckpt"}))
        checkpoint_in_run(run)
    assert main(["evaluate", str(run)]) == 2
    assert "checkpoints/best.ckpt" in capsys.readouterr().err


def test_a_model_trained_on_synthetic_faces_says_so_once_on_real_videos(small_model, tmp_path):
    import hashlib

    real = [square_video(tmp_path / "real" / f"{i}.mp4", 10, seed=i) for i in range(2)]
    rendered = square_video(tmp_path / "rendered" / "happy_1.mp4", 10)
    digest = hashlib.sha256(rendered.read_bytes()).hexdigest()
    (rendered.parent / "rendered.json").write_text(json.dumps({"videos": {rendered.name: digest}}))
    small_model.trained_on = "synthetic"
    try:
        lines: list[str] = []
        predict_videos([*real, rendered], small_model, tmp_path / "r.json", log=lines.append, face="full")
        said = [line for line in lines if "trained only on audfer's synthetic faces" in line]
        assert len(said) == 1 and str(real[0]) in said[0]
        lines.clear()
        predict_videos([rendered], small_model, tmp_path / "r.json", log=lines.append, face="full")
        assert not [line for line in lines if "synthetic" in line]
        square_video(rendered, 10, seed=5)  # the file changed since it was rendered: no longer vouched for
        predict_videos([rendered], small_model, tmp_path / "r.json", log=lines.append, face="full")
        assert [line for line in lines if "synthetic" in line]
    finally:
        del small_model.trained_on


# ------------------------------------------------------------------------------------------------ full disk
@pytest.mark.slow
def test_an_annotated_video_cut_off_by_a_full_disk_keeps_the_earlier_file(small_weights, tmp_path):
    """The file size limit (RLIMIT_FSIZE) makes the writer's writes fail as on a full disk; OpenCV's writer says
    nothing, so the check after writing must."""
    video = square_video(tmp_path / "v.mp4", 60, size=160)
    out = tmp_path / "a.mp4"
    out.write_bytes(b"the earlier annotated video")
    child = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "from audfer.cli import main\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (30000, resource.RLIM_INFINITY))\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["predict", str(video), *_cli_model(small_weights), "--face", "full", "--out", str(tmp_path / "r.json")]
    done = subprocess.run(
        [sys.executable, "-c", child, *argv, "--annotate", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    err = [line for line in done.stderr.strip().splitlines() if line.startswith("audfer: error")]
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert f"{out}: the video writer" in err[0] and "the previous file is intact" in err[0]
    assert out.read_bytes() == b"the earlier annotated video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "small.pth", "v.mp4"]  # no partial file left


# ------------------------------------------------------------------------------------------------ progress
@pytest.mark.slow
def test_progress_shows_on_a_terminal_only_and_changes_no_output(small_weights, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    videos = [square_video(tmp_path / f"{i}.mp4", 40, seed=i) for i in range(2)]
    argv = [sys.executable, "-m", "audfer", "predict", *map(str, videos), *_cli_model(small_weights), "--face", "full"]
    env = {**os.environ, "PYTHONPATH": SRC}

    def run(*extra, tty):
        if not tty:
            done = subprocess.run([*argv, *extra], capture_output=True, env=env, check=True)
            return done.stdout, done.stderr
        main_fd, child_fd = pty.openpty()
        fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
        proc = subprocess.Popen([*argv, *extra], stdout=subprocess.PIPE, stderr=child_fd, env=env)
        os.close(child_fd)
        err = b""
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
        out = proc.stdout.read()
        assert proc.wait() == 0
        os.close(main_fd)
        return out, err

    plain_out, plain_err = run(tty=False)
    tty_out, tty_err = run(tty=True)
    quiet_out, quiet_err = run("--quiet", tty=True)
    assert plain_out == tty_out == quiet_out and json.loads(plain_out)
    assert b"frame" in tty_err and b"videos" in tty_err and b"%|" in tty_err  # tqdm's bars
    assert b"%|" not in plain_err and b"%|" not in quiet_err


def test_videos_audfer_synth_renders_are_recognised_as_rendered(synth, tmp_path):
    import shutil

    from audfer.predict.predictor import is_rendered
    from audfer.synth.videos import render_videos

    made = render_videos(synth, tmp_path / "videos", size=32, frames=8)
    assert made and all(is_rendered(m["video"]) for m in made)
    listing = json.loads((tmp_path / "videos" / "rendered.json").read_text())
    assert set(listing["videos"]) == {m["video"].name for m in made}
    moved = tmp_path / "elsewhere" / made[0]["video"].name  # without the listing beside it: not vouched for
    moved.parent.mkdir()
    shutil.copy(made[0]["video"], moved)
    assert not is_rendered(moved)
