"""ReLU → TTFS conversion: a trained Keras ReLU network → its exact B1 time-to-first-spike twin (spec §5).

The converter walks a Sequential or single-path Functional model through the public Keras API
(:mod:`~tfspike.convert.ttfs.linearize`) and maps each layer with a rule looked up by layer class
(:mod:`~tfspike.convert.ttfs.rules`, extensible with :func:`register_rule`). Every rule turns a layer
into a few primitive operations (:mod:`~tfspike.convert.ttfs.ops`): linear, relu, affine, pool,
flatten, identity, softmax.

The planner (:mod:`~tfspike.convert.ttfs.plan`) then applies the algorithm of spec §5.1 and emits
typed layer specs (:mod:`~tfspike.convert.ttfs.spec`): an affine *after* a linear layer (BN before
ReLU) folds backward into it; an affine after a ReLU (BN after ReLU, as in cifar-vgg) becomes a
*pending* affine that the next linear layer absorbs (W′ = a ⊙ W along input channels, bias map of
§3.3 that corrects zero padding, :mod:`~tfspike.convert.ttfs.fold`); max-pools in between become
sign-aware (§4); Flatten tiles the pending affine in channels-last order. The input range (p, q) is
the first pending affine, x = (q − p)·u + p.

The result (:mod:`~tfspike.convert.ttfs.build`) is a :class:`tfspike.ttfs.TTFSModel` that takes the
original model's inputs (it encodes them as spike times with ``TTFSInput("value", p, q)``) and returns
the original logits. All folding is done in float64 NumPy; the mapped model is checked in float64
against the original, layer by layer, before it is returned (:mod:`~tfspike.convert.ttfs.verify`).
"""

from tfspike.convert.ttfs.converter import relu_to_ttfs
from tfspike.convert.ttfs.errors import MappingCheckError, UnsupportedLayersError
from tfspike.convert.ttfs.fold import conv_bias_correction
from tfspike.convert.ttfs.ops import (AffineOp, ConvGeometry, FlattenOp, IdentityOp, LinearOp, Op, PoolOp, ReluOp,
                                      SoftmaxOp)
from tfspike.convert.ttfs.rules import RULES, RuleRefusal, register_rule
from tfspike.convert.ttfs.verify import VERIFY_ATOL, VERIFY_RTOL, synthetic_inputs

__all__ = ["relu_to_ttfs", "synthetic_inputs", "conv_bias_correction", "register_rule", "RULES", "RuleRefusal",
           "MappingCheckError", "UnsupportedLayersError", "VERIFY_ATOL", "VERIFY_RTOL",
           "Op", "LinearOp", "ReluOp", "AffineOp", "PoolOp", "FlattenOp", "IdentityOp", "SoftmaxOp", "ConvGeometry"]
