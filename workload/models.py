"""The two networks the seed timed, layer for layer, Keras' own applications beside them, and their analytic FLOP counts.

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


SEED_MODELS = {"dogs-vs-cats": dogs_vs_cats, "mnist": mnist}
# contract.KERAS_APPLICATIONS, as keras.applications names them, and the parameters Keras publishes for them at 1000
# classes (keras.io/api/applications): the same in Keras 2 and 3, whatever the image size, as their tops pool globally.
APPLICATIONS = {"resnet50": "ResNet50", "mobilenet-v2": "MobileNetV2", "efficientnet-b0": "EfficientNetB0"}
PUBLISHED_PARAMETERS = {"resnet50": 25_636_712, "mobilenet-v2": 3_538_984, "efficientnet-b0": 5_330_571}


def build(keras, job, jit_compile):
    """The job's model, compiled."""
    if job.model in APPLICATIONS:
        return keras_application(keras, job, jit_compile)
    return SEED_MODELS[job.model](keras, jit_compile)


def keras_application(keras, job, jit_compile):
    """One of Keras' own networks, untrained (weights=None: nothing is downloaded), trained as the published GPU tables
    train them: softmax over `classes`, SGD with momentum. The data format is Keras' global setting, which they read."""
    keras.backend.set_image_data_format(job.data_format)
    network = getattr(keras.applications, APPLICATIONS[job.model])
    model = network(weights=None, input_shape=input_shape(job), classes=job.classes)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  metrics=["accuracy"], jit_compile=jit_compile)
    return model


def input_shape(job):
    """One image's shape, as the model takes it and the loaders make it."""
    side = job.image_size
    return (side, side, 3) if job.data_format == "channels_last" else (3, side, side)


def forward_flops(model):
    """Floating-point operations of one image's forward pass: a multiply-add counts 2.

    Convolutions (depthwise ones too) and dense layers only; activations, pooling,
    batch normalisation and dropout are a rounding error.
    """
    return sum(layer_flops(*shapes) for shapes in _layers(model))


def training_flops(model):
    """One image's training step, exactly: forward, the weights' gradients (as much again), and the inputs'
    gradients (as much again) for every layer but the first, whose input is the image and needs none."""
    flops = [layer_flops(*shapes) for shapes in _layers(model)]
    return 3 * sum(flops) - (flops[0] if flops else 0)


def _layers(model):
    """(kind, kernel shape, output height and width) of the layers that count, in the model's order."""
    return [(type(layer).__name__, _kernel_shape(layer), output_size(layer))
            for layer in model.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense")]


def _kernel_shape(layer):
    kernel = layer.depthwise_kernel if hasattr(layer, "depthwise_kernel") else layer.kernel  # Keras 2's depthwise name
    return tuple(kernel.shape)


def output_size(layer):
    if type(layer).__name__ == "Dense":
        return ()
    shape = tuple(layer.output.shape)
    return shape[2:4] if layer.data_format == "channels_first" else shape[1:3]


def layer_flops(kind, kernel_shape, output_size):
    """One layer's forward FLOPs from its kernel shape and its output's height and width.

    A convolution's kernel is (height, width, channels in, channels out); a depthwise one's
    (height, width, channels, multiplier): each channel convolved on its own.
    """
    if kind in ("Conv2D", "DepthwiseConv2D"):
        kernel_h, kernel_w, channels_in, channels_out = kernel_shape
        out_h, out_w = output_size
        return int(2 * out_h * out_w * kernel_h * kernel_w * channels_in * channels_out)
    inputs, outputs = kernel_shape
    return int(2 * inputs * outputs)
