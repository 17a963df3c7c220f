"""Every experiment option, declared once: its type, allowed values, default and meaning, as frozen dataclasses.

``Config`` (sections ``model``, ``data``, ``au``, ``optim``, ``train``) is what ``load_config`` returns and what the
engine reads (``cfg.au.lam``: λ of Eq. 10; ``cfg.au.strategy``: Eq. 6-9). Each field is declared with ``opt``:
default, one-line meaning and a ``Check`` (type, range or choices). The same declarations give

- the loader's checks (``Config.from_dict``): a bad value is a ``ConfigError`` naming key, value, what is allowed
  and where it came from (the defaults, which config file, or the command line);
- the CLI's choices (``choices_of("au.strategy")``);
- the documentation: ``audfer config`` prints the defaults as commented YAML (``defaults_yaml``) and
  ``docs/config.md`` is ``reference_markdown()`` (a test keeps the file current).

Lists read from YAML become tuples and ``model.kwargs`` a read-only mapping, so a ``Config`` is immutable all the
way down; ``to_dict`` gives the plain YAML form back (``config.yaml`` of a run, checkpoint hyper-parameters).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from audfer.au.tools import SourceChoices, get_au_tool, is_au_tool_name
from audfer.config.checks import (
    VALUE_SOURCES,
    AnyOf,
    Check,
    Choice,
    Flag,
    Items,
    Kwargs,
    Num,
    Pair,
    Registered,
    Text,
    UpTo,
    check_value,
    freeze,
    is_number,
    opt,
    source_note,
    thaw,
)
from audfer.data.registry import dataset as dataset_decl
from audfer.data.registry import declared_class_counts, list_datasets, max_folds
from audfer.data.sampling import SAMPLERS, offset_indices, resolve_sampler
from audfer.errors import ConfigError
from audfer.vocab import EXPRESSIONS, STRATEGIES


@dataclass(frozen=True)
class _Section:
    """One section of the config: every field checked and frozen on construction."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = freeze(getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            check_value(f"{self.section}.{f.name}", value, f.metadata["check"])

    def to_dict(self) -> dict[str, Any]:
        """The section's plain YAML form."""
        return {f.name: thaw(getattr(self, f.name)) for f in fields(self)}


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` can stand where a builder's default ``default`` stands (int, number, n-tuple, bool)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return is_number(value)
    if isinstance(default, tuple):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(default)
            and all(_same_kind(v, d) for v, d in zip(value, default))
        )
    return isinstance(value, type(default))


def check_model(name: str, kwargs: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> None:
    """``model.name`` is a registered model or an importable ``package.module:factory``, and each
    ``model.kwargs`` entry is one of its size options with a value of the default's kind (errors name the key)."""
    from audfer.models.registry import model_entry, size_options

    try:
        model_entry(name)
        options = size_options(name)
    except ConfigError as exc:
        raise ConfigError(f"config: model.name = {name!r}{source_note(sources, 'model.name')}; {exc}") from None
    if options is None:
        return
    where = source_note(sources, "model.kwargs")
    for key, value in kwargs.items():
        if key not in options:
            raise ConfigError(
                f"config: model.kwargs.{key}{where} is not a size option of {name}; expected one of "
                f"{', '.join(options)}"
            )
        if not _same_kind(value, options[key]):
            raise ConfigError(
                f"config: model.kwargs.{key} = {thaw(value)!r}{where}; expected a value like its default "
                f"{thaw(options[key])!r}"
            )


class AUToolCheck(Check):
    """``data.au_source``: ``auto``, a registered AU tool (``audfer.au.tools``, read at each check: a tool registered
    later is a choice) or ``package.module:tool`` naming a user's tool (imported by ``check_au_tool``)."""

    none = False

    @property
    def want(self) -> str:  # type: ignore[override]
        """What is allowed, in words (the registered tools, read now)."""
        return ", ".join(self.choices) + " or package.module:tool"

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        """``auto`` and the registered tools, in detection order (the CLI's ``--source``)."""
        return tuple(SourceChoices())

    def ok(self, v: Any) -> bool:
        return is_au_tool_name(v)


def check_au_tool(name: str, sources: Mapping[str, str] | None = None) -> None:
    """``data.au_source`` names a registered tool or an importable ``package.module:tool`` (imported now, as
    ``model.name`` is: an error names the key, not the first file read)."""
    if name == "auto":
        return
    try:
        get_au_tool(name, error=ConfigError)
    except ConfigError as exc:
        raise ConfigError(f"config: data.au_source = {name!r}{source_note(sources, 'data.au_source')}; {exc}") from None


#: Options under a former name: ``{old dotted key: new dotted key}``. The loader reads the old key as the new one
#: with a warning naming the new one (``load_config``); a stored config (a run's, a checkpoint's) is read silently.
RENAMED: dict[str, str] = {"data.openface": "data.au_dir"}


def renamed(data: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
    """``data`` (a config's plain form) with every ``RENAMED`` key moved to its new name; ``where``: warn (naming
    the file or override) that the old key is deprecated. Both keys set to different values is an error."""
    import warnings

    out = dict(data)
    for old, new in RENAMED.items():
        (sec, key), (nsec, nkey) = old.split("."), new.split(".")
        section = out.get(sec)
        if not isinstance(section, Mapping) or key not in section:
            continue
        section = dict(section)
        value = section.pop(key)
        target = dict(section) if nsec == sec else dict(out.get(nsec) or {})
        if target.get(nkey) is not None and value is not None and target[nkey] != value:
            raise ConfigError(
                f"config{f' {where}' if where else ''}: both {old} ({value!r}) and {new} ({target[nkey]!r}) are set; "
                f"{old} is the former name of {new}: keep {new} only"
            )
        if target.get(nkey) is None:
            target[nkey] = value
        if nsec == sec:
            out[sec] = target
        else:
            out[sec], out[nsec] = section, target
        if where is not None:
            warnings.warn(f"{where}: {old} is deprecated; use {new}", FutureWarning, stacklevel=3)
    return out


# ----------------------------------------------------------------------------------------------- the options


@dataclass(frozen=True)
class ModelOptions(_Section):
    """Which network, its size and where its weights start (§4.2)."""

    section: ClassVar[str] = "model"
    name: str = opt(
        "former_dfer",
        "any name of `audfer models` (m3dfel, former_dfer, mae_dfer, *_small, ...), or `package.module:factory` "
        "for your own backbone (docs/custom-model.md)",
        Text(none=False, what="a model name"),
    )
    kwargs: Mapping[str, Any] = opt({}, "size overrides passed to create_model (width, depth, img_size, ...)", Kwargs())
    pretrained: str | None = opt(
        None,
        "weights to initialise from: torchvision r3d_18 / resnet18, MAE-DFER pre-training, official fine-tuned or "
        "audfer checkpoints, a package folder or a Hub id org/name[@revision] (docs/weights.md); reported in init.json",
        Text(what="a checkpoint path, package folder or Hub id"),
    )

    trust_pickle: bool = opt(
        False,
        "read model.pretrained and --resume checkpoints that pickle more than tensors (only files you trust)",
        Flag(),
    )
    official_init: str | None = opt(
        None,
        "what the official run starts from (recipes set it): training without model.pretrained then warns and "
        'every output says "from scratch"',
        Text(),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_model(self.name, self.kwargs)


@dataclass(frozen=True)
class DataOptions(_Section):
    """Dataset, split, AU-label source, temporal sampling and augmentation (§4.1-4.3)."""

    section: ClassVar[str] = "data"
    dataset: str = opt(
        "synthetic",
        "a registered dataset with splits (``audfer.data.registry``, one module each in ``audfer.data.sets``; "
        "synthetic: a tree written by `audfer synth`), or package.module:name for your own (docs/datasets.md)",
        Registered("data.dataset", lambda: list_datasets(training=True), dataset_decl),
    )
    root: str | None = opt(None, "dataset root (synthetic: the `audfer synth` output folder)", Text(what="a folder"))
    fold: int = opt(
        1, "official fold, up to the dataset's folds (a dataset with one split ignores it)", UpTo(1, max_folds)
    )
    train_fraction: float = opt(
        1.0,
        "share of the training fold used: a stratified, seeded, nested subset (a smaller share lies inside a larger "
        "one), whole identities where the dataset has them (data.identities)",
        Num(0, 1, lo_open=True),
    )
    subset_seed: int = opt(0, "seed of the train_fraction subset", Num(0, integer=True))
    identities: str | None = opt(
        None,
        "CSV clip_id,identity for identity-aware subsets (synthetic: its synth_meta.csv, read by default)",
        Text(what="a CSV path"),
    )
    frames: str | None = opt(
        None, "frame folder under Clip/ (DFEW: clip_224x224 or clip_224x224_16f; synthetic: from synth.json)", Text()
    )
    classes: int = opt(
        7,
        "class count, among those the dataset declares (MAFW and list: 7, the basic expressions, or 11, MAFW's); "
        "another is read as the dataset's own",
        Choice(registry=declared_class_counts),
    )
    train_list: str | None = opt(
        None, 'dataset=list: a file of "<dir> [<num_frames>] <label>" lines (dirs relative to root)', Text()
    )
    test_list: str | None = opt(None, "dataset=list: the test split's list file", Text())
    au_labels: str | None = opt(
        None,
        "video_au_labels.csv (`audfer au-labels`); null: built from data.au_dir (synthetic: root/OpenFace)",
        Text(what="a CSV path"),
    )
    au_dir: str | None = opt(
        None,
        "folder of per-clip AU CSVs the video AU labels (Eq. 4) are built from (former name: data.openface)",
        Text(what="a folder"),
    )
    au_source: str = opt(
        "auto",
        "AU tool that wrote those CSVs: auto (from each header), a registered tool (`audfer.au.tools`: openface | "
        "pyfeat | libreface | table with data.au_mapping | ...) or your own as package.module:tool; AUs a tool "
        "lacks are masked, never taken as absent (docs/au-sources.md)",
        AUToolCheck(),
    )
    au_mapping: str | None = opt(None, "au_source=table: a YAML naming each AU column and its kind", Text())
    au_allow_mixed: bool = opt(False, "accept an AU folder whose CSVs come from more than one tool", Flag())
    min_au_coverage: float = opt(
        0.9,
        "training stops when a smaller share of the training clips gets AU labels (all-digit clip ids compare as "
        "numbers: audfer.data.annotations.clip_key)",
        Num(0, 1),
    )
    class_order: str | tuple[str, ...] | None = opt(
        None,
        "dataset=list: what the list's label ids mean, in id order: class names (any spelling audfer knows) or a "
        "preset, dfew7 (audfer's order) | mafw11",
        AnyOf(
            Choice("dfew7", "mafw11", none=True),
            Items(Text(none=False), none=False, min_len=2, unique=True),
            what="dfew7, mafw11, a list of class names in id order (each class once), or null",
        ),
    )
    sampling: str | None = opt(
        None,
        "a registered model's name (that model's recipe), uniform, or a sampler added with register_sampler "
        "(null: the model's own recipe)",
        Choice(none=True, registry=SAMPLERS),
    )
    stride: int = opt(4, "mae_dfer sampling: frame stride (DFEW 4, FERV39k 1)", Num(1, integer=True))
    test_views: int = opt(1, "temporal views averaged at test (MAE-DFER recipe: 2)", Num(1, 16, integer=True))
    augment_on: str = opt(
        "cpu",
        "where the per-pixel random augmentation (colour jitter, RandAugment, erasing) runs: cpu (in the loader "
        "workers) or device (drawn per clip in the workers, applied to the whole batch on the training device, with "
        "the normalisation: the workers only decode, crop and flip and send uint8 clips); the same draws and pixels "
        "(tested)",
        Choice("cpu", "device"),
    )
    cache: str | None = opt(
        None,
        'decoded-clip cache folder (null: no cache; "auto": <out>/../.clip-cache)',
        Text(),
        incidental="the same items with and without the cache (tests/test_cache.py)",
    )
    num_workers: int = opt(
        0,
        "DataLoader worker processes",
        Num(0, 256, integer=True),
        incidental="identical weights with 0 and 2 workers (tests/test_training_fidelity.py)",
    )
    on_missing: str = opt(
        "raise", "a clip listed but not on disk: raise | skip (listed in the log)", Choice("raise", "skip")
    )
    on_bad_frame: str = opt(
        "raise", "an unreadable frame image: raise | skip (dropped from its clip, listed)", Choice("raise", "skip")
    )
    jitter: float = opt(
        0.4,
        "colour jitter: brightness, contrast, saturation in [1 - v, 1 + v], one draw per clip (0: none)",
        Num(0, 1),
    )
    hue: float = opt(
        0.0, "colour jitter: hue shift in [-v, v] turns (M3DFEL: 0.4, its bcsh=0.4 covers hue too)", Num(0, 0.5)
    )
    crop_scale: tuple[float, float] = opt((0.08, 1.0), "area range of the training random resized crop", Pair(0, 1))
    crop_aspect: str = opt(
        "log-uniform",
        "aspect rule of the training crop: log-uniform (torchvision's RandomResizedCrop) | group (Former-DFER's and "
        "M3DFEL's GroupRandomSizedCrop: aspect uniform in [3/4, 4/3], width and height swapped half the time)",
        Choice("log-uniform", "group"),
    )
    randaugment: str | tuple[float, int] | None = opt(
        None,
        "timm RandAugment string (MAE-DFER: rand-m7-n4-mstd0.5-inc1) or [m, n]; one draw per clip",
        AnyOf(Text(), Pair(0, 100, ordered=False), what="a RandAugment string like rand-m7-n4, [m, n], or null"),
    )
    erasing: float = opt(
        0.0,
        "random-erasing probability, one draw per clip: one box on every frame, noise drawn per frame (MAE-DFER's "
        "random_erasing.py in cube mode: 0.25)",
        Num(0, 1),
    )
    decode: str = opt(
        "full",
        "full: training frames decoded as stored, so random resized crops draw from DFEW's 256 px frames as the "
        "official loaders do | reduced: JPEGs decoded at the largest 1/2-1/8 DCT scale that keeps the model's input size "
        "(faster, smaller cache; `--dry-run` gives the share of crops it upsamples)",
        Choice("full", "reduced"),
    )
    pre_resize: int | None = opt(
        None,
        "frames squashed to this square size before any augmentation and at test (MAE-DFER: 160, its loader's "
        "data_resize)",
        Num(8, 4096, integer=True, none=True),
    )
    reproduce_bugs: tuple[str, ...] = opt(
        (),
        "reproduce named bugs of the authors' AU code (never on by default): m3dfel-16f (M3DFEL's offsets on "
        "16-frame clips: ~53 % of sampled frames are the clip's last) | unsorted-frames (every listed frame once, "
        "in the folder's listing order, at train and test, as the Former-DFER AU copy's get with its unsorted glob; "
        "the sampler is not used; needs 16-frame clips; the order depends on the file system)",
        Items(Choice("m3dfel-16f", "unsorted-frames")),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_au_tool(self.au_source)
        if self.randaugment is not None:
            from audfer.data.transforms import parse_randaugment

            try:
                parse_randaugment(self.randaugment)
            except ConfigError as exc:
                raise ConfigError(f"config: data.{exc}") from None


@dataclass(frozen=True)
class AUOptions(_Section):
    """The AU loss: strategy (Eq. 6-9), λ (Eq. 10), the knowledge matrix K (§3.1) and the positive-class weights."""

    section: ClassVar[str] = "au"
    strategy: str = opt(
        "distinct",
        "none (plain cross-entropy baseline) | global | distinct | minor (Eq. 6-9)",
        Choice("none", *STRATEGIES),
    )
    lam: float = opt(0.25, "λ of Eq. 10: total = (1 - λ) CE + λ L_AU", Num(0, 1))
    knowledge: str = opt(
        "paper",
        "paper (the shipped matrix, Fig. 4) | per-fold (§3.1 on this fold's training clips, from data.au_dir) | "
        "ones (K = 1: a plain AU multitask loss, the control the paper never ran) | authors-a | authors-a-permuted | "
        "authors-d | paper-happy-row (the other matrices of the authors' code, docs/reproduce.md) | path to a K.csv "
        "(`audfer knowledge`; its provenance sidecar is checked)",
        Text(
            none=False,
            presets=("paper", "per-fold", "ones", "authors-a", "authors-a-permuted", "authors-d", "paper-happy-row"),
            what="paper, per-fold, ones, authors-a, authors-a-permuted, authors-d, paper-happy-row or a K.csv path",
        ),
    )
    pos_weights: str = opt(
        "computed",
        "computed (Eq. 6-8 on the training split) | dfew | ferv39k (the authors' tables) | none (no positive-class "
        "weight) | path to a CSV",
        Text(
            none=False,
            presets=("computed", "dfew", "ferv39k", "none"),
            what="computed, dfew, ferv39k, none or a CSV path",
        ),
    )
    minor: tuple[str | int, ...] | None = opt(
        None,
        "minor classes of the minor strategy, names or indices (null: classes with <= 1/7 of the clips)",
        Items(AnyOf(Text(none=False), Num(0, 6, integer=True), what="a class")),
    )
    scale: float = opt(5.0, "the K row is multiplied by this (official code: 5)", Num(0, lo_open=True))
    allow_test_overlap: bool = opt(
        False, "accept a K / pos-weight file whose provenance lists clips of the run's test split", Flag()
    )


@dataclass(frozen=True)
class OptimOptions(_Section):
    """Optimiser, learning-rate schedule and the loss's regularisers (§4.3 recipes)."""

    section: ClassVar[str] = "optim"
    name: str = opt("adamw", "adamw | sgd", Choice("adamw", "sgd"))
    lr: float = opt(5.0e-4, "base learning rate (see lr_scale)", Num(0))
    lr_scale: str | None = opt(
        None, "null | batch256: lr x batch_size / 256 (MAE-DFER recipe)", Choice("batch256", none=True)
    )
    weight_decay: float = opt(0.05, "weight decay", Num(0))
    betas: tuple[float, float] = opt((0.9, 0.999), "AdamW betas", Pair(0, 1, hi_open=True, ordered=False))
    eps: float = opt(1.0e-8, "AdamW eps", Num(0, lo_open=True))
    momentum: float = opt(0.9, "sgd only", Num(0, 1))
    layer_decay: float | None = opt(
        None, "layer-wise lr decay for transformer blocks (MAE-DFER: 0.75)", Num(0, 1, lo_open=True, none=True)
    )
    no_decay_norms: bool = opt(False, "no weight decay on biases, norms and tokens (MAE-DFER recipe)", Flag())
    scheduler: str = opt(
        "cosine",
        "per optimiser step (audfer.engine.schedules): cosine = MAE-DFER's warm-up linspace(0, lr) then a cosine "
        "to min_lr | timm-cosine = M3DFEL's timm CosineLRScheduler (one cosine over the run, warm-up replacing its "
        "start) | step (per epoch) | none",
        Choice("cosine", "timm-cosine", "step", "none"),
    )
    warmup_epochs: int = opt(0, "warm-up epochs", Num(0, integer=True))
    warmup_lr: float = opt(0.0, "timm-cosine: lr at the start of warm-up (timm's warmup_lr_init; M3DFEL: 0)", Num(0))
    min_lr: float = opt(5.0e-6, "cosine floor", Num(0))
    step_size: int = opt(40, "step: epochs between decays", Num(1, integer=True))
    gamma: float = opt(0.1, "step: decay factor", Num(0, 1, lo_open=True))
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing (M3DFEL: 0.1)", Num(0, 1, hi_open=True))
    mixup: float = opt(0.0, "mixup alpha (0: off); AU targets are mixed with the same weights", Num(0))
    cutmix: float = opt(0.0, "cutmix alpha (0: off); with both on, one of them per batch", Num(0))


@dataclass(frozen=True)
class TrainOptions(_Section):
    """Run length, batch, seed, devices, checkpoint selection and logging."""

    section: ClassVar[str] = "train"
    epochs: int = opt(100, "training epochs", Num(1, integer=True))
    batch_size: int = opt(32, "clips per optimiser step (per device)", Num(1, integer=True))
    eval_batch_size: int | None = opt(
        None,
        "batch size at validation and test (null: batch_size)",
        Num(1, integer=True, none=True),
        incidental="identical weights and metrics (tests/test_training_fidelity.py)",
    )
    seed: int = opt(0, "seed of every random draw (sampling, augmentation, init, order)", Num(0, integer=True))
    accelerator: str = opt("auto", "auto | cpu | gpu | cuda | mps", Choice("auto", "cpu", "gpu", "cuda", "mps"))
    devices: int = opt(1, "number of devices/processes (DDP when > 1)", Num(1, integer=True))
    source_batch: tuple[int, ...] | None = opt(
        None,
        "the batch layout of the run a recipe reproduces, [devices, clips per device] (MAE-DFER's logs: [3, 32]); "
        "--dry-run and train compare the run's global batch and layout with it (null: a user's config, no source)",
        Items(Num(1, integer=True), min_len=2, what="[devices, clips per device] or null"),
    )
    num_nodes: int = opt(
        1,
        "machines the run spans, each with train.devices processes (DDP across nodes; global batch = batch_size x "
        "devices x num_nodes): torchrun or SLURM starts one process per device, docs/multi-node.md",
        Num(1, integer=True),
    )
    strategy: str = opt("auto", "auto | ddp | ddp_spawn ... (Lightning strategies)", Text(none=False))
    precision: str = opt(
        "32-true",
        "32-true | 16-mixed | bf16-mixed ... (mixed precision where the device has it)",
        Choice("32-true", "32", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"),
    )
    selection: str = opt(
        "last",
        "checkpoint evaluated: last | best-val (split carved from the training fold) | best-test",
        Choice("last", "best-val", "best-test"),
    )
    val_share: float = opt(
        0.1, "best-val: share of the training fold held out (seeded, stratified)", Num(0, 1, lo_open=True, hi_open=True)
    )
    monitor: str = opt(
        "war",
        "best-val / best-test: war | uar | war+uar (the AU copies' rule); the best WAR and the best UAR epochs are "
        "reported separately too (TFace's M3DFEL)",
        Choice("war", "uar", "war+uar"),
    )
    threads: int | None = opt(
        None,
        "torch CPU threads (null: torch's default)",
        Num(1, 1024, integer=True, none=True),
        incidental="the same result up to floating-point rounding (CPU kernels sum in another order); set it to "
        "reproduce bit for bit, as cv/ablate --jobs require (tests/test_engine.py)",
    )
    progress: bool = opt(
        True, "progress bar", Flag(), incidental="identical weights and metrics (tests/test_training_fidelity.py)"
    )
    loggers: tuple[str, ...] = opt(
        ("csv",),
        "csv and/or tensorboard (epochs.csv is always written)",
        Items(Choice("csv", "tensorboard")),
        incidental="identical weights and metrics (tests/test_training_fidelity.py)",
    )
    deterministic: bool = opt(True, "deterministic algorithms (CPU runs reproduce bit for bit)", Flag())
    limit_train_batches: float | None = opt(
        None, "debugging: batches per epoch (or a share of them)", Num(0, lo_open=True, none=True)
    )


@dataclass(frozen=True)
class Config:
    """One experiment: every option of every section, checked and frozen (``load_config`` builds it)."""

    name: str | None = opt(None, "run name (default: the config file's stem)", Text())
    follows: str | None = opt(
        None,
        "which published pipeline the recipe follows (repository, file and function), shown by `train --list`, "
        "`--dry-run` and every run's outputs",
        Text(),
        incidental="a description: nothing reads it to train",
    )
    out: str | None = opt(
        None, "run folder (default: runs/<name>); checkpoints, logs and the evaluation go inside", Text()
    )
    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    au: AUOptions = field(default_factory=AUOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    train: TrainOptions = field(default_factory=TrainOptions)

    SECTIONS: ClassVar[dict[str, type[_Section]]] = {
        "model": ModelOptions,
        "data": DataOptions,
        "au": AUOptions,
        "optim": OptimOptions,
        "train": TrainOptions,
    }

    def __post_init__(self) -> None:
        for key in ("name", "follows", "out"):
            check_value(key, getattr(self, key), _top_check(key))
        self._check_combinations()

    def _check_combinations(self) -> None:
        d, a = self.data, self.au
        decl = dataset_decl(d.dataset)
        if decl.split is None:
            raise ConfigError(
                f"config: data.dataset = {d.dataset!r}: it declares no splits to train on (K only); expected one of "
                f"{', '.join(list_datasets(training=True))}"
            )
        if decl.folds is not None and d.fold > decl.folds:
            raise ConfigError(f"config: data.fold = {d.fold}; {d.dataset} has {decl.folds} folds (1..{decl.folds})")
        if decl.check is not None:
            decl.check(d)
        if self.num_classes != len(EXPRESSIONS) and a.strategy != "none":
            raise ConfigError(
                f"config: the AU knowledge covers the 7 basic expressions; with data.classes={self.num_classes} set "
                "au.strategy=none"
            )
        mapped = d.au_source != "auto" and get_au_tool(d.au_source, error=ConfigError).needs_mapping
        if mapped and not d.au_mapping:
            raise ConfigError(
                f"config: data.au_source = {d.au_source!r} needs data.au_mapping (a YAML naming each AU column)"
            )
        if d.au_mapping and d.au_source != "auto" and not mapped:
            raise ConfigError(f"config: data.au_mapping is for data.au_source=table, not {d.au_source!r}")
        if "m3dfel-16f" not in d.reproduce_bugs and (d.frames or "").rstrip("/").endswith("_16f"):
            from audfer.models.registry import model_entry

            sampling = d.sampling or getattr(model_entry(self.model.name).builder, "sampling", "uniform")
            if sampling in SAMPLERS and resolve_sampler(str(sampling))[0] is offset_indices:
                raise ConfigError(
                    f"config: data.frames = {d.frames!r} with {sampling} sampling: on 16-frame clips M3DFEL's offsets make "
                    f"about 53 % of the sampled frames the clip's last (a bug of the authors' AU copy); read "
                    f"clip_224x224, or set data.reproduce_bugs=[m3dfel-16f] to reproduce it"
                )

    @property
    def run_dir(self) -> Path:
        """The run folder: ``out``, or ``runs/<name>``."""
        return Path(self.out or Path("runs") / (self.name or "run"))

    @property
    def num_classes(self) -> int:
        """Classes of the expression head: ``data.classes`` when the dataset declares that count (MAFW's or a list's
        11), else the dataset's default (7)."""
        return dataset_decl(self.data.dataset).num_classes(self.data.classes)

    def to_dict(self) -> dict[str, Any]:
        """The plain YAML form (lists, dicts), in declaration order."""
        out: dict[str, Any] = {"name": self.name, "follows": self.follows, "out": self.out}
        for key in self.SECTIONS:
            out[key] = getattr(self, key).to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> Config:
        """A ``Config`` from its YAML form (a missing option takes its default; ``load_config`` merges files over
        the defaults first). Each value is checked against its declaration; errors name key, value and, when
        known, its source. An unknown key is an error."""
        data = renamed(data)  # a stored config written before a key was renamed
        unknown_top = set(data) - {f.name for f in fields(cls)}
        if unknown_top:
            raise ConfigError(
                f"config: unknown option {sorted(unknown_top)[0]!r}; expected one of {', '.join(f.name for f in fields(cls))}"
            )
        for key, kind in cls.SECTIONS.items():
            values = data.get(key) or {}
            unknown = set(values) - {f.name for f in fields(kind)}
            if unknown:
                raise ConfigError(
                    f"config: unknown option '{key}.{sorted(unknown)[0]}'; expected one of "
                    f"{', '.join(f.name for f in fields(kind))}"
                )
        token = VALUE_SOURCES.set(sources)  # the checks on construction name each value's source
        try:
            sections: dict[str, Any] = {key: kind(**(data.get(key) or {})) for key, kind in cls.SECTIONS.items()}
            return cls(name=data.get("name"), follows=data.get("follows"), out=data.get("out"), **sections)
        finally:
            VALUE_SOURCES.reset(token)


def _top_check(key: str) -> Check:
    return next(f.metadata["check"] for f in fields(Config) if f.name == key)


def _default(f: Field[Any]) -> Any:
    """A field's declared default (calling its factory when it has one)."""
    if f.default is MISSING and f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


# ----------------------------------------------------------------------------------------------- declarations out


def incidental_options() -> dict[str, str]:
    """``{dotted key: why}`` of the options that do not change a run's result (``opt(incidental=...)``)."""
    out = {}
    for f in fields(Config):
        kind = Config.SECTIONS.get(f.name)
        for g in fields(kind) if kind else [f]:
            if g.metadata.get("incidental"):
                out[f"{f.name}.{g.name}" if kind else f.name] = g.metadata["incidental"]
    return out


def declared() -> Iterator[tuple[str, Any, str, Check]]:
    """``(dotted key, default, meaning, check)`` of every option, in declaration order."""
    for f in fields(Config):
        if f.name in Config.SECTIONS:
            kind = Config.SECTIONS[f.name]
            for g in fields(kind):
                yield f"{f.name}.{g.name}", thaw(_default(g)), g.metadata["doc"], g.metadata["check"]
        else:
            yield f.name, thaw(_default(f)), f.metadata["doc"], f.metadata["check"]


def check_of(dotted: str) -> Check:
    """The declared ``Check`` of one option (``ConfigError`` for an unknown key)."""
    for key, _, _, check in declared():
        if key == dotted:
            return check
    raise ConfigError(f"config: unknown option {dotted!r}")


def choices_of(dotted: str) -> tuple[Any, ...]:
    """The declared choices of a closed-set option (``au.strategy`` -> none, global, distinct, minor)."""
    check = check_of(dotted)
    return tuple(check.choices or ()) or tuple(getattr(check, "presets", ()))
