"""Networks: an MLP and a small CNN for small images, a fast airbench-style CNN and ResNet-18
(torchvision's, with the CIFAR stem) for 32x32 images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int):
        super().__init__()
        c, h, w = in_shape
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.net(x)


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head; for 8x8 to 28x28 grey images."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int):
        super().__init__()
        c = in_shape[0]
        self.features = nn.Sequential(
            _conv_bn(c, width),
            _conv_bn(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _ConvGroup(nn.Module):
    """conv -> pool -> BN -> GELU -> conv -> BN -> GELU, as in airbench."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(c_out, momentum=0.4, eps=1e-12)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out, momentum=0.4, eps=1e-12)
        for conv in (self.conv1, self.conv2):  # identity-like init: dirac on the first channels
            w = conv.weight.data
            nn.init.dirac_(w[: min(w.size(0), w.size(1))])
        for norm in (self.norm1, self.norm2):
            norm.weight.requires_grad_(False)  # scale is redundant before GELU + next conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class FastCNN(nn.Module):
    """An airbench94-style network (K. Jordan): a frozen 2x2 patch-whitening stem and three conv
    groups of widths (w/4, w, w); ~2M parameters at w=256. Call ``init_whitening`` with training
    images before training."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int):
        super().__init__()
        c = in_shape[0]
        stem = 2 * c * 4  # +/- eigenvectors of the 2x2 patch covariance
        self.whiten = nn.Conv2d(c, stem, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(
            _ConvGroup(stem, width // 4), _ConvGroup(width // 4, width), _ConvGroup(width, width)
        )
        self.head = nn.Linear(width, n_classes, bias=False)
        self.scale = 1 / 9  # logit temperature, as in airbench

    @torch.no_grad()
    def init_whitening(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2x2 patches of ``x`` (B, C, H, W), float."""
        c = x.shape[1]
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, c, 2, 2).float()
        flat = patches.reshape(len(patches), -1)  # (P, C*4)
        cov = flat.T @ flat / len(flat)
        evals, evecs = torch.linalg.eigh(cov)
        evecs = evecs.T.reshape(-1, c, 2, 2).flip(0) / torch.sqrt(evals.flip(0) + eps).view(-1, 1, 1, 1)
        self.whiten.weight.copy_(torch.cat([evecs, -evecs]).to(self.whiten.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))  # (B, 24, H-1, W-1) for RGB
        x = self.groups(x)  # (B, w, H/8, W/8)
        x = torch.amax(x, dim=(2, 3))  # global max pool
        return self.head(x) * self.scale


def resnet18(in_shape: tuple[int, int, int], n_classes: int, width: int) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max pool)."""
    import torchvision

    net = torchvision.models.resnet18(num_classes=n_classes)
    net.conv1 = nn.Conv2d(in_shape[0], 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def build(name: str, in_shape: tuple[int, int, int], n_classes: int, width: int) -> nn.Module:
    """The network ``name`` (a registry name, or a plug-in ``module:callable``) for images of
    ``in_shape`` (C, H, W) and ``n_classes`` classes."""
    from umia import plugins, registry

    if plugins.is_plugin(name):
        return plugins.load(name, "network")(in_shape, n_classes, width)
    if name not in registry.NETWORKS or registry.NETWORKS[name].task != "image":
        known = [n for n, spec in registry.NETWORKS.items() if spec.task == "image"]
        raise ValueError(f"unknown image network {name!r}; known: {', '.join(known)}")
    return plugins.load(registry.NETWORKS[name].builder, "network")(in_shape, n_classes, width)
