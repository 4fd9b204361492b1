"""Training and evaluation of fraud models on the Fraud Detection Handbook's protocol.

`protocol` (train / delay / test blocks, prequential folds), `metrics` (AUC, AP,
Card Precision@k), `models` (LightGBM and logistic regression, exported to ONNX),
`selection` (prequential grid search), `threshold` (the decision threshold, chosen on the
validation folds by a named policy), `pipeline` (`train`, `register_result`) and
`reproduce` (retrain a registered version from its lineage).
"""
