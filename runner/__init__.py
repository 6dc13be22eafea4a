"""cudnn-matrix: time the same Keras CNN across CPU, CUDA, cuDNN and TensorFlow versions.

The package reads as its pipeline, one module a stage:
matrix.yaml -> config -> cells -> environments -> executors -> outcome -> records -> report,
with session.py running it and cli.py parsing the command line.
"""

__version__ = "0.3.0"
