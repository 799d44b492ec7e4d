"""The package's exceptions: a user's mistake (StyleTransferError) and a run whose loss stopped
being a number (Diverged)."""


class StyleTransferError(Exception):
    """A problem with what the user gave us (files, options, weights, device): not a bug.

    `field` names the option or argument at fault when there is one (e.g. 'content_weight'):
    front-ends translate it into their own words (the command line says '--content-weight')."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class Diverged(Exception):
    """The total loss became NaN or infinite.

    Carries where (1-based `stage`, 0-based `iteration`), the value, and `picture`: the stage's
    last finite picture (HxWx3 uint8, colours restored), or None when the stage had none."""

    def __init__(self, stage, iteration, total, picture=None):
        super().__init__('the loss became %s in stage %d at iteration %d'
                         % (total, stage, iteration))
        self.stage, self.iteration, self.total, self.picture = stage, iteration, total, picture
