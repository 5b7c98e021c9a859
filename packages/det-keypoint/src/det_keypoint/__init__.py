"""det-keypoint: keypoint-based detectors (CenterNet, CornerNet, CentripetalNet) for detcore.

Importing this package imports nothing; components are found through entry points.
"""
