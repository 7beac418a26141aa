"""The searched parameter space: an accelerator's declared ``ParamSpace``, optionally narrowed by the user.

``--space rows=2..16,cols=4|8|16`` narrows parameters to a range (``a..b``, the
parameter's own rule, e.g. powers of two, still applies) or a list of values
(``a|b|c``); parameters not named are searched over their whole declared range,
and ``--fixed``-style ``name=value`` pins one. Every value is checked against the
declaration at once.
"""

import itertools

from ...errors import ParameterError

__all__ = ["SearchSpace"]


class SearchSpace:
    """The values each parameter of accelerator class ``cls`` may take in a search."""

    def __init__(self, cls, text=""):
        self.cls = cls
        declared = {p.name: p for p in cls.space.params}
        self.choices = {name: list(p.values()) for name, p in declared.items()}
        for item in filter(None, (part.strip() for part in (text or "").split(","))):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or not value.strip():
                raise ParameterError(f"--space item {item!r} is not of the form name=a..b, name=a|b|c or name=v")
            if name not in declared:
                raise ParameterError(f"--space names {name!r}, which {cls.name} does not declare; it declares "
                                     f"{', '.join(declared)}")
            param = declared[name]
            try:
                numbers = [int(v, 0) for v in value.split("..", 1)] if ".." in value else \
                    [int(v, 0) for v in value.split("|")]
            except ValueError:
                raise ParameterError(f"--space {name}: {value!r} is not an integer range a..b or list a|b|c") from None
            if ".." in value:
                values = [v for v in param.values() if numbers[0] <= v <= numbers[1]]
            else:
                values = [param.check(v) for v in numbers]
            if not values:
                raise ParameterError(f"--space {name}={value} leaves no legal value ({param.describe()})")
            self.choices[name] = sorted(set(values))

    @property
    def size(self):
        """Number of parameter combinations (before cross-parameter constraints)."""
        total = 1
        for values in self.choices.values():
            total *= len(values)
        return total

    def describe(self):
        return {name: values if len(values) <= 8 else f"{values[0]}..{values[-1]} ({len(values)} values)"
                for name, values in self.choices.items()}

    def suggest(self, trial) -> dict:
        """A parameter dict drawn through an optuna trial (categorical: the samplers treat values as unordered
        labels, which suits powers of two and short lists; long ranges are integer ranges)."""
        params = {}
        for name, values in self.choices.items():
            if len(values) == 1:
                params[name] = values[0]
            elif len(values) > 16 and _evenly_spaced(values):
                params[name] = trial.suggest_int(name, values[0], values[-1], step=values[1] - values[0])
            else:
                params[name] = trial.suggest_categorical(name, values)
        return params

    def enumerate(self):
        """Every combination, as parameter dicts (for spaces small enough to evaluate exhaustively)."""
        names = list(self.choices)
        for combination in itertools.product(*(self.choices[n] for n in names)):
            yield dict(zip(names, combination))


def _evenly_spaced(values):
    step = values[1] - values[0]
    return all(b - a == step for a, b in zip(values, values[1:]))
