"""What a run leaves to read: the loss curves of every stage, a labelled contact sheet of images,
and text logs appended a line at a time (`LogWriter`).

Pictures are written through `atomic_path`, so a failed draw never replaces an existing one.
matplotlib is imported inside `plot_losses` only: importing the package must stay cheap, and
we draw on a `Figure` with its own Agg canvas instead of pyplot, so no display is needed and no
global figure or backend choice leaks into the caller.
"""
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import StyleTransferError
from .files import atomic_path, write_text

# Loss plot.
# (Progress field, legend label, colour, line style); the total is dotted so that a term
# which makes up nearly all of it stays visible underneath.
PLOT_TERMS = (
    ('content', 'content', 'tab:blue', '-'),
    ('style', 'style', 'tab:orange', '-'),
    ('tv', 'TV', 'tab:green', '-'),
    ('total', 'total', 'black', ':'),
)
PLOT_STAGE_SIZE = (4.5, 3.6)  # inches per stage subplot
PLOT_DPI = 100
# A log axis cannot show zero or negative losses (e.g. a TV weight of 0). We clip them to a
# value below everything positive in the figure rather than to a fixed 1e-300-ish constant, so a
# single zero does not stretch the axis over hundreds of decades and flatten the real curves.
CLIP_BELOW_SMALLEST = 0.1     # clipped values sit this factor below the smallest positive one
CLIP_FALLBACK = 1e-12         # used when nothing in the history is positive

# Contact sheet.
SHEET_GAP = 8                 # pixels between panels and around the sheet's edge
SHEET_LABEL_HEIGHT = 22       # strip under each panel holding its label
SHEET_CAPTION_HEIGHT = 22     # strip at the bottom holding the optional caption
SHEET_FONT_SIZE = 14          # Pillow's default font is 10 px, hard to read at a glance
SHEET_BACKGROUND = (255, 255, 255)
SHEET_INK = (0, 0, 0)
JPEG_QUALITY = 95             # Pillow's default of 75 smears the label text


def _stages(history):
    """Group `history` by stage number, in stage order, keeping each stage's records in order."""
    stages = {}
    for record in history:
        stages.setdefault(record.stage, []).append(record)
    return [stages[number] for number in sorted(stages)]


def _clip_floor(history):
    values = np.array([_value(record, field) for record in history
                       for field, _, _, _ in _terms(history)], dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    return positive.min() * CLIP_BELOW_SMALLEST if positive.size else CLIP_FALLBACK


def _stage_title(first):
    title = 'stage %d' % first.stage
    if first.width and first.height:
        title += ': %dx%d' % (first.width, first.height)
    return title


def _terms(history):
    """PLOT_TERMS, then any extra term the records carry, in order of appearance."""
    extra = []
    for record in history:
        for name in getattr(record, 'terms', {}):
            if name not in [t[0] for t in PLOT_TERMS] and name not in extra:
                extra.append(name)
    return PLOT_TERMS[:-1] + tuple((name, name, None, '-') for name in extra) + PLOT_TERMS[-1:]


def _value(record, field):
    terms = getattr(record, 'terms', None)
    if terms is not None and field in terms:
        return terms[field]
    return getattr(record, field, np.nan)


def plot_losses(history, path, title=None):
    """Plot the weighted content, style and TV losses and their total, one subplot per stage.

    `history` holds the `Progress` record of every iteration of every stage, in order. The
    y axis is logarithmic and shared, so stages can be compared; values <= 0 are clipped to a
    small positive number. `title` goes above the figure (e.g. which weights the run used).
    The figure is saved to `path` as PNG and returned (a pyplot-free `Figure`, so dropping it
    frees it).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = list(history)
    if not history:
        raise ValueError('plot_losses needs at least one Progress record')
    stages = _stages(history)
    floor = _clip_floor(history)

    width, height = PLOT_STAGE_SIZE
    figure = Figure(figsize=(width * len(stages), height), dpi=PLOT_DPI, layout='constrained')
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(stages), sharey=True, squeeze=False)[0]
    for ax, records in zip(axes, stages):
        iterations = [record.iteration for record in records]
        for field, label, colour, style in _terms(history):
            values = np.array([_value(record, field) for record in records], dtype=np.float64)
            ax.plot(iterations, np.maximum(values, floor), label=label, color=colour,
                    linestyle=style, linewidth=1.6)
        ax.set_yscale('log')
        ax.set_title(_stage_title(records[0]))
        ax.set_xlabel('iteration')
        ax.grid(True, which='major', alpha=0.3)
    axes[0].set_ylabel('weighted loss')
    # One legend for the whole figure, outside every subplot, so it never hides a curve.
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc='outside lower center', ncol=len(handles))
    if title:
        figure.suptitle(title)

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format='png')
    return figure


def _font():
    try:
        return ImageFont.load_default(size=SHEET_FONT_SIZE)
    except (ImportError, OSError, TypeError):
        # Pillow without FreeType (or older than 10.1) only has the small bitmap font.
        return ImageFont.load_default()


def _check_panel(label, image):
    if not isinstance(image, np.ndarray):
        raise TypeError('panel %r: expected an HxWx3 uint8 numpy array, got %s'
                        % (label, type(image).__name__))
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError('panel %r: expected an HxWx3 uint8 array, got shape %s dtype %s'
                         % (label, image.shape, image.dtype))
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError('panel %r: empty image of shape %s' % (label, image.shape))


def _scaled_width(image, height):
    """Width of `image` (HxWx3) resized to `height` with its aspect ratio kept."""
    return max(1, round(image.shape[1] * height / image.shape[0]))


def _fit(draw, text, font, width):
    """`text`, shortened with an ellipsis if needed so it is at most `width` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + '…', font=font) > width:
        text = text[:-1]
    return text + '…' if text else ''


def _draw_centred(draw, text, font, left, top, width, height):
    text = _fit(draw, text, font, width)
    if not text:
        return
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    draw.text((left + (width - (x1 - x0)) / 2 - x0, top + (height - (y1 - y0)) / 2 - y0),
              text, fill=SHEET_INK, font=font)


def contact_sheet(panels, path, height=256, caption=None):
    """Lay out labelled images side by side on a white sheet, save it to `path`, return it.

    `panels` is a list of `(label, image)`, each image an HxWx3 uint8 array. Every image is
    resized to `height` pixels high keeping its aspect ratio, with SHEET_GAP pixels between
    panels and around the edge, its label centred in a SHEET_LABEL_HEIGHT strip under it and
    `caption`, if given, in a SHEET_CAPTION_HEIGHT strip at the bottom. Labels and caption too
    wide for their space are shortened with an ellipsis. The format follows the extension of
    `path` (PNG or JPEG). Nothing is written if any panel is invalid.
    """
    panels = list(panels)
    if not panels:
        raise ValueError('contact_sheet needs at least one panel')
    if height < 1:
        raise ValueError('height must be positive, got %r' % (height,))
    for label, image in panels:
        _check_panel(label, image)

    widths = [_scaled_width(image, height) for _, image in panels]
    sheet_width = sum(widths) + SHEET_GAP * (len(panels) + 1)
    sheet_height = (SHEET_GAP + height + SHEET_LABEL_HEIGHT
                    + (SHEET_CAPTION_HEIGHT if caption else 0) + SHEET_GAP)
    sheet = Image.new('RGB', (sheet_width, sheet_height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font()

    left = SHEET_GAP
    for (label, image), width in zip(panels, widths):
        picture = Image.fromarray(image, 'RGB').resize((width, height), Image.Resampling.LANCZOS)
        sheet.paste(picture, (left, SHEET_GAP))
        _draw_centred(draw, str(label), font, left, SHEET_GAP + height, width,
                      SHEET_LABEL_HEIGHT)
        left += width + SHEET_GAP
    if caption:
        _draw_centred(draw, str(caption), font, SHEET_GAP, SHEET_GAP + height + SHEET_LABEL_HEIGHT,
                      sheet_width - 2 * SHEET_GAP, SHEET_CAPTION_HEIGHT)

    options = {}
    if os.path.splitext(os.fspath(path))[1].lower() in ('.jpg', '.jpeg'):
        options['quality'] = JPEG_QUALITY
    with atomic_path(path) as tmp:
        sheet.save(tmp, **options)
    return sheet


class AppendFile:
    """A text file that grows a line at a time: every line is appended by one write() of the
    whole line to a descriptor opened for appending, so a crash never tears a line or loses the
    lines before it, and a long run's log costs what it holds, not its square. Created if
    missing, never rewritten; a device such as /dev/null is written in place. With `lock`,
    this process holds an exclusive lock on it until `close` (two batches writing one folder
    would redo each other's items); `busy` says why another holder is refused."""

    def __init__(self, path, lock=False, busy='another process is writing it'):
        import fcntl
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as e:
            raise StyleTransferError('%s: cannot append to it (%s)' % (path, e.strerror or e)) \
                from e
        if lock:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.close()
                raise StyleTransferError('%s: %s' % (path, busy)) from None

    def write(self, line):
        data = (line + '\n').encode('utf-8')
        while data:      # a pipe may take part of it
            data = data[os.write(self._fd, data):]

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LogWriter(AppendFile):
    """A run's log: it starts as `lines` (a resumed run's log so far; empty for a new run),
    written whole and atomically, and grows a line at a time from there."""

    def __init__(self, path, lines=()):
        write_text(path, ''.join(line + '\n' for line in lines))
        super().__init__(path)
