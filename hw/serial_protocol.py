"""Frame tags and sizes of the serial host link (``hw/serial_link.py`` states the protocol).

Plain data, so the host side imports it without Amaranth.
"""

__all__ = ["PROTOCOL", "DEFAULT_CHUNK_BEATS"]

#: Frame tags, both directions.
PROTOCOL = {
    "write": ord("W"), "read": ord("R"), "send": ord("S"), "clear": ord("X"),
    "written": ord("w"), "read_data": ord("r"), "credit": ord("k"), "cleared": ord("x"),
    "beat": ord("d"), "last_beat": ord("D"),
}
#: Stream beats the board buffers per chunk (one chunk in flight).
DEFAULT_CHUNK_BEATS = 32
