"""The one place flexarray touches a requantizer: the shared fixed-latency one of ``hw/requantize.py``.

flexarray requantizes its accumulation-buffer words lane by lane on the way out,
one value per cycle, with per-channel inputs that change only between tiles
(after the pipeline has drained), which is the contract of ``hw``'s
:class:`~accelkit.hw.requantize.Requantizer`. The cost model reads ``LATENCY``
from here.
"""

from ...hw.requantize import LATENCY, Requantizer as LaneRequantizer

__all__ = ["LaneRequantizer", "LATENCY"]
