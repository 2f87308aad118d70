"""`study`: find the best MobileNet transfer-learning head for an image folder with Optuna."""

__version__ = "0.1.0"
