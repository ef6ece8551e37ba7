"""Domain layer: no tornado, no jupyter_server, no hub imports here."""
