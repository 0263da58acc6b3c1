"""Codecs: metadata codec lists mapped onto numcodecs."""

from zarrcore.codecs.pipeline import V3_CODECS, CodecPipeline, default_codecs

__all__ = ["V3_CODECS", "CodecPipeline", "default_codecs"]
