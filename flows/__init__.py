"""Prefect flows that land N-dimensional data in Zarr arrays: ``ingest``, ``verify`` and ``copy``.

The flows plan chunk batches and map write/verify tasks over them; every byte goes through
:mod:`zarrcore`. Import the flows from their modules (``flows.ingest``, ``flows.verify``,
``flows.copy``) so that importing this package stays cheap.
"""
