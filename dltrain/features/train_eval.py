"""`log.train_eval`: the training split evaluated in eval mode at each epoch's end.

train_loss and train_accuracy are running means over the epoch's batches in training mode
(dropout active, the weights changing from batch to batch); these columns are the epoch's final
weights on the same samples in eval mode, so they compare with val_* like for like.
"""

from __future__ import annotations

from dltrain.train.events import Callback, FitState

PREFIX = "train_eval_"


class TrainEval(Callback):
    """Adds train_eval_<metric> to the epoch's logs; put it before every callback that reads them."""

    def __init__(self, loader):
        self.loader = loader  # the training split in stored order, unshuffled: the data order's RNG is untouched

    def on_epoch_end(self, state: FitState, logs: dict) -> None:
        logs.update({PREFIX + k: v for k, v in state.learner.evaluate(self.loader).items()})
