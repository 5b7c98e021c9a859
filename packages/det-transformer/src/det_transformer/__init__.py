"""det-transformer: set-prediction detectors (DETR, Deformable DETR, Sparse R-CNN) for detcore.

Importing this package imports nothing; components are found through entry points.
"""
