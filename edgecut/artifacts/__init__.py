"""The artifact: the self-describing directory an export writes, and everything that reads it back to verify it. The
schema of its manifest (`edgecut.json`) and golden logits (manifest); writing it in a partial directory beside the
destination and renaming it when complete (artifact); and `edgecut check`: integrity, golden parity and quality
gates, and the reports they write (check). Running an artifact is `edgecut.runtime`, kept at the top level as the
public, torch-free entry point.
"""
