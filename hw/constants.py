"""Numbers the gateware and the host drivers share, in a module without Amaranth.

The layer drivers and cost models need a few facts of the gateware (how
words sit on the stream, the requantizer's latency); keeping them here, not in
the Amaranth modules that build the gateware, lets the drivers run where
Amaranth is not installed: the board-side bundle (``sw/hardware/deploy/bundle.py``)
carries this module and the drivers, not the gateware.
"""

__all__ = ["word_beats", "REQUANT_LATENCY"]

#: Cycles from the requantizer's ``valid`` with an accumulator to ``out_valid`` with its output
#: (``hw/requantize.py`` builds its pipeline to this depth).
REQUANT_LATENCY = 16


def word_beats(nbytes, data_width):
    """Beats one word of ``nbytes`` bytes occupies on a ``data_width``-bit stream (words start on a beat)."""
    return -(-nbytes // (data_width // 8))
