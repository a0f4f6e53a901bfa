"""Identity pools, identities, credentials, tokens, and SigV4 request verification."""
