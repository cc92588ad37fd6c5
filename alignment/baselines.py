"""Linear baselines between modality-specific features: ridge regression, CCA and normalized CCA.

Each fit returns a `PairSpace`: two affine maps that take test features of the two sides into one common
space, where retrieval compares them by cosine similarity (alignment.retrieval).

- "regression": ridge regression from x to y; the common space is y's centered feature space.
- "cca": canonical correlation analysis; the common space holds the first `dim` canonical variables.
- "normalized_cca": CCA whose canonical variables are scaled by correlation**power (Gong et al. 2014,
  "A Multi-View Embedding Space for Modeling Internet Images, Tags, and their Semantics"; power 4), so
  weakly correlated directions barely count.

Never-paired modalities a and b (sound and text) are bridged through a pivot p (images) that is paired
with each of them (`fit_bridge`):
- regression: a -> p and b -> p ridge maps; a and b are compared as predicted pivot features, centered by
  the mean pivot feature of the two training sets.
- (normalized) CCA: the pivot is whitened once, with the mean and covariance of the pivot features of both
  training sets. In whitened coordinates each CCA's pivot-side canonical directions are an orthonormal basis
  U of a subspace, so a's weighted canonical variables (the estimate of the pivot's canonical variables) are
  rotated back into whitened pivot space by U_a, b's by U_b, and the two are compared there. (The pooled
  whitening makes each CCA's pivot side whitened only approximately; the bases stay comparable, which is
  what the bridge needs.)

Fitting is float64 (only the data passes of the randomized PCA run in float32). Covariances get a ridge of
`ridge` times their mean eigenvalue. Features wider than `max_dim` are first reduced to their top `max_dim`
principal components (randomized SVD). Plain CCA keeps `dim` components by default: with all of them,
noise directions would weigh as much as correlated ones.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

METHODS = ("regression", "cca", "normalized_cca")


@dataclass(frozen=True)
class AffineMap:
    """x -> (x - mean) @ matrix + offset; matrix None is the identity (a space's own coordinates)."""

    mean: np.ndarray  # [D_in]
    matrix: np.ndarray | None  # [D_in, D_out]
    offset: np.ndarray | float = 0.0  # [D_out]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """[N, D_in] features -> [N, D_out] float64 embeddings."""
        centered = np.asarray(x, dtype=np.float64) - self.mean
        return (centered if self.matrix is None else centered @ self.matrix) + self.offset


@dataclass(frozen=True)
class PairSpace:
    """Maps both sides of a pair of modalities into one common space; compare embeddings by cosine."""

    x: AffineMap
    y: AffineMap
    # CCA methods only: canonical correlations [k]; for a bridge [2, k] (a's CCA, b's), zero-padded.
    correlations: np.ndarray | None = None

    def embed_x(self, features: np.ndarray) -> np.ndarray:
        """[N, D_x] -> [N, K]."""
        return self.x(features)

    def embed_y(self, features: np.ndarray) -> np.ndarray:
        """[N, D_y] -> [N, K]."""
        return self.y(features)


@dataclass(frozen=True)
class _Principal:
    """The mean and principal axes of training features; variances include the ridge."""

    mean: np.ndarray  # [D]
    basis: np.ndarray  # [D, K] orthonormal principal directions, K <= max_dim
    variances: np.ndarray  # [K] covariance eigenvalues + ridge

    def coordinates(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.basis

    @property
    def whitening(self) -> np.ndarray:
        """[D, K]: (x - mean) @ whitening has (ridge-shrunk) identity covariance."""
        return self.basis / np.sqrt(self.variances)

    def whiten(self, x: np.ndarray) -> np.ndarray:
        return self.coordinates(x) / np.sqrt(self.variances)


def _as_features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected [N, D] features, got shape {x.shape}")
    return x


def _principal_components(
    centered: np.ndarray, max_dim: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Top principal directions [D, K] and covariance eigenvalues [K], largest first."""
    n, d = centered.shape
    if d <= max_dim:
        eigvals, eigvecs = np.linalg.eigh(centered.T @ centered / n)
        order = np.argsort(eigvals)[::-1]
        return eigvecs[:, order], np.maximum(eigvals[order], 0.0)
    # Randomized range finder (Halko et al. 2011): O(N D K) instead of O(D^3). The passes over the data run
    # in float32 with LU renormalization between them (as scikit-learn does; Householder QR is far slower
    # here); the final basis, projection and eigenvalues are float64.
    k = min(max_dim, n)
    data = centered.astype(np.float32)
    probe = np.random.default_rng(seed).standard_normal((n, min(k + 16, n)), dtype=np.float32)
    span = data.T @ probe
    for _ in range(2):
        span = data.T @ (data @ scipy.linalg.lu(span, permute_l=True)[0])
    basis = _orthonormal_columns(_orthonormal_columns(span.astype(np.float64)))
    projected = centered @ basis
    eigvals, rotation = np.linalg.eigh(projected.T @ projected / n)
    order = np.argsort(eigvals)[::-1][:k]
    return basis @ rotation[:, order], np.maximum(eigvals[order], 0.0)


def _orthonormal_columns(span: np.ndarray) -> np.ndarray:
    """An orthonormal basis of span's column space from the eigenvectors of its Gram matrix.

    Numerically null directions are dropped; a second call cleans up the remaining loss of orthogonality.
    """
    eigvals, eigvecs = np.linalg.eigh(span.T @ span)
    keep = eigvals > eigvals.max() * 1e-10
    return span @ (eigvecs[:, keep] / np.sqrt(eigvals[keep]))


def _fit_principal(x: np.ndarray, ridge: float, max_dim: int) -> _Principal:
    mean = x.mean(axis=0)
    centered = x - mean
    basis, eigvals = _principal_components(centered, max_dim)
    # The ridge is relative to the mean eigenvalue of the full covariance (its trace / D).
    floor = ridge * max(np.sum(centered**2) / centered.size, 1e-300)
    return _Principal(mean, basis, eigvals + floor)


def _fit_ridge(
    x: np.ndarray, y: np.ndarray, ridge: float, max_dim: int, offset: np.ndarray | float = 0.0
) -> AffineMap:
    """Ridge regression of y on x, returned as x -> predicted y minus y's mean, plus offset."""
    principal = _fit_principal(x, ridge, max_dim)
    # In principal coordinates the regularized normal equations are diagonal.
    cross = principal.coordinates(x).T @ (y - y.mean(axis=0)) / x.shape[0]
    weights = cross / principal.variances[:, None]
    return AffineMap(principal.mean, principal.basis @ weights, offset)


def _canonical_directions(
    xw: np.ndarray, yw: np.ndarray, dim: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CCA on whitened data: (U [Kx, k], correlations [k], V [Ky, k]) from the SVD of the cross-covariance."""
    u, corr, vt = np.linalg.svd(xw.T @ yw / xw.shape[0], full_matrices=False)
    k = len(corr) if dim is None else min(dim, len(corr))
    return u[:, :k], np.clip(corr[:k], 0.0, 1.0), vt[:k].T


def fit_pair(
    method: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    ridge: float = 1e-2,
    dim: int | None = 128,
    power: float = 4.0,
    max_dim: int = 1024,
) -> PairSpace:
    """Fits a linear common space for two modalities from paired training features.

    Args:
      method: "regression" (x is mapped into y's feature space), "cca" or "normalized_cca".
      x_train: [N, D_x] features of one side; y_train: [N, D_y] of the other, paired by row.
      ridge: covariance regularizer, relative to the mean eigenvalue.
      dim: canonical components kept (CCA methods); None keeps all.
      power: exponent of the correlation weights ("normalized_cca" only).
      max_dim: features wider than this are first reduced to this many principal components.

    Returns:
      PairSpace with embed_x: [M, D_x] -> [M, K] and embed_y: [M, D_y] -> [M, K].
    """
    _check_method(method)
    x, y = _as_features(x_train), _as_features(y_train)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"paired features differ in length: {x.shape[0]} vs {y.shape[0]}")
    if method == "regression":
        return PairSpace(_fit_ridge(x, y, ridge, max_dim), AffineMap(y.mean(axis=0), None))
    wx, wy = _fit_principal(x, ridge, max_dim), _fit_principal(y, ridge, max_dim)
    u, corr, v = _canonical_directions(wx.whiten(x), wy.whiten(y), dim)
    weights = corr**power if method == "normalized_cca" else np.ones_like(corr)
    return PairSpace(
        AffineMap(wx.mean, wx.whitening @ u * weights),
        AffineMap(wy.mean, wy.whitening @ v * weights),
        corr,
    )


def fit_bridge(
    method: str,
    pivot_for_a: np.ndarray,
    a_train: np.ndarray,
    pivot_for_b: np.ndarray,
    b_train: np.ndarray,
    *,
    ridge: float = 1e-2,
    dim: int | None = 128,
    power: float = 4.0,
    max_dim: int = 1024,
) -> PairSpace:
    """Fits a common space for two never-paired modalities a and b through a pivot paired with each.

    Args:
      method: "regression", "cca" or "normalized_cca" (the bridges are described in the module docstring).
      pivot_for_a: [N_a, D_p] pivot features paired by row with a_train [N_a, D_a].
      pivot_for_b: [N_b, D_p] pivot features paired by row with b_train [N_b, D_b].
      ridge, dim, power, max_dim: as in fit_pair.

    Returns:
      PairSpace whose x side embeds a and whose y side embeds b.
    """
    _check_method(method)
    pa, a = _as_features(pivot_for_a), _as_features(a_train)
    pb, b = _as_features(pivot_for_b), _as_features(b_train)
    if pa.shape[0] != a.shape[0] or pb.shape[0] != b.shape[0]:
        raise ValueError("each modality must be paired row by row with its pivot features")
    if method == "regression":
        # Each ridge map predicts its pivot set minus that set's mean; both are re-centered on the pooled mean.
        pooled = np.concatenate([pa, pb]).mean(axis=0)
        return PairSpace(
            _fit_ridge(a, pa, ridge, max_dim, offset=pa.mean(axis=0) - pooled),
            _fit_ridge(b, pb, ridge, max_dim, offset=pb.mean(axis=0) - pooled),
        )
    pivot = _fit_principal(np.concatenate([pa, pb]), ridge, max_dim)
    maps = []
    correlations = []
    for pivot_side, other in ((pa, a), (pb, b)):
        w = _fit_principal(other, ridge, max_dim)
        u, corr, v = _canonical_directions(pivot.whiten(pivot_side), w.whiten(other), dim)
        weights = corr**power if method == "normalized_cca" else np.ones_like(corr)
        maps.append(AffineMap(w.mean, (w.whitening @ v * weights) @ u.T))
        correlations.append(corr)
    return PairSpace(maps[0], maps[1], np.stack(_padded(correlations)))


def _padded(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    length = max(len(a) for a in arrays)
    return [np.pad(a, (0, length - len(a))) for a in arrays]


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
