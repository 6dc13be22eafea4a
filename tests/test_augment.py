"""The seed's augmentation (Keras 1's ImageDataGenerator) checked numerically against a reference transform.

The reference is what Keras 1 ran: scipy.ndimage.affine_transform on each channel, order 0
(nearest), fill mode "nearest", with Keras 1's shear (radians) and zoom matrix centred by its
transform_matrix_offset_center. tests/test_docker_backends.py checks tf.data's version against
the same numpy code inside a TensorFlow image.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workload"))
import augment  # noqa: E402


def keras1_random_transform(image, shear, zoom_x, zoom_y):
    """Keras 1.2's random_transform for one (rows, cols, channels) image, with its random draws given."""
    from scipy import ndimage  # here, not at the top: every xdist worker collects this file, and the import takes a second

    shear_matrix = np.array([[1, -math.sin(shear), 0], [0, math.cos(shear), 0], [0, 0, 1]])
    zoom_matrix = np.array([[zoom_x, 0, 0], [0, zoom_y, 0], [0, 0, 1]])
    matrix = shear_matrix @ zoom_matrix
    o_x, o_y = image.shape[0] / 2 + 0.5, image.shape[1] / 2 + 0.5
    matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]]) @ matrix @ np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    channels = [ndimage.affine_transform(image[..., c], matrix[:2, :2], offset=matrix[:2, 2], order=0, mode="nearest")
                for c in range(image.shape[-1])]
    return np.stack(channels, axis=-1)


@pytest.fixture
def photos():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    smooth = ndimage.zoom(rng.random((4, 15, 15, 3)), (1, 10, 10, 1), order=1)  # 150x150 with structure to move
    return smooth.astype("float32")


def test_the_transform_matches_keras_1_pixel_for_pixel(photos):
    shear = np.array([0.2, -0.2, 0.05, 0.0])
    zoom_x = np.array([0.8, 1.2, 1.0, 1.1])
    zoom_y = np.array([1.2, 0.8, 0.9, 1.0])
    ours = augment.transform(photos, augment.matrices(shear, zoom_x, zoom_y, 150, 150))
    for index in range(len(photos)):
        reference = keras1_random_transform(photos[index], shear[index], zoom_x[index], zoom_y[index])
        assert np.mean(ours[index] == reference) > 0.999  # rounding of exact .5 coordinates may differ at a few pixels


def test_the_shear_is_in_radians_and_moves_pixels_visibly(photos):
    sheared = augment.transform(photos, augment.matrices(np.array([0.2] * 4), np.ones(4), np.ones(4), 150, 150))
    assert np.mean(sheared != photos) > 0.5  # 0.2 degrees would move pixels by a quarter of a pixel at most


def test_rows_shear_against_columns_as_keras_1_did():
    """Keras 1's shear shifts rows in proportion to the column: a horizontal line tilts, a vertical one stays upright.

    An (x, y) convention, as tf.raw_ops.ImageProjectiveTransformV3 has, would do the opposite.
    """
    lines = np.zeros((2, 150, 150, 1), dtype="float32")
    lines[0, 75, :, 0] = 1.0  # horizontal
    lines[1, :, 75, 0] = 1.0  # vertical
    shear = np.full(2, 0.2)
    horizontal, vertical = augment.transform(lines, augment.matrices(shear, np.ones(2), np.ones(2), 150, 150))[..., 0]
    assert len(np.flatnonzero(horizontal.any(axis=1))) > 20  # tilted across many rows ...
    assert (horizontal.sum(axis=0) == 1).all()  # ... one pixel in each column
    assert len(np.flatnonzero(vertical.any(axis=0))) == 1  # upright


def test_augmentation_draws_keras_1_ranges_and_flips_half():
    shear, zoom_x, zoom_y, flip = augment.draw(np.random.default_rng(0), 10_000)
    assert -0.2 <= shear.min() < -0.19 and 0.19 < shear.max() <= 0.2
    assert 0.8 <= min(zoom_x.min(), zoom_y.min()) and max(zoom_x.max(), zoom_y.max()) <= 1.2
    assert 0.48 < flip.mean() < 0.52
