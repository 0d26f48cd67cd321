"""Publishing a calibrated checkpoint: the export folder or Hub commit (``export``) and its model card."""
