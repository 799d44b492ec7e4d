"""Drive a run of the book's method from the command line: print the book's lines, keep the log,
trace and progress bar, turn Ctrl-C/SIGTERM into `run.stop()`, write checkpoints, and save what
the run makes. The run itself is the library's (styletransfer.gatys.stylizer)."""
import json
import math
import os
import shlex
import sys
from dataclasses import dataclass, field

from styletransfer import booklog, checkpoint
from styletransfer.cli.common import EXIT_INTERRUPTED
from styletransfer.errors import Diverged
from styletransfer.events import Progress
from styletransfer.inputs import Inputs
from styletransfer.settings import Settings
from styletransfer.vgg import layers
from styletransfer.vgg.network import Network
from styletransfer.cli.console import Reporter, StopRequest
from styletransfer.cli.resume import digest, inputs_to_json

EXIT_DIVERGED = 1


@dataclass
class Job:
    """A run as the command line knows it: the library's objects plus its own choices."""
    network: Network
    settings: Settings
    inputs: Inputs
    log_every: int
    output: str = None          # from a checkpoint: where the run writes
    log_file: str = None
    trace_file: str = None
    own: list = field(default_factory=list)     # files the run wrote before it was stopped
    state: object = None        # RunState to resume
    extra: dict = field(default_factory=dict)   # the checkpoint's notes
    plan: object = None         # outputs.OutputPlan


class Session:
    def __init__(self, prog, command, args, job, loaded, ctx, ctx_remark, threads):
        self.prog, self.command, self.args, self.job = prog, command, args, job
        self.loaded, self.ctx, self.ctx_remark, self.threads = loaded, ctx, ctx_remark, threads
        self.plan = job.plan
        self.written = list(job.extra.get('written', []))
        # What the pictures were when the run started: a resumed run must find the same.
        self.files = job.extra.get('files') or {os.path.abspath(p): digest(p)
                                                for p in job.inputs.files()}

    def drive(self):
        """Load the network, run, report and save; return the exit status."""
        import mxnet as mx
        from styletransfer.gatys.stylizer import Stylizer
        job, args = self.job, self.args
        stylizer = Stylizer(job.network, self.ctx)
        self.description = stylizer.description
        config = dict(job.network.to_dict(), **job.settings.to_dict())
        self.metadata = {'Software': 'styletransfer', 'weights': self.description,
                         'config': json.dumps(config)}
        run_info = {'config': config, 'weights': self.description, 'context': str(self.ctx),
                    'threads': self.threads, 'mxnet': mx.__version__}
        self.out = out = Reporter(self.plan, run_info, job.log_every,
                                  sys.stderr.isatty() and not args.no_progress, job.extra)
        if job.state is None:
            for note in self.loaded.notes:
                out.line('# ' + note)
            inputs = job.inputs
            out.line('# content %s, style %s' % (_name(inputs.content), ', '.join(
                '%s (%.3g)' % (_name(p), w) if inputs.style_blend else _name(p)
                for p, w in inputs.styles)))
            out.line('# weights: %s' % self.description)
            out.line('# content layers %s; style layers %s' % (
                layers.describe(job.network.content_layers),
                layers.describe(job.network.style_layers)))
        else:
            out.line('# resumed from %s at stage %d, iteration %d' % (
                args.resume, job.state.stage, job.state.next_iteration))
        out.line('# context: %s (%s), %d threads%s' % (
            self.ctx, self.ctx_remark, self.threads,
            ', VGG in bfloat16' if job.network.dtype == 'bfloat16' else ''))
        self.run = run = stylizer.start(self.loaded, job.settings, resume=job.state)
        try:
            with StopRequest(self.prog, run):
                try:
                    for event in run:
                        if isinstance(event, Progress):
                            self._progress(event)
                        else:
                            self._stage_done(event)
                except Diverged as d:
                    return self._diverged(d)
                except KeyboardInterrupt:
                    self._keep_best('stopped at once')
                    print('%s: interrupted' % self.prog, file=sys.stderr)
                    return EXIT_INTERRUPTED
                except Exception:
                    # A bug or a failure of MXNet's: keep what the run has made, then let the
                    # traceback show what went wrong.
                    self._keep_best('stopped by the error below')
                    raise
            if run.stopped:
                return self._stopped()
            self._finish(run.result)
            return 0
        finally:
            out.close()

    def _progress(self, p):
        if p.iteration == 0:
            s = self.job.settings.stages[p.stage - 1]
            self.out.line(booklog.format_stage_header(
                p.stage, p.stages, s.width, s.height, s.iterations,
                s.lr if self.job.settings.optimizer == 'adam' else None, s.decay_every,
                self.description, self.job.settings.lr_decay))
        if not math.isfinite(p.total):
            return      # the run raises Diverged next
        self.out.progress(p, self.job.settings)
        every = self.args.checkpoint_every
        if every and not p.last and (p.iteration + 1) % every == 0:
            self._checkpoint()

    def _stage_done(self, event):
        from styletransfer.images import save_image
        path = self.plan.stages[event.stage - 1]
        save_image(event.picture, path, self.metadata)
        self.written.append(path)
        if event.stage < event.stages and self.args.checkpoint_every:
            self._checkpoint()

    def _checkpoint(self):
        def absolute(path):   # so that the run can be resumed from another folder
            return os.path.abspath(path) if path else path
        plan = self.plan
        extra = dict(self.out.state(), output=absolute(plan.final),
                     log_file=absolute(plan.log_file), trace_file=absolute(plan.trace),
                     written=[absolute(p) for p in self.written], files=self.files,
                     inputs=inputs_to_json(self.job.inputs), log_every=self.job.log_every,
                     folder=os.path.dirname(os.path.abspath(plan.checkpoint)))
        checkpoint.save(plan.checkpoint, self.run.state(), extra)

    def _keep_best(self, how, path=None):
        from styletransfer.images import save_image
        self.out.clear_bar()
        picture = self.run.picture(best=True)
        stage, next_iteration = self.run.position
        if picture is None or next_iteration == 0:
            return None
        path = path or self.plan.interrupted
        save_image(picture, path, self.metadata)
        self.written.append(path)
        self.out.line('# %s in stage %d; best image so far: %s' % (how, stage, path))
        return path

    def _stopped(self):
        stage, next_iteration = self.run.position
        best = None
        if next_iteration > 0:
            from styletransfer.images import save_image
            best = self.plan.interrupted
            save_image(self.run.picture(best=True), best, self.metadata)
            self.written.append(best)
        self._checkpoint()
        self.out.line('# stopped before stage %d, iteration %d; checkpoint: %s%s'
                      % (stage, next_iteration, self.plan.checkpoint,
                         '; best image so far: %s' % best if best else ''))
        resume = ' '.join(shlex.quote(a) for a in self.command
                          + ['--resume', self.plan.checkpoint])
        print('%s: stopped; continue with: %s' % (self.prog, resume), file=sys.stderr)
        return EXIT_INTERRUPTED

    def _diverged(self, d):
        from styletransfer.images import save_image
        self.out.clear_bar()
        if d.picture is not None:
            save_image(d.picture, self.plan.diverged, self.metadata)
            kept = 'last finite image: %s' % self.plan.diverged
        else:
            kept = 'no finite image in this stage' + (
                '; the previous stage\'s is in %s' % self.plan.stages[d.stage - 2]
                if d.stage > 1 else '')
        self.out.line('# stage %d diverged at iteration %d (total loss %s); %s'
                      % (d.stage, d.iteration, d.total, kept))
        print('%s: error: the loss became %s in stage %d at iteration %d; try a smaller --lr'
              % (self.prog, d.total, d.stage, d.iteration), file=sys.stderr)
        return EXIT_DIVERGED

    def _finish(self, result):
        from styletransfer.images import save_image
        from styletransfer.report import contact_sheet, plot_losses
        plan, settings, loaded = self.plan, self.job.settings, self.loaded
        caption = 'weights: %s' % self.description
        save_image(result.picture, plan.final, self.metadata)
        plot_losses(result.history, plan.losses, title=caption)
        styles = loaded.styles
        panels = [('content', loaded.content)] + [
            ('style' if len(styles) == 1 else 'style %.2g' % w, p) for p, w in styles
        ] + [('stage %d: %dx%d' % (k, s.width, s.height), r)
             for k, (s, r) in enumerate(zip(settings.stages, result.stage_pictures), 1)]
        contact_sheet(panels, plan.sheet, caption=caption)
        if os.path.exists(plan.checkpoint) and (self.args.checkpoint_every or self.args.resume):
            os.remove(plan.checkpoint)   # the run is complete: nothing left to resume
        for path in [plan.final, *plan.stages, plan.losses, plan.sheet, plan.log_file,
                     plan.trace]:
            if path:
                self.out.line('# wrote %s' % path)


def _name(picture):
    return os.fspath(picture) if isinstance(picture, (str, os.PathLike)) else '(array)'
