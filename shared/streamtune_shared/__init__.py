"""Shared library of the streamtune services: schemas, stream names, settings, bus and storage helpers."""
