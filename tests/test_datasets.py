"""Dataset adapters on tiny frame trees built for the real split files."""

import shutil

import cv2
import numpy as np
import polars as pl
import pytest
import torch

from audfer import AUS, AudferError
from audfer.data.datasets import ClipDataset, dfew_index, ferv39k_index, list_index, mafw_index, read_frames
from audfer.data.transforms import build_transform
from audfer.models.base import InputSpec


def _former(fixtures, name):
    rows = [l.split() for l in (fixtures / "annotations" / "former-dfer" / name).read_text().splitlines()]
    return {p.rsplit("/", 1)[1]: int(lab) for p, _, lab in rows}


@pytest.mark.slow
def test_dfew_folds_on_an_empty_frame_tree(fixtures, tmp_path):
    root = tmp_path / "DFEW"
    shutil.copytree(fixtures / "annotations" / "official-layout" / "DFEW", root)
    ids = dfew_index(root, 1, "all", on_missing="skip").skipped
    for cid in ids:
        (root / "Clip" / "clip_224x224" / cid).mkdir(parents=True)
    for fold in range(1, 6):
        train, test = dfew_index(root, fold, "train"), dfew_index(root, fold, "test")
        assert len(train) + len(test) == 11697
        assert dict(zip(train.table["clip_id"], train.table["label"])) == _former(
            fixtures, f"DFEW_set_{fold}_train.txt"
        )
        assert dict(zip(test.table["clip_id"], test.table["label"])) == _former(fixtures, f"DFEW_set_{fold}_test.txt")
    assert train.table["path"][0].endswith("Clip/clip_224x224/" + train.table["clip_id"][0])
    shutil.rmtree(root / "Clip" / "clip_224x224" / test.table["clip_id"][0])
    with pytest.raises(AudferError, match=f"clip {test.table['clip_id'][0]}: no frame folder or video found"):
        dfew_index(root, 5, "test")
    assert dfew_index(root, 5, "test", on_missing="skip").skipped == [test.table["clip_id"][0]]


@pytest.mark.slow
def test_ferv39k_and_mafw_trees(fixtures, tmp_path):
    froot = tmp_path / "FERV39k"
    shutil.copytree(fixtures / "annotations" / "official-layout" / "FERV39k", froot)
    for line in (froot / "4_setups" / "All_scenes" / "test_All.csv").read_text().splitlines():
        (froot / "2_ClipsforFaceCrop" / line.split()[0]).mkdir(parents=True)
    test = ferv39k_index(froot, "test")
    assert len(test) == 7847
    rows = [l.split() for l in (fixtures / "annotations" / "former-dfer" / "FERV39K_test.txt").read_text().splitlines()]
    assert sorted(test.table["label"].to_list()) == sorted(int(r[2]) for r in rows)
    mroot = tmp_path / "MAFW"
    shutil.copytree(fixtures / "annotations" / "official-layout" / "MAFW", mroot)
    for line in (mroot / "split" / "single" / "no_caption" / "set_1" / "test.txt").read_text().splitlines():
        (mroot / "data" / "frames" / line.split()[0].split(".")[0]).mkdir(parents=True)
    m11 = mafw_index(mroot, 1, "test", classes=11)
    mae = [
        l.split()
        for l in (fixtures / "annotations" / "mae-dfer" / "mafw" / "split01" / "test.csv").read_text().splitlines()
    ]
    assert dict(zip(m11.table["clip_id"], m11.table["label"])) == {p.rsplit("/", 1)[1]: int(lab) for p, lab in mae}
    assert len(mafw_index(mroot, 1, "test")) == sum(1 for _, lab in mae if int(lab) < 7)


def test_generic_lists_remap_foreign_prefixes(fixtures, tmp_path):
    lst = fixtures / "annotations" / "former-dfer" / "DFEW_set_1_test.txt"
    ref = _former(fixtures, "DFEW_set_1_test.txt")
    for cid in ref:
        (tmp_path / "faces" / cid).mkdir(parents=True)
    with pytest.raises(AudferError, match="data.class_order is not set"):
        list_index(lst, tmp_path / "faces")  # label ids are never assumed to be in audfer's order
    idx = list_index(lst, tmp_path / "faces", class_order="dfew7")
    assert len(idx) == 2341 and dict(zip(idx.table["clip_id"], idx.table["label"])) == ref
    assert all(p.startswith(str(tmp_path / "faces")) for p in idx.table["path"].to_list())
    mae = fixtures / "annotations" / "mae-dfer" / "dfew" / "split01" / "test.csv"
    assert len(list_index(mae, tmp_path / "faces", class_order="dfew7")) == 2341
    bad = tmp_path / "bad.txt"
    bad.write_text("/x/00001 12 3\n/x/00002 twelve 3\n")
    with pytest.raises(AudferError, match=r"bad\.txt: row 2: '/x/00002 twelve 3'"):
        list_index(bad, tmp_path, class_order="dfew7")
    bad.write_text("/x/00001 9\n")
    with pytest.raises(AudferError, match="label 9 is not covered by data.class_order"):
        list_index(bad, tmp_path, class_order="dfew7")


def test_list_label_ids_are_read_through_the_declared_class_order(fixtures, tmp_path):
    from audfer.vocab import MAFW_CLASSES

    lst = fixtures / "annotations" / "mae-dfer" / "mafw" / "split01" / "train.csv"
    raw = [
        (line.split()[0].rsplit("/", 1)[-1], int(line.split()[-1]))
        for line in lst.read_text().splitlines()
        if line.strip()
    ]
    for cid, _ in raw:
        (tmp_path / cid).mkdir(exist_ok=True)
    seven = list_index(lst, tmp_path, class_order="mafw11")
    got = dict(zip(seven.table["clip_id"], seven.table["label"]))
    names = {"anger": 3, "disgust": 5, "fear": 6, "happiness": 0, "neutral": 2, "sadness": 1, "surprise": 4}
    expected = {c: names[MAFW_CLASSES[k]] for c, k in raw if MAFW_CLASSES[k] in names}
    assert got == expected and len(got) < len(raw)  # contempt, anxiety, ... left out of the 7-class view
    eleven = list_index(lst, tmp_path, class_order="mafw11", num_classes=11)
    assert dict(zip(eleven.table["clip_id"], eleven.table["label"])) == dict(raw)
    named = list_index(lst, tmp_path, class_order=list(MAFW_CLASSES))  # names in id order: same as the preset
    assert dict(zip(named.table["clip_id"], named.table["label"])) == expected
    with pytest.raises(AudferError, match="class_order"):
        list_index(lst, tmp_path, class_order="mafw7")


def _frames_tree(root, n_clips=3, n_frames=10):
    for c in range(n_clips):
        d = root / f"{c:05d}"
        d.mkdir(parents=True)
        for t in range(n_frames):
            img = np.full((24, 32, 3), (10 * t + c) % 255, np.uint8)
            cv2.imwrite(str(d / f"{t + 1:03d}.png"), img)  # lossless, so values are checkable
    lst = root / "list.txt"
    lst.write_text("".join(f"/elsewhere/{c:05d} {n_frames} {c}\n" for c in range(n_clips)))
    return lst


def test_clip_dataset_items_and_au_masking(tmp_path):
    lst = _frames_tree(tmp_path)
    index = list_index(lst, tmp_path, class_order="dfew7")
    au = pl.DataFrame({"clip_id": ["00000", "00001"], **{a: pl.Series([1, None], dtype=pl.Int8) for a in AUS}})
    spec = InputSpec(16, 16)
    with pytest.warns(UserWarning, match="2 of 3 clips have no AU labels"):
        ds = ClipDataset(index, build_transform(spec, train=False), num_frames=16, sampling="m3dfel", au_labels=au)
    clip, label, targets, mask, cid = ds[0]
    assert (
        clip.shape == (16, 3, 16, 16)
        and label == 0
        and cid == "00000"
        and mask.shape == (18,)
        and mask.all()
        and targets.sum() == 18
    )
    # m3dfel at test: frames int(10*i/16) + 7 (the centre of the training offsets), clamped to the 10 frames;
    # the sampled frame t has value 10*t
    expected = torch.tensor([10 * min(int(10 * i / 16) + 7, 9) / 255 for i in range(16)])
    torch.testing.assert_close(clip[:, 0, 0, 0], expected)
    assert not ds[1][3].any() and not ds[2][3].any()  # empty cells and missing row are masked
    train = ClipDataset(index, build_transform(spec, train=True), num_frames=16, sampling="m3dfel", train=True, seed=1)
    assert torch.equal(train[0][0], train[0][0])  # same seed, epoch, index -> same sample
    train.set_epoch(1)
    a = train[0][0]
    train.set_epoch(2)
    assert not torch.equal(a, train[0][0])


@pytest.mark.parametrize(
    "mean, std", [((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
)
def test_normalising_the_stacked_batch_gives_the_per_clip_values(tmp_path, mean, std):
    """``batch_normalize`` (training loaders) leaves the final Normalize to the collate function: bit for bit the
    clips each item would have given, for [0, 1] models and ImageNet mean/std alike."""
    from audfer.engine.datamodule import collate

    index = list_index(_frames_tree(tmp_path), tmp_path, class_order="dfew7")
    spec = InputSpec(8, 16, mean, std)
    kw = dict(num_frames=8, sampling="m3dfel", train=True, seed=3)
    per_clip = ClipDataset(index, build_transform(spec, train=True, jitter=0.4, scale=(0.5, 1.0)), **kw)
    batched = ClipDataset(
        index, build_transform(spec, train=True, jitter=0.4, scale=(0.5, 1.0)), batch_normalize=True, **kw
    )
    assert batched[0][0].dtype == torch.uint8 and batched.normalize is not None
    items = [(1, i) for i in range(len(index))]
    want = collate([per_clip[it] for it in items])
    got = collate([batched[it] for it in items], normalize=batched.normalize)
    assert torch.equal(got[0], want[0]) and got[0].dtype == torch.float32 and got[4] == want[4]
    erasing = ClipDataset(index, build_transform(spec, train=True, erasing=0.5), batch_normalize=True, **kw)
    assert (
        erasing.normalize is None and erasing[0][0].dtype == torch.float32
    )  # erasing follows Normalize: stays per clip


def test_video_files_and_bad_frames(fixtures, tmp_path):
    video = fixtures / "video" / "single_face.mp4"
    frames = read_frames(video, np.array([0, 71]))
    assert frames.shape == (2, 360, 640, 3)
    d = tmp_path / "clip"
    d.mkdir()
    (d / "001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(AudferError, match=r"001\.jpg: unreadable frame image"):
        read_frames(d)


def test_clip_dataset_takes_its_options_as_one_dataclass_or_keywords_and_yields_named_samples(tmp_path):
    """``ClipOptions`` or the same keywords build the same dataset (keywords override the options); each item is a
    ``ClipSample`` whose fields name what the 5-tuple held; a bad option is refused by name."""
    from dataclasses import replace

    from audfer.data.datasets import ClipOptions, ClipSample
    from audfer.engine.datamodule import collate

    index = list_index(_frames_tree(tmp_path), tmp_path, class_order="dfew7")
    transform = build_transform(InputSpec(8, 16), train=True, jitter=0.4)
    opts = ClipOptions(num_frames=8, sampling="m3dfel", train=True, seed=4, batch_normalize=True)
    by_options = ClipDataset(index, transform, opts)
    by_keywords = ClipDataset(
        index, transform, num_frames=8, sampling="m3dfel", train=True, seed=4, batch_normalize=True
    )
    overridden = ClipDataset(index, transform, replace(opts, seed=0), seed=4)
    for ds in (by_keywords, overridden):
        assert ds.options == by_options.options
    a_first = by_options.normalize(by_options[(2, 0)].clip)
    for i in range(len(index)):
        a, b, c = by_options[(2, i)], by_keywords[(2, i)], overridden[(2, i)]
        assert isinstance(a, ClipSample) and torch.equal(a.clip, b.clip) and torch.equal(a.clip, c.clip)
        assert (a.label, a.clip_id) == (int(index.table["label"][i]), index.table["clip_id"][i])
        assert a.au_targets.shape == a.au_mask.shape == (18,) and not a.au_mask.any()
    clips, labels, _, _, ids = collate([by_options[(2, i)] for i in range(len(index))], by_options.normalize)
    assert clips.dtype == torch.float32 and labels.tolist() == index.table["label"].to_list() and ids == by_options.ids
    on_device = ClipDataset(index, transform, opts, augment_on="device")  # the tail drawn here, run on the device
    drawn = on_device[(2, 0)].clip
    assert on_device.normalize is None and [type(s).__name__ for s in on_device.device_steps.steps] == [
        "ColorJitter",
        "Normalize",
    ]
    assert drawn.clip.dtype == torch.uint8 and torch.equal(on_device.device_steps.apply_params(*drawn), a_first)
    with pytest.raises(AudferError, match="augment_on must be 'cpu' or 'device', got 'gpu'"):
        ClipDataset(index, transform, opts, augment_on="gpu")
    with pytest.raises(TypeError, match="num_frame"):
        ClipDataset(index, transform, num_frame=8)
