"""cudnn-matrix: time the same Keras CNN across CPU, CUDA, cuDNN and TensorFlow versions.

The package reads as its pipeline, one module a stage:
matrix.yaml -> config -> cells -> images -> containers -> records -> report.
"""

__version__ = "0.2.0"
