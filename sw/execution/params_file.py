"""Parameter files: a chosen design (e.g. from `accelkit dse`) that `accelkit run --params-file` applies.

The file is JSON: ``{"accelerator": "gemm", "params": {"rows": 8, ...}, ...}``;
other keys (where the design came from, its figures) are kept for the reader
and ignored here.
"""

import json
from pathlib import Path

from ...errors import ParameterError

__all__ = ["read_params_file", "params_record"]


def params_record(accelerator, **about) -> dict:
    """The JSON-able content of a parameters file for a configured accelerator."""
    return {"accelerator": accelerator.name, "params": dict(accelerator.params), **about}


def read_params_file(path) -> tuple:
    """(accelerator name, params dict) from a parameters file; :class:`ParameterError` saying what is wrong."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ParameterError(f"--params-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ParameterError(f"--params-file {path}: cannot read it ({error})") from None
    except json.JSONDecodeError as error:
        raise ParameterError(f"--params-file {path} is not JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("accelerator"), str) \
            or not isinstance(data.get("params"), dict):
        raise ParameterError(f"--params-file {path} must hold an object with \"accelerator\" (a name) and "
                             f"\"params\" (name: integer), not {str(data)[:80]}")
    params = data["params"]
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"--params-file {path}: parameter {name} must be an integer, not {value!r}")
    return data["accelerator"], dict(params)
