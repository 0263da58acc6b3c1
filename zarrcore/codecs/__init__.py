"""Codecs: metadata codec lists mapped onto numcodecs."""

from zarrcore.codecs.pipeline import LIGHT_CHUNK_BYTES, V3_CODECS, CodecPipeline, codec_configs, default_codecs

__all__ = ["LIGHT_CHUNK_BYTES", "V3_CODECS", "CodecPipeline", "codec_configs", "default_codecs"]
