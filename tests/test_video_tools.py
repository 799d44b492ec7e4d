"""Video building blocks: MP4 round trips with audio, cuts, the resumable frame store, DIS flow,
warping (OpenCV and in the MXNet graph), Ruder et al.'s reliability mask, the warping error and
the feed-forward blend. Clips are 96x64 and 10 frames at most."""
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from styletransfer.data import bundled
from styletransfer.errors import StyleTransferError
from styletransfer.video import flow as fl
from styletransfer.video import io as vio
from styletransfer.video import synthetic as syn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = bundled('tubingen.jpg')
SIZE = (96, 64)
FPS = 25
TONE = 440.0
RATE = 44100
AAC_FRAME = 1024 / RATE  # seconds of one AAC packet


@pytest.fixture(scope='module')
def clip_frames():
    return syn.panning_frames(10, SIZE, texture=PHOTO, pan=(2.0, 1.0))


@pytest.fixture(scope='module')
def clip(tmp_path_factory, clip_frames):
    """10 frames at 25 fps with a 440 Hz AAC tone."""
    path = str(tmp_path_factory.mktemp('clip') / 'clip.mp4')
    return syn.write_clip(path, clip_frames, FPS, tone=TONE, sample_rate=RATE)


def streams(path):
    """{'video'/'audio': (codec name, duration s, frames or packets)} read with PyAV directly."""
    import av
    with av.open(path) as container:
        return {s.type: (s.codec_context.name, float(s.duration * s.time_base), s.frames)
                for s in container.streams}


def audio_packets(path):
    import av
    with av.open(path) as container:
        return [(p.pts, bytes(p)) for p in container.demux(container.streams.audio[0])
                if p.dts is not None]


def decoded_audio(path):
    import av
    with av.open(path) as container:
        return np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])


def tone_phase(samples, skip=2048):
    """Phase (radians) of the TONE sinusoid in `samples`, ignoring the first and last `skip`
    samples (codec start-up and padding): samples ~= A sin(2 pi f t + phase)."""
    t = np.arange(len(samples)) / RATE
    inner = slice(skip, len(samples) - skip)
    s = np.sin(2 * np.pi * TONE * t)[inner]
    c = np.cos(2 * np.pi * TONE * t)[inner]
    return np.arctan2(samples[inner] @ c, samples[inner] @ s)


def angle_between(a, b):
    return abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def luma(images):
    return np.stack(images).astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


# --- reading and writing ---------------------------------------------------------------------

def test_round_trip_keeps_count_rate_size_and_pixels(clip, clip_frames):
    info = vio.probe(clip)
    assert (info.width, info.height) == SIZE and info.size == SIZE
    assert info.frame_rate == Fraction(FPS) and isinstance(info.frame_rate, Fraction)
    assert info.frame_count == 10
    assert info.duration == pytest.approx(10 / FPS)
    assert info.has_audio and info.audio_codec == 'aac' and info.rotation == 0
    assert streams(clip)['video'][0] == 'h264'

    frames = list(vio.read_frames(clip))
    assert [f.index for f in frames] == list(range(10))
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(10)])
    assert all(f.image.shape == (64, 96, 3) and f.image.dtype == np.uint8 for f in frames)
    got = np.stack([f.image for f in frames]).astype(np.float64)
    # Lossy: x264 at CRF 18 plus 4:2:0 chroma; brightness survives far better than colour.
    assert np.abs(got - np.stack(clip_frames)).mean() < 6
    assert np.abs(luma([f.image for f in frames]) - luma(clip_frames)).mean() < 3.5


def test_ntsc_frame_rate_kept_exactly(tmp_path, clip_frames):
    path = str(tmp_path / 'ntsc.mp4')
    assert vio.write_video(path, clip_frames[:4], Fraction(30000, 1001)) == 4
    info = vio.probe(path)
    assert info.frame_rate == Fraction(30000, 1001)
    assert [f.time for f in vio.read_frames(path)] == pytest.approx(
        [i * 1001 / 30000 for i in range(4)], abs=1e-4)
    vio.write_video(path, clip_frames[:4], 29.97)  # a float: kept as 2997/100
    assert vio.probe(path).frame_rate == Fraction(2997, 100)


def test_odd_sizes_lose_the_last_column_and_row(tmp_path, clip_frames):
    odd = [f[:63, :95] for f in clip_frames[:3]]
    path = str(tmp_path / 'odd.mp4')
    vio.write_video(path, odd, FPS)
    assert vio.even_size(95, 63) == (94, 62)
    assert vio.probe(path).size == (94, 62)
    back = [f.image for f in vio.read_frames(path)]
    assert np.abs(luma(back) - luma([f[:62, :94] for f in odd])).mean() < 3.5


def test_resize_on_reading_keeps_the_aspect_when_one_side_is_given(clip):
    assert vio.fit_size((96, 64), (50, None)) == (50, 33)   # 64 * 50 / 96 = 33.3
    assert vio.fit_size((96, 64), (None, 40)) == (60, 40)
    assert vio.fit_size((96, 64), (30, 20)) == (30, 20)
    assert vio.fit_size((96, 64), None) == (96, 64)
    frames = list(vio.read_frames(clip, size=(48, None)))
    assert len(frames) == 10 and frames[0].image.shape == (32, 48, 3)
    full = next(vio.read_frames(clip)).image.astype(np.float64)
    halved = full.reshape(32, 2, 48, 2, 3).mean(axis=(1, 3))
    assert np.abs(frames[0].image - halved).mean() < 3  # an area average, not a point sample


def test_cut_reads_the_frames_of_the_interval(clip):
    frames = list(vio.read_frames(clip, start=0.12, duration=0.2))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.time for f in frames] == pytest.approx([0.12, 0.16, 0.2, 0.24, 0.28])
    whole = list(vio.read_frames(clip))
    assert np.array_equal(frames[0].image, whole[3].image)
    assert [f.time for f in vio.read_frames(clip, start=0.3)] == pytest.approx([0.32, 0.36])


def test_rotation_flag_is_applied_on_reading(tmp_path):
    import av
    path = str(tmp_path / 'phone.mp4')
    picture = np.zeros((64, 96, 3), np.uint8)
    picture[:16, :32] = 255  # a white block in the top-left corner
    with av.open(path, 'w') as container:
        stream = container.add_stream('libx264', rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 96, 64, 'yuv420p'
        stream.set_display_rotation(90)  # shown turned 90 degrees counterclockwise
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(picture, format='rgb24')
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info = vio.probe(path)
    assert info.rotation == 90 and info.size == (64, 96)
    image = next(vio.read_frames(path)).image
    assert image.shape == (96, 64, 3)
    white = np.argwhere(image[..., 1] > 128)
    # A counterclockwise turn takes the top-left corner to the bottom-left one.
    assert white.min(axis=0).tolist() == [96 - 32, 0]
    assert white.max(axis=0).tolist() == [95, 15]


# --- audio -----------------------------------------------------------------------------------

def test_whole_aac_audio_is_copied_packet_for_packet(tmp_path, clip):
    out = str(tmp_path / 'out.mp4')
    audio = vio.AudioCopy(clip)
    vio.write_video(out, (f.image for f in vio.read_frames(clip)), FPS, audio)
    assert audio.mode == 'copy'
    assert list(streams(out)) == ['video', 'audio']
    assert streams(out)['audio'][:2] == ('aac', pytest.approx(10 / FPS))
    assert audio_packets(out) == audio_packets(clip)


def test_pcm_audio_is_reencoded_to_aac(tmp_path, clip_frames):
    source = syn.write_clip(str(tmp_path / 'pcm.mp4'), clip_frames, FPS, tone=TONE,
                            audio_codec='pcm_s16le', sample_rate=RATE)
    assert vio.probe(source).audio_codec == 'pcm_s16le'
    out = str(tmp_path / 'out.mp4')
    audio = vio.AudioCopy(source)
    vio.write_video(out, clip_frames, FPS, audio)
    assert audio.mode == 'encode'
    codec, duration, _ = streams(out)['audio']
    assert codec == 'aac' and duration == pytest.approx(10 / FPS, abs=AAC_FRAME)
    samples = decoded_audio(out)
    assert angle_between(tone_phase(samples), 0.0) < 0.05
    assert np.abs(samples[2048:8192]).max() == pytest.approx(0.3, abs=0.02)


def test_cut_takes_only_the_matching_audio_to_the_sample(tmp_path, clip):
    out = str(tmp_path / 'cut.mp4')
    audio = vio.AudioCopy(clip, start=0.12, duration=0.2)
    n = vio.write_video(out, (f.image for f in vio.read_frames(clip, 0.12, 0.2)), FPS, audio)
    assert n == 5 and audio.mode == 'encode'
    found = streams(out)
    assert found['video'][2] == 5
    assert found['audio'][0] == 'aac'
    assert found['audio'][1] == pytest.approx(0.2, abs=AAC_FRAME)
    # The tone in the cut starts where the source was at 0.12 s: its phase there, to a few
    # microseconds (0.05 rad at 440 Hz is 18 us).
    assert angle_between(tone_phase(decoded_audio(out)), 2 * np.pi * TONE * 0.12) < 0.05


def test_video_without_audio_gives_video_without_audio(tmp_path, clip_frames):
    silent = syn.write_clip(str(tmp_path / 'silent.mp4'), clip_frames[:3], FPS, tone=None)
    assert not vio.probe(silent).has_audio
    out = str(tmp_path / 'out.mp4')
    audio = vio.AudioCopy(silent)
    vio.write_video(out, clip_frames[:3], FPS, audio)
    assert audio.mode is None and set(streams(out)) == {'video'}


# --- atomic writes and the resumable frame store ---------------------------------------------

def test_writer_leaves_nothing_when_interrupted(tmp_path, clip_frames):
    path = tmp_path / 'never.mp4'
    with pytest.raises(KeyboardInterrupt):
        with vio.VideoWriter(str(path), FPS) as writer:
            writer.write(clip_frames[0])
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
    with pytest.raises(StyleTransferError, match='no frames'):
        with vio.VideoWriter(str(path), FPS):
            pass
    assert os.listdir(tmp_path) == []


def test_frame_store_resumes_where_it_stopped(tmp_path, clip, clip_frames):
    folder = tmp_path / 'work'
    meta = {'input': 'clip.mp4', 'style': 'starry', 'weight': 0.5}
    stylised = []

    def run(stop_after=None):
        """A stand-in for the stylisation loop: skips stored frames, may be interrupted."""
        store = vio.FrameStore(folder, meta)
        done = set(store.done())
        for frame in vio.read_frames(clip):
            if frame.index in done:
                continue
            if stop_after is not None and len(stylised) == stop_after:
                raise KeyboardInterrupt
            stylised.append(frame.index)
            store.save(frame.index, 255 - frame.image)
        return store

    with pytest.raises(KeyboardInterrupt):
        run(stop_after=4)
    # A frame killed mid-write leaves a hidden temporary file: it is not a done frame, and the
    # next run removes it.
    (folder / '.frame_000004.abc123.part.png').write_bytes(b'half a png')
    store = vio.FrameStore(folder, meta)
    assert store.done() == [0, 1, 2, 3] and store.missing(10) == [4, 5, 6, 7, 8, 9]
    with pytest.raises(StyleTransferError, match='frame 4 of 10 is missing'):
        store.encode(str(tmp_path / 'early.mp4'), FPS, count=10)

    store = run()
    assert stylised == list(range(10))  # every frame stylised exactly once over the two runs
    assert store.done() == list(range(10))
    assert sorted(os.listdir(folder)) == ['frame_%06d.png' % i for i in range(10)] + ['store.json']
    assert np.array_equal(store.load(7), 255 - next(
        f.image for f in vio.read_frames(clip) if f.index == 7))

    out = str(tmp_path / 'stylised.mp4')
    assert store.encode(out, FPS, audio=vio.AudioCopy(clip)) == 10
    info = vio.probe(out)
    assert (info.frame_count, info.frame_rate, info.size, info.has_audio) == (10, FPS, SIZE, True)
    assert audio_packets(out) == audio_packets(clip)
    back = [f.image for f in vio.read_frames(out)]
    assert np.abs(luma(back) - luma([store.load(i) for i in range(10)])).mean() < 3.5

    with pytest.raises(StyleTransferError, match=r'another run \(different style\)'):
        vio.FrameStore(folder, dict(meta, style='scream'))


# --- errors ----------------------------------------------------------------------------------

def one_line_error(call, *fragments):
    with pytest.raises(StyleTransferError) as caught:
        call()
    message = str(caught.value)
    assert '\n' not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_bad_inputs_give_one_line_errors(tmp_path, clip, clip_frames):
    import av
    missing = str(tmp_path / 'missing.mp4')
    one_line_error(lambda: vio.probe(missing), missing, 'no such file')
    empty = tmp_path / 'empty.mp4'
    empty.write_bytes(b'')
    one_line_error(lambda: vio.probe(str(empty)), 'empty.mp4', 'empty')
    text = tmp_path / 'notes.mp4'
    text.write_text('not a video at all\n' * 50)
    one_line_error(lambda: vio.probe(str(text)), 'notes.mp4', 'not a video file')
    one_line_error(lambda: vio.probe(PHOTO), 'tubingen.jpg', 'still image')
    sound = str(tmp_path / 'sound.m4a')
    with av.open(sound, 'w') as container:
        tone = syn.SineTone(0.2)
        tone.open(container)
        for _, packet in tone.packets():
            container.mux(packet)
    one_line_error(lambda: vio.probe(sound), 'sound.m4a', 'no video stream')
    one_line_error(lambda: list(vio.read_frames(missing)), 'no such file')
    one_line_error(lambda: list(vio.read_frames(clip, start=-1)), 'start')
    one_line_error(lambda: list(vio.read_frames(clip, duration=0)), 'duration')
    one_line_error(lambda: list(vio.read_frames(clip, start=5)), 'past the end')
    one_line_error(lambda: list(vio.read_frames(clip, size=(0, None))), 'size')
    one_line_error(lambda: vio.VideoWriter(str(tmp_path / 'x.avi'), FPS), 'x.avi', '.mp4')
    one_line_error(lambda: vio.VideoWriter(str(tmp_path / 'no' / 'x.mp4'), FPS), 'no such folder')
    one_line_error(lambda: vio.VideoWriter(str(tmp_path / 'x.mp4'), 0), 'frame rate')
    one_line_error(lambda: vio.write_video(str(tmp_path / 'x.mp4'),
                                           [clip_frames[0], clip_frames[0][:32]], FPS),
                   'frame 1 is 96x32, the first was 96x64')
    one_line_error(lambda: vio.write_video(clip, clip_frames, FPS, vio.AudioCopy(clip)),
                   'replace its own input')
    one_line_error(lambda: vio.write_video(str(tmp_path / 'x.mp4'), clip_frames, FPS,
                                           vio.AudioCopy(missing)), missing, 'no such file')
    assert sorted(os.listdir(tmp_path)) == ['empty.mp4', 'notes.mp4', 'sound.m4a']


def test_importing_the_package_needs_neither_opencv_nor_pyav():
    code = ('import sys, styletransfer, styletransfer.video.io, styletransfer.video.flow, '
            'styletransfer.video.synthetic; print(sorted({"cv2", "av"} & set(sys.modules)))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == '[]'


# --- flow and warping ------------------------------------------------------------------------

INTERIOR = (slice(8, -8), slice(8, -8))


@pytest.mark.parametrize('pan', [(1.5, -0.75), (-3.25, 2.0)])
def test_dis_recovers_a_pure_translation(pan):
    frames = syn.panning_frames(2, SIZE, texture=PHOTO, pan=pan)
    backward = fl.optical_flow(frames[1], frames[0])  # on frame 1's grid, into frame 0
    assert backward.shape == (64, 96, 2) and backward.dtype == np.float32
    # Frame 1 shows at x what frame 0 showed at x + pan: the backward flow is +pan everywhere.
    error = np.linalg.norm(backward - np.float32(pan), axis=2)[INTERIOR]
    assert error.mean() < 0.5
    forward = fl.optical_flow(frames[0], frames[1])
    assert np.linalg.norm(forward + np.float32(pan), axis=2)[INTERIOR].mean() < 0.5


def test_dis_follows_a_zoom():
    frames = syn.panning_frames(3, SIZE, pan=(1.0, 0.5), zoom=1.04)
    truth = syn.panning_flow(SIZE, (1.0, 0.5), 1.04, t=1)
    assert np.abs(truth[0, 0] - truth[-1, -1]).max() > 3  # the zoom is visible in the flow
    found = fl.optical_flow(frames[2], frames[1])
    assert np.linalg.norm(found - truth, axis=2)[INTERIOR].mean() < 0.5


def test_warp_direction_and_border_by_hand():
    row = np.array([[0, 10, 20, 30]], np.float32)
    flow = np.zeros((1, 4, 2), np.float32)
    flow[..., 0] = 0.5  # read half a pixel to the right
    assert fl.warp(row, flow).tolist() == [[5, 15, 25, 30]]  # the last pixel repeats
    flow[..., 0] = -1.0
    assert fl.warp(row, flow).tolist() == [[0, 0, 10, 20]]
    column = row.T.copy()
    down = np.zeros((4, 1, 2), np.float32)
    down[..., 1] = 2.0  # channel 1 is dy
    assert fl.warp(column, down)[:, 0].tolist() == [20, 30, 30, 30]


def test_warping_the_previous_frame_gives_the_current_one():
    frames = syn.panning_frames(3, SIZE, texture=PHOTO, pan=(2.5, 1.5), zoom=1.02)
    previous, current = frames[1], frames[2]
    backward, mask = fl.motion(previous, current)
    assert mask.mean() > 0.8
    moved = fl.warp(previous, backward).astype(np.float64)
    reliable = mask.astype(bool)
    error = np.abs(moved - current).mean(axis=2)[reliable].mean()
    unmoved = np.abs(previous.astype(np.float64) - current).mean(axis=2)[reliable].mean()
    assert error < 4 and error < unmoved / 4


def test_consistency_mask_by_hand():
    shape = (12, 16, 2)
    backward = np.zeros(shape, np.float32)
    backward[..., 0] = 2.0
    forward = -backward
    mask = fl.consistency_mask(forward, backward)
    assert mask.dtype == np.float32 and mask.shape == (12, 16)
    # Columns 14 and 15 point 2 pixels to the right, outside the previous frame: unreliable.
    assert mask[:, :14].min() == 1 and mask[:, 14:].max() == 0
    # Flows that do not cancel: |w + w~|^2 = 16 > 0.01 * (4 + 4) + 0.5.
    assert fl.consistency_mask(backward, backward).max() == 0
    # Slightly off (|w + w~|^2 = 0.49 < 0.58) is still consistent.
    near = forward.copy()
    near[..., 1] = 0.7
    assert fl.consistency_mask(near, backward)[:, :14].min() == 1
    # A motion boundary: the backward flow jumps from 0 (columns 0-7) to 2 (columns 8-15).
    # Central differences see a gradient of 1 in columns 7 and 8 (1 > 0.01 |w|^2 + 0.002) and
    # 0 elsewhere. The forward flow agrees where it is read (columns 0-7 and 10-15), so only
    # the boundary is flagged, and columns 14 and 15, which point outside the frame.
    step = np.zeros(shape, np.float32)
    step[:, 8:, 0] = 2.0
    agreeing = np.zeros(shape, np.float32)
    agreeing[:, 10:, 0] = -2.0
    agreeing[:, 8:10, 1] = 50.0  # never read: what columns 8 and 9 of the previous frame did
    mask = fl.consistency_mask(agreeing, step)
    expected = np.ones((12, 16), np.float32)
    expected[:, 7:9] = 0
    expected[:, 14:] = 0
    assert np.array_equal(mask, expected)


def test_consistency_mask_flags_the_disocclusion_behind_a_moving_object():
    frames, boxes = syn.moving_square_frames(4, SIZE, side=24, step=3)
    backward, mask = fl.motion(frames[1], frames[2])
    left, top, side = boxes[1]
    uncovered = mask[top + 2:top + side - 2, left:left + 3]  # background new in frame 2
    assert uncovered.mean() < 0.3
    assert mask[:, 72:].mean() == 1 and mask[:top - 6].mean() == 1  # static texture, far away
    inside = (slice(top + 8, top + side - 8), slice(left + 3 + 8, left + 3 + side - 8))
    assert mask[inside].mean() == 1
    assert np.abs(backward[inside] - np.float32([-3, 0])).max() < 0.5


# --- the temporal-consistency measure, blending, the graph warp ------------------------------

def test_warping_error_by_hand():
    a = np.zeros((4, 6, 3), np.float32)
    b = a + 0.2
    still = [(np.zeros((4, 6, 2), np.float32), np.ones((4, 6), np.float32))]
    assert fl.warping_errors([a, b], pairs=still) == [pytest.approx(0.04)]
    half = np.ones((4, 6), np.float32)
    half[:, 3:] = 0
    c = b.copy()
    c[:, 3:] = 1.0  # unreliable pixels do not count
    assert fl.warping_error([a, c], pairs=[(still[0][0], half)]) == pytest.approx(0.04)
    # uint8 frames are read as value / 255.
    assert fl.warping_error([np.zeros((4, 6, 3), np.uint8), np.full((4, 6, 3), 51, np.uint8)],
                            pairs=still) == pytest.approx(0.04)
    assert np.isnan(fl.warping_errors([a, b], pairs=[(still[0][0], 0 * half)])[0])


def test_warping_error_zero_for_consistent_frames_and_large_for_flicker():
    originals = syn.panning_frames(5, SIZE, texture=PHOTO, pan=(2.0, 1.0))
    pairs = fl.motions(originals)
    consistent = fl.warping_error(originals, pairs=pairs)
    rng = np.random.RandomState(0)
    flicker = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8)
               for f in originals]
    flickering = fl.warping_error(flicker, originals)
    assert consistent < 1e-3
    # Independent noise of 20 levels per frame: about 2 * (20/255)^2 = 0.012 more.
    assert flickering > 0.008 and flickering > 10 * consistent


def test_blend_weights_and_mask():
    rng = np.random.RandomState(1)
    stylised = rng.randint(0, 256, (5, 7, 3)).astype(np.uint8)
    warped = rng.randint(0, 256, (5, 7, 3)).astype(np.uint8)
    mask = (rng.rand(5, 7) > 0.5).astype(np.float32)
    assert fl.blend(stylised, warped, mask, 0.0) is stylised
    out = fl.blend(stylised, warped, mask, 1.0)
    assert np.array_equal(out, np.where(mask[..., None] == 1, warped, stylised))
    quarter = fl.blend(stylised.astype(np.float32), warped.astype(np.float32), mask, 0.25)
    expected = np.where(mask[..., None] == 1, 0.75 * stylised + 0.25 * warped.astype(np.float64),
                        stylised)
    assert np.allclose(quarter, expected, atol=1e-4)
    rounded = fl.blend(stylised, warped, mask, 0.25)
    assert rounded.dtype == np.uint8 and np.abs(rounded - expected).max() <= 0.5
    with pytest.raises(ValueError, match='weight'):
        fl.blend(stylised, warped, mask, 1.5)


def numpy_warp(image, flow):
    """Bilinear warp with clamped coordinates, in float64: the reference for both warps."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    sx = np.clip(xs + flow[..., 0], 0, width - 1)
    sy = np.clip(ys + flow[..., 1], 0, height - 1)
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]
    return (image[y0, x0] * (1 - ax) * (1 - ay) + image[y0, x1] * ax * (1 - ay)
            + image[y1, x0] * (1 - ax) * ay + image[y1, x1] * ax * ay)


def test_warp_nd_equals_the_opencv_warp():
    import mxnet as mx
    rng = np.random.RandomState(2)
    image = rng.rand(20, 30, 3).astype(np.float32)
    flow = ((rng.rand(20, 30, 2) - 0.5) * 8).astype(np.float32)  # some reads leave the picture
    x = mx.nd.array(image.transpose(2, 0, 1)[None])
    nd_out = fl.warp_nd(x, fl.flow_to_nd(flow)).asnumpy()[0].transpose(1, 2, 0)
    reference = numpy_warp(image, flow)
    assert np.abs(nd_out - reference).max() < 1e-5
    # OpenCV rounds its interpolation weights to 1/32: on [0, 1] noise that is < 1/64 + a bit.
    assert np.abs(nd_out - fl.warp(image, flow)).max() < 0.02
    assert np.abs(nd_out - fl.warp(image, flow))[2:-2, 2:-2].mean() < 0.005
    # The same inside a symbolic graph.
    graph = fl.warp_nd(mx.sym.var('x'), mx.sym.var('flow'), F=mx.sym)
    sym_out = graph.eval(ctx=mx.cpu(), x=x, flow=fl.flow_to_nd(flow))[0].asnumpy()
    assert np.allclose(sym_out[0].transpose(1, 2, 0), nd_out, atol=1e-6)


def test_temporal_loss_against_numpy():
    import mxnet as mx
    rng = np.random.RandomState(3)
    x, warped = rng.rand(2, 1, 3, 5, 4).astype(np.float32)
    mask = (rng.rand(1, 1, 5, 4) > 0.3).astype(np.float32)
    expected = (mask * (x - warped) ** 2).sum() / x.size
    loss = fl.temporal_loss(mx.nd.array(x), mx.nd.array(warped), mx.nd.array(mask))
    assert loss.asscalar() == pytest.approx(expected, rel=1e-5)
