"""pipectl: why is my pipeline's work stuck, and what exactly do I run to fix it."""

__version__ = "0.1.0"
