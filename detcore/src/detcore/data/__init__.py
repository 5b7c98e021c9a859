"""Data side of detcore: datasets (COCO, VOC, middle format), pipeline transforms, loader, samplers.

Import the submodules directly (``detcore.data.datasets.coco`` ...); this package imports nothing
heavy so that entry points and the CLI stay light.
"""
