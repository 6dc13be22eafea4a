"""The two networks the seed timed, layer for layer, and their analytic FLOP counts.

Written against the API Keras 2 (tf.keras, TensorFlow <= 2.15) and Keras 3
share, so that every TensorFlow image builds the same network with the same
parameter count. The seed's Keras 1 Convolution2D(32, 3, 3) meant 32 filters
of 3x3; in Keras 3 the third positional argument is the stride, so kernel
sizes are spelled out.
"""


def dogs_vs_cats(keras, jit_compile):
    """Keras blog, "Building powerful image classification models using very little data"."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=(150, 150, 3)),
        layers.Conv2D(32, (3, 3)), layers.Activation("relu"), layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(32, (3, 3)), layers.Activation("relu"), layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, (3, 3)), layers.Activation("relu"), layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(64), layers.Activation("relu"),
        layers.Dropout(0.5),
        layers.Dense(1), layers.Activation("sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def mnist(keras, jit_compile):
    """Keras 1's examples/mnist_cnn.py: Adadelta at that era's learning rate of 1.0."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
                  metrics=["accuracy"], jit_compile=jit_compile)
    return model


MODELS = {"dogs-vs-cats": dogs_vs_cats, "mnist": mnist}


def forward_flops(model):
    """Floating-point operations of one image's forward pass: a multiply-add counts 2.

    Convolutions and dense layers only; activations, pooling and dropout are a
    rounding error.
    """
    return sum(layer_flops(*shapes) for shapes in _layers(model))


def training_flops(model):
    """One image's training step, exactly: forward, the weights' gradients (as much again), and the inputs'
    gradients (as much again) for every layer but the first, whose input is the image and needs none."""
    flops = [layer_flops(*shapes) for shapes in _layers(model)]
    return 3 * sum(flops) - (flops[0] if flops else 0)


def _layers(model):
    """(kind, kernel shape, output shape) of the layers that count."""
    return [(type(layer).__name__, tuple(layer.kernel.shape), tuple(layer.output.shape))
            for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")]


def layer_flops(kind, kernel_shape, output_shape):
    """One layer's forward FLOPs from its kernel and output shapes (batch first in the output)."""
    if kind == "Conv2D":
        kernel_h, kernel_w, channels_in, channels_out = kernel_shape
        _, out_h, out_w, _ = output_shape
        return int(2 * out_h * out_w * kernel_h * kernel_w * channels_in * channels_out)
    inputs, outputs = kernel_shape
    return int(2 * inputs * outputs)
