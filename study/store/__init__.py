"""What a study keeps: storage URLs, the record of stored names, artifacts, the best model, predictions."""
