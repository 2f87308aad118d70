"""The search-space format: space files -> typed specs, what a study optimises; the one caller of trial.suggest_*."""
