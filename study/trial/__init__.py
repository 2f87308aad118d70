"""One trial's life: model, training, its worker process, the cost it measures. No Optuna trial objects here."""
