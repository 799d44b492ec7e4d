"""Synthetic test clips with known motion, for the tests and the video benchmark.

Optical flow needs texture: on smooth synthetic pictures (gradients, flat shapes) it has
nothing to match and its errors say nothing about real videos. The clips here move a textured
picture (random noise with detail at several scales, or a photo) with a known camera motion, so
the true flow is known too (`panning_flow`), and `moving_square_frames` adds an object moving
over a static background for occlusion tests. `write_clip` writes a clip as MP4 with a sine
tone as its audio track.

OpenCV and PyAV are imported inside the functions.
"""
import math
from fractions import Fraction

import numpy as np

from .io import VideoWriter

# Noise texture: uniform noise on grids of cells this many pixels wide, enlarged and summed, so
# that there is structure both at the pixel level and at the scale of flow patches.
NOISE_CELLS = (2, 6, 18)


def noise_texture(width, height, seed=0, cells=NOISE_CELLS):
    """HxWx3 uint8 random texture: for each cell size, uniform noise on a grid of cells that
    size, enlarged with bicubic interpolation; the layers are summed and stretched to 0..255."""
    import cv2
    rng = np.random.RandomState(seed)
    total = np.zeros((height, width, 3), np.float32)
    for cell in cells:
        small = rng.rand(max(2, math.ceil(height / cell)) + 1,
                         max(2, math.ceil(width / cell)) + 1, 3).astype(np.float32)
        big = cv2.resize(small, (small.shape[1] * cell, small.shape[0] * cell),
                         interpolation=cv2.INTER_CUBIC)
        total += big[:height, :width]
    low, high = total.min(), total.max()
    return np.round((total - low) / (high - low) * 255).astype(np.uint8)


def _texture(texture, width, height, seed):
    """The picture the camera looks at, at least width x height."""
    import cv2
    if isinstance(texture, str) and texture == 'noise':
        return noise_texture(width, height, seed)
    if isinstance(texture, np.ndarray):
        picture = texture
    else:
        from ..images import load_image
        picture = load_image(texture)[0]
    # Scale to cover the needed area, then crop the middle.
    scale = max(width / picture.shape[1], height / picture.shape[0])
    size = (max(width, math.ceil(picture.shape[1] * scale)),
            max(height, math.ceil(picture.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    covered = cv2.resize(picture, size, interpolation=interpolation)
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    return np.ascontiguousarray(covered[top:top + height, left:left + width])


def panning_frames(count=10, size=(96, 64), texture='noise', pan=(2.0, 1.0), zoom=1.0, seed=0):
    """`count` HxWx3 uint8 frames of a camera moving over `texture` ('noise', an image path or
    an HxWx3 uint8 array): per frame it moves by `pan` = (dx, dy) texture pixels and magnifies
    by `zoom` (1.02 zooms in by 2% a frame). `size` is (width, height).

    Frame t shows at pixel x the texture point centre + t * pan + (x - c) / zoom**t, with c the
    frame's centre; `panning_flow` gives the resulting flow between consecutive frames.
    """
    import cv2
    width, height = size
    pan = np.asarray(pan, dtype=np.float64)
    smallest_zoom = min(1.0, zoom ** (count - 1))
    travel = np.abs(pan) * count
    tex_w = math.ceil(width / smallest_zoom + 2 * travel[0]) + 16
    tex_h = math.ceil(height / smallest_zoom + 2 * travel[1]) + 16
    picture = _texture(texture, tex_w, tex_h, seed)
    # The path is centred on the texture, so it stays inside it both ways.
    centre = np.array([(tex_w - 1) / 2, (tex_h - 1) / 2]) - pan * (count - 1) / 2
    frame_centre = np.array([(width - 1) / 2, (height - 1) / 2])
    frames = []
    for t in range(count):
        scale = 1.0 / zoom ** t
        offset = centre + t * pan - frame_centre * scale
        matrix = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]], np.float64)
        frames.append(cv2.warpAffine(picture, matrix, (width, height),
                                     flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT))
    return frames


def panning_flow(size=(96, 64), pan=(2.0, 1.0), zoom=1.0, t=0):
    """The true backward flow of `panning_frames` from frame t+1 to frame t (HxWx2 float32,
    the convention of `flow`): frame[t+1](x) = frame[t](x + flow(x)), which works out to
    zoom**t * pan + (x - c) * (1 / zoom - 1)."""
    width, height = size
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    c = ((width - 1) / 2, (height - 1) / 2)
    dx = zoom ** t * pan[0] + (xs - c[0]) * (1 / zoom - 1)
    dy = zoom ** t * pan[1] + (ys - c[1]) * (1 / zoom - 1)
    return np.stack([dx, dy], axis=2).astype(np.float32)


def moving_square_frames(count=10, size=(96, 64), side=24, step=3, seed=0):
    """An object moving over a static background: a `side`-pixel textured square moving right
    by `step` whole pixels a frame over a different static texture.

    Returns (frames, boxes), boxes[t] = (left, top, side) of the square in frame t. In frame t+1
    the `step` columns the square just left, [left_t, left_t + step), show background that frame
    t did not show (a disocclusion).
    """
    width, height = size
    background = noise_texture(width, height, seed)
    square = noise_texture(side, side, seed + 1)
    top = (height - side) // 2
    left0 = max(0, (width - side - step * (count - 1)) // 2)
    frames, boxes = [], []
    for t in range(count):
        left = left0 + step * t
        frame = background.copy()
        visible = min(side, width - left)
        if visible > 0:
            frame[top:top + side, left:left + visible] = square[:, :visible]
        frames.append(frame)
        boxes.append((left, top, side))
    return frames, boxes


class SineTone:
    """An audio source for `VideoWriter`: a mono sine tone of `duration` seconds, encoded with
    `codec` ('aac', or e.g. 'pcm_s16le' to make an input whose audio must be re-encoded)."""

    def __init__(self, duration, frequency=440.0, sample_rate=44100, codec='aac', amplitude=0.3):
        self.duration = duration
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.codec = codec
        self.amplitude = amplitude

    def open(self, output):
        self._stream = output.add_stream(self.codec, rate=self.sample_rate)
        self._stream.layout = 'mono'

    def packets(self):
        import av
        total = int(round(self.duration * self.sample_rate))
        fmt = self._stream.codec_context.format.name
        chunk = 1024
        for begin in range(0, total, chunk):
            n = min(chunk, total - begin)
            t = (begin + np.arange(n)) / self.sample_rate
            wave = self.amplitude * np.sin(2 * np.pi * self.frequency * t)
            if fmt.startswith('s16'):
                samples = np.round(wave * 32767).astype(np.int16)[None]
            else:
                samples = wave.astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout='mono')
            frame.sample_rate = self.sample_rate
            frame.pts = begin
            frame.time_base = Fraction(1, self.sample_rate)
            for packet in self._stream.encode(frame):
                yield float(packet.pts * packet.time_base), packet
        for packet in self._stream.encode(None):
            yield float(packet.pts * packet.time_base), packet

    def close(self):
        pass


def write_clip(path, frames, frame_rate=25, tone=440.0, audio_codec='aac', sample_rate=44100):
    """Write `frames` to an MP4 at `frame_rate`, with a sine tone of `tone` Hz as long as the
    video as its audio (tone None: no audio). Returns `path`."""
    frames = list(frames)
    audio = None
    if tone is not None:
        audio = SineTone(len(frames) / Fraction(frame_rate), tone, sample_rate, audio_codec)
    with VideoWriter(path, frame_rate, audio) as writer:
        for frame in frames:
            writer.write(frame)
    return path
