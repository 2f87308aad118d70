"""The search: the run loop, objective, samplers and pruners, two-stage, the Keras Tuner engine, GPU workers."""
