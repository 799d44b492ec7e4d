"""What the terminal shows of a run: the book's lines (also appended to the log file and the
trace), the progress bar (tqdm, on a terminal only), and Ctrl-C/SIGTERM turned into a stop."""
import json
import signal
import sys

from styletransfer import booklog
from styletransfer.report import LogWriter


class Reporter:
    """Prints the book's lines, appends them to the log file and the trace, draws the bar."""

    def __init__(self, plan, run_info, log_every, show_bar, restored=None):
        restored = restored or {}
        self.log_every = log_every
        self.lines = list(restored.get('log_lines', []))
        self.trace = list(restored.get('trace_lines', [])) or [json.dumps({'run': run_info})]
        self.log = LogWriter(plan.log_file, self.lines) if plan.log_file else None
        self.tracer = LogWriter(plan.trace, self.trace) if plan.trace else None
        self.show_bar, self.bar = show_bar, None

    def state(self):
        """What a checkpoint keeps so that a resumed run's log and trace are whole."""
        return {'log_lines': self.lines, 'trace_lines': self.trace}

    def line(self, text):
        if self.bar is not None:
            self.bar.clear()
        print(text, flush=True)
        if self.bar is not None:
            self.bar.refresh()
        self.lines.append(text)
        if self.log:
            self.log.write(text)

    def progress(self, p, settings):
        if p.iteration % self.log_every == 0 and p.iteration != 0:
            self.line(booklog.format_epoch(p.iteration, p.content, p.style, p.tv, p.seconds))
            record = json.dumps(dict({'stage': p.stage, 'epoch': p.iteration, 'lr': p.lr},
                                     **p.terms, total=p.total, seconds=p.seconds,
                                     width=p.width, height=p.height))
            self.trace.append(record)
            if self.tracer:
                self.tracer.write(record)
        if p.new_lr is not None:
            self.line(booklog.format_lr(p.new_lr))
        if self.show_bar:
            self._draw(p, settings)

    def _draw(self, p, settings):
        from tqdm import tqdm
        if self.bar is None or self.bar.desc != 'stage %d/%d' % (p.stage, p.stages):
            self.clear_bar()
            self.bar = tqdm(total=p.iterations, initial=p.iteration,
                            desc='stage %d/%d' % (p.stage, p.stages), file=sys.stderr,
                            mininterval=0, leave=False, dynamic_ncols=True,
                            bar_format='{desc} |{bar:24}| {n_fmt}/{total_fmt} {postfix}')
            self.seconds = []
        self.seconds.append(p.seconds)
        recent = sorted(self.seconds[-20:])
        per_iter = recent[len(recent) // 2]
        pixels = p.width * p.height
        left = (p.iterations - p.iteration - 1) * per_iter + sum(
            s.iterations * per_iter * s.width * s.height / pixels
            for s in settings.stages[p.stage:])
        terms = ' '.join('%s %.2f' % (name if name != 'tv' else 'TV', p.terms[name])
                         for name in p.terms)
        self.bar.set_postfix_str('%s  %.2fs/it  %s left' % (terms, per_iter, _clock(left)),
                                 refresh=False)
        self.bar.update(p.iteration + 1 - self.bar.n)

    def clear_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self):
        self.clear_bar()
        for writer in (self.log, self.tracer):
            if writer:
                writer.close()


def _clock(seconds):
    seconds = int(seconds)
    return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class StopRequest:
    """Ctrl-C or SIGTERM stops the run after the current iteration (it then saves a
    checkpoint); a second Ctrl-C stops at once."""

    def __init__(self, prog, run):
        self.prog, self.run, self.requested = prog, run, False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.run.stop()
        print('\n%s: stopping after this iteration to save a checkpoint (Ctrl-C again to stop '
              'at once)' % self.prog, file=sys.stderr, flush=True)
