"""Evidence: cases, the content-addressed store (local or S3), ingest of files and archives, image decoding
and hashes, near-duplicates, lab-made derivatives with their perturbation history, the chain of custody with
its signed checkpoints and keys, and evidence bundles.

Evidence files are never modified; everything that enters is hashed and logged in the case's custody chain.
"""
