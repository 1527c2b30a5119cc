"""A Gaussian mixture whose exact denoiser is closed form: a model with no training error.

With x_t = a x0 + s eps (a = sqrt(alpha_bar(t)), s = sqrt(1 - alpha_bar(t))), each component k of
the mixture gives x_t ~ N(a mu_k, a^2 C_k + s^2 I), so E[x0 | x_t] is a responsibility-weighted sum
of Gaussian posterior means. A sampler driven by this model is only as wrong as its own
discretisation, which is what the accuracy tests and benchmarks/sampler_accuracy.py measure.
Used by the tests and the benchmark; torch for the model, numpy/scipy for the distances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import ndtr

# The schedules diffedit.diffusion.models.scheduler_config() gives our models (copied, so these
# measurements do not move when that module does): DDPM betas for pixels, Stable Diffusion's for
# latents, "leading" timestep spacing.
PIXEL_CONFIG = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "linear",
                "beta_start": 0.0001, "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": True,
                "timestep_spacing": "leading"}
LATENT_CONFIG = {**PIXEL_CONFIG, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                 "clip_sample": False}


@dataclass(frozen=True)
class GMM:
    """A mixture of full-covariance Gaussians in `dim` dimensions."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covs: np.ndarray  # (K, D, D)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def mean(self) -> np.ndarray:
        return self.weights @ self.means

    def cov(self) -> np.ndarray:
        m = self.mean()
        centred = self.means - m
        within = np.einsum("k,kij->ij", self.weights, self.covs)
        return within + np.einsum("k,ki,kj->ij", self.weights, centred, centred)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Exact samples (the floor any sampler can reach with n samples)."""
        rng = np.random.default_rng(seed)
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        chol = np.linalg.cholesky(self.covs)[k]
        return self.means[k] + np.einsum("nij,nj->ni", chol, rng.standard_normal((n, self.dim)))


def default_gmm(dim: int = 2, seed: int = 0) -> GMM:
    """Four unequal, anisotropic, well separated modes: few-step samplers visibly blur them."""
    rng = np.random.default_rng(seed)
    angles = np.array([0.3, 1.9, 3.4, 4.9])
    means = np.zeros((4, dim))
    means[:, 0], means[:, 1] = 1.6 * np.cos(angles), 1.6 * np.sin(angles)
    if dim > 2:
        means[:, 2:] = 0.5 * rng.standard_normal((4, dim - 2))
    covs = np.empty((4, dim, dim))
    for k, scale in enumerate([0.12, 0.2, 0.3, 0.16]):
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        stretch = np.linspace(1.0, 2.5, dim)
        covs[k] = (q * (scale * stretch) ** 2) @ q.T
    return GMM(np.array([0.4, 0.3, 0.2, 0.1]), means, covs)


class _AlphaBar:
    """alpha_bar at a possibly fractional timestep, with sigma interpolated linearly in t as the
    Euler-family schedulers do, so the model agrees with the noise level the sampler assumes."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        ab = alphas_cumprod.double().numpy()
        self._sigmas = np.sqrt((1.0 - ab) / ab)

    def __call__(self, t: float) -> float:
        sigma = float(np.interp(t, np.arange(len(self._sigmas)), self._sigmas))
        return 1.0 / (1.0 + sigma * sigma)


def _output(x: torch.Tensor, x0: torch.Tensor, ab: float, prediction_type: str) -> torch.Tensor:
    """The model output a perfect network would give for this x0 estimate."""
    if prediction_type == "sample":
        return x0
    a, s = ab**0.5, (1.0 - ab) ** 0.5
    eps = (x - a * x0) / s
    return eps if prediction_type == "epsilon" else a * eps - s * x0


class GaussianDenoiser:
    """The exact model for data N(mean, std^2) in every element: tiny, any shape, counts its calls."""

    def __init__(self, alphas_cumprod: torch.Tensor, mean: float = 0.3, std: float = 0.5,
                 prediction_type: str = "epsilon") -> None:
        self.alpha_bar = _AlphaBar(alphas_cumprod)
        self.mean, self.std, self.prediction_type = mean, std, prediction_type
        self.calls = 0
        self.batch_sizes: list[int] = []

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.batch_sizes.append(x_in.shape[0])
        ab = self.alpha_bar(float(t))
        a, v = ab**0.5, self.std**2
        x = x_in.double()
        x0 = self.mean + a * v / (ab * v + 1.0 - ab) * (x - a * self.mean)
        return _output(x, x0, ab, self.prediction_type).to(x_in.dtype)


@dataclass
class ExactDenoiser:
    """The exact model_fn for a GMM under the VP schedule `alphas_cumprod` (epsilon, v or sample)."""

    gmm: GMM
    alphas_cumprod: torch.Tensor
    prediction_type: str = "epsilon"
    calls: int = 0

    def __post_init__(self) -> None:
        self.alpha_bar = _AlphaBar(self.alphas_cumprod)
        self._means = torch.from_numpy(self.gmm.means)
        self._covs = torch.from_numpy(self.gmm.covs)
        self._logw = torch.from_numpy(np.log(self.gmm.weights))

    def x0(self, x_t: torch.Tensor, t: float) -> torch.Tensor:
        """E[x0 | x_t] in float64."""
        ab = self.alpha_bar(t)
        a, s2 = ab**0.5, 1.0 - ab
        eye = torch.eye(self.gmm.dim, dtype=torch.float64)
        marg = ab * self._covs + s2 * eye  # (K, D, D): the components' covariances at this t
        inv, logdet = torch.linalg.inv(marg), torch.linalg.slogdet(marg)[1]
        diff = x_t[:, None, :] - a * self._means[None]  # (N, K, D)
        solved = torch.einsum("kij,nkj->nki", inv, diff)  # marg^-1 (x - a mu)
        logp = self._logw - 0.5 * (diff * solved).sum(-1) - 0.5 * logdet  # (N, K)
        resp = torch.softmax(logp, dim=1)
        post = self._means[None] + a * torch.einsum("kij,nkj->nki", self._covs, solved)
        return (resp[..., None] * post).sum(1)

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        tf = float(t)
        x = x_in.reshape(x_in.shape[0], -1).double()
        out = _output(x, self.x0(x, tf), self.alpha_bar(tf), self.prediction_type)
        return out.to(x_in.dtype).reshape(x_in.shape)


@dataclass
class Distances:
    """Distances of samples to a GMM: moments, and a sliced 2-Wasserstein against exact quantiles."""

    gmm: GMM
    projections: int = 32
    seed: int = 0
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        d = rng.standard_normal((self.projections, self.gmm.dim))
        self.directions = d / np.linalg.norm(d, axis=1, keepdims=True)

    def _quantiles(self, n: int) -> np.ndarray:
        """(P, n) exact quantiles of each projected 1-D mixture at (i + 1/2) / n, by bisection."""
        if n not in self._cache:
            m = self.gmm.means @ self.directions.T  # (K, P)
            sd = np.sqrt(np.einsum("pi,kij,pj->kp", self.directions, self.gmm.covs, self.directions))
            u = (np.arange(n) + 0.5) / n
            lo = np.full((self.projections, n), (m - 12 * sd).min())
            hi = np.full((self.projections, n), (m + 12 * sd).max())
            w = self.gmm.weights[:, None, None]
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                cdf = (w * ndtr((mid[None] - m[:, :, None]) / sd[:, :, None])).sum(0)
                below = cdf < u
                lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
            self._cache[n] = 0.5 * (lo + hi)
        return self._cache[n]

    def sliced_w2(self, samples: np.ndarray) -> float:
        proj = np.sort(samples @ self.directions.T, axis=0).T  # (P, n)
        return float(np.sqrt(((proj - self._quantiles(len(samples))) ** 2).mean()))

    def mean_error(self, samples: np.ndarray) -> float:
        return float(np.linalg.norm(samples.mean(0) - self.gmm.mean()))

    def cov_error(self, samples: np.ndarray) -> float:
        """Relative Frobenius error of the covariance."""
        c = self.gmm.cov()
        return float(np.linalg.norm(np.cov(samples.T) - c) / np.linalg.norm(c))
