"""Colour control after Gatys et al., "Controlling Perceptual Factors in Neural Style Transfer"
(CVPR 2017): keep the content photo's colours while taking the painting's strokes.

- histogram: before the run, give the style image the content's colour mean and covariance
  (a linear map x -> A (x - mu_s) + mu_c with A = Sigma_c^1/2 Sigma_s^-1/2, the symmetric
  square roots).
- luminance: run on luminance only (YIQ's Y, replicated into three channels; the style's
  luminance first matched to the content's mean and spread, as the paper does), then put the
  content's I and Q back under each stage's result.

Arrays here are HxWx3 numpy, values 0..255 (float32 when they must not be rounded).
"""
import numpy as np
from PIL import Image

RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]])
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
EPS = 1e-5


def _sqrtm(cov, inverse=False):
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, EPS)
    power = -0.5 if inverse else 0.5
    return (vectors * values ** power) @ vectors.T


def match_histogram(style, content):
    """The style image with the content's colour mean and covariance (float32, 0..255)."""
    s = style.reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3).astype(np.float64)
    mu_s, mu_c = s.mean(0), c.mean(0)
    a = _sqrtm(np.cov(c, rowvar=False)) @ _sqrtm(np.cov(s, rowvar=False), inverse=True)
    out = (s - mu_s) @ a.T + mu_c
    return np.clip(out, 0, 255).reshape(style.shape).astype(np.float32)


def luminance(img):
    """Y of YIQ, 0..255, float64."""
    return img.astype(np.float64) @ RGB_TO_YIQ[0]


def grey3(y):
    return np.repeat(np.clip(y, 0, 255)[..., None], 3, axis=2).astype(np.float32)


def luminance_inputs(content, styles):
    """Network inputs of a luminance-only run: the content's Y, and each style's Y with the
    content's luminance mean and standard deviation."""
    yc = luminance(content)
    out = []
    for style, weight in styles:
        ys = luminance(style)
        ys = (ys - ys.mean()) * (yc.std() / max(ys.std(), EPS)) + yc.mean()
        out.append((grey3(ys), weight))
    return grey3(yc), out


def restore_colors(picture, content):
    """A luminance-only result (HxWx3 uint8) with the content's I and Q at its size."""
    h, w = picture.shape[:2]
    small = np.asarray(Image.fromarray(content).resize((w, h), Image.Resampling.BILINEAR))
    yiq = small.astype(np.float64) @ RGB_TO_YIQ.T
    yiq[..., 0] = luminance(picture)
    rgb = yiq @ YIQ_TO_RGB.T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def prepare(mode, content, styles):
    """The content and ((style, weight), ...) pictures the network sees under colour control
    `mode` ('none', 'luminance' or 'histogram')."""
    if mode == 'luminance':
        return luminance_inputs(content, styles)
    if mode == 'histogram':
        return content, [(match_histogram(p, content), w) for p, w in styles]
    return content, list(styles)


def grey_mask(picture, width, height):
    """A mask picture (HxWx3 uint8, white inside) as grey levels in [0, 1] at width x height."""
    small = np.asarray(Image.fromarray(picture).resize((width, height),
                                                       Image.Resampling.BILINEAR))
    return luminance(small) / 255.0
