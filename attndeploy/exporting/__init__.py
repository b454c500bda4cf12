"""Export a model to ONNX and prove the file: verify, simplify, parity (see `pipeline.export`)."""
