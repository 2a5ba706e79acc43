"""Models the seeds' tables need beyond the common families.

* ``preresnet20`` — KDSNN Tab. 1 teacher: pre-activation ResNet-20
  (He et al. 2016): blocks ``y = x' + conv(act(BN(conv(act(BN(x))))))``, stages
  [3, 3, 3] at 16/32/64, and a final ``BN-act`` closing the last stage.
* ``resnet18_imagenet`` — BKDSNN teacher: ResNet-18 with the ImageNet stem
  (7x7 stride-2 conv, BN, act, 3x3 stride-2 max pool), basic blocks at 64..512.
* ``sew_resnet18`` — BKDSNN student: SEW-ResNet-18 (Fang et al. 2021), ImageNet stem,
  spike-element-wise blocks with the ADD connection:
  ``y = act(BN(conv(act(BN(conv(x)))))) + shortcut(x)``, the shortcut being the identity
  or ``act(BN(conv1x1(x)))``; so a stage's output is a sum of spike maps.
* ``mnist_2conv_s`` — KDSNN's MNIST 2-conv net scaled down for CPU runs: convs
  32/32 instead of 128/128 and a 256-unit hidden layer instead of 1152.
"""

from __future__ import annotations

from torch import nn

from snnkd.models.base import ActFactory, ClassifierHead, StagedNet
from snnkd.models.registry import register_model
from snnkd.models.resnet import BasicBlock, conv_bn
from snnkd.models.vgg import VGG


class PreActBlock(nn.Module):
    """``y = shortcut(x) + conv2(act2(BN2(conv1(act1(BN1(x))))))``; the projection shortcut
    (1x1 conv) reads the pre-activated input, as in He et al.'s pre-activation ResNet."""

    def __init__(self, cin: int, cout: int, stride: int, act_layer: ActFactory) -> None:
        super().__init__()
        self.bn1, self.act1 = nn.BatchNorm2d(cin), act_layer()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.act2 = nn.BatchNorm2d(cout), act_layer()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        a = self.act1(self.bn1(x))
        skip = self.shortcut(a) if self.shortcut is not None else x
        return skip + self.conv2(self.act2(self.bn2(self.conv1(a))))


class SEWBlock(nn.Module):
    """Spike-element-wise basic block, ADD connection (the output is not re-spiked)."""

    def __init__(self, cin: int, cout: int, stride: int, act_layer: ActFactory) -> None:
        super().__init__()
        self.conv1, self.act1 = conv_bn(cin, cout, 3, stride), act_layer()
        self.conv2, self.act2 = conv_bn(cout, cout, 3, 1), act_layer()
        self.shortcut = (nn.Sequential(*conv_bn(cin, cout, 1, stride), act_layer())
                         if (stride != 1 or cin != cout) else nn.Identity())

    def forward(self, x):
        return self.act2(self.conv2(self.act1(self.conv1(x)))) + self.shortcut(x)


class StagedResNet(StagedNet):
    """``stem -> layer1..layerN (blocks of one kind) -> GAP + fc``.

    ``binary_stages`` is False when a stage's output is a sum (pre-activation and SEW-ADD
    blocks): as an SNN it carries spike counts or membrane inputs, not 0/1 spikes."""

    def __init__(self, block: type[nn.Module], blocks: list[int], widths: list[int], stem: nn.Module,
                 stem_out: int, stem_red: int, act_layer: ActFactory, num_classes: int,
                 closing: nn.Module | None = None, binary_stages: bool = True) -> None:
        super().__init__()
        self.binary_stages = binary_stages
        self.stem = stem
        self.stages = nn.ModuleDict()
        self.feature_info = []
        cin, red = stem_out, stem_red
        for i, (n, w) in enumerate(zip(blocks, widths)):
            s = 1 if i == 0 else 2
            layers = [block(cin if j == 0 else w, w, s if j == 0 else 1, act_layer) for j in range(n)]
            if closing is not None and i == len(blocks) - 1:
                layers.append(closing)
            cin, red = w, red * s
            self.stages[f"layer{i + 1}"] = nn.Sequential(*layers)
            self.feature_info.append({"name": f"layer{i + 1}", "channels": w, "reduction": red})
        self.head = ClassifierHead(cin, num_classes, "gap")


def imagenet_stem(in_chans: int, act_layer: ActFactory) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), act_layer(),
                         nn.MaxPool2d(3, 2, 1))


@register_model
def preresnet20(act_layer, num_classes, in_chans, img_size):
    stem = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
    closing = nn.Sequential(nn.BatchNorm2d(64), act_layer())
    return StagedResNet(PreActBlock, [3, 3, 3], [16, 32, 64], stem, 16, 1, act_layer, num_classes, closing,
                        binary_stages=False)


@register_model
def resnet18_imagenet(act_layer, num_classes, in_chans, img_size):
    return StagedResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], imagenet_stem(in_chans, act_layer),
                        64, 4, act_layer, num_classes)


@register_model
def sew_resnet18(act_layer, num_classes, in_chans, img_size):
    return StagedResNet(SEWBlock, [2, 2, 2, 2], [64, 128, 256, 512], imagenet_stem(in_chans, act_layer),
                        64, 4, act_layer, num_classes, binary_stages=False)


@register_model
def mnist_2conv_s(act_layer, num_classes, in_chans, img_size):
    return VGG([[32], [32]], act_layer, num_classes, in_chans, img_size, pool="avg", head="pool2", hidden=256)
