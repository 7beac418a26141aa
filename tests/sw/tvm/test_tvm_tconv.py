"""TRANSPOSE_CONV through TVM 0.27 (Relax BYOC): TVM cannot build conv2d_transpose for the CPU, mm2im offload can."""

import numpy as np
import pytest

from accelkit.errors import ModelError, ToolchainError
from accelkit.sw.tvm import require_tvm

try:
    require_tvm()
except ToolchainError as error:
    pytest.skip(str(error), allow_module_level=True)

from accelkit.accelerators.gemm import GemmAccelerator          # noqa: E402
from accelkit.accelerators.mm2im import Mm2imAccelerator        # noqa: E402
from accelkit.driver.device import DmaTiming                    # noqa: E402
from accelkit.sw.dispatch import ModelExecutor                  # noqa: E402
from accelkit.sw.tflite.frontend import to_layer                # noqa: E402
from accelkit.sw.tflite.runner import make_interpreter          # noqa: E402
from accelkit.sw.tvm.runner import TvmModel                     # noqa: E402
from accelkit.sw.zoo import ZOO                                 # noqa: E402

DCGAN = ZOO / "models" / "dcgan_tiny.tflite"


def test_cpu_build_of_conv2d_transpose_fails_with_a_hint():
    with pytest.raises(ModelError, match="offload the TRANSPOSE_CONV layers with --accel mm2im"):
        TvmModel(DCGAN, ModelExecutor(GemmAccelerator(), DmaTiming(8, 0)))


def test_mm2im_offload_makes_the_generator_build_and_run():
    model = TvmModel(DCGAN, ModelExecutor(Mm2imAccelerator(), DmaTiming(8, 0)), keep_inputs=True)
    offloaded = {r.index: r.op for r in model.offloaded}
    assert offloaded == {2: "TRANSPOSE_CONV", 3: "TRANSPOSE_CONV", 4: "TRANSPOSE_CONV", 5: "TRANSPOSE_CONV"}
    x = np.random.default_rng(0).integers(-128, 128, (1, 32), dtype=np.int8)
    out = model.invoke(x)[0]
    reference = make_interpreter(DCGAN, "ref")
    reference.set_tensor(reference.get_input_details()[0]["index"], x)
    reference.invoke()
    expected = reference.get_tensor(reference.get_output_details()[0]["index"])
    # The FULLY_CONNECTED stays on TVM's float lowering, so the output may differ from LiteRT by an LSB or so;
    # each offloaded layer is TFLite-exact on its own input.
    assert out.shape == expected.shape and int(np.abs(out.astype(int) - expected).max()) <= 2
    for index in offloaded:
        assert np.array_equal(model.outputs_by_node[index], model.layer_reference(index))


def test_recovered_layer_equals_the_tflite_front_end():
    """The layer rebuilt from the Relax chain (IOHW weights, explicit padding) is the one LiteRT's front end reads."""
    from accelkit.sw.tflite.model import read_model
    model = TvmModel(DCGAN, ModelExecutor(Mm2imAccelerator(), DmaTiming(8, 0)))
    tflite = read_model(DCGAN)
    for entry in model.info.offloaded:
        direct = to_layer(tflite.ops[entry.origin], tflite.tensors)
        assert np.array_equal(entry.layer.filters, direct.filters)
        assert np.array_equal(entry.layer.bias, direct.bias)
        assert (entry.layer.stride, entry.layer.padding, entry.layer.output_shape) == \
            (direct.stride, direct.padding, direct.output_shape)
        assert np.array_equal(entry.layer.filter_scales, direct.filter_scales)
