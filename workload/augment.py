"""The seed's augmentation, as Keras 1's ImageDataGenerator did it, in numpy: no framework needed.

The seed ran ImageDataGenerator(rescale=1/255, shear_range=0.2, zoom_range=0.2,
horizontal_flip=True) under Keras 1, where
- shear_range was in radians (degrees came with Keras 2.1.3): 0.2 is about 11.5 degrees;
- the affine matrix acts on (row, column) coordinates, through
  scipy.ndimage.affine_transform, so rows shear against columns the other way
  round from an (x, y) convention such as tf.raw_ops.ImageProjectiveTransformV3's;
- interpolation was nearest-neighbour (order=0; bilinear came with Keras 2.1.4),
  and points outside the image take the nearest edge pixel (fill_mode "nearest");
- the transform is centred at (h/2 + 0.5, w/2 + 0.5), as transform_matrix_offset_center put it.
Photos were resized to 150x150 by PIL's default of the time, nearest.
"""

import numpy as np

SHEAR_RANGE = 0.2  # radians
ZOOM_RANGE = (0.8, 1.2)


def draw(rng, count):
    """Random parameters for `count` images, drawn as Keras 1 drew them: shear, then zoom x and y, then the flip."""
    shear = rng.uniform(-SHEAR_RANGE, SHEAR_RANGE, count)
    zoom = rng.uniform(ZOOM_RANGE[0], ZOOM_RANGE[1], (count, 2))
    flip = rng.random(count) < 0.5
    return shear, zoom[:, 0], zoom[:, 1], flip


def matrices(shear, zoom_x, zoom_y, height, width):
    """Keras 1's transform per image, in (row, column) coordinates and centred: shape (n, 3, 3)."""
    count = len(shear)
    transform = np.zeros((count, 3, 3))
    transform[:, 0, 0] = zoom_x
    transform[:, 0, 1] = -np.sin(shear) * zoom_y
    transform[:, 1, 1] = np.cos(shear) * zoom_y
    transform[:, 2, 2] = 1.0
    o_row, o_col = height / 2 + 0.5, width / 2 + 0.5
    offset = np.array([[1, 0, o_row], [0, 1, o_col], [0, 0, 1]])
    reset = np.array([[1, 0, -o_row], [0, 1, -o_col], [0, 0, 1]])
    return offset @ transform @ reset


def transform(images, transforms):
    """Each output pixel takes the input pixel nearest to where its matrix maps it, edges extended: (n, h, w, c)."""
    count, height, width, _ = images.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid = np.stack([rows.ravel(), cols.ravel(), np.ones(rows.size)])  # (3, h*w)
    source = transforms[:, :2] @ grid  # (n, 2, h*w)
    src_rows = np.clip(np.floor(source[:, 0] + 0.5).astype(np.int64), 0, height - 1)
    src_cols = np.clip(np.floor(source[:, 1] + 0.5).astype(np.int64), 0, width - 1)
    picked = images[np.arange(count)[:, None], src_rows, src_cols]  # (n, h*w, c)
    return picked.reshape(images.shape)


def augment(images, rng):
    """The seed's augmentation of a batch of rescaled images (n, h, w, c)."""
    shear, zoom_x, zoom_y, flip = draw(rng, len(images))
    out = transform(images, matrices(shear, zoom_x, zoom_y, images.shape[1], images.shape[2]))
    out[flip] = out[flip, :, ::-1]
    return out
