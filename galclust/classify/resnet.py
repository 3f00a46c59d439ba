"""The residual network and its tensor plumbing for :mod:`galclust.classify.cnn`.

BasicBlocks (He et al. 2016) sized for CPUs, the dihedral group D4 and shifts as
augmentation, the robust per-band normalisation with one shared asinh scale, the
resampling to the network's input size, and a chunked forward pass.

A catalog cutout is centred on its source, and a neighbour is often brighter
than it. A plain ResNet ends in a global average pool, and its receptive field
(~25 px at 64 px) cannot tell the centre from the neighbour; so the *centred*
network (the default) knows where the centre is, three ways, all invariant
under D4:

- a radius channel ``r / (side / 2)`` beside the bands (CoordConv, Liu et al.
  2018);
- a centre-weighted pool (Gaussian, sigma a quarter of the last feature map)
  beside the global one;
- Gaussian-aperture photometry of the input, in three apertures (sigma 3, 6
  and 12 % of the side): per band the asinh of the aperture mean of
  ``sinh(input)`` and the adjacent-band differences (colours), batch-normalised
  and joined to the pooled features before a one-hidden-layer head. A linear
  head on pooled convolution features cannot form a ratio of integrated fluxes;
  membership is a band in colour and magnitude.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_DROPOUT = 0.2
_PREP_CHUNK = 64            # cutouts preprocessed at once (bounds memory on big stamps)
_FORWARD_CHUNK = 16         # cutouts per forward pass (faster than big batches on CPU)
_STAT_PIXELS = 4_000_000    # pixels per band used for the robust centre and scale


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


_APERTURES = (0.03, 0.06, 0.12)   # Gaussian aperture sigmas, fractions of the input side
_CENTRE_POOL = 0.25               # sigma of the centre-weighted pool, fraction of the map side
_PHOT_SOFTENING = 0.05            # asinh softening of aperture means (normalised units)
_HIDDEN = 32                      # hidden units of the centred network's head


def _radius2(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """Squared distance from the map centre in units of the side, shape (h, w)."""
    yy = (torch.arange(h, dtype=like.dtype) - (h - 1) / 2) / h
    xx = (torch.arange(w, dtype=like.dtype) - (w - 1) / 2) / w
    return yy[:, None] ** 2 + xx[None, :] ** 2


def _gaussian(h: int, w: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    g = torch.exp(-_radius2(h, w, like) / (2 * sigma * sigma))
    return g / g.sum()


class _AddRadius(nn.Module):
    """Append the radius from the centre, ``r / (side / 2)``, as one more channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        r = (2 * _radius2(h, w, x).sqrt()).expand(n, 1, h, w)
        return torch.cat([x, r], 1)


class _Photometry(nn.Module):
    """Per band and aperture, ``asinh(mean_aperture(sinh x) / softening)``, then the
    adjacent-band differences: (n, bands * A + (bands - 1) * A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        f = torch.sinh(x)
        m = torch.stack([torch.asinh((f * _gaussian(h, w, s, x)).sum((-2, -1)) / _PHOT_SOFTENING)
                         for s in _APERTURES], -1)
        return torch.cat([m.flatten(1), (m[:, :-1] - m[:, 1:]).flatten(1)], 1)


class _CentredNet(nn.Module):
    """Residual body on (bands + radius), global and centre-weighted pools, aperture
    photometry, and a one-hidden-layer head (module docstring)."""

    def __init__(self, body: nn.Module, channels: int, n_bands: int, n_classes: int) -> None:
        super().__init__()
        self.radius, self.body, self.photometry = _AddRadius(), body, _Photometry()
        n_phot = (2 * n_bands - 1) * len(_APERTURES)
        self.phot_norm = nn.BatchNorm1d(n_phot)
        self.head = nn.Sequential(nn.Dropout(_DROPOUT), nn.Linear(2 * channels + n_phot, _HIDDEN),
                                  nn.ReLU(inplace=True), nn.Linear(_HIDDEN, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.body(self.radius(x))
        h, w = z.shape[-2:]
        pooled = torch.cat([z.mean((-2, -1)),
                            (z * _gaussian(h, w, _CENTRE_POOL, z)).sum((-2, -1))], 1)
        return self.head(torch.cat([pooled, self.phot_norm(self.photometry(x))], 1))


def _build_net(config: Any, n_bands: int, n_classes: int) -> nn.Module:
    """The network of ``config``: centred (default) or a plain ResNet (models saved before
    the centred one, or ``centred=False``; :meth:`FittedCNN.from_bytes` sets the flag)."""
    w, centred = config.width, config.centred
    layers: list[nn.Module] = [nn.Conv2d(n_bands + int(centred), w, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
    c = w
    for stage, n_blocks in enumerate(config.blocks):
        c_out = w * 2 ** stage
        for i in range(n_blocks):
            layers.append(_BasicBlock(c, c_out, 2 if stage > 0 and i == 0 else 1))
            c = c_out
    if centred:
        net: nn.Module = _CentredNet(nn.Sequential(*layers), c, n_bands, n_classes)
    else:
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(_DROPOUT),
                   nn.Linear(c, n_classes)]
        net = nn.Sequential(*layers)
    return net.to(memory_format=torch.channels_last)


@contextlib.contextmanager
def _torch_env(threads: int, seed: int | None = None) -> Iterator[None]:
    """Bound torch's threads; with a seed, also seed its global RNG and ask for deterministic
    kernels. Everything is restored on exit."""
    old = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
           torch.is_deterministic_algorithms_warn_only_enabled())
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
                torch.use_deterministic_algorithms(True, warn_only=True)
            yield
    finally:
        torch.set_num_threads(old[0])
        if seed is not None:
            torch.use_deterministic_algorithms(old[1], warn_only=old[2])


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element ``k`` (0..7) of D4 on the last two axes: a flip if k >= 4, then k % 4 rotations."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def _augment(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """A random D4 element and a random shift (zero padded) per sample."""
    g = torch.randint(0, 8, (x.shape[0],), generator=gen)
    out = torch.empty_like(x)
    for k in range(8):
        sel = g == k
        if bool(sel.any()):
            out[sel] = _dihedral(x[sel], k)
    if max_shift > 0:
        s, (h, w) = max_shift, x.shape[-2:]
        padded = F.pad(out, (s, s, s, s))
        d = torch.randint(0, 2 * s + 1, (x.shape[0], 2), generator=gen).tolist()
        out = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(d)])
    return out


def _resize(t: torch.Tensor, size: int) -> torch.Tensor:
    """Area-average down (bilinear up) to ``size`` x ``size``; commutes with flips."""
    h, w = t.shape[-2:]
    if (h, w) == (size, size):
        return t
    if h > size or w > size:
        t = F.adaptive_avg_pool2d(t, (min(h, size), min(w, size)))
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t


def _robust_stats(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band, over the finite pixels of ``X[rows]``: median and 1.4826 MAD (falling back
    to the mean absolute deviation, then 1, when more than half the pixels are equal)."""
    _, n_bands, h, w = X.shape
    step = max(1, math.ceil(math.sqrt(len(rows) * h * w / _STAT_PIXELS)))
    centre, scale = np.zeros(n_bands), np.ones(n_bands)
    for b in range(n_bands):
        v = np.asarray(X[rows, b, ::step, ::step], dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        centre[b] = np.median(v)
        dev = np.abs(v - centre[b])
        for s in (1.4826 * np.median(dev), 1.2533 * dev.mean()):
            if s > 1e-12 * max(1.0, abs(centre[b])):
                scale[b] = s
                break
    return centre, scale


def _preprocess(X: np.ndarray, centre: np.ndarray, scale: np.ndarray, size: int) -> torch.Tensor:
    """``asinh((X - centre) / scale)`` (non-finite pixels -> 0, i.e. the band's median level),
    resampled to a float32 tensor (n, band, size, size). Numpy: its arcsinh is ~10x torch's."""
    c = np.asarray(centre, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(scale, dtype=np.float32).reshape(1, -1, 1, 1)
    out = []
    with np.errstate(all="ignore"):
        for i in range(0, len(X), _PREP_CHUNK):
            a = np.array(X[i:i + _PREP_CHUNK], dtype=np.float32)
            a -= c
            a /= s
            np.arcsinh(np.nan_to_num(a, copy=False, nan=0.0, posinf=0.0, neginf=0.0), out=a)
            out.append(_resize(torch.from_numpy(a), size))
    return torch.cat(out)


def _forward(net: nn.Module, x: torch.Tensor, n_t: int = 1) -> torch.Tensor:
    """Logits (n, n_t, K) of the first ``n_t`` dihedral transforms, in chunks of a few
    cutouts (faster on CPU caches), channels-last."""
    return torch.stack([torch.cat([
        net(_dihedral(x[i:i + _FORWARD_CHUNK], k).contiguous(memory_format=torch.channels_last))
        for i in range(0, len(x), _FORWARD_CHUNK)]) for k in range(n_t)], dim=1)


