"""Videos in and out with PyAV (FFmpeg): probe, read frames, write H.264 MP4 with the input's
audio, and a folder of finished frames that lets an interrupted run resume.

Pictures are HxWx3 uint8 RGB numpy arrays, upright (a phone video's rotation flag is applied on
reading). Sizes are (width, height), as everywhere in the package. Times are seconds from the
first video frame of the input, so `start` 0 is its first frame.

A cut [start, start + duration) holds the frames whose time t satisfies
start - e <= t < start + duration - e, with e a quarter of a frame interval (so that timestamps
rounded to the file's time base neither gain nor lose a frame at either end); its audio is the
same interval, cut to the sample.

PyAV is imported inside the functions: importing this module does not need it.
"""
import contextlib
import json
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np

from ..errors import StyleTransferError
from ..files import atomic_path, check_input_file, write_text

# What the writer produces: H.264 in 4:2:0 (the one pixel format every player decodes), at a
# quality setting where x264's losses are not visible (18 is its "visually lossless" rule of
# thumb; 23 is its default).
VIDEO_CODEC = 'libx264'
PIXEL_FORMAT = 'yuv420p'
DEFAULT_CRF = 18
DEFAULT_PRESET = 'medium'
# Audio codecs that MP4 players handle and that are copied packet for packet; anything else
# (PCM, Vorbis, FLAC...) and any cut audio is re-encoded to AAC.
REMUX_AUDIO_CODECS = frozenset({'aac', 'mp3', 'alac', 'ac3', 'eac3', 'opus'})
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
                    11025, 8000, 7350)
AAC_LAYOUTS = ('mono', 'stereo', '3.0', '4.0', '5.0', '5.1', '7.1')
AAC_BITRATE_PER_CHANNEL = 96000
# Demuxers that read single pictures: such a file is an image, not a video.
_IMAGE_FORMATS = re.compile(r'(^|,)(image2|[a-z0-9]+_pipe)(,|$)')
# Decoding restarts this long before a cut's audio start, so the first kept samples come out of
# a primed decoder (AAC and MP3 frames overlap their neighbours).
_AUDIO_PREROLL = 1.0


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds. `frame_count` and `duration` are None when the file does not say."""
    path: str
    width: int
    height: int
    frame_rate: Fraction
    frame_count: Optional[int]
    duration: Optional[float]
    has_audio: bool
    audio_codec: Optional[str]
    rotation: int  # degrees counterclockwise applied on reading: 0, 90, 180 or 270

    @property
    def size(self):
        return self.width, self.height


@dataclass(frozen=True)
class Frame:
    """One picture of a video: `index` counts from 0 at the cut's start, `time` is seconds from
    the input's first frame."""
    index: int
    time: float
    image: np.ndarray


def _av():
    import av
    return av


@contextlib.contextmanager
def _open_input(path):
    av = _av()
    check_input_file(path, 'a video')
    if os.path.getsize(path) == 0:
        raise StyleTransferError('%s: file is empty' % path)
    try:
        container = av.open(path, 'r')
    except av.error.FFmpegError as e:
        raise StyleTransferError('%s: not a video file FFmpeg can read (%s)'
                                 % (path, _reason(e))) from e
    try:
        yield container
    finally:
        container.close()


def _reason(error):
    return getattr(error, 'strerror', None) or str(error)


def _video_stream(container, path):
    if _IMAGE_FORMATS.search(container.format.name or ''):
        raise StyleTransferError('%s: a still image, not a video' % path)
    if not container.streams.video:
        raise StyleTransferError('%s: has no video stream' % path)
    return container.streams.video[0]


def _origin(stream):
    """Seconds of the stream's first timestamp: the zero of our times."""
    if stream.start_time is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _rotation(frame):
    """Counterclockwise quarter turns that make the frame upright, as degrees in 0..270."""
    try:
        degrees = frame.rotation
    except Exception:  # no display matrix, or a PyAV without the property
        return 0
    return int(round((degrees or 0) / 90.0)) % 4 * 90


def probe(path):
    """VideoInfo of a video file. The first frame is decoded to learn the picture's upright size
    and to check that the video stream can be decoded at all."""
    av = _av()
    path = os.fspath(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as e:
            raise StyleTransferError('%s: cannot decode the video (%s)' % (path, _reason(e))) from e
        if first is None:
            raise StyleTransferError('%s: the video stream has no frames' % path)
        rotation = _rotation(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise StyleTransferError('%s: the video stream has no frame rate' % path)
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = None
        audio = container.streams.audio
        return VideoInfo(path=path, width=width, height=height, frame_rate=Fraction(rate),
                         frame_count=stream.frames or None, duration=duration,
                         has_audio=bool(audio),
                         audio_codec=audio[0].codec_context.name if audio else None,
                         rotation=rotation)


def fit_size(source, size):
    """The (width, height) to resize a `source` (width, height) picture to: `size` itself, or
    with one side None the other scaled to keep the aspect ratio (rounded, at least 1), or the
    source size for `size` None."""
    if size is None:
        return tuple(source)
    width, height = size
    for side in (width, height):
        if side is not None and (not isinstance(side, (int, np.integer)) or side < 1):
            raise StyleTransferError('video size: sides must be positive whole numbers, not %r'
                                     % (size,))
    if width is None and height is None:
        return tuple(source)
    if height is None:
        height = max(1, round(source[1] * width / source[0]))
    elif width is None:
        width = max(1, round(source[0] * height / source[1]))
    return int(width), int(height)


def _check_cut(start, duration):
    if not (isinstance(start, (int, float)) and math.isfinite(start) and start >= 0):
        raise StyleTransferError('video start: must be a number of seconds >= 0, not %r'
                                 % (start,))
    if duration is not None and not (isinstance(duration, (int, float))
                                     and math.isfinite(duration) and duration > 0):
        raise StyleTransferError('video duration: must be a number of seconds > 0, not %r'
                                 % (duration,))


def _picture(frame, size, rotation):
    width, height = size
    if rotation in (90, 270):
        width, height = height, width
    options = {}
    if (width, height) != (frame.width, frame.height):
        shrinking = width * height < frame.width * frame.height
        options = dict(width=width, height=height,
                       interpolation='AREA' if shrinking else 'BICUBIC')
    if frame.color_range:
        options['src_color_range'] = frame.color_range
    rgb = frame.reformat(format='rgb24', **options).to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)
    return np.ascontiguousarray(rgb)


def read_frames(path, start=0.0, duration=None, size=None):
    """Yield the Frames of the cut [start, start + duration) (seconds; duration None = to the
    end), each picture resized to `size` = (width, height) (one side None keeps the aspect
    ratio; None keeps the video's size).

    Decoding starts at the keyframe before `start`, so a late start does not decode the whole
    file. A damaged stream raises StyleTransferError naming the file and the frame.
    """
    av = _av()
    path = os.fspath(path)
    _check_cut(start, duration)
    info = probe(path)
    if info.duration is not None and start >= info.duration:
        raise StyleTransferError('%s: start %.3f s is past the end of the video (%.3f s)'
                                 % (path, start, info.duration))
    target = fit_size(info.size, size)
    slack = 0.25 / float(info.frame_rate)
    end = None if duration is None else start + duration - slack
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        origin = _origin(stream)
        if start > 0:
            container.seek(int((origin + start) / stream.time_base), stream=stream)
        index = 0
        counted = 0
        try:
            for frame in container.decode(stream):
                # A frame without a timestamp follows the previous one by one frame interval.
                if frame.pts is not None:
                    time = frame.time - origin
                else:
                    time = counted / float(info.frame_rate)
                counted += 1
                if time < start - slack:
                    continue
                if end is not None and time >= end:
                    break
                yield Frame(index, time, _picture(frame, target, info.rotation))
                index += 1
        except av.error.FFmpegError as e:
            raise StyleTransferError('%s: damaged video after frame %d (%s)'
                                     % (path, index, _reason(e))) from e


def even_size(width, height):
    """The size the writer encodes a width x height picture at. 4:2:0 video stores colour at
    half resolution, so both sides must be even: an odd side loses its last column or row."""
    if width < 2 or height < 2:
        raise StyleTransferError('video frames must be at least 2x2 pixels, not %dx%d'
                                 % (width, height))
    return width - width % 2, height - height % 2


class AudioCopy:
    """The audio of an input video, for `VideoWriter`: its first audio stream over the cut
    [start, start + duration) (seconds from the input's first video frame).

    A whole stream in a codec MP4 players handle (REMUX_AUDIO_CODECS) is copied packet for
    packet, losslessly. A cut, or another codec, is decoded, cut to the sample and encoded to
    AAC. An input without audio gives a video without audio. One AudioCopy serves one writer.
    """

    def __init__(self, path, start=0.0, duration=None):
        _check_cut(start, duration)
        self.path = os.fspath(path)
        check_input_file(self.path, 'a video')
        self.start = float(start)
        self.duration = duration
        self.mode = None  # 'copy', 'encode', or None without audio
        self._stack = contextlib.ExitStack()

    def open(self, output):
        """Add the audio stream to the `output` container (before anything is muxed)."""
        container = self._stack.enter_context(_open_input(self.path))
        self._container = container
        if not container.streams.audio:
            return
        self._origin = _origin(_video_stream(container, self.path))
        self._input = container.streams.audio[0]
        whole = self.start == 0 and self.duration is None
        if whole and self._input.codec_context.name in REMUX_AUDIO_CODECS:
            try:
                self._output = output.add_stream_from_template(self._input)
                self.mode = 'copy'
                return
            except ValueError:  # this muxer refuses the codec: re-encode it
                pass
        source = self._input.codec_context
        rate = source.sample_rate if source.sample_rate in AAC_SAMPLE_RATES else 48000
        layout = source.layout.name if source.layout.name in AAC_LAYOUTS else (
            'mono' if source.channels == 1 else 'stereo')
        self._output = output.add_stream('aac', rate=rate)
        self._output.layout = layout
        self._output.bit_rate = AAC_BITRATE_PER_CHANNEL * self._output.layout.nb_channels
        self.mode = 'encode'

    def packets(self):
        """Yield (time in seconds, packet) for the output stream, in time order."""
        if self.mode == 'copy':
            yield from self._copied()
        elif self.mode == 'encode':
            yield from self._encoded()

    def _copied(self):
        shift = round(self._origin / self._input.time_base)
        for packet in self._container.demux(self._input):
            if packet.dts is None:  # the demuxer's empty flush packet
                continue
            packet.pts -= shift
            packet.dts -= shift
            time = float(packet.pts * self._input.time_base)
            packet.stream = self._output
            yield time, packet

    def _encoded(self):
        begin = self._origin + self.start
        end = None if self.duration is None else begin + self.duration
        if self.start > 0:
            seek_to = max(0.0, begin - _AUDIO_PREROLL)
            self._container.seek(int(seek_to / self._input.time_base), stream=self._input)
        written = 0
        encoder_rate = self._output.codec_context.sample_rate

        def emit(frame):
            for packet in self._output.encode(frame):
                yield float(packet.pts * packet.time_base), packet

        for frame in self._container.decode(self._input):
            if frame.pts is None:
                continue
            rate = frame.sample_rate
            first = frame.time
            if end is not None and first >= end:
                break
            lo = max(0, int(round((begin - first) * rate)))
            hi = frame.samples if end is None else min(frame.samples,
                                                       int(round((end - first) * rate)))
            if hi <= lo:
                continue
            if (lo, hi) != (0, frame.samples):
                frame = _slice_audio(frame, lo, hi)
            frame.pts = int(round(written * encoder_rate / rate))
            frame.time_base = Fraction(1, encoder_rate)
            written += hi - lo
            yield from emit(frame)
        yield from emit(None)

    def close(self):
        self._stack.close()


def _slice_audio(frame, lo, hi):
    av = _av()
    array = frame.to_ndarray()
    if frame.format.is_planar:
        part = array[:, lo:hi]
    else:
        channels = frame.layout.nb_channels
        part = array[:, lo * channels:hi * channels]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=frame.format.name,
                                     layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


class VideoWriter:
    """Write pictures to an H.264 MP4 (libx264, yuv420p, BT.709) at `frame_rate`, atomically:
    the file appears under its name only when `close()` succeeds.

    `audio` is an AudioCopy (or another source with open/packets/close) whose packets are
    interleaved with the video by time. Frames must all have the first frame's size; odd sides
    lose their last column or row (see `even_size`). Use as a context manager: an exception
    inside the block leaves no file behind.
    """

    def __init__(self, path, frame_rate, audio=None, crf=DEFAULT_CRF, preset=DEFAULT_PRESET):
        av = _av()
        self.path = os.fspath(path)
        if os.path.splitext(self.path)[1].lower() != '.mp4':
            raise StyleTransferError('%s: the output video must end in .mp4' % self.path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise StyleTransferError('%s: no such folder' % folder)
        try:
            # A float such as 29.97 would otherwise become a fraction over 2**48.
            self.frame_rate = Fraction(frame_rate).limit_denominator(100000)
        except (TypeError, ValueError) as e:
            raise StyleTransferError('video frame rate: not a number: %r' % (frame_rate,)) from e
        if self.frame_rate <= 0:
            raise StyleTransferError('video frame rate: must be > 0, not %s' % self.frame_rate)
        source = getattr(audio, 'path', None)
        if source and os.path.exists(source) and os.path.exists(self.path) \
                and os.path.samefile(source, self.path):
            raise StyleTransferError('%s: the output would replace its own input' % self.path)
        self.crf, self.preset = crf, preset
        self.count = 0
        self._size = None
        self._stack = contextlib.ExitStack()
        self._audio = audio
        self._pending = None
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._container = av.open(tmp, 'w', format='mp4',
                                      options={'movflags': '+faststart'})
            self._stack.callback(self._container.close)
            if audio is not None:
                self._stack.callback(audio.close)
        except BaseException as e:
            self._abandon(e)
            raise

    def _start_video(self, width, height):
        stream = self._container.add_stream(VIDEO_CODEC, rate=self.frame_rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = PIXEL_FORMAT
        stream.options = {'crf': str(self.crf), 'preset': self.preset}
        ctx = stream.codec_context
        # Tagged, so players need not guess the colour matrix from the picture size.
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # BT.709
        ctx.color_range = 1  # limited ("MPEG") range
        self._video = stream

    def write(self, image):
        """Append one HxWx3 uint8 RGB picture."""
        av = _av()
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise StyleTransferError('%s: frames must be HxWx3 uint8 RGB, got %s %s'
                                     % (self.path, image.dtype, image.shape))
        if self._size is None:
            self._size = image.shape[:2]
            width, height = even_size(image.shape[1], image.shape[0])
            self._start_video(width, height)
            if self._audio is not None:  # after the video, which is then stream 0
                self._audio.open(self._container)
                self._audio_packets = self._audio.packets()
        elif image.shape[:2] != self._size:
            raise StyleTransferError('%s: frame %d is %dx%d, the first was %dx%d'
                                     % (self.path, self.count, image.shape[1], image.shape[0],
                                        self._size[1], self._size[0]))
        height, width = self._video.height, self._video.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]),
                                           format='rgb24')
        frame = frame.reformat(format=PIXEL_FORMAT, dst_colorspace='ITU709',
                               dst_color_range='MPEG')
        frame.pts = self.count
        frame.time_base = 1 / self.frame_rate
        self._mux_audio(until=float(self.count / self.frame_rate))
        self._container.mux(self._video.encode(frame))
        self.count += 1

    def _mux_audio(self, until=None):
        """Mux the audio packets that play before `until` seconds (all for None)."""
        if self._audio is None:
            return
        while True:
            if self._pending is None:
                self._pending = next(self._audio_packets, None)
                if self._pending is None:
                    return
            time, packet = self._pending
            if until is not None and time >= until:
                return
            self._container.mux(packet)
            self._pending = None

    def close(self):
        """Finish the file and move it to its name. Writing no frame is an error."""
        try:
            if self.count == 0:
                raise StyleTransferError('%s: no frames to write' % self.path)
            self._container.mux(self._video.encode(None))
            self._mux_audio()
            self._stack.close()
        except BaseException as e:
            self._abandon(e)
            raise

    def _abandon(self, error):
        with contextlib.suppress(Exception):
            self._stack.__exit__(type(error), error, error.__traceback__)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None:
            self.close()
        else:
            self._abandon(error)
        return False


def write_video(path, images, frame_rate, audio=None, crf=DEFAULT_CRF, preset=DEFAULT_PRESET):
    """Write an iterable of HxWx3 uint8 pictures with `VideoWriter`; returns how many."""
    with VideoWriter(path, frame_rate, audio, crf, preset) as writer:
        for image in images:
            writer.write(image)
    return writer.count


class FrameStore:
    """Finished frames of one run, kept as numbered PNGs in a work folder, so an interrupted run
    resumes: `done()` lists what is there and the run stylises only the rest.

    Every PNG is written atomically, so a frame file exists only once it is complete. The
    folder's store.json records `meta` (anything JSON can hold: the input, the style, the
    settings); opening the folder with different meta is refused, so a changed run never mixes
    in frames of another (meta None skips the check). One run at a time per folder: opening it
    removes the temporary files a killed run left behind.
    """
    NAME = 'frame_%06d.png'
    _PATTERN = re.compile(r'^frame_(\d{6,})\.png$')
    _STALE = re.compile(r'^\.frame_\d{6,}\..*\.part\.png$')
    META = 'store.json'

    def __init__(self, folder, meta=None):
        self.folder = os.fspath(folder)
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise StyleTransferError('%s: not a folder' % self.folder)
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise StyleTransferError('%s: cannot create the frame folder (%s)'
                                     % (self.folder, e.strerror)) from e
        # Temporary files of a run that was killed mid-write (atomic_path removes them on
        # anything short of SIGKILL or a power cut).
        for name in os.listdir(self.folder):
            if self._STALE.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.folder, name))
        if meta is not None:
            self._check_meta(meta)

    def _check_meta(self, meta):
        path = os.path.join(self.folder, self.META)
        wanted = json.loads(json.dumps(meta, sort_keys=True))
        if not os.path.exists(path):
            write_text(path, json.dumps(wanted, indent=1, sort_keys=True) + '\n')
            return
        try:
            with open(path, encoding='utf-8') as f:
                found = json.load(f)
        except (OSError, ValueError) as e:
            raise StyleTransferError('%s: unreadable (%s); delete the folder to start over'
                                     % (path, e)) from e
        if found != wanted:
            keys = sorted(set(found) | set(wanted)) if isinstance(found, dict) \
                and isinstance(wanted, dict) else []
            differing = [k for k in keys if found.get(k) != wanted.get(k)]
            raise StyleTransferError(
                '%s: holds frames of another run (different %s); use another folder or delete it'
                % (self.folder, ', '.join(differing) or 'settings'))

    def path(self, index):
        return os.path.join(self.folder, self.NAME % index)

    def save(self, index, image):
        """Store the finished picture of frame `index` (HxWx3 uint8), atomically."""
        from PIL import Image
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise StyleTransferError('frame %d: must be HxWx3 uint8 RGB, got %s %s'
                                     % (index, image.dtype, image.shape))
        with atomic_path(self.path(index)) as tmp:
            # Fast compression: frames are temporary, and at level 6 PNG writing would take
            # longer than a feed-forward stylisation.
            Image.fromarray(np.ascontiguousarray(image), 'RGB').save(tmp, format='PNG',
                                                                     compress_level=1)

    def load(self, index):
        from ..images import load_image
        return load_image(self.path(index))[0]

    def done(self):
        """Sorted indices of the stored frames."""
        found = (self._PATTERN.match(name) for name in os.listdir(self.folder))
        return sorted(int(m.group(1)) for m in found if m)

    def missing(self, count):
        """Indices below `count` not stored yet: the frames a resumed run still has to do."""
        done = set(self.done())
        return [i for i in range(count) if i not in done]

    def encode(self, path, frame_rate, count=None, audio=None, crf=DEFAULT_CRF,
               preset=DEFAULT_PRESET):
        """Write frames 0..count-1 (count None: all stored, which must have no gap) to an MP4
        with `VideoWriter`; returns the number of frames."""
        done = self.done()
        if count is None:
            count = len(done)
        if count < 1:
            raise StyleTransferError('%s: no frames stored' % self.folder)
        missing = self.missing(count)
        if missing:
            raise StyleTransferError('%s: frame %d of %d is missing (%d missing in all)'
                                     % (self.folder, missing[0], count, len(missing)))
        return write_video(path, (self.load(i) for i in range(count)), frame_rate, audio,
                           crf, preset)
