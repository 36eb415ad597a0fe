"""Segmenter: segment definitions, real-time membership, segment-change events."""
