"""VGG with BatchNorm, and the 2-conv MNIST net of KDSNN (Xu et al., CVPR 2023).

A stage is ``[downsample] (conv3x3-BN-act)*n``.  Downsampling is average pooling
(``pool="avg"``; average rather than max so the SNN's pooled spikes stay a rate) or a
stride-2 first conv (``pool="stride"``: netx/Loihi cannot express pooling).
"""

from __future__ import annotations

from torch import nn

from snnkd.models.base import ActFactory, ClassifierHead, StagedNet
from snnkd.models.registry import register_model

VGG11 = [[64], [128], [256, 256], [512, 512], [512, 512]]
VGG16 = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


class VGG(StagedNet):
    def __init__(self, cfg: list[list[int]], act_layer: ActFactory, num_classes: int, in_chans: int,
                 img_size: int, pool: str = "avg", head: str = "gap", hidden: int = 0) -> None:
        super().__init__()
        self.stem = nn.Identity()
        self.stages = nn.ModuleDict()
        self.feature_info = []
        cin, red = in_chans, 1
        for i, widths in enumerate(cfg):
            layers: list[nn.Module] = []
            down = i > 0
            if down and pool == "avg":
                layers.append(nn.AvgPool2d(2))
            for j, w in enumerate(widths):
                stride = 2 if (down and pool == "stride" and j == 0) else 1
                layers += [nn.Conv2d(cin, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w), act_layer()]
                cin = w
            red *= 2 if down else 1
            name = f"block{i + 1}"
            self.stages[name] = nn.Sequential(*layers)
            self.feature_info.append({"name": name, "channels": cin, "reduction": red})
        side = max(img_size // red // (2 if head == "pool2" else 1), 1)
        in_features = cin if head == "gap" else cin * side * side
        self.head = ClassifierHead(in_features, num_classes, head, hidden, act_layer)


@register_model
def vgg11(act_layer, num_classes, in_chans, img_size):
    return VGG(VGG11, act_layer, num_classes, in_chans, img_size)


@register_model
def vgg16(act_layer, num_classes, in_chans, img_size):
    return VGG(VGG16, act_layer, num_classes, in_chans, img_size)


@register_model
def vgg_tiny(act_layer, num_classes, in_chans, img_size):
    """Small sequential VGG for 8x8 digits that runs on Loihi as-is: strided convs, no
    pooling, flatten + fc head (netx expresses all of it)."""
    return VGG([[16], [32]], act_layer, num_classes, in_chans, img_size, pool="stride", head="flatten")


@register_model
def mnist_2conv(act_layer, num_classes, in_chans, img_size):
    """Seed 001's MNIST '2conv-2pool' net (our definition matching its 7.39M parameters
    at 28x28): conv 128 - pool - conv 128 - pool - fc 1152 - fc K."""
    return VGG([[128], [128]], act_layer, num_classes, in_chans, img_size, pool="avg", head="pool2", hidden=1152)
