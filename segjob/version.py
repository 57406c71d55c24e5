"""The version of segjob, stored with every run."""

__version__ = "0.1.0"
