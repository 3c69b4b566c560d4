"""Leave-groups-out cross-validation: fold lists, crops' groups, and fold models that never learn
from their held-out groups (a CPU smoke of ``models.train_deeppcb`` with tiny crops).

The training tests need torch and are skipped with the reason ``torch not installed`` where it
is missing (the station's CI and its development venv); ``tools/gpu/train-issue16.sh`` runs them
on the GPU machine before it trains.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pcbdata_helpers import write_pcbdata

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # models/ is a folder of scripts, not an installed package

from models.deeppcb import DeepPcbConfig, DeepPcbPairs, MixedPairs, read_list  # noqa: E402

SPLITS = REPO / "models" / "splits"
FOLDS = [SPLITS / f"cv4-fold{k}.txt" for k in range(1, 5)]
#: Each tiny group's defects are of one class, so a crop's class names its source group.
GROUP_CLASS = {"group1": 5, "group2": 2}


def _write_pcbdata(root: Path) -> Path:
    """Two groups of three boards with copper tracks, one defect class per group; the list."""
    write_pcbdata(
        root, dict.fromkeys(GROUP_CLASS, 3), class_ids=GROUP_CLASS, tracks=True, ext="png", y=64
    )
    return root / "trainval.txt"


def test_cv_folds_hold_out_whole_groups_and_cover_trainval_once() -> None:
    trainval = read_list(SPLITS / "deeppcb-trainval.txt")
    folds = [read_list(p) for p in FOLDS]
    assert len(trainval) == 1000
    assert sorted(ln.text() for f in folds for ln in f) == sorted(ln.text() for ln in trainval)
    groups = [{ln.group for ln in f} for f in folds]
    for k, held in enumerate(groups):
        assert not held & set().union(*(g for j, g in enumerate(groups) if j != k))
        # a fold lists every pair of its groups: a design is held out whole
        assert len(folds[k]) == sum(ln.group in held for ln in trainval)
    assert min(len(f) for f in folds) >= 200  # balanced by pair count


def test_crops_carry_their_source_pairs_group(tmp_path: Path) -> None:
    lines = read_list(_write_pcbdata(tmp_path / "data"))
    cfg = DeepPcbConfig(crop_px=96, clean_fraction=0.0, defect_centred_prob=1.0, jpeg_prob=0.0)
    pairs = DeepPcbPairs(tmp_path / "data", lines, cfg, length=40, seed=1)
    seen = set()
    for i in range(len(pairs)):
        sample, _, source = pairs.draw(i)
        group = pairs.groups[source]
        seen.add(group)
        assert set(sample.class_ids.tolist()) <= {GROUP_CLASS[group]}
        np.testing.assert_array_equal(sample.test, pairs[i][0].test)  # draw is __getitem__
    assert seen == set(GROUP_CLASS)


def test_mixed_pairs_mark_synthetic_items(tmp_path: Path) -> None:
    from models.dataset import SyntheticConfig, SyntheticPairs

    lines = read_list(_write_pcbdata(tmp_path / "data"))
    deeppcb = DeepPcbPairs(tmp_path / "data", lines, DeepPcbConfig(crop_px=96), length=6)
    synthetic = SyntheticPairs(SyntheticConfig(crop_sizes=(96,), layout_sizes=(192,)), 6, seed=0)
    mixed = MixedPairs(deeppcb, synthetic, batch=4, synthetic_per_batch=1)
    sources = [mixed.draw(i)[2] for i in range(len(mixed))]
    assert sources[0::4] == [-1] * (len(mixed) // 4)
    assert all(s >= 0 for k, s in enumerate(sources) if k % 4)


def _tiny_config(root: Path, train_list: Path):
    from models.net import NetConfig
    from models.train_deeppcb import Config, DataConfig, GpuRunConfig

    return Config(
        name="tiny",
        run=GpuRunConfig(
            seed=1, steps=3, batch=4, warmup_steps=1, workers=0, log_every=1, bf16=False
        ),
        model=NetConfig(
            stem_channels=8, mid_channels=8, deep_channels=16, mid_blocks=1, deep_dilations=(2,)
        ),
        data=DataConfig(root=str(root), train_list=str(train_list), synthetic_per_batch=0),
        deeppcb=DeepPcbConfig(crop_px=64, clean_fraction=0.0, defect_centred_prob=1.0),
    )


def _group1_fold(listing: Path, tmp_path: Path) -> Path:
    """A fold list ``fold-one.txt`` holding out group1's pairs of ``listing``."""
    one = tmp_path / "fold-one.txt"
    one.write_text("".join(ln for ln in listing.read_text().splitlines(True) if "group1/" in ln))
    return one


def _state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def test_a_batch_of_held_out_crops_changes_nothing_and_the_rest_train_as_alone() -> None:
    torch = pytest.importorskip("torch", reason="torch not installed", exc_type=ImportError)
    from models.masked_loss import MaskedLossConfig, masked_loss
    from models.net import AoiDefectNet, NetConfig
    from models.targets import IGNORE
    from models.train_folds import fold_step, keep_mask

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = AoiDefectNet(NetConfig(stem_channels=8, mid_channels=8, deep_channels=16))
        return net.train(), torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)

    def loss_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return masked_loss(x, t, MaskedLossConfig())

    gen = torch.Generator().manual_seed(0)
    boards = torch.randint(0, 256, (4, 2, 64, 64), dtype=torch.uint8, generator=gen)
    target = torch.randint(0, 7, (4, 32, 32), generator=gen)
    groups = torch.tensor([0, 1, -1, 1])  # two crops of group 1, one of group 0, one synthetic
    held = torch.tensor([1])

    model, opt = fresh()
    before = _state(model)
    only_held = keep_mask(groups[[1, 3]], held)
    assert fold_step(model, opt, boards[[1, 3]], target[[1, 3]], only_held, loss_fn) is None
    for name, value in _state(model).items():  # weights and BatchNorm statistics
        np.testing.assert_array_equal(value, before[name], err_msg=name)

    keep = keep_mask(groups, held)
    assert keep.tolist() == [True, False, True, False]
    assert fold_step(model, opt, boards, target, keep, loss_fn) is not None
    # The held-out crops' pixels and targets do not matter at all: changed, the same step.
    other, other_opt = fresh()
    changed, changed_target = boards.clone(), target.clone()
    changed[~keep] = 255 - changed[~keep]
    changed_target[~keep] = 0
    fold_step(other, other_opt, changed, changed_target, keep, loss_fn)
    after, same = _state(model), _state(other)
    for name in after:
        np.testing.assert_array_equal(after[name], same[name], err_msg=name)
    # The step is the kept crops' own, padded with repeats of them that carry no loss.
    alone, alone_opt = fresh()
    padded = target[[0, 2, 0, 2]].clone()
    padded[2:] = IGNORE
    fold_step(alone, alone_opt, boards[[0, 2, 0, 2]], padded, torch.ones(4, dtype=bool), loss_fn)
    everything, every_opt = fresh()
    fold_step(everything, every_opt, boards, target, torch.ones(4, dtype=bool), loss_fn)
    want, full = _state(alone), _state(everything)
    for name in after:
        np.testing.assert_allclose(after[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # the held-out crops would have mattered: the checks above can fail
    assert any(not np.allclose(after[n], full[n]) for n in after if n.endswith("weight"))


def test_training_leaves_a_fold_model_that_holds_out_every_group_untouched(
    tmp_path: Path,
) -> None:
    torch = pytest.importorskip("torch", reason="torch not installed", exc_type=ImportError)
    from models.net import AoiDefectNet
    from models.train_deeppcb import train
    from models.train_folds import read_fold

    listing = _write_pcbdata(tmp_path / "data")
    cfg = _tiny_config(tmp_path / "data", listing)
    one = _group1_fold(listing, tmp_path)
    folds = [read_fold(listing), read_fold(one)]  # all groups; group1 only
    models = dict(train([cfg], tmp_path / "out", "cpu", 0, folds))
    assert sorted(models) == ["tiny", "tiny-fold-one", "tiny-trainval"]
    torch.manual_seed(cfg.run.seed)
    initial = _state(AoiDefectNet(cfg.model))
    untouched = _state(models["tiny-trainval"])
    for name, value in untouched.items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(value, initial[name], err_msg=name)
    for trained in ("tiny", "tiny-fold-one"):
        state = _state(models[trained])
        assert not np.array_equal(state["head_fine.weight"], initial["head_fine.weight"]), trained
    info = (tmp_path / "out" / "tiny-fold-one" / "train.json").read_text()
    assert '"group1"' in info


def test_folds_only_trains_the_same_fold_model_as_a_run_beside_the_config_model(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch", reason="torch not installed", exc_type=ImportError)
    from models.train_deeppcb import train
    from models.train_folds import read_fold

    listing = _write_pcbdata(tmp_path / "data")
    cfg = _tiny_config(tmp_path / "data", listing)
    one = _group1_fold(listing, tmp_path)
    beside = dict(train([cfg], tmp_path / "both", "cpu", 0, [read_fold(one)]))
    alone = dict(train([cfg], tmp_path / "alone", "cpu", 0, [read_fold(one)], folds_only=True))
    assert sorted(alone) == ["tiny-fold-one"]
    assert not (tmp_path / "alone" / "tiny").exists()
    want, got = _state(beside["tiny-fold-one"]), _state(alone["tiny-fold-one"])
    assert any(not np.array_equal(want[n], _state(beside["tiny"])[n]) for n in want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_run_stopped_by_its_guard_and_resumed_equals_the_run_done_at_once(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch", reason="torch not installed", exc_type=ImportError)
    from dataclasses import replace

    from models.train_deeppcb import train
    from models.train_folds import read_fold

    listing = _write_pcbdata(tmp_path / "data")
    cfg = _tiny_config(tmp_path / "data", listing)
    cfg = replace(cfg, run=replace(cfg.run, steps=4))
    one = _group1_fold(listing, tmp_path)
    folds = [read_fold(one)]
    at_once = dict(train([cfg], tmp_path / "once", "cpu", 0, folds))
    # A guard of a few microseconds stops the run after its first step, with a checkpoint.
    cut = replace(cfg, run=replace(cfg.run, max_minutes=1e-9))
    first = dict(train([cut], tmp_path / "split", "cpu", 0, folds))
    info = (tmp_path / "split" / "tiny" / "train.json").read_text()
    assert '"steps": 1' in info
    assert any(
        not np.array_equal(v, _state(at_once["tiny"])[k]) for k, v in _state(first["tiny"]).items()
    )
    resumed = dict(train([cfg], tmp_path / "split", "cpu", 0, folds, resume_run=True))
    assert '"resumed_at_step": 1' in (tmp_path / "split" / "tiny" / "train.json").read_text()
    for name in ("tiny", "tiny-fold-one"):
        want, got = _state(at_once[name]), _state(resumed[name])
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name} {key}")


def test_a_warm_restart_runs_warm_up_and_cosine_again_over_the_steps_left() -> None:
    pytest.importorskip("torch", reason="torch not installed", exc_type=ImportError)
    from dataclasses import replace

    from models.train import RunConfig, _lr_at
    from models.train_folds import lr_for

    run = RunConfig(steps=1000, lr=4e-3, warmup_steps=100)
    # Without a restart the schedule is the run's own, step for step.
    for step in (0, 50, 99, 100, 500, 999):
        assert lr_for(step, 0.0, run, 0.0) == _lr_at(step, run)
    # Restarted at step 600 with peak 2e-3: warm-up from 600, cosine down to the floor at 999.
    again = replace(run, lr=2e-3)
    assert lr_for(600, 0.0, again, 0.0, origin=600) == pytest.approx(2e-3 / 100)
    assert lr_for(699, 0.0, again, 0.0, origin=600) == pytest.approx(2e-3)
    assert lr_for(999, 0.0, again, 0.0, origin=600) == pytest.approx(2e-3 * 0.02, rel=1e-2)
    assert lr_for(650, 0.0, again, 0.0, origin=600) < lr_for(700, 0.0, again, 0.0, origin=600)
    # By time: half the budget spent puts the schedule half-way through the steps left.
    half = lr_for(610, 30.0, again, 60.0, origin=600)
    assert half == pytest.approx(_lr_at(200, replace(again, steps=400)))
    assert half != lr_for(610, 30.0, again, 60.0)  # the run's own schedule would be elsewhere


def test_kept_crops_are_padded_with_their_own_repeats_to_few_batch_sizes() -> None:
    torch = pytest.importorskip("torch", reason="torch not installed", exc_type=ImportError)
    from models.train_folds import PAD_TO, padded_index

    gen = torch.Generator().manual_seed(1)
    sizes = set()
    for kept in range(1, 49):
        keep = torch.zeros(48, dtype=torch.bool)
        keep[torch.randperm(48, generator=gen)[:kept]] = True
        index, n = padded_index(keep)
        assert n == kept
        assert index[:n].tolist() == keep.nonzero().squeeze(1).tolist()
        assert set(index[n:].tolist()) <= set(index[:n].tolist())  # only kept crops repeat
        assert len(index) % PAD_TO == 0 or len(index) == 48
        assert len(index) >= kept
        sizes.add(len(index))
    assert sizes == {8, 16, 24, 32, 40, 48}  # six shapes, not 48
