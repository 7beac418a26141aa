"""Model inputs from files, the zoo's bundled arrays, or a seeded random sample."""

import numpy as np

from ...errors import ModelError

__all__ = ["load_inputs", "load_array", "load_labels", "check_labels"]


def load_inputs(path, detail, seed, limit=None):
    """Model inputs as a batch [B, *shape]; a seeded random sample without a path."""
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    if path is None:
        rng = np.random.default_rng(seed)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return rng.integers(info.min, info.max + 1, shape, dtype=dtype)
        return rng.standard_normal(shape).astype(dtype)
    x = load_array(path, "input")
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
    if len(batch) == 0:
        raise ModelError(f"input {path} holds no sample (shape {list(x.shape)}); at least one is needed")
    if np.issubdtype(batch.dtype, np.inexact) and not np.all(np.isfinite(batch)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(batch))[0])
        raise ModelError(f"input {path} holds {batch[where]} at index {list(where)}; inputs must be finite numbers")
    return batch[:limit] if limit else batch


_NPY_MAGIC = b"\x93NUMPY"


def load_array(path, what):
    """A .npy file (or ``zoo:NAME``) as an array, never unpickling; ModelError says what is wrong with it."""
    from ..zoo import resolve_array
    resolved = resolve_array(path)
    try:
        with open(resolved, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except IsADirectoryError:
        raise ModelError(f"{what} {path} is a directory, not a .npy file") from None
    except OSError as error:
        raise ModelError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if head != _NPY_MAGIC:
        raise ModelError(f"{what} {path} is not a .npy file (it starts with {head!r}, not {_NPY_MAGIC!r}); "
                         "save arrays with numpy.save")
    try:
        return np.load(resolved, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "pickled" in str(error):
            raise ModelError(f"{what} {path} holds Python objects (an object array), which accelkit does not "
                             "load; save a numeric array") from None
        raise ModelError(f"cannot read {what} {path}: {error}") from None
    except (OSError, EOFError) as error:
        raise ModelError(f"cannot read {what} {path}: {error}") from None


def load_labels(path):
    """Integer class labels from a .npy file: a 1-D array (or [N, 1])."""
    labels = load_array(path, "labels")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ModelError(f"labels {path} have shape {list(labels.shape)}; one integer label per sample "
                         "([N] or [N, 1]) is accepted")
    if not np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_):
        raise ModelError(f"labels {path} are {labels.dtype}; integer class indices are accepted")
    if labels.size and labels.min() < 0:
        raise ModelError(f"labels {path} hold {int(labels.min())}; class indices are >= 0")
    return labels


def check_labels(labels, samples, limited, path):
    """``labels`` matched to the ``samples`` run: as many, or at least as many under ``--limit``."""
    if labels is None:
        return None
    if len(labels) < samples or (not limited and len(labels) != samples):
        raise ModelError(f"labels {path} hold {len(labels)} labels for {samples} input sample(s); "
                         f"give one label per sample{' (at least --limit of them)' if limited else ''}")
    return labels[:samples]
