"""A test plug-in network: a small CNN for any image shape and number of classes."""

from torch import nn


def TinyNet(in_shape, n_classes, width):  # noqa: N802 (named like the class it stands for)
    c, h, w = in_shape
    return nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(width * (h // 2) * (w // 2), 64),
        nn.ReLU(),
        nn.Linear(64, n_classes),
    )


def wrong_shape(in_shape, n_classes, width):
    """Returns one logit too many: the first training job must refuse it."""
    return TinyNet(in_shape, n_classes + 1, width)
