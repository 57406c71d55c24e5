"""Fitting on model columns: algorithms, choosing k, profiles and labels. No database code."""
