"""CIFAR-style residual networks (post-activation basic blocks).

Block: ``y = act(BN(conv(act(BN(conv(x))))) + shortcut(x))`` with a 1x1 conv + BN
shortcut where shape changes.  In the SNN the add happens on membrane inputs and the
block's output is spikes (the spiking-ResNet form), so each stage ends in a neuron.
"""

from __future__ import annotations

from torch import nn

from snnkd.models.base import ActFactory, ClassifierHead, StagedNet
from snnkd.models.registry import register_model


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act_layer: ActFactory) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.act1 = act_layer()
        self.conv2 = conv_bn(cout, cout, 3, 1)
        self.shortcut = conv_bn(cin, cout, 1, stride) if (stride != 1 or cin != cout) else nn.Identity()
        self.act2 = act_layer()

    def forward(self, x):
        return self.act2(self.conv2(self.act1(self.conv1(x))) + self.shortcut(x))


class CifarResNet(StagedNet):
    """Stem ``conv3x3-BN-act`` then stages ``layer1..layerN`` of basic blocks, GAP + fc
    (or, with ``head="flatten"``, fc over the whole last map of an ``img_size`` input).

    ``widths`` may give one width per stage or one per block (PyramidNet)."""

    def __init__(self, blocks: list[int], widths: list[int] | list[list[int]], stem: int,
                 act_layer: ActFactory, num_classes: int, in_chans: int,
                 strides: list[int] | None = None, head: str = "gap", img_size: int = 0) -> None:
        super().__init__()
        strides = strides or [1] + [2] * (len(blocks) - 1)
        self.stem = nn.Sequential(*conv_bn(in_chans, stem, 3, 1), act_layer())
        self.stages = nn.ModuleDict()
        self.feature_info = []
        cin, red = stem, 1
        for i, (n, s) in enumerate(zip(blocks, strides)):
            w = widths[i]
            per_block = w if isinstance(w, list) else [w] * n
            layers = []
            for j in range(n):
                layers.append(BasicBlock(cin, per_block[j], s if j == 0 else 1, act_layer))
                cin = per_block[j]
            red *= s
            name = f"layer{i + 1}"
            self.stages[name] = nn.Sequential(*layers)
            self.feature_info.append({"name": name, "channels": cin, "reduction": red})
        feats = cin if head == "gap" else cin * (img_size // red) ** 2
        self.head = ClassifierHead(feats, num_classes, head)


@register_model
def resnet18(act_layer, num_classes, in_chans, img_size):
    return CifarResNet([2, 2, 2, 2], [64, 128, 256, 512], 64, act_layer, num_classes, in_chans)


@register_model
def resnet34(act_layer, num_classes, in_chans, img_size):
    return CifarResNet([3, 4, 6, 3], [64, 128, 256, 512], 64, act_layer, num_classes, in_chans)


@register_model
def resnet19(act_layer, num_classes, in_chans, img_size):
    """ResNet-19 of TET/CKDSNN: stem 128, stages [3, 3, 2] at 128/256/512 (GAP + fc head)."""
    return CifarResNet([3, 3, 2], [128, 256, 512], 128, act_layer, num_classes, in_chans)


@register_model
def resnet20(act_layer, num_classes, in_chans, img_size):
    return CifarResNet([3, 3, 3], [16, 32, 64], 16, act_layer, num_classes, in_chans)


@register_model
def resnet14(act_layer, num_classes, in_chans, img_size):
    return CifarResNet([2, 2, 2], [16, 32, 64], 16, act_layer, num_classes, in_chans)


@register_model
def wrn16_2(act_layer, num_classes, in_chans, img_size):
    """Wide ResNet depth 16, widen 2 (2 blocks per stage at 32/64/128), post-activation
    blocks so every stage ends in a neuron (our variant of the pre-activation WRN)."""
    return CifarResNet([2, 2, 2], [32, 64, 128], 16, act_layer, num_classes, in_chans)


@register_model
def wrn28_4(act_layer, num_classes, in_chans, img_size):
    """Wide ResNet depth 28, widen 4 (4 blocks per stage at 64/128/256), post-activation."""
    return CifarResNet([4, 4, 4], [64, 128, 256], 16, act_layer, num_classes, in_chans)


@register_model
def pyramidnet18(act_layer, num_classes, in_chans, img_size):
    """PyramidNet-18 (our definition: 8 basic blocks in 4 stages, width growing linearly
    from 64 by 56 per block to 512 (alpha = 448), 1x1-conv projection shortcuts)."""
    widths = [[64 + 56 * (2 * i + j + 1) for j in range(2)] for i in range(4)]
    return CifarResNet([2, 2, 2, 2], widths, 64, act_layer, num_classes, in_chans)


@register_model
def resnet_tiny(act_layer, num_classes, in_chans, img_size):
    """Small ResNet for 8x8 digits and tests: stem 16, two stages of one block at 16/32."""
    return CifarResNet([1, 1], [16, 32], 16, act_layer, num_classes, in_chans)


@register_model
def resnet_tiny_wide(act_layer, num_classes, in_chans, img_size):
    """Teacher-sized tiny ResNet for 8x8 digits: stem 32, stages [1, 1] at 32/64."""
    return CifarResNet([1, 1], [32, 64], 32, act_layer, num_classes, in_chans)


@register_model
def resnet_fm(act_layer, num_classes, in_chans, img_size):
    """Small ResNet for 28x28 (Fashion-)MNIST: stem 16, stages [1, 1] at 16/32, both
    stride 2 (28 -> 14 -> 7), so an SNN at T = 4 trains in minutes on 2 CPU cores.

    The head is fc over the whole 32x7x7 map, not global average pooling: averaging 32
    channels of binary spike maps over 7x7 positions is a bottleneck a spiking student
    barely learns through.  Measured (``benchmarks/spiking_resnet.py``, real MNIST, 5,400
    training images, 2 epochs, SGD lr 0.05, IF T = 2): GAP head 40.5 % validation accuracy
    (spikingjelly's same network 43.2 %), 32x3x3 pooled head 92.0 %, this head 94.5 %,
    against 90.5 % (GAP) and 96.5 % (this head) for the ANN."""
    return CifarResNet([1, 1], [16, 32], 16, act_layer, num_classes, in_chans, strides=[2, 2],
                       head="flatten", img_size=img_size)


@register_model
def resnet_fm_wide(act_layer, num_classes, in_chans, img_size):
    """Teacher-sized :func:`resnet_fm`: stem 32, stages [1, 1] at 32/64, stride 2 each."""
    return CifarResNet([1, 1], [32, 64], 32, act_layer, num_classes, in_chans, strides=[2, 2])
