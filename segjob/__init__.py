"""segjob: customer segmentation from a database table to versioned, BI-ready tables."""

__version__ = "0.1.0"
