"""The d2l-zh book's loss log: format our lines like the book's, parse logs, compare with the book.

Pure functions over text and small frozen records: nothing here prints, exits or imports MXNet,
so a log from any machine can be checked against the book without a GPU.
"""
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

TERMS = ('content', 'style', 'tv')
TERM_LABELS = {'content': 'content', 'style': 'style', 'tv': 'TV'}
PRINT_ROUNDING = 0.005      # half a unit in the last digit of a '%.2f' number
DEFAULT_REL_TOL = 0.015     # the book's six runs all land within about 1.5% of its printed log
# Band edges are sums of decimals parsed from text; binary rounding must not flip a number that
# sits exactly on an edge (e.g. 10.00 + 1.5% + 0.005 = 10.155) to outside.
_EDGE_SLACK = 1e-9

DATA_DIR = Path(__file__).resolve().with_name('data')
BOOK_LOG = DATA_DIR / 'd2lzh_book.log'
BOOK_SPREAD = DATA_DIR / 'd2lzh_book_spread.json'


# ---------------------------------------------------------------------------------- formatting

def format_epoch(epoch, content, style, tv, seconds):
    """The book's progress line, character for character."""
    return 'epoch %3d, content loss %.2f, style loss %.2f, TV loss %.2f, %.2f sec' % (
        epoch, content, style, tv, seconds)


def format_lr(lr):
    """The book's line after a learning-rate decay."""
    return 'change lr to %.1e' % lr


def format_stage_header(stage, stages, width, height, iterations, lr, decay_every, weights,
                        decay_factor=0.1):
    """Our line before each stage (the book prints none); `parse_log` starts a stage at it.

    `weights` names where the VGG weights came from (e.g. 'zoo'). A falsy `decay_every` means
    the stage never decays its learning rate; `lr` None means an optimiser without one (L-BFGS).
    """
    if lr is None:
        schedule = 'L-BFGS'
    else:
        schedule = 'lr %.1e, %s' % (lr, 'x%g every %d' % (decay_factor, decay_every)
                                    if decay_every else 'no lr decay')
    return 'stage %d/%d: %dx%d, %d iterations, %s, weights %s' % (
        stage, stages, width, height, iterations, schedule, weights)


# ------------------------------------------------------------------------------------- parsing

@dataclass(frozen=True)
class Entry:
    epoch: int
    content: float
    style: float
    tv: float
    seconds: float


@dataclass(frozen=True)
class Stage:
    entries: tuple          # Entry records in log order
    lr_changes: tuple = ()  # (after_epoch, lr): epoch of the last entry logged before the change
    header: str = ''        # our 'stage i/n: ...' line, '' for logs without one (the book's)


_NUMBER = r'([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|[-+]?nan|[-+]?inf)'
_SEP = r'\s*[,，]\s*'         # the article's logs use ASCII or full-width commas, spaced or not


def _entry_pattern(content, style, tv, unit):
    return re.compile(r'epoch\s*(\d+)' + _SEP + content + r'\s*' + _NUMBER + _SEP + style
                      + r'\s*' + _NUMBER + _SEP + tv + r'\s*' + _NUMBER + _SEP + _NUMBER
                      + r'\s*' + unit + r'$', re.IGNORECASE)


_ENTRY_PATTERNS = (
    _entry_pattern('content loss', 'style loss', 'TV loss', 'sec'),     # the book, and ours
    _entry_pattern('内容损失', '样式损失', '总变差损失', '秒'),           # the article's variant
)
_LR_PATTERN = re.compile(r'change lr to\s*' + _NUMBER + r'$', re.IGNORECASE)
_HEADER_PATTERN = re.compile(r'stage \d+\s*/\s*\d+\s*:')


def _parse_entry(line):
    for pattern in _ENTRY_PATTERNS:
        match = pattern.match(line)
        if match:
            epoch, *numbers = match.groups()
            return Entry(int(epoch), *map(float, numbers))
    return None


def parse_log(text):
    """Read the loss log in `text` and return its stages, a list of `Stage`.

    Recognised lines: the book's (and our) English epoch lines, the article's Chinese ones,
    'change lr to ...' lines and our 'stage i/n: ...' headers. Everything else (blank lines,
    '#' comments, progress output, other headers) is skipped. A stage starts at a header, or
    when an epoch number is not larger than the one before it: the book prints no headers and
    its stage 2 restarts at epoch 50.
    """
    stages = []
    header, entries, lr_changes = '', [], []

    def close_stage():
        if header or entries or lr_changes:
            stages.append(Stage(tuple(entries), tuple(lr_changes), header))

    for line in text.splitlines():      # splitlines also splits at '\r' of progress bars
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if _HEADER_PATTERN.match(line):
            close_stage()
            header, entries, lr_changes = line, [], []
            continue
        entry = _parse_entry(line)
        if entry is not None:
            if entries and entry.epoch <= entries[-1].epoch:
                close_stage()
                header, entries, lr_changes = '', [], []
            entries.append(entry)
            continue
        match = _LR_PATTERN.match(line)
        if match:
            lr_changes.append((entries[-1].epoch if entries else 0, float(match.group(1))))
    close_stage()
    return stages


def load_book_reference():
    """The book's primary run (both stages), parsed from the shipped package data."""
    return parse_log(BOOK_LOG.read_text(encoding='utf-8'))


def load_book_spread():
    """The six-run spread as {(stage, epoch): {term: (lowest, highest)}}, stages 1-based."""
    points = json.loads(BOOK_SPREAD.read_text(encoding='utf-8'))['points']
    return {(p['stage'], p['epoch']): {term: tuple(p[term]) for term in TERMS if term in p}
            for p in points}


# ----------------------------------------------------------------------------------- comparing

def accepted_band(book, rel_tol=DEFAULT_REL_TOL, measured=None):
    """(low, high) of the values accepted for a book value; see `compare` for the rule."""
    half = rel_tol * abs(book) + PRINT_ROUNDING
    low, high = book - half, book + half
    if measured is not None:
        low = min(low, measured[0] - PRINT_ROUNDING)
        high = max(high, measured[1] + PRINT_ROUNDING)
    return low, high


def relative_difference(ours, book):
    """(ours - book) / |book|; infinite when only the book's value is zero."""
    if book == 0:
        return 0.0 if ours == 0 else math.copysign(math.inf, ours)
    return (ours - book) / abs(book)


@dataclass(frozen=True)
class Check:
    """One logged number: ours against the book's, and the band it must fall in."""
    term: str               # 'content', 'style' or 'tv'
    ours: object            # float, or None when our log lacks the epoch
    book: float
    low: float
    high: float

    @property
    def missing(self):
        return self.ours is None

    @property
    def rel_diff(self):
        return None if self.missing else relative_difference(self.ours, self.book)

    @property
    def inside(self):
        # NaN compares false, so a diverged run is outside
        return not self.missing and self.low - _EDGE_SLACK <= self.ours <= self.high + _EDGE_SLACK


@dataclass(frozen=True)
class Row:
    """One epoch of the reference, paired with our entry of the same stage and epoch."""
    stage: int              # 1-based
    epoch: int
    ours: object            # Entry, or None when missing
    book: Entry
    checks: tuple           # one Check per term, in TERMS order

    @property
    def missing(self):
        return self.ours is None


@dataclass(frozen=True)
class Comparison:
    """Every reference number judged; `ok` only when all of them are inside."""
    rows: tuple
    rel_tol: float
    headers: tuple = ()     # our header line per reference stage ('' where we have none)
    spread: bool = False    # whether a measured spread took part in the bands

    @property
    def checks(self):
        return [check for row in self.rows for check in row.checks]

    @property
    def inside(self):
        return sum(check.inside for check in self.checks)

    @property
    def total(self):
        return len(self.checks)

    @property
    def ok(self):
        # an empty comparison proves nothing, so it is not ok
        return self.total > 0 and self.inside == self.total


def compare(ours, reference, rel_tol=DEFAULT_REL_TOL, spread=None):
    """Pair every epoch logged in `reference` with ours (same stage, same epoch) and judge each
    content, style and TV number.

    Band rule: a number is inside when it lies within the reference value ± `rel_tol` of it
    (default 1.5%: a faithful run lands within about 1.5% of the book on every logged number),
    widened by the print rounding of 0.005, and never narrower than the measured run-to-run
    spread where `spread` gives one for that stage and epoch: the band then also covers
    lowest - 0.005 .. highest + 0.005. `spread` maps (stage, epoch) to {term: (lowest, highest)}
    (see `load_book_spread`); it belongs to the book's log, so pass it only with that reference.

    Seconds are shown, never judged: they depend on the machine. A reference epoch missing from
    ours counts as outside for all three terms; our extra epochs and stages are ignored.
    """
    spread = spread or {}
    rows, headers = [], []
    for number, book_stage in enumerate(reference, 1):
        our_stage = ours[number - 1] if number <= len(ours) else Stage(())
        headers.append(our_stage.header)
        by_epoch = {entry.epoch: entry for entry in our_stage.entries}
        for book in book_stage.entries:
            mine = by_epoch.get(book.epoch)
            measured = spread.get((number, book.epoch), {})
            checks = []
            for term in TERMS:
                value = getattr(book, term)
                low, high = accepted_band(value, rel_tol, measured.get(term))
                checks.append(Check(term, None if mine is None else getattr(mine, term),
                                    value, low, high))
            rows.append(Row(number, book.epoch, mine, book, tuple(checks)))
    return Comparison(tuple(rows), rel_tol, tuple(headers), bool(spread))


_CELL = '%7s %7s %8s %-4s  '      # ours, book, relative difference, mark


def _value(number):
    return 'missing' if number is None else '%.2f' % number


def _stage_lines(stage, header):
    title = 'stage %d' % stage + ('  (ours: %s)' % header if header else '')
    terms = ''.join(('%s ' % TERM_LABELS[term]).ljust(29, '-') + '  ' for term in TERMS)
    columns = ''.join(_CELL % ('ours', 'book', 'diff', '') for _ in TERMS)
    return [title, 'epoch ' + terms + 'seconds', '      ' + columns + '  ours   book']


def format_comparison(comparison):
    """A side-by-side table per stage and epoch (ours, book, relative difference and a mark
    per number), the bands of the numbers outside, and a summary line with the verdict."""
    headers = dict(enumerate(comparison.headers, 1))
    lines, previous = [], None
    for row in comparison.rows:
        if row.stage != previous:
            lines += ([''] if lines else []) + _stage_lines(row.stage, headers.get(row.stage))
            previous = row.stage
        cells = ''.join(_CELL % (_value(c.ours), _value(c.book),
                                 '-' if c.missing else '%+.2f%%' % (100 * c.rel_diff),
                                 'ok' if c.inside else 'OUT') for c in row.checks)
        seconds = '%6s %6.2f' % ('-' if row.missing else '%.2f' % row.ours.seconds,
                                 row.book.seconds)
        lines.append('%5d %s%s' % (row.epoch, cells, seconds))
    outside = [(row, c) for row in comparison.rows for c in row.checks if not c.inside]
    if outside:
        lines += ['', 'outside the band:']
        lines += ['  stage %d epoch %d %s: ours %s, accepted %.3f .. %.3f' % (
            row.stage, row.epoch, TERM_LABELS[c.term], _value(c.ours), c.low, c.high)
            for row, c in outside]
    # ASCII only: the summary must survive any console encoding
    rule = 'band: reference +/- (%g%% + %g)' % (100 * comparison.rel_tol, PRINT_ROUNDING)
    if comparison.spread:
        rule += ', or the six-run spread where wider'
    lines += ['', '%d of %d numbers inside (%s): %s' % (
        comparison.inside, comparison.total, rule,
        'MATCH' if comparison.ok else 'MISMATCH')]
    return '\n'.join(lines)
