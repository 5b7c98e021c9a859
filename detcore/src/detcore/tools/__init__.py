"""The toolbox around the detectors (manual `003` §2.3): FLOPs, publishing, ONNX export, error
analysis, robustness, dataset conversion. Each module backs one ``detcore`` subcommand."""
