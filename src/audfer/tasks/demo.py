"""``audfer demo``: the whole method on data the project renders itself, in about 5 minutes on 2 CPU cores.

1. ``audfer synth``: rendered AU-driven face videos in DFEW's layout, with OpenFace 2.2 CSVs;
2. video AU labels (Eq. 4) from those CSVs -> ``video_au_labels.csv``;
3. pos-weights for each strategy (Eq. 6-8) and the knowledge matrix K (§3.1), both counted on the
   training fold only -> ``pos_weights_*.csv``, ``K.csv``, ``K.png``;
4. the lines the model is measured against (``ceilings``): the floor (always the majority class); two AU oracles,
   logistic regressions on the exact clip AU labels and on the OpenFace-derived ones (Eq. 4), named for what each
   uses (neither is a ceiling: either can score higher); and a colour probe showing the task cannot be solved from
   colour or background;
5. a small Former-DFER trained without the AU loss and with it (global, distinct, minor) over several
   seeds, each evaluated on the identity-disjoint test fold; per-seed paired differences to the baseline
   (``paired_differences``) and the AU head's F1 against the exact AU ground truth and the OpenFace labels;
6. ``audfer predict`` with the demo's ``model.ckpt`` on rendered ``.mp4`` videos of test-fold persons
   (``--face full``: the frame is the face); ``report.md`` holds everything.
Every step leaves its files behind, so any of them can be rerun by hand with the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from audfer.au.folder import read_openface_dir
from audfer.config import load_config
from audfer.config.schema import Config
from audfer.data.annotations import dfew_labels
from audfer.data.datasets import read_frames
from audfer.engine.experiments import run_ablation
from audfer.engine.frame_probs import frame_probabilities
from audfer.errors import AudferError
from audfer.evaluation.metrics import au_f1_table
from audfer.evaluation.reports import plot_knowledge
from audfer.evaluation.statistics import MIN_SEEDS_FOR_A_CLAIM, ceilings, format_difference, paired_differences
from audfer.files import atomic_path
from audfer.hints import Log
from audfer.io import write_csv
from audfer.method.dataset_knowledge import DatasetSpec, filter_facts, filter_lines
from audfer.method.knowledge import extract_knowledge, paper_knowledge
from audfer.method.labels import STRATEGIES, pos_weights, video_au_labels
from audfer.predict.predictor import load_predictor, predict_videos
from audfer.run_layout import RunLayout, metrics_file, predictions_file
from audfer.synth.aus import activation_probability
from audfer.synth.dataset import SynthConfig, generate, synth_settings_differ
from audfer.synth.videos import render_videos
from audfer.tasks.artifacts import write_au_labels, write_knowledge, write_pos_weights
from audfer.tasks.package import package
from audfer.vocab import AUS, EXPRESSIONS

#: What the default demo renders: small frames that the AUs still visibly move (``au_gain``: AU movements drawn 2x
#: their renderer proportions; ``motion``: half the default head motion); enough clips that the model does not just
#: memorise its training fold (the README's demo section gives the measured figures).
DEMO_SYNTH: dict = {"clips": 1500, "size": 48, "frames": 8, "au_gain": 2.0, "motion": 0.2}


class _Steps:
    """``[k/n] message (elapsed, ETA)`` lines; the ETA of a step with parts comes from its finished parts."""

    def __init__(self, n: int, log) -> None:
        self.n, self.log, self.t0 = n, log, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def done(self, k: int, message: str) -> None:
        self.log(f"[{k}/{self.n}] {message} ({self.elapsed():.0f}s)")

    def part(self, k: int, done: int, total: int, started: float, message: str) -> None:
        spent = time.perf_counter() - started
        eta = spent / done * (total - done) if done else float("nan")
        bar = "#" * round(20 * done / total) + "." * (20 - round(20 * done / total))
        self.log(f"[{k}/{self.n}] [{bar}] {done}/{total} {message}; ETA {eta:.0f}s ({self.elapsed():.0f}s)")


def _colour_features(synth: Path, frames_dir: str, ids: list[str]) -> np.ndarray:
    """Per clip: mean and std of R, G, B over its first frame (background, skin, hair and lighting)."""

    rows = []
    for cid in ids:
        f = read_frames(synth / frames_dir / cid, [0])[0].reshape(-1, 3).astype(np.float64)
        rows.append(np.concatenate([f.mean(0), f.std(0)]))
    return np.asarray(rows)


def demo_config(out: Path, synth: Path, epochs: int | None = None) -> Config:
    """The config every training run of the demo starts from: ``synthetic_small`` on the demo's data, K and AU labels,
    one CPU thread a run, and one decoded-clip cache for all runs (``<out>/.clip-cache``: every run reads the same
    clips, so one copy serves them all; a cache changes no item, ``tests/test_cache.py``)."""
    overrides = [
        f"data.root={synth}",
        f"data.au_labels={out / 'video_au_labels.csv'}",
        f"au.knowledge={out / 'K.csv'}",
        f"data.cache={out / '.clip-cache'}",
        f"out={out}",
        "train.progress=false",
        "name=demo",
        "train.threads=1",
    ]
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    return load_config("synthetic_small", overrides)


def run_demo(
    out: str | Path = ".",
    *,
    clips: int = DEMO_SYNTH["clips"],
    size: int = DEMO_SYNTH["size"],
    frames: int = DEMO_SYNTH["frames"],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    seed: int = 0,
    videos: bool = True,
    jobs: int | None = None,
    log: Log = print,
) -> Path:
    """The demo into ``out`` (see the module doc). ``jobs``: training runs side by side (default: one per CPU core,
    at most 8); every run uses one CPU thread, so the results do not depend on ``jobs`` or on the machine's
    core count."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = _Steps(6, log)
    synth = out / "synth"
    scfg = SynthConfig(
        clips=clips, size=size, frames=frames, seed=seed, au_gain=DEMO_SYNTH["au_gain"], motion=DEMO_SYNTH["motion"]
    )
    if (synth / "synth.json").is_file():
        differ = synth_settings_differ(synth, scfg)
        if differ:  # never reuse a set made with other settings; replace it (only if it is our own output)
            log(
                f"[1/6] {synth} was made with other settings ({', '.join(f'{k} {a} -> {b}' for k, (a, b) in differ.items())}); "
                f"rendering it again"
            )
            generate(synth, scfg, preview=True, overwrite=True)
    else:
        generate(synth, scfg, preview=True)
    steps.done(1, f"synthetic dataset: {clips} clips x {frames} frames at {size} px -> {synth}")

    folder = read_openface_dir(synth / "OpenFace")
    au = video_au_labels(folder.frames, folder.clips)
    write_au_labels(au, out / "video_au_labels.csv", folder=folder, source=str(synth / "OpenFace"), dataset="synthetic")
    steps.done(2, f"video AU labels (Eq. 4) from {len(folder.clips)} OpenFace CSVs -> {out / 'video_au_labels.csv'}")

    train_labels = dfew_labels(synth, 1, "train")
    pws = {s: pos_weights(au, train_labels, s) for s in STRATEGIES}
    for s, pw in pws.items():
        write_pos_weights(
            pw, out / f"pos_weights_{s}.csv", source=str(synth), dataset="synthetic", fold=1, split="train"
        )
    res = extract_knowledge(
        folder.frames.filter(pl.col("clip_id").is_in(train_labels["clip_id"].implode())), train_labels
    )
    res.au_source = {**folder.availability.as_dict(), "unmeasured_aus": res.unmeasured}
    write_knowledge(res, out / "K.csv", dataset="synthetic", fold=1, split="train", source=str(synth))
    plot_knowledge(
        res.matrix, out / "K.png", title="AU-expression knowledge recovered from the synthetic OpenFace CSVs"
    )

    keep = np.array([a != "AU28" for a in AUS])
    drawn = activation_probability(paper_knowledge())  # what decides which AUs a synthetic clip shows
    corr = float(np.corrcoef(drawn[:, keep].ravel(), res.matrix[:, keep].ravel())[0, 1])
    steps.done(
        3,
        f"pos-weights (Eq. 6-8) and K (§3.1) from the training fold; K vs the AU activation probabilities the "
        f"clips were drawn with r = {corr:.3f}",
    )

    meta = pl.read_csv(synth / "synth_meta.csv", glob=False, schema_overrides={"clip_id": pl.String})
    frames_dir = json.loads((synth / "synth.json").read_text())["frames_dir"]
    ceil = ceilings(meta, au, 1, _colour_features(synth, frames_dir, meta["clip_id"].to_list()))
    write_csv(
        pl.DataFrame([{"line": k, "war": v["war"], "uar": v["uar"], "test_clips": v["n"]} for k, v in ceil.items()]),
        out / "ceilings.csv",
    )
    steps.done(
        4,
        "floor, colour probe and AU oracles on the test fold: "
        + ", ".join(f"{k} WAR {100 * v['war']:.1f}" for k, v in ceil.items()),
    )

    cfg = demo_config(out, synth, epochs)
    strategies = ("none", *STRATEGIES)
    total, finished, started = len(seeds) * len(strategies), [0], time.perf_counter()
    jobs = max(1, min(jobs or os.cpu_count() or 1, 8, total))

    def progress(message: str) -> None:
        if message.startswith("evaluated"):
            finished[0] += 1
            score = message.split(": ", 1)[-1].split(" [")[0]
            steps.part(5, finished[0], total, started, f"training runs ({score})")

    k = cfg.model.kwargs
    log(
        f"[5/6] training {len(seeds)} seeds x (baseline, global, distinct, minor), {cfg.train.epochs} epochs each "
        f"({cfg.model.name}, {k.get('num_frames')} frames of {k.get('img_size')} px), {jobs} run(s) side by side"
    )
    intro = [
        "**Synthetic results, not DFEW results.** Clips are rendered faces whose features move by FACS Action Units drawn "
        "from the paper's AU-expression matrix; class shares follow DFEW; 10 % of the expression labels are deliberately "
        "wrong while the AU ground truth is exact. What this measures is whether the pipeline works end to end and how the "
        "AU loss behaves on such data — nothing about real faces.",
        "",
        f"Data: {clips} clips x {frames} frames at {size} px ([preview](synth/preview.png)); fold 1 of 5 (identity-disjoint: "
        f"no test person is seen in training); {au.height} OpenFace CSVs -> video AU labels (Eq. 4), "
        f"{int((au['n_valid'] == 0).sum())} clips without a valid frame.",
        f"Knowledge K (§3.1) recovered from the training fold's OpenFace CSVs ([K.csv](K.csv), [K.png](K.png)); Pearson r with "
        f"the AU activation probabilities the clips were drawn with (17 AUs x 7): **{corr:.3f}**. Frames: {res.summary()}.",
        f"Minor classes for the minor strategy (share <= 1/7): {', '.join(EXPRESSIONS[i] for i in pws['minor'].minor)}.",
        "",
        "## Floor, colour probe and AU oracles (test fold, observed labels)",
        "",
        "| line | WAR | UAR |",
        "|---|---|---|",
        *[
            f"| {label} | {100 * ceil[key]['war']:.2f} | {100 * ceil[key]['uar']:.2f} |"
            for key, label in (
                ("majority", "floor: always the training fold's majority class"),
                (
                    "colour",
                    "colour probe: logistic regression on each clip's mean/std colour (background, skin, light)",
                ),
                (
                    "au_oracle_openface",
                    "AU oracle: logistic regression on the OpenFace-derived video AU labels (Eq. 4)",
                ),
                ("au_oracle_exact", "AU oracle: logistic regression on the renderer's exact clip AU labels"),
            )
        ],
        "",
        "The oracles are logistic regressions trained on the training folds' clip AU labels and tested on the test "
        "fold: what expression a clip's AU labels alone predict, from the exact labels or from the OpenFace-derived ones "
        "the AU loss trains on (either can score higher: neither is a ceiling for a model that also sees the face). "
        "The 10 % wrong labels cap every line below 100 %.",
        "",
    ]
    result = run_ablation(
        cfg,
        seeds=tuple(seeds),
        lams=(),
        title="audfer demo: AU-enhanced DFER on synthetic data",
        intro=intro,
        log=progress,
        jobs=jobs,
    )
    agg = result["strategies"]
    best = max(STRATEGIES, key=lambda s: agg[s]["uar"]["mean"])
    with atomic_path(out / "model.ckpt") as tmp:  # a full disk: one line naming it, an earlier copy intact
        shutil.copyfile(RunLayout(out).variant(best, seed=seeds[0]).last, tmp)
    package(
        RunLayout(out).variant(best, seed=seeds[0]).root,
        out / "model",
        name=f"audfer demo: {best} AU model",
        overwrite=True,
        log=lambda m: None,
    )

    metrics = {
        s: [json.loads(metrics_file(RunLayout(out).variant(s, seed=seed).evaluation).read_text()) for seed in seeds]
        for s in strategies
    }

    def per_seed(strategy: str, metric: str) -> list[float]:
        return [m[metric] for m in metrics[strategy]]

    lines = [
        "",
        "## The AU effect, seed by seed",
        "",
        f"Each AU run is compared with the baseline run of the same seed (same initialisation and data order); "
        f"mean ± std over {len(seeds)} seed(s) of the difference, in points, with a Student-t 95 % interval.",
        "",
        "| strategy | ΔWAR | ΔUAR |",
        "|---|---|---|",
    ]
    effects = {}
    for s in STRATEGIES:
        effects[s] = {m: paired_differences(per_seed("none", m), per_seed(s, m)) for m in ("war", "uar")}
        lines.append(f"| {s} | {format_difference(effects[s]['war'])} | {format_difference(effects[s]['uar'])} |")
    judged = [e[m]["distinguishable"] for e in effects.values() for m in e]
    if all(v is None for v in judged):
        lines += [
            "",
            f"With {len(seeds)} seed(s) no claim is made either way: an effect is called distinguishable from 0 only "
            f"when its interval excludes 0 with at least {MIN_SEEDS_FOR_A_CLAIM} seeds. These figures come from one "
            f"machine; other CPUs give other digits within the seed spread. The pre-declared study with enough seeds "
            f"is `audfer study au_effect` (docs/study.md).",
        ]
    elif any(judged):
        lines += [
            "",
            "An interval that excludes 0 says the difference is larger than the seed-to-seed noise of this "
            "setting on this machine; it says nothing about real data.",
        ]
    else:
        lines += [
            "",
            "No difference is distinguishable from the seed-to-seed noise here: on this data the AU loss neither "
            "clearly helps nor clearly hurts.",
        ]

    exact = meta.select("clip_id", *AUS)
    eq4 = au.select("clip_id", *[pl.when(pl.col("n_valid") > 0).then(pl.col(a)) for a in AUS])
    lines += [
        "",
        f"## AU head F1 per AU ({best}, mean over seeds, %)",
        "",
        "Against the exact AU ground truth of the renderer and against the OpenFace-derived video AU labels the "
        "head was trained on (Eq. 4).",
        "",
        "| AU | vs exact | vs OpenFace (Eq. 4) |",
        "|---|---|---|",
    ]
    tables: dict[str, list[dict]] = {"exact": [], "openface": []}
    for seed_i in seeds:
        preds = pl.read_csv(
            predictions_file(RunLayout(out).variant(best, seed=seed_i).evaluation),
            glob=False,
            schema_overrides={"clip_id": pl.String},
        )
        tables["exact"].append(au_f1_table(preds, exact))
        tables["openface"].append(au_f1_table(preds, eq4))

    def mean_f1(kind: str, a: str) -> str:
        vals = [t[a] for t in tables[kind] if t[a] is not None]
        return f"{np.mean(vals):.1f}" if vals else "—"

    lines += [f"| {a} | {mean_f1('exact', a)} | {mean_f1('openface', a)} |" for a in AUS]
    steps.done(
        5,
        f"baseline WAR {100 * agg['none']['war']['mean']:.1f} / UAR {100 * agg['none']['uar']['mean']:.1f}; "
        f"{best} WAR {100 * agg[best]['war']['mean']:.1f} / UAR {100 * agg[best]['uar']['mean']:.1f}",
    )

    lines += _filter_section(synth, out, folder.frames, train_labels, meta, res.matrix, seeds[0], log)
    if videos:
        lines += _predict_section(synth, out, log)
    lines += [
        "",
        f"The AU model with the best mean UAR ({best}, seed {seeds[0]}) is `model.ckpt`, and packaged with its model "
        f"card in `model/` (`audfer package`, docs/weights.md): try "
        f"`audfer predict VIDEO --checkpoint model --face full --out predictions.json`.",
        "",
        f"Total time {steps.elapsed():.0f}s.",
    ]
    report = RunLayout(out).report
    earlier = report.read_bytes() if report.is_file() else b""
    with atomic_path(report) as tmp:  # the study wrote its part; this appends the rest, never half of it
        tmp.write_bytes(earlier + ("\n".join(lines) + "\n").encode())
    steps.done(6, f"report -> {report}; total {steps.elapsed():.0f}s")
    return out


#: θ of the demo's frame filter (§3.1, Eq. 3). The paper gives no value; 0.5 is the smallest θ at which every kept
#: frame's label is the base model's most probable class.
DEMO_THETA = 0.5


def _filter_section(
    synth: Path,
    out: Path,
    frames: pl.DataFrame,
    train_labels: pl.DataFrame,
    meta: pl.DataFrame,
    k_plain: np.ndarray,
    seed: int,
    log,
) -> list[str]:
    """§3.1's θ filter: the baseline run of ``seed`` (cross-entropy only, trained on the training fold) gives every
    training-fold frame its probabilities (``audfer frame-probs``), K is rebuilt from the frames whose own-label
    probability exceeds θ, and both Ks are compared with the AU activation probabilities the generator drew the
    clips with (``synth.aus.activation_probability`` of the paper's K), on the same training clips."""

    t0 = time.perf_counter()
    ck = RunLayout(out).variant("none", seed=seed).last
    probs_path = out / "frame_probs.csv"
    head = [
        "",
        "## The θ filter of §3.1 (Eq. 3)",
        "",
        f"The baseline run of seed {seed} (cross-entropy only, trained on the training fold) gave every frame of the "
        f"training fold its expression probabilities (`audfer frame-probs`: the model's test sampling on a window "
        f"centred on the frame; [frame_probs.csv](frame_probs.csv)); K was rebuilt from the frames whose probability "
        f"for their own label is > θ = {DEMO_THETA} (the paper gives no value; 0.5 is the smallest θ at which a kept "
        f"frame's label is the model's top class). Both Ks are compared with what the generator drew each clip's AUs "
        f"with (the AU activation probabilities of the paper's K; 17 AUs x 7, AU28 left out).",
        "",
    ]
    try:
        frame_probabilities(ck, [f"data.root={synth}"], out=probs_path, split="train", log=lambda m: None)
    except AudferError as exc:
        log(f"      θ filter: {exc}")
        return head + [f"The frame probabilities could not be made: {exc}."]
    probs = pl.read_csv(probs_path, schema_overrides={"clip_id": pl.String})
    train_frames = frames.filter(pl.col("clip_id").is_in(train_labels["clip_id"].implode()))
    # what the filter is for (§3.1): dropping the frames of clips whose label is wrong; the generator knows which
    wrong = set(meta.filter(pl.col("true_label") != pl.col("label"))["clip_id"].to_list())
    ids = set(train_labels["clip_id"].to_list())
    n_wrong, n_right = len(ids & wrong), len(ids - wrong)
    own = probs.join(train_labels.select("clip_id", "label"), on="clip_id").with_columns(
        pl.concat_list([f"p{i}" for i in range(7)]).list.get(pl.col("label").cast(pl.Int64)).alias("own")
    )
    kept_wrong = own.filter(pl.col("clip_id").is_in(list(wrong)))
    kept_right = own.filter(~pl.col("clip_id").is_in(list(wrong)))
    share = lambda t: float((t["own"] > DEMO_THETA).mean()) if t.height else float("nan")  # noqa: E731
    kept_line = (
        f"Frames the filter keeps: {100 * share(kept_wrong):.1f} % of the frames of the {n_wrong} training clips "
        f"whose label the generator made wrong, {100 * share(kept_right):.1f} % of the frames of the {n_right} "
        f"correctly labelled ones"
    )
    try:
        filtered = extract_knowledge(train_frames, train_labels, frame_probs=probs, theta=DEMO_THETA)
    except AudferError as exc:
        log(f"      θ filter: {exc}")
        return head + [f"{kept_line}.", "", f"The filtered K could not be built: {exc}."]
    spec = DatasetSpec("dfew", synth / "OpenFace", root=synth, frame_probs=probs_path, theta=DEMO_THETA)
    facts, trained = filter_facts(spec, filtered)
    filtered.au_source = {"unmeasured_aus": filtered.unmeasured}
    write_knowledge(
        filtered,
        out / "K_filtered.csv",
        dataset="synthetic",
        fold=1,
        split="train",
        source=str(synth),
        frame_filter=facts,
        filter_clips=trained,
    )
    keep = np.array([a != "AU28" for a in AUS])
    drawn = activation_probability(paper_knowledge())[:, keep].ravel()

    def agreement(k: np.ndarray) -> tuple[float, float]:
        from scipy.stats import spearmanr

        v = k[:, keep].ravel()
        return float(np.corrcoef(drawn, v)[0, 1]), float(spearmanr(drawn, v).statistic)

    (r0, s0), (r1, s1) = agreement(k_plain), agreement(filtered.matrix)
    kept = set(filtered.clip_ids)
    lost_wrong = len((ids & wrong) - kept)
    lost_right = len((ids - wrong) - kept)
    seconds = time.perf_counter() - t0
    log(
        f"      θ filter: K vs drawn r {r0:.3f} -> {r1:.3f} (unfiltered -> filtered); frames kept: mislabelled clips "
        f"{100 * share(kept_wrong):.0f} %, correctly labelled {100 * share(kept_right):.0f} % ({seconds:.0f}s)"
    )
    return head + [
        "| K | Pearson r with the drawn probabilities | Spearman ρ | frames used |",
        "|---|---|---|---|",
        f"| without the filter ([K.csv](K.csv)) | {r0:.3f} | {s0:.3f} | {int(train_frames.height)} |",
        f"| with the filter, θ = {DEMO_THETA} ([K_filtered.csv](K_filtered.csv)) | {r1:.3f} | {s1:.3f} | "
        f"{int(filtered.frames_per_expression.sum())} |",
        "",
        f"{kept_line}; clips that lost every frame: {lost_wrong} of {n_wrong} mislabelled, {lost_right} "
        f"of {n_right} correctly labelled.",
        "",
        *filter_lines(filtered.filter_report, DEMO_THETA),
        "",
        f"(this step: {seconds:.0f} s)",
    ]


def _predict_section(synth: Path, out: Path, log) -> list[str]:
    """Render the videos, run ``audfer predict`` on them with ``model.ckpt``, and the report's table."""

    made = render_videos(synth, out / "videos")
    result = out / "videos" / "predictions.json"
    try:  # what `audfer predict VIDEO ... --checkpoint model.ckpt --face full` runs
        predict_videos([m["video"] for m in made], load_predictor(out / "model.ckpt"), result, face="full", log=log)
        failure = None
    except AudferError as exc:
        failure = str(exc)
    lines = [
        "",
        "## `audfer predict` on rendered videos",
        "",
        "Persons of the test fold, rendered as new 128 px `.mp4` videos (one onset-apex-offset course at twice the "
        "training clips' frame rate, moving heads), predicted with "
        "`audfer predict VIDEO --checkpoint model.ckpt --face full` (the frame is the face: Haar cascades do not know "
        "drawn faces).",
        "",
        "| video | true | predicted | top AUs | frames |",
        "|---|---|---|---|---|",
    ]
    if failure is not None or not result.is_file():
        return lines + ["", f"`audfer predict` failed ({failure}); see the log."]
    pred = json.loads(result.read_text())
    right = 0
    for m in made:
        summary = pred[str(m["video"])]["summary"]
        top = sorted(
            ((a, p) for a, p in summary.get("au_probabilities", {}).items() if p is not None), key=lambda x: -x[1]
        )[:3]
        right += summary["expression"] == m["true"]
        lines.append(
            f"| [{m['video'].name}](videos/{m['video'].name}) | {m['true']} | {summary['expression']} "
            f"({summary['probabilities'][summary['expression']]:.2f}) | "
            f"{', '.join(f'{a} {p:.2f}' for a, p in top)} | ![](videos/{m['strip'].name}) |"
        )
    log(f"      predict on {len(made)} rendered videos: {right} right")
    return lines + ["", f"{right} of {len(made)} right."]
