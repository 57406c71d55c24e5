"""The version of segjob, stored with every run."""

VERSION = "0.1.0"
