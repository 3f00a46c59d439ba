"""Survey coverage and the sources behind spurious detections.

Three kinds of spurious catalog entries are made, with the inspection
reasons used in ``labels.csv``:

``"diffraction spike"``
    Bright stars get a Moffat core plus JWST-like six-point spikes (and two
    faint horizontal ones); small knots placed on the spikes become their own
    detections: they claim a short ellipse along the spike in the
    segmentation map, as a deblender shreds a spike.
``"edge data"``
    The data cover a rotated rectangle with one corner cut off, not the full
    image; the noise rises towards the coverage edge (``1 + 2.5 exp(-d / 6
    px)``) and noise-like blobs with incoherent colours straddle the edge.
``"close to another source"``
    Fragments shredded from the outskirts of bright extended galaxies: a
    faint knot with the parent's disk SED claiming a small disk of the
    parent's footprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galclust.synth.profiles import SPIKE_WEIGHTS, gaussian, moffat, spike_taper, spikes

__all__ = [
    "REASONS",
    "Coverage",
    "blob_model",
    "claim_weight",
    "spike_flux_for_visibility",
    "star_model",
]

#: Inspection reasons of spurious sources, exactly as written to labels.csv.
REASONS: tuple[str, ...] = ("diffraction spike", "edge data", "close to another source")

#: Ownership weight of a shredded fragment inside its claimed ellipse (beats
#: any flux-based weight).
CLAIM = np.float32(1e30)


@dataclass(frozen=True)
class Coverage:
    """A convex coverage polygon given as half-planes ``a*x + b*y <= c``.

    Attributes
    ----------
    normals : numpy.ndarray
        ``(edge, 2)`` unit outward normals ``(a, b)`` in ``(x, y)`` pixels.
    offsets : numpy.ndarray
        ``(edge,)`` ``c`` values.
    """

    normals: np.ndarray
    offsets: np.ndarray

    @classmethod
    def random(cls, shape: tuple[int, int], rng: np.random.Generator, *,
               margin: float = 2.0) -> Coverage:
        """A rotated rectangle inscribed in the image, one corner cut off.

        Parameters
        ----------
        shape : (int, int)
            Image shape ``(ny, nx)``.
        rng : numpy.random.Generator
            Source of the rotation (3–8 degrees) and the cut corner.
        margin : float
            Minimum gap in pixels between the polygon and the image border.

        Returns
        -------
        Coverage
        """
        ny, nx = shape
        hx, hy = nx / 2.0 - margin, ny / 2.0 - margin
        theta = np.radians(rng.uniform(3.0, 8.0))
        theta = min(theta, 0.9 * np.arctan(min(hx, hy) / max(hx, hy)))
        c, s = np.cos(theta), np.sin(theta)
        det = c * c - s * s
        a = (c * hx - s * hy) / det  # half-size along the rotated x axis
        b = (c * hy - s * hx) / det
        sign = rng.choice([-1.0, 1.0])
        ang = sign * theta
        ex = np.array([np.cos(ang), np.sin(ang)])
        ey = np.array([-np.sin(ang), np.cos(ang)])
        centre = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0])
        normals = [ex, -ex, ey, -ey]
        offsets = [ex @ centre + a, -ex @ centre + a, ey @ centre + b, -ey @ centre + b]
        # cut one corner: the diagonal normal, removing a triangle of leg ~ 0.2 * min(a, b)
        sx, sy = rng.choice([-1.0, 1.0], size=2)
        diag = sx * ex + sy * ey
        diag /= np.linalg.norm(diag)
        corner = centre + sx * a * ex + sy * b * ey
        cut = 0.2 * min(a, b) * rng.uniform(0.8, 1.2)
        normals.append(diag)
        offsets.append(diag @ corner - cut * np.sqrt(2.0))
        return cls(np.array(normals), np.array(offsets))

    def distance(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Signed distance to the coverage edge (pixels, > 0 inside).

        Parameters
        ----------
        y, x : numpy.ndarray
            Pixel coordinates (broadcastable).

        Returns
        -------
        numpy.ndarray
            ``min_i (c_i - n_i . p)``: exact inside a convex polygon, a lower
            bound on the distance outside.
        """
        y = np.asarray(y, dtype=float)
        x = np.asarray(x, dtype=float)
        d = None
        for (a, b), c in zip(self.normals, self.offsets, strict=True):
            di = c - (a * x + b * y)
            d = di if d is None else np.minimum(d, di)
        return d

    def distance_rows(self, y0: int, y1: int, nx: int) -> np.ndarray:
        """:meth:`distance` of every pixel of rows ``y0 .. y1 - 1`` (float32, fast).

        Each half-plane's distance is a row term minus a column term, so the
        value of a pixel does not depend on which rows are asked for.
        """
        ys = np.arange(y0, y1, dtype=float)
        xs = np.arange(nx, dtype=float)
        out = np.full((y1 - y0, nx), np.inf, dtype=np.float32)
        for (a, b), c in zip(self.normals, self.offsets, strict=True):
            row = (c - b * ys).astype(np.float32)[:, None]
            col = (a * xs).astype(np.float32)[None, :]
            np.minimum(out, row - col, out=out)
        return out

    def noise_factor(self, distance: np.ndarray) -> np.ndarray:
        """Multiplier of the 1-sigma error at ``distance`` px inside the edge."""
        return 1.0 + 2.5 * np.exp(-np.clip(distance, 0.0, None) / 6.0)

    def boundary_points(self, n: int, rng: np.random.Generator,
                        shape: tuple[int, int]) -> np.ndarray:
        """``n`` random points ``(y, x)`` on the polygon boundary.

        Points are drawn uniformly along the polygon's perimeter (vertices by
        intersecting neighbouring edges).
        """
        verts = self.vertices()
        seg = np.roll(verts, -1, axis=0) - verts
        length = np.hypot(seg[:, 0], seg[:, 1])
        edge = rng.choice(len(verts), size=n, p=length / length.sum())
        t = rng.uniform(0.05, 0.95, size=n)
        pts = verts[edge] + t[:, None] * seg[edge]
        return pts[:, ::-1]

    def vertices(self) -> np.ndarray:
        """Polygon vertices ``(x, y)`` in counter-clockwise order."""
        n = len(self.offsets)
        pts = []
        for i in range(n):
            for j in range(i + 1, n):
                m = np.array([self.normals[i], self.normals[j]])
                if abs(np.linalg.det(m)) < 1e-9:
                    continue
                p = np.linalg.solve(m, np.array([self.offsets[i], self.offsets[j]]))
                if self.distance(p[1], p[0]) > -1e-6:
                    pts.append(p)
        pts = np.array(pts)
        centre = pts.mean(axis=0)
        angle = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
        return pts[np.argsort(angle)]


def star_model(shape: tuple[int, int], y0: float, x0: float, fwhm: np.ndarray,
               flux: np.ndarray, *, with_spikes: bool, spike_fraction: float = 0.1,
               spike_extent: float | None = None) -> np.ndarray:
    """A star: Moffat core (plus diffraction spikes) at a sub-pixel position.

    Parameters
    ----------
    shape : (int, int)
        Stamp shape.
    y0, x0 : float
        Star position in stamp pixels.
    fwhm : numpy.ndarray
        ``(band,)`` PSF FWHM, pixels.
    flux : numpy.ndarray
        ``(band,)`` total flux of the star.
    with_spikes : bool
        Add the spikes (bright stars).
    spike_fraction : float
        Flux fraction in the spikes.
    spike_extent : float, optional
        Where the spikes fade out (px); default ``min(shape) / 2 - 1``.

    Returns
    -------
    numpy.ndarray
        ``(band, ny, nx)`` float64.
    """
    img = moffat(shape, y0, x0, fwhm)
    if with_spikes:
        spike_extent = min(shape) / 2.0 - 1.0 if spike_extent is None else spike_extent
        img = (1.0 - spike_fraction) * img + spikes(shape, y0, x0, fwhm,
                                                   fraction=spike_fraction,
                                                   extent=spike_extent)
    return img * np.asarray(flux, dtype=float)[:, None, None]


def spike_flux_for_visibility(fwhm: np.ndarray, sed: np.ndarray, err: np.ndarray,
                              length: float, extent: float, *, nsigma: float = 4.0,
                              spike_fraction: float = 0.1) -> float:
    """Scale of a star's SED that makes its spikes ``nsigma`` at ``length`` px.

    The ridge of a main spike at distance ``t`` has band-summed surface
    brightness ``sum_b F sed_b A_b (1 + t / L_b)^-2 taper(t)`` (see
    :func:`~galclust.synth.profiles.spikes`, faded out at ``extent``); this
    returns ``F`` making it ``nsigma * sqrt(sum_b err_b**2)`` at ``t = length``.
    """
    fw = np.asarray(fwhm, dtype=float)
    width, scale_len = 0.5 * fw, 4.0 * fw
    amp = spike_fraction / (np.sum(SPIKE_WEIGHTS) * width * np.sqrt(2.0 * np.pi) * scale_len)
    ridge = np.sum(sed * amp * (1.0 + length / scale_len) ** -2) * spike_taper(length, extent)
    return float(nsigma * np.sqrt(np.sum(np.asarray(err) ** 2)) / ridge)


def blob_model(shape: tuple[int, int], y0: float, x0: float, *, sigma: float, q: float,
               theta: float, sed: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    """A Gaussian knot with an SED, approximately PSF-convolved (unit-mean SED).

    The PSF is folded in by adding its Gaussian-equivalent variance
    ``(fwhm / 2.355)^2`` to both axes, per band.

    Returns
    -------
    numpy.ndarray
        ``(band, ny, nx)`` float64; each band sums to ``sed[b]``.
    """
    out = []
    for f, fw in zip(np.asarray(sed, dtype=float), np.asarray(fwhm, dtype=float), strict=True):
        psf_var = (fw / 2.355) ** 2
        major = np.sqrt(sigma**2 + psf_var)
        minor = np.sqrt((sigma * q) ** 2 + psf_var)
        out.append(f * gaussian(shape, y0, x0, sigma=major, q=minor / major, theta=theta))
    return np.stack(out)


def claim_weight(shape: tuple[int, int], y0: float, x0: float, *, a: float, b: float,
                 theta: float) -> np.ndarray:
    """Segmentation ownership weight of a shredded fragment.

    Parameters
    ----------
    shape : (int, int)
        Stamp shape.
    y0, x0 : float
        Fragment centre.
    a, b : float
        Semi-axes (pixels) of the claimed ellipse.
    theta : float
        Position angle of ``a`` (radians from +x towards +y).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float32: ``CLAIM * (1 - r^2 / 2)`` inside the ellipse
        (``r`` its normalised radius; larger nearer the centre so overlapping
        claims split), 0 outside.
    """
    yy = np.arange(shape[0], dtype=float)[:, None] - y0
    xx = np.arange(shape[1], dtype=float)[None, :] - x0
    c, s = np.cos(theta), np.sin(theta)
    u = (xx * c + yy * s) / a
    v = (-xx * s + yy * c) / b
    r2 = u**2 + v**2
    return np.where(r2 <= 1.0, CLAIM * (1.0 - 0.5 * r2), 0.0).astype(np.float32)
