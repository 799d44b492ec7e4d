"""What the optimiser reports: a small frozen record after each iteration, another per stage."""
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Progress:
    stage: int          # 1-based stage number
    stages: int         # how many stages the run has
    iteration: int      # 0-based iteration within the stage (the book's "epoch")
    iterations: int     # iterations in this stage
    lr: float           # learning rate used by this iteration's update
    content: float      # weighted content loss (sum over content layers)
    style: float        # weighted style loss (sum over style layers)
    tv: float           # weighted total-variation loss
    total: float        # content + style + tv
    seconds: float      # wall time of this iteration
    width: int = 0      # stage image size
    height: int = 0
    new_lr: Optional[float] = None  # learning rate set after this iteration, if it changed
    image: object = None  # the generated image (1x3xHxW NDArray, updated in place by later steps)
    best: object = None   # copy of the image with the lowest total loss so far in this stage
    trainer: object = None  # the stage's gluon.Trainer (Adam), for checkpoints
    last: bool = False    # the stage's last iteration (its end, or the stop rule was met)



@dataclass(frozen=True)
class StageEnd:
    """Reported once a stage has run all its iterations."""
    stage: int
    stages: int
    picture: object     # HxWx3 NDArray in [0, 1] on the run's context: the stage's result
    image: object = None  # the same as the 1x3xHxW network input, for checkpoints
