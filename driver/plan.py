"""A plan: how one accelerator will run one layer, decided before any data moves."""

from dataclasses import dataclass, field, replace

__all__ = ["Plan"]


@dataclass(frozen=True)
class Plan:
    """How ``accelerator`` runs a layer of ``kind`` on inputs of ``input_shapes``.

    ``schedule`` is the accelerator's own decision (tiling, jobs, column placement,
    a mapping found by a search), JSON-serialisable; reports show it and plans are
    cached by ``signature``. ``layer`` is the layer the plan was made for (its
    weights); it is not part of the serialised value.
    """

    kind: str
    accelerator: str
    signature: str
    input_shapes: tuple
    output_shape: tuple
    macs: int
    schedule: dict = field(default_factory=dict)
    layer: object = field(default=None, repr=False, compare=False)

    @property
    def input_shape(self):
        """The first (for most kinds the only) input's shape."""
        return self.input_shapes[0]

    def for_layer(self, layer):
        """The same plan attached to another layer of the same signature."""
        return replace(self, layer=layer)

    def as_dict(self):
        return {"kind": self.kind, "accelerator": self.accelerator, "signature": self.signature,
                "input_shapes": [list(s) for s in self.input_shapes], "output_shape": list(self.output_shape),
                "macs": self.macs, "schedule": self.schedule}
