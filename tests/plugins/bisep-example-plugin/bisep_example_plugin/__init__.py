"""An example third-party bisep plugin: one separator and one loss term."""
