"""``nx.optim``: optimizers, ``lr_scheduler`` and ``swa_utils`` (mirrors ``torch.optim``).

Optimizers update ``nx.Tensor`` / ``nx.nn.Parameter`` leaves in place (their ``.data``) with
torch kernels, outside any graph; their state and ``state_dict`` use torch's layout and
key names, so a checkpoint moves between neuronix and torch optimizers.
"""

from neuronix.optim import lr_scheduler, swa_utils
from neuronix.optim.adadelta import Adadelta
from neuronix.optim.adafactor import Adafactor
from neuronix.optim.adagrad import Adagrad
from neuronix.optim.adam import Adam, AdamW
from neuronix.optim.adamax import Adamax
from neuronix.optim.asgd import ASGD
from neuronix.optim.lbfgs import LBFGS
from neuronix.optim.lion import Lion
from neuronix.optim.muon import Muon
from neuronix.optim.nadam import NAdam
from neuronix.optim.optimizer import Optimizer
from neuronix.optim.radam import RAdam
from neuronix.optim.rmsprop import RMSprop
from neuronix.optim.rprop import Rprop
from neuronix.optim.sgd import SGD, Momentum, Nesterov
from neuronix.optim.sparse_adam import SparseAdam

__all__ = ["ASGD", "LBFGS", "SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "Momentum",
           "Muon", "NAdam", "Nesterov", "Optimizer", "RAdam", "RMSprop", "Rprop", "SparseAdam", "lr_scheduler",
           "swa_utils"]
