"""Training the learned decoders (``emtcs train``): a run's definition (:mod:`.config`),
samples made on the fly (:mod:`.data`), the loss (:mod:`.losses`), weights to start from
(:mod:`.grow`) and the loop that validates and checkpoints (:mod:`.loop`)."""

from .config import TrainConfig
from .data import ClipPool, make_batch, validation_set
from .loop import evaluate, train

__all__ = ["TrainConfig", "ClipPool", "make_batch", "validation_set", "evaluate", "train"]
