"""The station's defect segmentation network: a small two-image encoder-decoder for CPU inference.

The network reads the registered board under test and its golden template as one uint8 tensor
``boards`` of shape ``[N, 2, H, W]`` and returns ``probs``, a float32 softmax over the seven classes
(background, then :data:`aoi.types.DEFECT_CLASSES`) at output stride :data:`OUTPUT_STRIDE`.

Design (sized for the ~20 ms that a 2-core CPU may spend on the network at 640x640):

- Normalisation sits inside the graph (uint8 in, ``/255`` here), so the host copies bytes only.
- The difference ``test - template`` is fed in beside both images: a defect *is* the difference,
  and the images themselves tell copper from substrate (an open and a short differ in sign only).
- A stride-2 stem and depthwise-separable blocks keep the cost low; a stride-8 stage with dilated
  blocks gives the context that tells an open from a mousebite or a spur from spurious copper.
- A two-step decoder brings the stride-8 context back to stride 4 and then to stride 2, where the
  head predicts; small defects (pin-holes of a few pixels) keep a usable footprint there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

#: Background plus the six bare-board defect classes, in aoi.types.DEFECT_CLASSES order.
NUM_CLASSES = 7
#: Input pixels per output pixel along each axis.
OUTPUT_STRIDE = 2
#: H and W of the input must be multiples of this (the station's contract; the net needs 8).
SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class NetConfig:
    """Widths and depths of :class:`AoiDefectNet` (the TOML config's ``[model]`` table).

    The defaults are aoi-defect-v1's: 66k parameters, 684 M MACs at 640x640.
    """

    stem_channels: int = 16
    mid_channels: int = 48
    deep_channels: int = 96
    mid_blocks: int = 3
    deep_dilations: tuple[int, ...] = (1, 2, 4, 8)
    fine_block: bool = True

    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> NetConfig:
        """Build a config from a TOML table, rejecting unknown keys by name."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"[model] has unknown keys {unknown}; expected some of {sorted(known)}"
            raise ValueError(msg)
        kwargs = dict(values)
        if "deep_dilations" in kwargs:
            dilations = kwargs["deep_dilations"]
            assert isinstance(dilations, Sequence)
            kwargs["deep_dilations"] = tuple(int(d) for d in dilations)
        return cls(**kwargs)  # type: ignore[arg-type]


class ConvBnAct(nn.Sequential):
    """A convolution followed by batch norm and ReLU (BN folds into the conv at inference)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        padding = dilation * (kernel - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (optionally strided or dilated) then pointwise 1x1, BN and ReLU."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1, act: bool = True
    ) -> None:
        super().__init__(
            ConvBnAct(in_ch, in_ch, 3, stride=stride, dilation=dilation, groups=in_ch, act=False),
            ConvBnAct(in_ch, out_ch, 1, act=act),
        )


class ResidualBlock(nn.Module):
    """A separable conv added to its input, then ReLU."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = SeparableConv(channels, channels, dilation=dilation, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv(x))


class PairStem(nn.Module):
    """Stride-2 3x3 conv over (test, template, test - template), reading the raw 0..255 pair.

    The difference channel and the ``/255`` are linear, so they are folded into the weights of one
    two-channel convolution on the fly; the ONNX export constant-folds that, leaving Cast -> Conv.
    """

    def __init__(self, out_ch: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, 3, 3, 3))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, boards: torch.Tensor) -> torch.Tensor:
        w_test, w_template, w_diff = self.weight[:, 0:1], self.weight[:, 1:2], self.weight[:, 2:3]
        folded = torch.cat([w_test + w_diff, w_template - w_diff], dim=1) * (1.0 / 255.0)
        x = F.conv2d(boards.float(), folded, stride=2, padding=1)
        return F.relu(self.bn(x))


class AoiDefectNet(nn.Module):
    """Per-pixel defect classifier for a (registered test, golden template) uint8 image pair."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        cfg = config or NetConfig()
        self.config = cfg
        c1, c2, c3 = cfg.stem_channels, cfg.mid_channels, cfg.deep_channels
        self.stem = PairStem(c1)  # stride 2
        self.fine = SeparableConv(c1, c1) if cfg.fine_block else nn.Identity()
        self.down_mid = SeparableConv(c1, c2, stride=2)  # stride 4
        self.mid = nn.Sequential(*(ResidualBlock(c2) for _ in range(cfg.mid_blocks)))
        self.down_deep = SeparableConv(c2, c3, stride=2)  # stride 8
        self.deep = nn.Sequential(*(ResidualBlock(c3, d) for d in cfg.deep_dilations))
        self.lift_deep = ConvBnAct(c3, c2, 1, act=False)
        self.fuse_mid = ResidualBlock(c2)
        self.head_mid = nn.Conv2d(c2, NUM_CLASSES, 1)
        self.head_fine = nn.Conv2d(c1, NUM_CLASSES, 1)

    def logits(self, boards: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, 7, H/2, W/2]`` for uint8 (or 0..255 float) ``boards [N, 2, H, W]``."""
        s2 = self.stem(boards)
        s4 = self.mid(self.down_mid(s2))
        s8 = self.deep(self.down_deep(s4))
        up4 = F.interpolate(self.lift_deep(s8), scale_factor=2.0, mode="nearest")
        s4 = self.fuse_mid(F.relu(s4 + up4))
        coarse = F.interpolate(self.head_mid(s4), scale_factor=2.0, mode="bilinear")
        return self.head_fine(self.fine(s2)) + coarse

    def forward(self, boards: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``probs [N, 7, H/2, W/2]`` (softmax over dim 1)."""
        return channel_softmax(self.logits(boards))


def channel_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 spelled out with reductions.

    ONNX Runtime's ``Softmax`` over a non-last axis of an NCHW tensor transposes internally and
    took 15 ms of a 2-core CPU at 640x640, more than all convolutions together; these five
    element-wise ops take well under a millisecond.
    """
    shifted = logits - logits.amax(dim=1, keepdim=True)
    exp = shifted.exp()
    return exp / exp.sum(dim=1, keepdim=True)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of the conv layers for one ``height x width`` input (no extra deps).

    Hooks every ``nn.Conv2d``, runs one forward pass on zeros and adds
    ``out_pixels * out_channels * (in_channels / groups) * kernel_area`` per layer. Element-wise
    work (BN folds away; ReLU, adds, upsampling, softmax) is not counted.
    """
    total = 0

    def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        per_pixel = module.out_channels * (module.in_channels // module.groups) * kh * kw
        total += int(output.shape[-2] * output.shape[-1]) * per_pixel

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, 2, height, width, dtype=torch.uint8, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
