"""The mirrors, one module per family; importing this package fills ``mirror.REGISTRY``."""

from conformance.mirrors import elementwise, linalg, movement, optim, reduce  # noqa: F401
from conformance.mirrors import models_e2e, nn_modules  # noqa: F401
from conformance.mirrors import nn_functional  # noqa: F401
from conformance.mirrors import compare, factories, operators  # noqa: F401
from conformance.mirrors import models  # noqa: F401
from conformance.mirrors import func  # noqa: F401  (nx.func and nx.autograd.forward_ad)
from conformance.mirrors import backward_ops  # noqa: F401  (internal ops run only inside backward passes)
from conformance.mirrors import hooks, inplace_views  # noqa: F401  (module backward hooks; in place into views)
from conformance.mirrors import pointwise, sorting, random, shaping, decompositions, fft  # noqa: F401  (issue 13 reach)
from conformance.mirrors import spatial, nn_functional_more, custom  # noqa: F401  (issue 13 reach)
from conformance.mirrors import nn_rnn, nn_transformer, nn_modules_spatial, nn_modules_more  # noqa: F401  (issue 14 reach)
from conformance.mirrors import nn_utils, optim_more, amp  # noqa: F401  (issue 14 reach)
from conformance.mirrors import inplace  # noqa: F401  (last: derives in-place mirrors from the others)
