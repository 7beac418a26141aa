"""TFLite operators to accelkit layers, through the layer-kind registry (``driver/kinds``)."""

from ....driver.kinds import tflite_kinds
from ....errors import UnsupportedLayer

__all__ = ["to_layer", "kind_for", "activation_inputs"]


def kind_for(op):
    """The layer kind that recognises this TFLite operator, or :class:`UnsupportedLayer`."""
    kind = tflite_kinds().get(op.op)
    if kind is None:
        raise UnsupportedLayer(f"{op.op} has no accelkit layer kind")
    return kind


def to_layer(op, tensors):
    """The layer for a TFLite op, or :class:`UnsupportedLayer` saying why not."""
    return kind_for(op).from_tflite(op, tensors)


def activation_inputs(op):
    """Tensor indices of the activations the op's layer runs on (in the layer's input order)."""
    return [op.inputs[position] for position in kind_for(op).tflite_inputs(op)]
