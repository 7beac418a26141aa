#!/usr/bin/env python3
"""Regenerate accelkit's model zoo: small full-integer (int8) TFLite models.

The .tflite files and the digits test set are committed, so neither users nor
CI need TensorFlow.  Only whoever changes the zoo runs this, in a separate
environment that has TensorFlow, scikit-learn and LiteRT:

    python3 -m venv /work/tfenv
    /work/tfenv/bin/pip install tensorflow-cpu==2.21.0 scikit-learn numpy ai-edge-litert==2.3.0
    /work/tfenv/bin/python sw/zoo/generate.py [--only NAME] [--out DIR]

Every model is rebuilt from its own fixed seed, so ``--only NAME`` produces
the same bytes as a full run.  After converting, each model is executed by
LiteRT (default and BUILTIN_REF kernels) in a child process: TensorFlow and
LiteRT each carry a TFLite runtime and are kept out of one another's way,
and a kernel that aborts (SIGABRT) fails the generation instead of killing it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = Path(__file__).resolve().parent
MODEL_NAMES = ("digits_cnn", "mobilenet_v2", "resnet_tiny", "transpose_mlp", "dcgan_tiny", "efficientnet_tiny",
               "transformer_block")
BASE_SEED = 20240601
RELU6_INPUT_MEAN = 2.0

# ---------------------------------------------------------------------------
# LiteRT side.  This part imports neither TensorFlow nor Keras: it is what the
# child process runs (``generate.py _litert ...``).


def _litert_interpreter(model_path, reference):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interp = Interpreter(model_path=str(model_path),
                         experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def _litert_main(argv):
    """Child-process entry point; prints one JSON object on stdout."""
    import numpy as np

    p = argparse.ArgumentParser(prog="generate.py _litert")
    p.add_argument("model")
    p.add_argument("--ref", action="store_true")
    p.add_argument("--x", help="int8 .npy batch of inputs, run one at a time")
    p.add_argument("--y", help="labels for --x; reports top-1 accuracy")
    p.add_argument("--random", type=int, default=0,
                   help="run this many seeded random int8 inputs")
    p.add_argument("--keep", type=int, default=0,
                   help="also return the first N outputs (dequantized)")
    a = p.parse_args(argv)

    interp = _litert_interpreter(a.model, a.ref)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    result = {
        "input": {"shape": inp["shape"].tolist(), "dtype": inp["dtype"].__name__,
                  "quantization": list(inp["quantization"])},
        "output": {"shape": out["shape"].tolist(), "dtype": out["dtype"].__name__,
                   "quantization": list(out["quantization"])},
    }
    if a.x:
        xs = np.load(a.x)
    else:
        rng = np.random.default_rng(a.random)
        xs = rng.integers(-128, 128, size=(a.random, *inp["shape"][1:]),
                          dtype=np.int64).astype(inp["dtype"])
    outs = []
    t0 = time.perf_counter()
    for x in xs:
        interp.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interp.invoke()
        outs.append(interp.get_tensor(out["index"])[0].copy())
    elapsed = time.perf_counter() - t0
    outs = np.stack(outs) if outs else np.zeros((0,))
    result.update(
        runs=len(xs),
        seconds_per_run=elapsed / max(len(xs), 1),
        out_min=int(outs.min()) if outs.size else None,
        out_max=int(outs.max()) if outs.size else None,
        out_distinct=int(np.unique(outs).size),
        # Differing rows show that the output depends on the input.
        distinct_rows=int(np.unique(outs.reshape(len(outs), -1), axis=0).shape[0]),
        argmax=outs.reshape(len(outs), -1).argmax(axis=1).tolist(),
    )
    if a.y:
        y = np.load(a.y)
        result["accuracy"] = float((outs.reshape(len(outs), -1).argmax(1) == y).mean())
    if a.keep:
        scale, zp = out["quantization"]
        result["outputs"] = ((outs[:a.keep].astype(np.float64) - zp) * scale).tolist()
    print(json.dumps(result))
    return 0


def run_litert(model_path, *, reference, **opts):
    """Runs the model with LiteRT in a child process and returns its report."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "_litert", str(model_path)]
    if reference:
        cmd.append("--ref")
    for key, value in opts.items():
        cmd += [f"--{key}", str(value)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        how = (f"signal {-proc.returncode}" if proc.returncode < 0
               else f"exit code {proc.returncode}")
        raise RuntimeError(
            f"LiteRT ({'BUILTIN_REF' if reference else 'default'}) failed on "
            f"{model_path} with {how}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# TensorFlow side.


def _setup_tf():
    # Must be set before TensorFlow is imported.  oneDNN picks kernels by CPU
    # and may reorder float sums; without it the float results, and so the
    # calibrated int8 ranges, depend less on the machine.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ["TF_DETERMINISTIC_OPS"] = "1"
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return tf


def _seed(tf, name):
    # One seed per model, so that building a single model (--only) starts
    # from the same random state as in a full run.
    seed = BASE_SEED + MODEL_NAMES.index(name)
    # Layer names (which end up as tensor names in the .tflite) are numbered
    # per process; clearing the session numbers them from scratch each time.
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    import numpy as np

    return np.random.default_rng(seed)


def _convert_int8(tf, model, representative):
    import contextlib
    import io

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None]] for x in representative)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    # Keras prints a page about the temporary SavedModel it exports on the way.
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def _batch1_copy(build, trained):
    # Training and calibration use a free batch dimension; the converted
    # model gets a static batch of 1 so every tensor shape in it is known.
    model = build(1)
    model.set_weights(trained.get_weights())
    return model


def _smooth_images(tf, rng, n, size, channels):
    """Seeded random images in [-1, 1] with some spatial structure.

    Plain white noise would calibrate a network for statistics no real image
    has; a coarse random field upsampled plus a little fine noise is closer.
    """
    import numpy as np

    coarse = rng.uniform(-1.0, 1.0, size=(n, 7, 7, channels)).astype(np.float32)
    up = tf.image.resize(coarse, (size, size), method="bilinear").numpy()
    fine = rng.normal(0.0, 0.2, size=(n, size, size, channels)).astype(np.float32)
    return np.clip(up + fine, -1.0, 1.0).astype(np.float32)


# -- digits_cnn -------------------------------------------------------------


def build_digits(tf, batch_size=None):
    L = tf.keras.layers
    x_in = tf.keras.Input((8, 8, 1), batch_size=batch_size, name="image")
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x_in)
    x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2D(32, 3, padding="valid", activation="relu")(x)
    x = L.Flatten()(x)
    x = L.Dense(64, activation="relu")(x)
    x = L.Dense(10)(x)
    out = L.Softmax()(x)
    return tf.keras.Model(x_in, out, name="digits_cnn")


def make_digits(tf, out_dir, data_dir, log):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _seed(tf, "digits_cnn")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0,
                                              stratify=y)

    model = build_digits(tf)
    model.compile(optimizer=tf.keras.optimizers.Adam(2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_tr, y_tr, batch_size=32, epochs=40, shuffle=True, verbose=0)
    float_acc = float((model.predict(x_te, verbose=0).argmax(1) == y_te).mean())
    log["digits_cnn"] = {"float_accuracy": float_acc, "train": len(x_tr),
                         "test": len(x_te)}
    print(f"digits_cnn: float Keras test accuracy {float_acc:.4f} "
          f"({len(x_te)} held-out samples)")
    if float_acc < 0.95:
        raise RuntimeError("digits_cnn trained below 95% test accuracy")

    path = out_dir / "digits_cnn.tflite"
    path.write_bytes(_convert_int8(tf, _batch1_copy(lambda b: build_digits(tf, b), model),
                                   x_tr))

    # The committed test inputs use the converted model's own input
    # quantization, so they can be fed to it (or to accelkit) unchanged.
    info = run_litert(path, reference=False, random=1)
    scale, zp = info["input"]["quantization"]
    q = np.clip(np.round(x_te / scale) + zp, -128, 127).astype(np.int8)
    data_dir.mkdir(parents=True, exist_ok=True)
    np.save(data_dir / "digits_test_x.npy", q)
    np.save(data_dir / "digits_test_y.npy", y_te)
    for ref in (False, True):
        r = run_litert(path, reference=ref, x=data_dir / "digits_test_x.npy",
                       y=data_dir / "digits_test_y.npy")
        key = "int8_accuracy_ref" if ref else "int8_accuracy_default"
        log["digits_cnn"][key] = r["accuracy"]
        print(f"digits_cnn: int8 LiteRT {'BUILTIN_REF' if ref else 'default'} "
              f"accuracy {r['accuracy']:.4f}")
    return path


# -- mobilenet_v2 -------------------------------------------------------------


def build_mobilenet(tf, batch_size=None):
    x_in = tf.keras.Input((224, 224, 3), batch_size=batch_size, name="image")
    return tf.keras.applications.MobileNetV2(input_tensor=x_in, weights=None,
                                             classes=1000,
                                             classifier_activation="softmax")


def recalibrate_batchnorm(tf, model, images):
    """Sets every BatchNorm's moving statistics to those of ``images``.

    A randomly initialised network keeps moving_mean=0, moving_variance=1, so
    activations drift by orders of magnitude over 50 layers.  One training-mode
    pass with momentum 0 overwrites each moving statistic with the batch
    statistic seen *after* the upstream layers are already normalised, which
    is exactly what they will be in inference mode afterwards.
    """
    bns = [l for l in model.layers
           if isinstance(l, tf.keras.layers.BatchNormalization)]
    saved = [l.momentum for l in bns]
    for l in bns:
        l.momentum = 0.0
    model([images], training=True)
    for l, m in zip(bns, saved):
        l.momentum = m
    return len(bns)


def make_mobilenet(tf, out_dir, data_dir, log):
    import numpy as np

    rng = _seed(tf, "mobilenet_v2")
    model = build_mobilenet(tf)
    # At random initialisation with BatchNorm this network is chaotic: an input
    # change of one int8 step moves the pooled features as much as switching
    # to another image, so int8 rounding differences of one LSB between two
    # kernel sets (e.g. XNNPACK vs BUILTIN_REF) grow to completely different
    # outputs.  Shifting every ReLU6 input to mean 2 (std 1 after
    # recalibration) keeps most units in the linear part of ReLU6, which
    # makes perturbations shrink instead (measured: ~20x less sensitive).
    for layer in model.layers:
        if (isinstance(layer, tf.keras.layers.BatchNormalization)
                and "project" not in layer.name):   # project BNs have no ReLU6
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta + RELU6_INPUT_MEAN, mean, var])
    n_bn = recalibrate_batchnorm(tf, model, _smooth_images(tf, rng, 32, 224, 3))

    # Without the recalibration above, activations vanish (the softmax input
    # scale ends near 1e-8), every int8 output is -128 and LiteRT's
    # BUILTIN_REF SOFTMAX aborts.  With it, the random classifier still only
    # spreads the logits by well under one unit, so the 1000-way softmax is
    # almost flat (outputs -128/-127).  Centre the logits on the calibration
    # images' mean feature (through the bias) and scale the weights until the
    # logits spread ~4 units: then a few classes per image get visible
    # probability mass and the top class depends on the image.
    calib = _smooth_images(tf, rng, 64, 224, 3)
    head = model.layers[-1]
    features = tf.keras.Model(model.input, head.input).predict([calib], batch_size=16,
                                                               verbose=0)
    w, _ = head.get_weights()
    mu = features.mean(axis=0)
    centred = (features - mu) @ w
    gain = 4.0 / centred.std()
    w = (w * gain).astype(np.float32)
    head.set_weights([w, (-mu @ w).astype(np.float32)])
    probs = model.predict([calib], batch_size=16, verbose=0)
    log["mobilenet_v2"] = {
        "batchnorm_layers_recalibrated": n_bn,
        "head_gain": float(gain),
        "float_max_prob_median": float(np.median(probs.max(1))),
        "float_top1_distinct": int(np.unique(probs.argmax(1)).size),
    }
    print(f"mobilenet_v2: {n_bn} BatchNorms recalibrated, head gain {gain:.2f}, "
          f"median top-1 probability {np.median(probs.max(1)):.3f}, "
          f"{np.unique(probs.argmax(1)).size} distinct top-1 classes on 64 images")

    rep = _smooth_images(tf, rng, 64, 224, 3)
    path = out_dir / "mobilenet_v2.tflite"
    path.write_bytes(_convert_int8(tf, _batch1_copy(lambda b: build_mobilenet(tf, b),
                                                    model), rep))

    # Fresh images, quantized like the model's input, through both kernel sets.
    test = _smooth_images(tf, rng, 8, 224, 3)
    probs = model.predict([test], verbose=0)
    info = run_litert(path, reference=False, random=1)
    scale, zp = info["input"]["quantization"]
    q = np.clip(np.round(test / scale) + zp, -128, 127).astype(np.int8)
    tmp = Path(tempfile.mkstemp(suffix=".npy")[1])
    np.save(tmp, q)
    top1 = {}
    try:
        for ref in (False, True):
            r = run_litert(path, reference=ref, x=tmp)
            kind = "ref" if ref else "default"
            agree = float(np.mean(np.array(r["argmax"]) == probs.argmax(1)))
            log["mobilenet_v2"][kind] = {k: r[k] for k in (
                "seconds_per_run", "out_min", "out_max", "out_distinct", "distinct_rows")}
            log["mobilenet_v2"][kind]["top1_agrees_with_float"] = agree
            print(f"mobilenet_v2: LiteRT {kind}: {r['seconds_per_run'] * 1e3:.1f} ms/run, "
                  f"int8 output min {r['out_min']} max {r['out_max']}, "
                  f"{r['out_distinct']} distinct values, {r['distinct_rows']}/8 "
                  f"distinct outputs, top-1 agrees with float on {agree:.0%}")
            if r["out_max"] == r["out_min"] or r["distinct_rows"] < 2:
                raise RuntimeError("mobilenet_v2 int8 output is constant")
            top1[kind] = np.array(r["argmax"])
        agree = float(np.mean(top1["default"] == top1["ref"]))
        log["mobilenet_v2"]["top1_default_vs_ref"] = agree
        print(f"mobilenet_v2: top-1 of default and BUILTIN_REF kernels agree on {agree:.0%}")
    finally:
        tmp.unlink(missing_ok=True)
    return path


# -- resnet_tiny --------------------------------------------------------------


def build_resnet_tiny(tf, batch_size=None):
    L = tf.keras.layers
    # Small random biases: a zero bias is dropped by the converter, and real
    # trained layers have one.
    kw = dict(kernel_initializer="he_normal",
              bias_initializer=tf.keras.initializers.RandomNormal(stddev=0.05))

    def block(x, filters, stride):
        shortcut = x
        y = L.Conv2D(filters, 3, strides=stride, padding="same", activation="relu",
                     **kw)(x)
        y = L.Conv2D(filters, 3, padding="same", **kw)(y)
        if stride != 1 or x.shape[-1] != filters:
            shortcut = L.Conv2D(filters, 1, strides=stride, **kw)(x)
        return L.ReLU()(L.Add()([shortcut, y]))

    x_in = tf.keras.Input((32, 32, 3), batch_size=batch_size, name="image")
    x = L.Conv2D(16, 3, padding="same", activation="relu", **kw)(x_in)
    x = block(x, 16, 1)
    x = block(x, 32, 2)
    x = block(x, 64, 2)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, **kw)(x)
    return tf.keras.Model(x_in, out, name="resnet_tiny")


def make_resnet_tiny(tf, out_dir, data_dir, log):
    rng = _seed(tf, "resnet_tiny")
    model = build_resnet_tiny(tf)
    path = out_dir / "resnet_tiny.tflite"
    path.write_bytes(_convert_int8(tf, _batch1_copy(lambda b: build_resnet_tiny(tf, b),
                                                    model),
                                   _smooth_images(tf, rng, 64, 32, 3)))
    return path


# -- transpose_mlp -----------------------------------------------------------


def build_transpose_mlp(tf, batch_size=None):
    L = tf.keras.layers
    kw = dict(bias_initializer=tf.keras.initializers.RandomNormal(stddev=0.05))

    class DotAttention(L.Layer):
        # Written with tf.matmul on two activations so the converter has to
        # emit BATCH_MATMUL (a Dense would become FULLY_CONNECTED).
        def call(self, q, k, v):
            scores = tf.matmul(q, k, transpose_b=True) * (q.shape[-1] ** -0.5)
            return tf.matmul(tf.nn.softmax(scores, axis=-1), v)

    x_in = tf.keras.Input((8, 8, 8), batch_size=batch_size, name="features")
    x = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", **kw)(x_in)
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", **kw)(x)
    tokens = L.Reshape((64, 16))(x)
    q = L.Dense(16, **kw)(tokens)
    k = L.Dense(16, **kw)(tokens)
    v = L.Dense(16, **kw)(tokens)
    a = DotAttention()(q, k, v)
    h = L.Dense(32, activation="relu", **kw)(a)
    h = L.Dense(16, **kw)(h)
    h = L.GlobalAveragePooling1D()(h)
    out = L.Dense(10, **kw)(h)
    return tf.keras.Model(x_in, out, name="transpose_mlp")


def make_transpose_mlp(tf, out_dir, data_dir, log):
    import numpy as np

    rng = _seed(tf, "transpose_mlp")
    model = build_transpose_mlp(tf)
    rep = rng.normal(0.0, 1.0, size=(64, 8, 8, 8)).astype(np.float32)
    path = out_dir / "transpose_mlp.tflite"
    path.write_bytes(_convert_int8(
        tf, _batch1_copy(lambda b: build_transpose_mlp(tf, b), model), rep))
    return path


# -- dcgan_tiny ---------------------------------------------------------------


def build_dcgan_tiny(tf, batch_size=None):
    """A DCGAN-style generator: latent -> dense -> reshape -> TRANSPOSE_CONVs (strides 2, 1, 2, 2) -> 32x32x3."""
    L = tf.keras.layers
    kw = dict(bias_initializer=tf.keras.initializers.RandomNormal(stddev=0.05))
    z = tf.keras.Input((32,), batch_size=batch_size, name="latent")
    x = L.Dense(4 * 4 * 64, activation="relu", **kw)(z)
    x = L.Reshape((4, 4, 64))(x)
    x = L.Conv2DTranspose(32, 4, strides=2, padding="same", activation="relu", **kw)(x)   # 8x8x32
    x = L.Conv2DTranspose(32, 3, strides=1, padding="same", activation="relu", **kw)(x)   # 8x8x32
    x = L.Conv2DTranspose(16, 4, strides=2, padding="same", activation="relu", **kw)(x)   # 16x16x16
    x = L.Conv2DTranspose(3, 5, strides=2, padding="same", activation="tanh", **kw)(x)    # 32x32x3
    return tf.keras.Model(z, x, name="dcgan_tiny")


def make_dcgan_tiny(tf, out_dir, data_dir, log):
    import numpy as np

    rng = _seed(tf, "dcgan_tiny")
    model = build_dcgan_tiny(tf)
    rep = rng.normal(0.0, 1.0, size=(64, 32)).astype(np.float32)
    path = out_dir / "dcgan_tiny.tflite"
    path.write_bytes(_convert_int8(tf, _batch1_copy(lambda b: build_dcgan_tiny(tf, b), model), rep))
    return path


# -- efficientnet_tiny --------------------------------------------------------

#: (expansion, output channels, kernel, stride, repeats, depth multiplier) per stage.  The first
#: stage expands by a depthwise depth multiplier of 2 instead of a 1x1 convolution, so the zoo holds a
#: DEPTHWISE_CONV_2D with a depth multiplier above 1.
EFFICIENTNET_STAGES = ((1, 16, 3, 1, 1, 2), (4, 24, 3, 2, 2, 1), (4, 40, 5, 2, 2, 1), (4, 64, 3, 2, 1, 1),
                       (6, 80, 5, 1, 1, 1))
EFFICIENTNET_SIZE = 96
EFFICIENTNET_CLASSES = 100


def build_efficientnet_tiny(tf, batch_size=None):
    """An EfficientNet-style network: MBConv blocks (1x1 expand, depthwise, squeeze-and-excitation,
    1x1 project, residual) with swish, 96x96 input, 100 classes with softmax."""
    L = tf.keras.layers
    act = "swish"

    def bn_act(x, name):
        x = L.BatchNormalization(name=f"{name}_bn")(x)
        return L.Activation(act, name=f"{name}_act")(x)

    def mbconv(x, expand, filters, kernel, stride, multiplier, name):
        inputs, channels = x, x.shape[-1]
        if expand != 1:
            x = L.Conv2D(channels * expand, 1, use_bias=False, name=f"{name}_expand")(x)
            x = bn_act(x, f"{name}_expand")
        x = L.DepthwiseConv2D(kernel, strides=stride, padding="same", depth_multiplier=multiplier,
                              use_bias=False, name=f"{name}_dw")(x)
        x = bn_act(x, f"{name}_dw")
        # squeeze-and-excitation: per-channel gates from the pooled features
        width = x.shape[-1]
        se = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
        se = L.Conv2D(max(4, channels // 4), 1, activation=act, name=f"{name}_se_reduce")(se)
        se = L.Conv2D(width, 1, activation="sigmoid", name=f"{name}_se_expand")(se)
        x = L.Multiply(name=f"{name}_se")([x, se])
        x = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(x)
        x = L.BatchNormalization(name=f"{name}_project_bn")(x)
        if stride == 1 and channels == filters:
            x = L.Add(name=f"{name}_add")([inputs, x])
        return x

    x_in = tf.keras.Input((EFFICIENTNET_SIZE, EFFICIENTNET_SIZE, 3), batch_size=batch_size, name="image")
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(x_in)
    x = bn_act(x, "stem")
    for s, (expand, filters, kernel, stride, repeats, multiplier) in enumerate(EFFICIENTNET_STAGES):
        for r in range(repeats):
            x = mbconv(x, expand, filters, kernel, stride if r == 0 else 1, multiplier, f"block{s}{r}")
    x = L.Conv2D(256, 1, use_bias=False, name="top")(x)
    x = bn_act(x, "top")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    out = L.Dense(EFFICIENTNET_CLASSES, activation="softmax", name="head")(x)
    return tf.keras.Model(x_in, out, name="efficientnet_tiny")


def _spread_head(tf, model, images, spread):
    """Centre the classifier's logits on the images' mean feature and scale them to ``spread`` (std).

    Random classifier weights leave the softmax almost flat; see make_mobilenet.
    Returns the gain applied.
    """
    import numpy as np

    head = model.layers[-1]
    features = tf.keras.Model(model.input, head.input).predict([images], batch_size=16, verbose=0)
    w, _ = head.get_weights()
    mu = features.mean(axis=0)
    gain = spread / ((features - mu) @ w).std()
    w = (w * gain).astype(np.float32)
    head.set_weights([w, (-mu @ w).astype(np.float32)])
    return float(gain)


def _check_both_kernels(name, path, test_inputs, float_outputs, log):
    """Runs ``test_inputs`` (float) through LiteRT default and BUILTIN_REF; logs and checks the outputs."""
    import numpy as np

    info = run_litert(path, reference=False, random=1)
    scale, zp = info["input"]["quantization"]
    q = np.clip(np.round(test_inputs / scale) + zp, -128, 127).astype(np.int8)
    tmp = Path(tempfile.mkstemp(suffix=".npy")[1])
    np.save(tmp, q)
    top1 = {}
    try:
        for ref in (False, True):
            r = run_litert(path, reference=ref, x=tmp)
            kind = "ref" if ref else "default"
            agree = float(np.mean(np.array(r["argmax"]) == float_outputs.reshape(len(q), -1).argmax(1)))
            log[name][kind] = {k: r[k] for k in (
                "seconds_per_run", "out_min", "out_max", "out_distinct", "distinct_rows")}
            log[name][kind]["argmax_agrees_with_float"] = agree
            print(f"{name}: LiteRT {kind}: {r['seconds_per_run'] * 1e3:.1f} ms/run, int8 output min "
                  f"{r['out_min']} max {r['out_max']}, {r['out_distinct']} distinct values, "
                  f"{r['distinct_rows']}/{len(q)} distinct outputs, argmax agrees with float on {agree:.0%}")
            if r["out_max"] == r["out_min"] or r["distinct_rows"] < 2:
                raise RuntimeError(f"{name} int8 output is constant")
            top1[kind] = np.array(r["argmax"])
        log[name]["argmax_default_vs_ref"] = float(np.mean(top1["default"] == top1["ref"]))
    finally:
        tmp.unlink(missing_ok=True)


def make_efficientnet_tiny(tf, out_dir, data_dir, log):
    rng = _seed(tf, "efficientnet_tiny")
    model = build_efficientnet_tiny(tf)
    # As for MobileNetV2: shift every BatchNorm that feeds an activation so its
    # units sit mostly in swish's near-linear part, then recalibrate the
    # moving statistics on seeded images (random init would let activations
    # vanish and make LiteRT's BUILTIN_REF SOFTMAX abort).
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization) and "project" not in layer.name:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta + RELU6_INPUT_MEAN, mean, var])
    size = EFFICIENTNET_SIZE
    n_bn = recalibrate_batchnorm(tf, model, _smooth_images(tf, rng, 32, size, 3))
    gain = _spread_head(tf, model, _smooth_images(tf, rng, 64, size, 3), 4.0)
    log["efficientnet_tiny"] = {"batchnorm_layers_recalibrated": n_bn, "head_gain": gain}
    print(f"efficientnet_tiny: {n_bn} BatchNorms recalibrated, head gain {gain:.2f}")

    rep = _smooth_images(tf, rng, 64, size, 3)
    path = out_dir / "efficientnet_tiny.tflite"
    path.write_bytes(_convert_int8(tf, _batch1_copy(lambda b: build_efficientnet_tiny(tf, b), model), rep))
    test = _smooth_images(tf, rng, 8, size, 3)
    _check_both_kernels("efficientnet_tiny", path, test, model.predict([test], verbose=0), log)
    return path


# -- transformer_block --------------------------------------------------------

TRANSFORMER_TOKENS, TRANSFORMER_WIDTH, TRANSFORMER_HEADS, TRANSFORMER_MLP = 16, 64, 4, 128


def build_transformer_block(tf, batch_size=None):
    """One pre-norm transformer encoder block on [16, 64] token embeddings: layer norm, 4-head
    self-attention (both products of two activations written with tf.matmul so that they become
    BATCH_MATMUL), residual, layer norm, GELU MLP, residual."""
    L = tf.keras.layers
    t, d, h = TRANSFORMER_TOKENS, TRANSFORMER_WIDTH, TRANSFORMER_HEADS
    kw = dict(bias_initializer=tf.keras.initializers.RandomNormal(stddev=0.05))

    class Attention(L.Layer):
        def call(self, q, k, v):
            def heads(x):   # [B, T, D] -> [B, H, T, D/H]
                return tf.transpose(tf.reshape(x, (-1, t, h, d // h)), (0, 2, 1, 3))
            q, k, v = heads(q), heads(k), heads(v)
            scores = tf.matmul(q, k, transpose_b=True) * ((d // h) ** -0.5)
            a = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
            return tf.reshape(tf.transpose(a, (0, 2, 1, 3)), (-1, t, d))

    class LayerNorm(L.Layer):
        # Keras' LayerNormalization computes -mean * rsqrt(var) on the way, which the converter can
        # only emit as a float NEG between DEQUANTIZE and QUANTIZE; written with a subtraction and
        # products, every operator stays int8.
        def build(self, input_shape):
            self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

        def call(self, x):
            centred = x - tf.reduce_mean(x, axis=-1, keepdims=True)
            variance = tf.reduce_mean(centred * centred, axis=-1, keepdims=True)
            return centred * tf.math.rsqrt(variance + 1e-5) * self.gamma + self.beta

    x_in = tf.keras.Input((t, d), batch_size=batch_size, name="tokens")
    y = LayerNorm(name="ln1")(x_in)
    q = L.Dense(d, name="q", **kw)(y)
    k = L.Dense(d, name="k", **kw)(y)
    v = L.Dense(d, name="v", **kw)(y)
    a = Attention(name="attention")(q, k, v)
    a = L.Dense(d, name="attention_out", **kw)(a)
    x = L.Add(name="residual1")([x_in, a])
    y = LayerNorm(name="ln2")(x)
    y = L.Dense(TRANSFORMER_MLP, activation="gelu", name="mlp_up", **kw)(y)
    y = L.Dense(d, name="mlp_down", **kw)(y)
    out = L.Add(name="residual2")([x, y])
    return tf.keras.Model(x_in, out, name="transformer_block")


def make_transformer_block(tf, out_dir, data_dir, log):
    import numpy as np

    rng = _seed(tf, "transformer_block")
    model = build_transformer_block(tf)
    shape = (TRANSFORMER_TOKENS, TRANSFORMER_WIDTH)
    rep = rng.normal(0.0, 1.0, size=(64, *shape)).astype(np.float32)
    path = out_dir / "transformer_block.tflite"
    path.write_bytes(_convert_int8(tf, _batch1_copy(lambda b: build_transformer_block(tf, b), model), rep))
    test = rng.normal(0.0, 1.0, size=(8, *shape)).astype(np.float32)
    log["transformer_block"] = {}
    _check_both_kernels("transformer_block", path, test, model.predict([test], verbose=0), log)
    return path


MAKERS = {
    "digits_cnn": make_digits,
    "mobilenet_v2": make_mobilenet,
    "resnet_tiny": make_resnet_tiny,
    "transpose_mlp": make_transpose_mlp,
    "dcgan_tiny": make_dcgan_tiny,
    "efficientnet_tiny": make_efficientnet_tiny,
    "transformer_block": make_transformer_block,
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_litert":
        return _litert_main(argv[1:])

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=MODEL_NAMES, action="append",
                   help="build only this model (repeatable)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for the .tflite files (default: models/ "
                        "next to this script)")
    p.add_argument("--data-out", type=Path, default=None,
                   help="directory for the digits test set (default: data/ "
                        "next to this script, or --out when --out is given, so "
                        "a scratch run never overwrites the committed data)")
    a = p.parse_args(argv)
    out_dir = a.out or ZOO / "models"
    data_dir = a.data_out or (a.out if a.out else ZOO / "data")
    out_dir.mkdir(parents=True, exist_ok=True)

    tf = _setup_tf()
    print(f"TensorFlow {tf.__version__}, Keras {tf.keras.version()}")
    log = {}
    for name in a.only or MODEL_NAMES:
        t0 = time.perf_counter()
        path = MAKERS[name](tf, out_dir, data_dir, log)
        # Every model has to survive both kernel sets; the reference one is
        # what accelkit's golden comparisons use.
        for ref in (False, True):
            r = run_litert(path, reference=ref, random=4)
            if r["out_max"] == r["out_min"]:
                raise RuntimeError(f"{name}: constant output on random inputs")
        print(f"{name}: wrote {path} ({path.stat().st_size} bytes) "
              f"in {time.perf_counter() - t0:.0f} s")
    print(json.dumps(log, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
