"""wordlstm: learn the style of a Chinese novel and continue text in it.

The package is import-light on purpose: nothing here imports Keras or TensorFlow,
so `wordlstm segment` and `--help` start in well under a second.
"""

__version__ = "0.1.0"
