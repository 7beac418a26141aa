"""TRANSPOSE_CONV through TVM 0.27 (Relax BYOC): TVM cannot build conv2d_transpose for the CPU, mm2im offload can."""

import numpy as np
import pytest

from accelkit.errors import ModelError, ToolchainError
from optional import need_tvm

need_tvm()

from accelkit.accelerators.gemm import GemmAccelerator          # noqa: E402
from accelkit.accelerators.mm2im import Mm2imAccelerator        # noqa: E402
from accelkit.driver.device import DmaTiming                    # noqa: E402
from accelkit.sw.execution.executors import ModelExecutor                  # noqa: E402
from accelkit.sw.frontends.tflite.frontend import to_layer                # noqa: E402
from accelkit.sw.frontends.tflite.runner import make_interpreter          # noqa: E402
from accelkit.sw.frontends.tvm.runner import TvmModel                     # noqa: E402
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
    from accelkit.sw.frontends.tflite.model import read_model
    model = TvmModel(DCGAN, ModelExecutor(Mm2imAccelerator(), DmaTiming(8, 0)))
    tflite = read_model(DCGAN)
    for entry in model.info.offloaded:
        direct = to_layer(tflite.ops[entry.origin], tflite.tensors)
        assert np.array_equal(entry.layer.filters, direct.filters)
        assert np.array_equal(entry.layer.bias, direct.bias)
        assert (entry.layer.stride, entry.layer.padding, entry.layer.output_shape, entry.layer.activation) == \
            (direct.stride, direct.padding, direct.output_shape, direct.activation)
        assert np.array_equal(entry.layer.filter_scales, direct.filter_scales)


@pytest.mark.parametrize("activation", ["RELU6", "RELU_N1_TO_1"])
def test_fused_activation_the_importer_drops_is_applied(tmp_path, activation):
    """TVM 0.27 ignores TRANSPOSE_CONV's fused activation; the offloaded layer clamps as TFLite does."""
    from accelkit.sw.verification.random_layers import random_tconv
    from accelkit.sw.frontends.tflite.tconv_model import run_reference, tconv_model
    rng = np.random.default_rng(7)
    layer, x = random_tconv(rng, 1, 4, 4, 3, 5, 3, 2, "SAME", activation)
    layer.output_scale = 0.02                   # so that the clamp cuts real values
    path = tmp_path / "tconv.tflite"
    path.write_bytes(tconv_model(layer, x.shape))
    expected = run_reference(path.read_bytes(), x)
    model = TvmModel(path, ModelExecutor(Mm2imAccelerator(), DmaTiming(8, 0)))
    assert [r.op for r in model.offloaded] == ["TRANSPOSE_CONV"]
    assert model.info.offloaded[0].layer.activation == activation
    assert np.array_equal(model.invoke(x)[0], expected)
    layer.activation = "NONE"
    assert not np.array_equal(layer.reference(x), expected), "the clamp changes nothing: the test is void"


def test_sweep_configurations_through_tvm_are_bit_exact(tmp_path):
    """Seeded sweep configurations (kernels 1-7, strides 1-3, SAME/VALID) imported by TVM, offloaded, exact."""
    from accelkit.sw.benchmarks.mm2im_tconv import sweep_configs
    from accelkit.sw.frontends.tflite.tconv_model import run_reference, tconv_model
    failures = []
    for index, name, layer, x in sweep_configs(60, seed=5)[::5]:
        path = tmp_path / f"c{index}.tflite"
        path.write_bytes(tconv_model(layer, x.shape))
        if layer.padding == "VALID" and layer.kernel[0] < layer.stride[0]:
            # the importer computes another output shape than the model's: declined, and TVM cannot build it
            with pytest.raises(ModelError, match=r"mm2im declined TRANSPOSE_CONV #0: TVM's importer gives"):
                TvmModel(path, ModelExecutor(Mm2imAccelerator(), DmaTiming(8, 0)))
            continue
        model = TvmModel(path, ModelExecutor(Mm2imAccelerator(), DmaTiming(8, 0)))
        if len(model.offloaded) != 1 or not np.array_equal(model.invoke(x)[0], run_reference(path.read_bytes(), x)):
            failures.append(name)
    assert not failures
