"""The object-store backends (S3, GCS, Azure Blob) and what they share.

Each backend module imports its SDK, so none is imported here: ``open_store`` imports a backend on the
first use of its URL scheme.
"""
