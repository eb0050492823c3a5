"""The base class of a family's training logic (:class:`Trainer`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zoo.training.distributed import Draws, average_gradients

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from torch import nn

    from zoo.core.spec import Spec


class Trainer:
    """Base of a family's training logic.

    A subclass registers its modules (the sampling model under ``"model"``) with
    :meth:`add_module` and its optimisers with :meth:`adam`, and implements
    :meth:`step`. Everything registered is checkpointed and resumed.
    """

    def __init__(self, spec: Spec, model: nn.Module, accelerator: Accelerator) -> None:
        self.spec = spec
        self.accelerator = accelerator
        self.device = accelerator.device
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.draws = Draws(self.rank, self.world)
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lrs: dict[str, float] = {}
        self.progress = 0.0  # fraction of training done; the loop sets it before each step
        self.steps_done = 0  # optimisation steps before the current one; set with progress
        # compiled modules get their layouts from the compiler (inductor's layout
        # optimisation); given channels-last weights as well, torch 2.11's compiled
        # backward on CUDA failed a stride assertion in convolution_backward
        eager_nhwc = spec.run.channels_last and not spec.run.compile
        self.memory_format = "channels_last" if eager_nhwc else "contiguous_format"
        # provenance: how each session of a (resumed) build ran; see runs()
        self.history: list[dict[str, Any]] = []  # earlier sessions, from the checkpoint
        self.session: dict[str, Any] = {}  # this one; the loop fills it in
        self.mixed: list[nn.Module] = []  # modules whose forward runs in mixed precision
        self.ema = None
        if spec.train.ema_decay:
            from timm.utils import ModelEmaV3

            # copied before accelerate wraps the model's forward for autocast
            self.ema = ModelEmaV3(self.in_layout(model.to(self.device)),
                                  decay=spec.train.ema_decay,
                                  use_warmup=True)
            self.ema.module.requires_grad_(False)
            self.modules["ema"] = self.ema.module  # checkpointed and resumed with the rest
        self.model = self.add_module("model", model)

    def add_module(self, name: str, module: nn.Module, mixed_precision: bool = True
                   ) -> nn.Module:
        """Place ``module`` on the device and track it.

        With ``mixed_precision`` (the default) its forward runs in the spec's
        precision (:meth:`mixed_precision`); ``False`` keeps it in fp32 (for
        small, precision-sensitive nets). With ``run.channels_last`` its
        4-D weights are stored channels-last (values and state-dict keys are
        unchanged). With ``run.compile`` the module is compiled in place, so
        its state-dict keys stay those of the plain module.

        The module is never wrapped in DistributedDataParallel: :meth:`update`
        averages gradients per optimiser. With several processes its weights are
        broadcast from the main process (they are equal already when every
        process seeds alike; this makes it so regardless).
        """
        module = self.in_layout(module.train().to(self.device))
        if self.world > 1:
            import torch

            if self.spec.run.sync_batchnorm:
                module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
            for tensor in module.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        prepared = self.mixed_precision(module) if mixed_precision else module
        if self.spec.run.compile:
            mode = self.spec.run.compile_mode
            prepared.compile(mode=None if mode == "default" else mode)
        self.modules[name] = prepared
        return prepared

    def adam(
        self, name: str, params: Iterable[Any], lr: float, betas: tuple[float, float],
        weight_decay: float = 0.0,
    ) -> torch.optim.Optimizer:
        """An Adam optimiser (fused kernel when the spec allows it and the device has one)."""
        import torch

        params = list(params)
        fused = self.spec.run.fused_optimizer and self.device.type in ("cpu", "cuda")
        optimizer = torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay,
                                     fused=fused or None)
        return self.add_optimizer(name, optimizer)

    def add_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Prepare any optimiser for the accelerator and register it under ``name``: it is
        checkpointed with the run and scheduled by :meth:`cosine_lr` from its learning rate now
        (what :meth:`adam` does for Adam; use this for another kind)."""
        prepared = self.accelerator.prepare(optimizer)
        self.optimizers[name] = prepared
        self.base_lrs[name] = optimizer.param_groups[0]["lr"]
        return prepared

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
               max_grad_norm: float = 0.0) -> None:
        """One optimiser step on ``loss``: clear gradients, backpropagate, clip, step.

        ``max_grad_norm`` > 0 clips the gradient norm of the optimiser's parameters.
        """
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if self.world > 1:
            average_gradients(params, self.world)
        if max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()

    def scale_lr(self, factor: float) -> None:
        """Set every optimiser's lr to ``factor`` times its base lr (e.g. for a warm-up)."""
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_lrs[name] * factor

    def cosine_lr(self, floor: float = 0.0) -> None:
        """Set every optimiser's lr to a cosine decay of its base lr over training.

        The schedule is a pure function of ``self.progress``, so ``--resume``
        needs no scheduler state.
        """
        self.scale_lr(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * self.progress)))

    def mixed_precision(self, module: nn.Module) -> nn.Module:
        """Run ``module``'s forward in the spec's precision: under bf16 autocast when
        ``train.precision`` is bf16 (where the device supports it), its outputs returned in
        fp32; unchanged in fp32. This is the one way precision reaches a step: loss maths
        outside a forward runs in fp32. :meth:`add_module` does it for whole modules; call it
        for a part of one that should differ (e.g. the levels of a pyramid). The forward is
        patched in place (accelerate, no wrapper object) and restored by
        :meth:`sampling_module`, so the saved module samples in fp32."""
        prepared = self.accelerator.prepare_model(module, evaluation_mode=True)  # no DDP
        self.mixed.append(prepared)
        return prepared

    def in_layout(self, tensor_or_module: Any) -> Any:
        """``tensor_or_module`` in the training memory layout (``run.channels_last``).

        The loop passes every batch through this before :meth:`step`; a 4-D
        tensor or a module's 4-D weights become channels-last (NHWC in memory,
        same shape and values), anything else is returned as it is.
        """
        import torch

        layout = getattr(torch, self.memory_format)
        if isinstance(tensor_or_module, torch.Tensor):
            if tensor_or_module.dim() != 4:
                return tensor_or_module
            return tensor_or_module.contiguous(memory_format=layout)
        return tensor_or_module.to(memory_format=layout)

    def standard_layout(self) -> None:
        """Store every module's weights contiguously again (the loop calls this after the
        last step, so :meth:`finish` and the written model run as a loaded model does)."""
        import torch

        for module in self.raw_modules().values():
            module.to(memory_format=torch.contiguous_format)

    @property
    def cuda_graphs(self) -> bool:
        """Whether the compiled modules replay CUDA graphs (``run.compile_mode``)."""
        run = self.spec.run
        return (run.compile and self.device.type == "cuda"
                and run.compile_mode in ("reduce-overhead", "max-autotune"))

    def begin_step(self) -> None:
        """The loop calls this before each :meth:`step`.

        With CUDA graphs it starts a new graph generation, so the buffers of the
        previous step's graph outputs may be reused (a step must not keep them).
        """
        if self.cuda_graphs:
            import torch

            torch.compiler.cudagraph_mark_step_begin()

    def runs(self, step: int) -> list[dict[str, Any]]:
        """How the build ran, one entry per session up to ``step``: steps, device,
        precision, processes and the ``run`` settings (``--resume`` may change them)."""
        return [*self.history, {**self.session, "to_step": step}]

    def raw_modules(self) -> dict[str, nn.Module]:
        """The tracked modules without accelerate/DDP wrappers (for state dicts)."""
        return {n: self.accelerator.unwrap_model(m) for n, m in self.modules.items()}

    def start(self, images: torch.Tensor) -> None:
        """Called once before the first step of a fresh build (data-dependent initialisation).

        A trainer that needs the labels too defines ``start(self, images, labels)``: the loop
        passes ``labels=`` (the labels of ``images``, or None for an unlabelled source) when
        the signature has that parameter.

        ``images`` (float32 ``N×C×S×S`` in [0, 1] on the device, grey levels under dynamic
        binarisation; every process gets all of them): the whole training split of an
        in-memory source; for a streamed source (``folder``, ``hf:``, ``wds:``), the first
        ``data.fit_images`` images of epoch 0's order (decoded only for a trainer that
        overrides this method or :meth:`finish`).
        """

    def step(
        self, images: torch.Tensor, labels: torch.Tensor | None, rng: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch of images in [0, 1]; returns detached losses."""
        raise NotImplementedError

    def finish(
        self, images: torch.Tensor, labels: torch.Tensor | None, rng: torch.Generator
    ) -> None:
        """Called once after the last step (e.g. to re-estimate batch-norm statistics), with
        the images :meth:`start` gets (also after ``--resume``) and their labels (or None)."""

    def update_ema(self, step: int) -> None:
        """Move the weight average towards the model (the loop calls this after each step)."""
        if self.ema is not None:
            self.ema.update(self.accelerator.unwrap_model(self.modules["model"]), step)

    def sampling_module(self) -> nn.Module:
        """The module saved as ``model.safetensors``: fp32, no wrappers, in eval mode.

        With ``train.ema_decay`` it is the weight average, else the trained model.
        """
        for module in self.mixed:  # training is over: every forward back in fp32
            self.accelerator.unwrap_model(module, keep_fp32_wrapper=False)
        if self.ema is not None:
            return self.ema.module.eval()
        return self.accelerator.unwrap_model(self.modules["model"], keep_fp32_wrapper=False).eval()
