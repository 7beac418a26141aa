"""The bundled model zoo (int8 .tflite files) and the held-out digits data, as package data."""

from pathlib import Path

from ...errors import ModelError

__all__ = ["ZOO", "model_names", "resolve_model", "resolve_array"]

ZOO = Path(__file__).resolve().parent


def model_names():
    return sorted(p.stem for p in (ZOO / "models").glob("*.tflite"))


def resolve_model(name_or_path) -> Path:
    """A path as given, or a bundled model by name (``digits_cnn``, ``zoo:mobilenet_v2``)."""
    text = str(name_or_path)
    path = Path(text)
    if path.exists():
        return path
    name = text.removeprefix("zoo:").removesuffix(".tflite")
    bundled = ZOO / "models" / f"{name}.tflite"
    if bundled.exists():
        return bundled
    raise ModelError(f"model {text!r} is neither a file nor a bundled model ({', '.join(model_names())})")


def resolve_array(name_or_path) -> Path:
    """A .npy path as given, or bundled data as ``zoo:digits_test_x``."""
    text = str(name_or_path)
    if text.startswith("zoo:"):
        bundled = ZOO / "data" / f"{text[4:].removesuffix('.npy')}.npy"
        if not bundled.exists():
            known = ", ".join(f"zoo:{p.stem}" for p in sorted((ZOO / "data").glob("*.npy")))
            raise ModelError(f"no bundled array {text!r}; bundled: {known}")
        return bundled
    path = Path(text)
    if not path.exists():
        raise ModelError(f"no such file: {text}")
    return path
