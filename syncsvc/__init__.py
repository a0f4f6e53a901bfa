"""syncsvc: a self-hostable, event-driven sync backend wire-compatible with AWS Cognito Sync."""

__version__ = "0.1.0"
