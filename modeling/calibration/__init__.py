"""The calibration head (``head``) and the stage that fits it on held-out data (``fit``)."""

from modeling.calibration.head import CalibrationHead

__all__ = ["CalibrationHead"]
