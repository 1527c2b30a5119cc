"""The TorchScript weights mapped onto pytorch-fid's network give the TorchScript module's features."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def test_mapping_covers_all_94_layers() -> None:
    from diffedit.metrics.inception import build_fid_inception, tf_to_torchvision_names

    names = tf_to_torchvision_names()
    assert len(names) == 94 and len(set(names.values())) == 94
    convs = {k.removesuffix(".conv.weight") for k in build_fid_inception().state_dict() if k.endswith(".conv.weight")}
    assert convs == set(names.values())


def test_features_equal_torchscript_on_real_images(extractor: Any, photos: list[np.ndarray]) -> None:
    import torch
    import torch.nn.functional as F  # noqa: N812

    ts = torch.jit.load(str(extractor.source.path), map_location="cpu").eval()
    ours = extractor.extract(photos[:2], 2).pool
    x = torch.cat([torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255 for im in photos[:1]])
    x2 = torch.from_numpy(photos[1]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        ref = [ts(2 * F.interpolate(t, size=(299, 299), mode="bilinear", align_corners=False) - 1)
               for t in (x, x2)]
    ref_np = torch.cat(ref).double().numpy()
    assert ours.shape == (2, 2048)
    assert np.max(np.abs(ours - ref_np)) <= 1e-5 * np.max(np.abs(ref_np))
    assert not extractor.has_logits


def test_missing_weights_say_how_to_get_them(tmp_path: Any) -> None:
    from diffedit.metrics.weights import WeightsError, resolve_weights

    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(tmp_path / "nope.pth")


def test_torchscript_that_is_not_the_pinned_file_is_refused(tmp_path) -> None:
    import pytest

    from diffedit.metrics.inception import state_dict_from_torchscript

    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the inception file")
    with pytest.raises(ValueError, match="refusing to load TorchScript"):
        state_dict_from_torchscript(fake)
