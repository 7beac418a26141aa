"""Design parameters shared by the tests: few designs, many shapes."""

SMALL_PARAMS = dict(rows=4, cols=4, data_width=32, k_max=64, a_depth=256)
# Words that straddle beats (3 and 5 bytes on a 2-byte stream) and a non-square array.
ODD_PARAMS = dict(rows=3, cols=5, data_width=16, k_max=32, a_depth=128)
DEFAULT_PARAMS = dict(rows=8, cols=8, data_width=64, k_max=2048, a_depth=4096)
