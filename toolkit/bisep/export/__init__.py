"""Trained models in portable forms: a self-contained model folder, and ONNX mask predictors."""
