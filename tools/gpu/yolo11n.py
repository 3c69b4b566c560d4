"""YOLO11n written out by hand in PyTorch, for a model-alone latency peer (issue 15).

The architecture of ultralytics' ``yolo11.yaml`` at scale n (depth 0.50, width 0.25, max
channels 1024): Conv, C3k2, SPPF, C2PSA and the Detect head with DFL, 80 classes. Random
weights: latency depends on the architecture only. No ultralytics code is used or needed.

    python3 tools/gpu/yolo11n.py --onnx /tmp/yolo11n.onnx     # prints params and GFLOPs

The public card gives 2.6M parameters and 6.5 GFLOPs at 640 (BatchNorm fused); unfused the
summary reads 2,624,080 parameters and 6.6 GFLOPs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch import nn


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm + SiLU, padding k // 2."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, k=(3, 3), e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0])
        self.cv2 = Conv(c_, c2, k[1])
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3k(nn.Module):
    """C3 with 3x3 bottlenecks (n=2 inside C3k2)."""

    def __init__(self, c1: int, c2: int, n: int = 2, shortcut: bool = True, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, (3, 3), 1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k2(nn.Module):
    """C2f whose inner blocks are Bottlenecks, or C3k blocks when ``c3k``."""

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(
            C3k(self.c, self.c, 2, True) if c3k else Bottleneck(self.c, self.c, True)
            for _ in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, attn_ratio: float = 0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (
            self.qkv(x)
            .view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
            .split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        )
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


class PSABlock(nn.Module):
    def __init__(self, c: int, num_heads: int):
        super().__init__()
        self.attn = Attention(c, num_heads, 0.5)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    def __init__(self, c1: int, n: int = 1, e: float = 0.5):
        super().__init__()
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, self.c // 64) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class Detect(nn.Module):
    """YOLO11's anchor-free head: per level a box branch (DFL, reg_max 16) and a class branch
    of depthwise-separable convs; output (B, 4 + nc, anchors) in pixels, as exported."""

    def __init__(self, nc: int, ch: tuple[int, ...], strides=(8, 16, 32)):
        super().__init__()
        self.nc, self.reg_max, self.strides = nc, 16, strides
        c2, c3 = max(16, ch[0] // 4, 4 * self.reg_max), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1))
            for x in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(
                nn.Sequential(Conv(x, x, 3, g=x), Conv(x, c3, 1)),
                nn.Sequential(Conv(c3, c3, 3, g=c3), Conv(c3, c3, 1)),
                nn.Conv2d(c3, nc, 1),
            )
            for x in ch
        )
        self.dfl = nn.Conv2d(self.reg_max, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(self.reg_max, dtype=torch.float).view(1, -1, 1, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        b = xs[0].shape[0]
        outs, anchors, strides = [], [], []
        for i, x in enumerate(xs):
            outs.append(torch.cat((self.cv2[i](x), self.cv3[i](x)), 1))
            h, w = x.shape[2:]
            sy, sx = torch.meshgrid(
                torch.arange(h, dtype=x.dtype, device=x.device) + 0.5,
                torch.arange(w, dtype=x.dtype, device=x.device) + 0.5,
                indexing="ij",
            )
            anchors.append(torch.stack((sx, sy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), self.strides[i], dtype=x.dtype, device=x.device))
        y = torch.cat([o.view(b, 4 * self.reg_max + self.nc, -1) for o in outs], 2)
        anchor = torch.cat(anchors).transpose(0, 1).unsqueeze(0)
        stride = torch.cat(strides).transpose(0, 1)
        box, cls = y.split((4 * self.reg_max, self.nc), 1)
        n = box.shape[2]
        dist = self.dfl(box.view(b, 4, self.reg_max, n).transpose(2, 1).softmax(1)).view(b, 4, n)
        lt, rb = dist.chunk(2, 1)
        x1y1, x2y2 = anchor - lt, anchor + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
        return torch.cat((dbox, cls.sigmoid()), 1)


def _ch(c: int, width: float = 0.25, max_channels: int = 1024) -> int:
    """Channels at scale n (ultralytics' make_divisible to 8)."""
    return int(math.ceil(min(c, max_channels) * width / 8) * 8)


class YOLO11n(nn.Module):
    """yolo11.yaml at scale n; C3k2's repeats are max(round(2 * 0.50), 1) = 1."""

    def __init__(self, nc: int = 80):
        super().__init__()
        c = _ch
        self.b0 = Conv(3, c(64), 3, 2)
        self.b1 = Conv(c(64), c(128), 3, 2)
        self.b2 = C3k2(c(128), c(256), 1, False, 0.25)
        self.b3 = Conv(c(256), c(256), 3, 2)
        self.b4 = C3k2(c(256), c(512), 1, False, 0.25)
        self.b5 = Conv(c(512), c(512), 3, 2)
        self.b6 = C3k2(c(512), c(512), 1, True)
        self.b7 = Conv(c(512), c(1024), 3, 2)
        self.b8 = C3k2(c(1024), c(1024), 1, True)
        self.b9 = SPPF(c(1024), c(1024), 5)
        self.b10 = C2PSA(c(1024), 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h13 = C3k2(c(1024) + c(512), c(512), 1, False)
        self.h16 = C3k2(c(512) + c(512), c(256), 1, False)
        self.h17 = Conv(c(256), c(256), 3, 2)
        self.h19 = C3k2(c(256) + c(512), c(512), 1, False)
        self.h20 = Conv(c(512), c(512), 3, 2)
        self.h22 = C3k2(c(512) + c(1024), c(1024), 1, True)
        self.detect = Detect(nc, (c(256), c(512), c(1024)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.b4(self.b3(self.b2(self.b1(self.b0(x)))))
        p4 = self.b6(self.b5(p3))
        p5 = self.b10(self.b9(self.b8(self.b7(p4))))
        h13 = self.h13(torch.cat((self.up(p5), p4), 1))
        h16 = self.h16(torch.cat((self.up(h13), p3), 1))
        h19 = self.h19(torch.cat((self.h17(h16), h13), 1))
        h22 = self.h22(torch.cat((self.h20(h19), p5), 1))
        return self.detect([h16, h19, h22])


def gflops(model: nn.Module, size: int = 640) -> float:
    """GFLOPs of one 1x3xSxS forward as ultralytics counts them (2 x multiply-adds)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def main() -> None:
    """Build, count, optionally export to ONNX at 1x3x640x640."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = YOLO11n().eval()
    params = sum(p.numel() for p in model.parameters())
    out = {"params": params, "gflops_640": round(gflops(model), 3)}
    with torch.no_grad():
        out["output_shape"] = list(model(torch.zeros(1, 3, 640, 640)).shape)
    if args.onnx:
        x = torch.zeros(1, 3, 640, 640)
        try:
            torch.onnx.export(
                model,
                x,
                str(args.onnx),
                input_names=["images"],
                output_names=["output0"],
                opset_version=17,
                dynamo=False,
            )
        except TypeError:  # a torch without the dynamo switch
            torch.onnx.export(
                model,
                x,
                str(args.onnx),
                input_names=["images"],
                output_names=["output0"],
                opset_version=17,
            )
        out["onnx"] = str(args.onnx)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
