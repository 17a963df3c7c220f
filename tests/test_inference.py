"""Video inference on the real fixture videos, the face tracker, and ONNX export parity."""

import json
import warnings

import numpy as np
import polars as pl
import pytest
import torch

from audfer import AUS, EXPRESSIONS
from audfer.cli import main
from audfer.errors import NoFaceError
from audfer.models import create_model
from audfer.predict.faces import HaarFaceDetector, track_main_face
from audfer.predict.predictor import predict_video, windows
from audfer.predict.result import summarize
from audfer.predict.video import iter_frames


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("former_dfer_small", img_size=32, num_frames=4, width=8).eval()


@pytest.mark.slow
def test_single_face_video_gives_a_prediction_per_window(fixtures, small_model):
    result = predict_video(fixtures / "video" / "single_face.mp4", small_model, window=16, stride=8)
    table, boxes, fps = result.windows, result.boxes, result.fps
    assert len(boxes) == 72 and fps == pytest.approx(30.0)
    assert (~np.isnan(boxes).any(axis=1)).mean() >= 0.9
    assert table["start_frame"].to_list() == [0, 8, 16, 24, 32, 40, 48, 56] and table["end_frame"].to_list()[-1] == 72
    assert table["has_face"].all()
    np.testing.assert_allclose(table["start_time"].to_numpy(), table["start_frame"].to_numpy() / 30.0, atol=1e-3)
    probs = table.select(EXPRESSIONS).to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    au = table.select(AUS).to_numpy()
    assert ((au >= 0) & (au <= 1)).all()
    assert table["pred"].to_list() == [EXPRESSIONS[i] for i in probs.argmax(1)]
    s = summarize(table)
    assert s["expression"] in EXPRESSIONS and s["windows_with_face"] == 8
    assert sum(s["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    # the result object: the same summary plus what the frames say, and one JSON record per video
    assert result.summary == {
        **s,
        "fps": fps,
        "frames": 72,
        "frames_with_face": int((~np.isnan(boxes).any(axis=1)).sum()),
    }
    assert result.to_dict()["windows"] == table.to_dicts() and result.table().columns[0] == "video"
    assert result.describe().startswith(f"{fixtures / 'video' / 'single_face.mp4'}: {s['expression']} (")
    # the box sits on the face: inside the frame, a plausible face size for 640 x 360
    b = table.select("box_x", "box_y", "box_w", "box_h").to_numpy()
    assert (b[:, 0] >= 0).all() and (b[:, 0] + b[:, 2] <= 640).all() and (b[:, 2] > 40).all()


@pytest.mark.slow
def test_no_face_video_is_a_clear_error(fixtures, small_model, small_weights, tmp_path, capsys):
    with pytest.raises(NoFaceError, match="no_face.mp4: no face found in"):
        predict_video(fixtures / "video" / "no_face.mp4", small_model)
    out = tmp_path / "res.json"
    assert (
        main(
            [
                "predict",
                str(fixtures / "video" / "no_face.mp4"),
                "--checkpoint",
                str(small_weights),
                "--model",
                "former_dfer_small",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no face found" in err[0]
    assert not out.exists()


@pytest.mark.slow
def test_mixed_video_flags_windows_without_a_face(fixtures, small_model):
    result = predict_video(fixtures / "video" / "face_noface.mov", small_model)
    table, boxes = result.windows, result.boxes
    share = (~np.isnan(boxes).any(axis=1)).mean()
    assert 0.3 < share < 0.6
    flagged = table.filter(~pl.col("has_face"))
    kept = table.filter(pl.col("has_face"))
    assert flagged.height > 0 and kept.height > 0
    assert flagged["pred"].null_count() == flagged.height and flagged["Happy"].null_count() == flagged.height
    assert kept["pred"].null_count() == 0
    assert kept["start_frame"].max() < flagged["start_frame"].min()  # the face comes first, then leaves


def test_tracker_keeps_the_persistent_face_and_drops_isolated_hits():
    face = np.array([[100, 100, 80, 80]], np.float32)
    dets = [face + [t, 0, 0, 0] for t in range(20)]
    dets[5] = np.zeros((0, 4), np.float32)  # a missed frame inside the track: bridged
    dets[12] = np.concatenate([dets[12], [[400, 50, 120, 120]]])  # a bigger one-frame false hit: ignored
    boxes = track_main_face(dets)
    assert not np.isnan(boxes).any()
    assert boxes[5, 0] == pytest.approx(105, abs=1.5) and boxes[12, 0] == pytest.approx(112, abs=1.5)
    lonely = [np.zeros((0, 4), np.float32)] * 30
    lonely[10] = face
    assert np.isnan(track_main_face(lonely)).all()


def test_windows_cover_the_video():
    assert windows(72, 16, 8)[-1] == (56, 72)
    assert windows(70, 16, 8)[-1] == (54, 70)
    assert windows(10, 16, 8) == [(0, 10)]


@pytest.mark.slow
def test_predict_cli_writes_json_csv_and_an_annotated_video(fixtures, small_weights, tmp_path):
    import cv2

    video = fixtures / "video" / "single_face.mp4"
    base = ["--checkpoint", str(small_weights), "--model", "former_dfer_small"]
    assert (
        main(["predict", str(video), *base, "--out", str(tmp_path / "r.json"), "--annotate", str(tmp_path / "a.mp4")])
        == 0
    )
    res = json.loads((tmp_path / "r.json").read_text())[str(video)]
    assert res["summary"]["frames"] == 72 and len(res["windows"]) == 8
    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 72 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 360
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) > 640  # the frame, then the panel of probabilities beside it
    assert (
        main(
            [
                "predict",
                str(video),
                str(fixtures / "video" / "face_noface.mov"),
                *base,
                "--out",
                str(tmp_path / "r.csv"),
            ]
        )
        == 0
    )
    table = pl.read_csv(tmp_path / "r.csv")
    assert table["video"].n_unique() == 2 and {"start_frame", "Happy", "AU45", "pred"} <= set(table.columns)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["former_dfer_small", "m3dfel_small", "mae_dfer_small"])
def test_onnx_export_matches_pytorch(name, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnx extra not installed (pip install 'audfer[onnx]')")
    from audfer.predict.export import export_onnx, onnx_parity

    torch.manual_seed(0)
    model = create_model(name).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    diff = onnx_parity(model, path, batch=2)
    assert set(diff) == {"logits", "au_logits"}
    assert max(diff.values()) <= 1e-4, diff


def test_face_full_uses_every_whole_frame_where_detection_finds_no_face(small_model, tmp_path):
    import cv2

    from audfer.data.sampling import uniform_indices

    rng = np.random.default_rng(0)
    path = tmp_path / "noface.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 64))
    for _ in range(24):
        writer.write(cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (9, 9), 3))
    writer.release()
    with pytest.raises(NoFaceError):
        predict_video(path, small_model, window=8, stride=8)
    result = predict_video(path, small_model, window=8, stride=8, face="full")
    table, boxes = result.windows, result.boxes
    assert table["has_face"].all() and table.height == 3
    np.testing.assert_array_equal(boxes, np.tile([0, 0, 64, 64], (24, 1)))
    # independently: decode, resize each whole frame to the model's 32 px, run the model on each window
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (32, 32), interpolation=cv2.INTER_AREA))
    frames = np.stack(frames)
    for w, start in enumerate((0, 8, 16)):
        clip = frames[start + uniform_indices(8, 4)]
        x = torch.from_numpy(clip[None]).permute(0, 1, 4, 2, 3).float() / 255
        with torch.no_grad():
            expected = small_model(x).logits.softmax(1)[0].numpy()
        np.testing.assert_allclose(table.select(EXPRESSIONS).row(w), expected, atol=1e-5)


@pytest.mark.parametrize("video", ["single_face.mp4", "face_noface.mov"])
def test_detection_on_every_fourth_frame_tracks_within_a_few_pixels_of_every_frame_detection(fixtures, video):
    from audfer.predict.faces import detect_faces

    path = fixtures / "video" / video
    det = HaarFaceDetector()
    full, seen_full, n = detect_faces(iter_frames(path), det, every=1)
    ref = track_main_face(full, times=seen_full, n_frames=n)
    found, seen, n4 = detect_faces(iter_frames(path), det, every=4)
    boxes = track_main_face(found, times=seen, n_frames=n4, every=4)
    assert n4 == n and len(seen) < n / 2  # most frames were not run through the detector
    assert (np.isnan(ref).any(1) == np.isnan(boxes).any(1)).all()  # face / no face on the same frames
    both = ~np.isnan(ref).any(1)
    diff = np.abs(boxes[both] - ref[both])
    assert diff.mean() <= 2.5 and diff.max() <= 10  # pixels, on faces over 100 px wide
    assert np.median(ref[both][:, 2]) > 100


def test_keyframes_that_disagree_send_the_detector_to_every_frame_between():
    from audfer.predict.faces import detect_faces

    calls = []
    face = np.array([[10.0, 10.0, 50.0, 50.0]], np.float32)

    def detect(frame):
        calls.append(int(frame[0, 0, 0]))
        return face if frame[0, 0, 0] < 6 else np.zeros((0, 4), np.float32)  # the face leaves at frame 6

    frames = [np.full((4, 4, 3), t, np.uint8) for t in range(13)]
    found, seen, n = detect_faces(iter(frames), detect, every=4)
    assert n == 13 and seen == sorted(seen)
    assert calls == [0, 4, 8, 5, 6, 7, 12]  # 4 and 8 disagree: 5, 6, 7 looked at; 12 is the last frame
    assert [len(f) for f in found] == [1, 1, 1, 0, 0, 0, 0]


def test_bfloat16_runs_m3dfel_whose_cpu_lstm_has_no_mixed_precision_primitive(fixtures):
    """oneDNN's CPU LSTM raises on autocast's float32 input with bfloat16 weights; M3DFEL runs it in float32 there.
    A small M3DFEL (its LSTM included) through ``predict_video`` in bfloat16: close to float32, one warning on a CPU
    without bf16 instructions."""
    import audfer
    from audfer.predict.predictor import cpu_has_bf16

    torch.manual_seed(0)
    model = audfer.create_model("m3dfel", width=8, img_size=32).eval()
    video = fixtures / "video" / "single_face.mp4"
    a = predict_video(video, model, face="full", stride=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = predict_video(video, model, face="full", stride=16, precision="bfloat16")
    slow = [w for w in caught if "no bfloat16 instructions" in str(w.message)]
    assert len(slow) == (0 if cpu_has_bf16() else 1)
    cols = [*audfer.EXPRESSIONS, *audfer.AUS]
    assert np.abs(a.windows.select(cols).to_numpy() - b.windows.select(cols).to_numpy()).max() <= 0.01


def test_a_model_whose_layers_refuse_bfloat16_is_one_clear_error(fixtures):
    """Any model's layer that has no bfloat16 kernel here (a plain LSTM on this CPU's oneDNN, as M3DFEL's was) is
    one error naming the video and the way out, not a traceback; float32 still runs."""
    import audfer
    from audfer.models.custom import CustomDFER

    class Recurrent(torch.nn.Module):
        num_features = 4
        input_spec = {"frames": 4, "size": 32}

        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 4, batch_first=True)

        def forward(self, x):
            _, (h, _) = self.lstm(x.mean(dim=(-2, -1)))
            if torch.is_autocast_enabled("cpu"):  # the kernel refusal, on any CPU: what oneDNN raises here
                raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation")
            return h[-1]

    model = CustomDFER(Recurrent()).eval()
    video = fixtures / "video" / "single_face.mp4"
    assert predict_video(video, model, face="full", stride=16).windows.height >= 1
    with pytest.raises(
        audfer.AudferError, match=r"single_face\.mp4: the model cannot run in bfloat16 on cpu .*float32"
    ):
        predict_video(video, model, face="full", stride=16, precision="bfloat16")


@pytest.mark.slow
def test_bfloat16_keeps_full_size_m3dfel_probabilities_within_001_of_float32(fixtures):
    import audfer
    from audfer.predict.predictor import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("this CPU has no bf16 instructions: emulated bf16 of full-size M3DFEL takes ~3 min a window here")

    torch.manual_seed(0)
    model = audfer.create_model("m3dfel").eval()
    with torch.no_grad():  # peaked outputs, as a trained model's
        model.fc.weight.mul_(10)
        model.au_head.weight.mul_(10)
    video = fixtures / "video" / "single_face.mp4"
    a = predict_video(video, model, face="full", stride=16)
    b = predict_video(video, model, face="full", stride=16, precision="bfloat16")
    cols = [*audfer.EXPRESSIONS, *audfer.AUS]
    diff = np.abs(a.windows.select(cols).to_numpy() - b.windows.select(cols).to_numpy())
    assert diff.max() <= 0.01
    with pytest.raises(audfer.AudferError, match="precision must be one of float32, bfloat16"):
        predict_video(video, model, precision="float16")
