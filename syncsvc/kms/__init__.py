"""KMS: master keys (lifecycle, cryptography, grants and policies, the sweep), the root key, and envelope encryption of
values at rest."""
