"""Model inputs from files, the zoo's bundled arrays, or a seeded random sample."""

import numpy as np

from ...errors import ModelError

__all__ = ["load_inputs"]


def load_inputs(path, detail, seed, limit=None):
    """Model inputs as a batch [B, *shape]; a seeded random sample without a path."""
    from ..zoo import resolve_array
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    if path is None:
        rng = np.random.default_rng(seed)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return rng.integers(info.min, info.max + 1, shape, dtype=dtype)
        return rng.standard_normal(shape).astype(dtype)
    try:
        x = np.load(resolve_array(path), allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ModelError(f"cannot read input {path}: {error}") from None
    if x.dtype != dtype:
        raise ModelError(f"input {path} has dtype {x.dtype}, but the model expects {dtype}")
    if x.shape == shape:
        batch = x
    elif shape[0] == 1 and x.shape[1:] == shape[1:]:
        batch = x
    elif x.shape == shape[1:]:
        batch = x[None]
    else:
        raise ModelError(f"input {path} has shape {list(x.shape)}, but the model expects {list(shape)} "
                         f"(or a batch [N, {', '.join(map(str, shape[1:]))}])")
    return batch[:limit] if limit else batch
