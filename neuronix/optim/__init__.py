"""``nx.optim``: optimizers and ``lr_scheduler`` (mirrors ``torch.optim``).

Optimizers update ``nx.Tensor`` / ``nx.nn.Parameter`` leaves in place (their ``.data``) with
torch kernels, outside any graph; their state and ``state_dict`` use torch's layout and
key names, so a checkpoint moves between neuronix and torch optimizers.
"""

from neuronix.optim import lr_scheduler
from neuronix.optim.adagrad import Adagrad
from neuronix.optim.adam import Adam, AdamW
from neuronix.optim.lion import Lion
from neuronix.optim.optimizer import Optimizer
from neuronix.optim.rmsprop import RMSprop
from neuronix.optim.sgd import SGD, Momentum, Nesterov

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Lion", "Momentum", "Nesterov", "Optimizer", "RMSprop", "lr_scheduler"]
