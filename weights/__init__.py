"""Shipped weights (package data); see manifest.json."""
