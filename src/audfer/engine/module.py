"""The Lightning module: any registered model + the AU-DFER loss (Eq. 10), optimiser and schedule recipes.

``train.selection`` decides which epoch is evaluated; validation metrics (WAR = micro accuracy,
UAR = macro recall, torchmetrics, synced across DDP processes) are logged as ``val/war`` and
``val/uar`` on whichever split the selection rule watches. RNG states travel in the checkpoint, so a
resumed run continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from audfer.config.load import with_defaults
from audfer.config.schema import Config
from audfer.data.transforms import Mixup
from audfer.engine.schedules import global_batch, lr_factor
from audfer.errors import ConfigError
from audfer.evaluation.metrics import WARUAR
from audfer.method.losses import AUDFERLoss, AUDFERLossOutput, mix_batch_targets
from audfer.models.base import DFERModel, ModelOutput
from audfer.weights.restore import loss_from_config, model_from_config

#: A training batch: clips, labels, AU targets, AU mask, clip ids (``datamodule.collate``).
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]


class AUDFERModule(L.LightningModule):
    """A model (registered, or the user's own) trained with the AU-DFER loss (Eq. 10), its optimiser and schedule recipe, and validation WAR / UAR (see the module docstring)."""

    def __init__(
        self,
        model: DFERModel,
        loss: AUDFERLoss,
        cfg: Config | Mapping[str, Any] | None = None,
        steps_per_epoch: int = 1,
    ) -> None:
        """``model``: any ``DFERModel`` (a registered one, or the user's own: ``docs/custom-model.md``); ``loss``: the
        ``AUDFERLoss`` it trains with (K, pos-weights, λ); ``cfg``: the optimiser, schedule and mixing recipe (a
        ``Config`` or its YAML form; missing options take their defaults); ``steps_per_epoch``: for per-step
        schedules. ``from_config`` builds model and loss the way ``audfer train`` does."""
        super().__init__()
        plain = with_defaults(cfg.to_dict() if isinstance(cfg, Config) else dict(cfg or {}))
        self.save_hyperparameters(  # the plain form: a checkpoint loads without audfer's classes being pickled
            {
                "cfg": plain,
                "knowledge": loss.au_loss.knowledge.tolist(),
                "pos_weight": loss.au_loss.pos_weight.tolist(),
                "steps_per_epoch": steps_per_epoch,
                "model_from_config": False,  # from_config: True (``load_module`` can rebuild the model)
            }
        )
        self.cfg = Config.from_dict(plain)
        self.model = model
        self.criterion = loss
        k = int(getattr(model, "num_classes", self.cfg.num_classes))
        self.val_metrics = WARUAR(num_classes=k)  # synced over DDP processes
        self.steps_per_epoch = max(1, steps_per_epoch)

    @classmethod
    def from_config(
        cls, cfg: Config | Mapping[str, Any], knowledge: Any, pos_weight: Any = None, steps_per_epoch: int = 1
    ) -> AUDFERModule:
        """The module ``audfer train`` builds: the model ``cfg.model`` names and ``AUDFERLoss`` with ``knowledge`` (K,
        7 x 18, §3.1), ``pos_weight`` (the Eq. 6-8 table, or None) and λ = ``au.lam`` (0 under ``au.strategy=none``)."""
        config = Config.from_dict(with_defaults(cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)))
        module = cls(
            model_from_config(config), loss_from_config(config, knowledge, pos_weight), config, steps_per_epoch
        )
        module.hparams["model_from_config"] = True
        return module

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """The model's output (expression logits, AU logits, pooled feature) for clips ``(B, T, 3, H, W)``."""
        return self.model(x)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        """On the CPU the batch already is where it goes: skip Lightning's walk over it (it recurses into every
        clip-id string)."""
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # --------------------------------------------------------------------------- training
    def _mix(
        self, clips: torch.Tensor, labels: torch.Tensor, au: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``optim.mixup`` / ``optim.cutmix`` on the batch (``audfer.data.transforms.Mixup``), the targets mixed with
        the same weight and pairing (``mix_batch_targets``)."""
        o = self.cfg.optim
        mixed = Mixup(o.mixup, o.cutmix)(clips)
        if mixed is None:
            return clips, labels, au, mask
        soft, au, mask = mix_batch_targets(labels, au, mask, mixed.lam, mixed.partner, self.cfg.num_classes)
        return mixed.clips, soft, au, mask

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        clips, labels, au, mask, _ = batch
        clips, targets, au, mask = self._mix(clips, labels, au, mask)
        out = self.model(clips)
        parts = self.criterion.components(out.logits, out.au_logits, targets, au, mask)
        bs = clips.shape[0]
        self.log("train/loss", parts.total, prog_bar=True, batch_size=bs, sync_dist=True)
        self._add_to_epoch(bs, parts)
        if self.trainer.is_last_batch:
            self._log_epoch_means()
        return parts.total

    def on_train_epoch_start(self) -> None:
        """Start the epoch's loss and lr sums (``_add_to_epoch``)."""
        self._epoch_sums: torch.Tensor | None = None
        self._epoch_clips, self._epoch_lr = 0, 0.0

    def _add_to_epoch(self, bs: int, parts: AUDFERLossOutput) -> None:
        """Batch-size-weighted sums of the epoch's CE, AU and total loss, and of the lr, logged once at the epoch's
        last batch (a ``self.log`` per step and value makes Lightning move its result containers every call)."""
        values = torch.stack([parts.expression.detach(), parts.au.detach(), parts.total.detach()]).double() * bs
        self._epoch_sums = values if self._epoch_sums is None else self._epoch_sums + values
        self._epoch_clips += bs
        self._epoch_lr += bs * float(self.trainer.optimizers[0].param_groups[0]["lr"])

    def _log_epoch_means(self) -> None:
        """What ``self.log(..., on_epoch=True, batch_size=bs)`` at every step gave: weighted means over the epoch's
        batches (averaged over DDP processes, ``sync_dist``)."""
        n = max(self._epoch_clips, 1)
        assert self._epoch_sums is not None, "an epoch's last batch comes after its first"
        ce, au, total = (self._epoch_sums / n).float().unbind()
        for name, value in (
            ("train/ce", ce),
            ("train/au", au),
            ("train/loss_epoch", total),
            ("lr", self._epoch_lr / n),
        ):
            self.log(name, value, on_step=False, on_epoch=True, sync_dist=True, batch_size=1)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        clips, labels, *_ = batch
        logits = self.model(clips).logits
        self.log("val/loss", F.cross_entropy(logits, labels), batch_size=clips.shape[0], sync_dist=True)
        self.val_metrics.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        war, uar = self.val_metrics.compute()
        self.log("val/war", war, prog_bar=True, sync_dist=False)
        self.log("val/uar", uar, prog_bar=True, sync_dist=False)
        self.log("val/war+uar", war + uar, sync_dist=False)  # the AU copies' selection rule
        self.val_metrics.reset()

    # --------------------------------------------------------------------------- optimisation
    def lr_scale(self) -> float:
        """global batch (batch x devices x nodes) / 256 under ``optim.lr_scale=batch256`` (MAE-DFER), else 1. MAE-DFER scales ``lr``,
        ``min_lr`` and ``warmup_lr`` alike (sunlicai/MAE-DFER ``run_class_finetuning.py``, ``main``)."""
        return global_batch(self.cfg.train) / 256 if self.cfg.optim.lr_scale == "batch256" else 1.0

    def base_lr(self) -> float:
        """The configured lr, times ``lr_scale()``."""
        return self.cfg.optim.lr * self.lr_scale()

    def lr_at(self, step: int) -> float:
        """Learning rate of the full-lr parameter group at optimiser step ``step`` (0-based over the run): what
        ``configure_optimizers`` schedules, for ``--dry-run`` and the schedule tests."""
        o, lr = self.cfg.optim, self.base_lr()
        if o.scheduler == "step":
            return lr * o.gamma ** ((step // self.steps_per_epoch) // o.step_size)
        if o.scheduler == "none":
            return lr
        total = self.cfg.train.epochs * self.steps_per_epoch
        warm = o.warmup_epochs * self.steps_per_epoch
        scale = self.lr_scale()  # min_lr and warmup_lr scale with the batch like the lr
        floor = min(o.min_lr * scale / lr, 1.0) if lr > 0 else 0.0
        start = min(o.warmup_lr * scale / lr, 1.0) if lr > 0 else 0.0
        return lr * lr_factor(o.scheduler, step, total, warm, floor, start)

    def _param_groups(self) -> tuple[list[dict[str, Any]], float]:
        o = self.cfg.optim
        lr = self.base_lr()
        depth = int(getattr(self.model, "num_decay_layers", lambda: 0)())
        layer_of = getattr(self.model, "decay_layer", lambda name: depth + 1)
        groups: dict[tuple, dict] = {}
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = o.no_decay_norms and self.model.no_weight_decay(name, p)  # the model's rule (DFERModel)
            scale = 1.0
            if o.layer_decay:  # the model's own layers (``DFERModel.decay_layer``)
                scale = o.layer_decay ** (depth + 1 - layer_of(name))
            key = (no_decay, scale)
            g = groups.setdefault(
                key, {"params": [], "weight_decay": 0.0 if no_decay else o.weight_decay, "lr": lr * scale}
            )
            g["params"].append(p)
        return list(groups.values()), lr

    def configure_optimizers(self) -> Any:
        """AdamW or SGD over the parameter groups (weight decay, layer decay) and the per-step or per-epoch
        schedule of the recipe (``optim.scheduler``; ``lr_at`` gives its values)."""
        o = self.cfg.optim
        groups, lr = self._param_groups()
        # foreach: one multi-tensor kernel per update step instead of one per parameter; torch picks it by default
        # on CUDA only, and on a CPU it halves the optimiser step of a model with many small tensors (89 in the demo's)
        if o.name == "adamw":
            opt: torch.optim.Optimizer = torch.optim.AdamW(
                groups, lr=lr, betas=(o.betas[0], o.betas[1]), eps=o.eps, foreach=True
            )
        else:
            opt = torch.optim.SGD(groups, lr=lr, momentum=o.momentum, foreach=True)
        if o.scheduler == "step":
            step = torch.optim.lr_scheduler.StepLR(opt, step_size=o.step_size, gamma=o.gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": step, "interval": "epoch"}}
        if o.scheduler == "none":
            return opt
        factor = (lambda step: self.lr_at(step) / lr) if lr > 0 else (lambda step: 0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_start(self) -> None:
        """On a resume, settings accepted with ``--accept-changes`` apply from the resumed epoch on: Lightning
        restored the optimiser's and scheduler's states (moments, step counts) with the old run's hyper-parameters,
        so every group's lr, weight decay, betas / eps / momentum, and the schedule (base lrs, warm-up, floor, total,
        step size, gamma) are set again from this run's config, at the schedule's position of the first epoch still
        to run. A fresh run is left as ``configure_optimizers`` made it."""
        trainer = self.trainer
        if not getattr(trainer, "ckpt_path", None) or not trainer.optimizers:
            return
        o = self.cfg.optim
        opt = trainer.optimizers[0]
        fresh, lr = self._param_groups()
        if len(fresh) != len(opt.param_groups):  # runfolder.check_resume_settings refuses such changes first
            raise ConfigError(
                "--resume: the parameter groups differ from the checkpoint's (optim.layer_decay, optim.no_decay_norms "
                "or the model changed); resume with the settings the run started with"
            )
        for group, new in zip(opt.param_groups, fresh):
            group["weight_decay"] = new["weight_decay"]
            group["initial_lr"] = new["lr"]
            if o.name == "adamw":
                group["betas"], group["eps"] = (o.betas[0], o.betas[1]), o.eps
            else:
                group["momentum"] = o.momentum
        epoch = int(trainer.current_epoch)  # finished epochs: the first one to run now
        configs = getattr(trainer, "lr_scheduler_configs", [])
        sched = configs[0].scheduler if configs else None
        base = [g["initial_lr"] for g in opt.param_groups]
        if isinstance(sched, torch.optim.lr_scheduler.StepLR):
            sched.step_size, sched.gamma = o.step_size, o.gamma
            sched.base_lrs, sched.last_epoch = base, epoch
            factor = o.gamma ** (epoch // o.step_size)
        elif isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
            step = epoch * self.steps_per_epoch  # in this run's steps per epoch (batch size or data may differ)
            fn = (lambda i: self.lr_at(i) / lr) if lr > 0 else (lambda i: 0.0)
            sched.lr_lambdas = [fn] * len(opt.param_groups)
            sched.base_lrs, sched.last_epoch = base, step
            factor = fn(step)
        else:
            factor = 1.0
        for group, b in zip(opt.param_groups, base):
            group["lr"] = b * factor
        if sched is not None:
            sched._last_lr = [g["lr"] for g in opt.param_groups]  # what get_last_lr() reports

    # --------------------------------------------------------------------------- exact resume
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the torch, numpy and Python RNG states: a resumed run draws what the uninterrupted one would."""
        state: Any = np.random.get_state()
        kind, keys, pos, has_gauss, cached = state
        checkpoint["audfer_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the RNG states ``on_save_checkpoint`` stored."""
        state = checkpoint.get("audfer_rng")
        if state:
            torch.set_rng_state(state["torch"])
            kind, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            random.setstate(state["python"])
