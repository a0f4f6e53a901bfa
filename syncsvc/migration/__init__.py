"""Moving in from Cognito Sync: ``syncsvc import`` reads a live identity pool through the public AWS APIs
(:mod:`syncsvc.migration.source`) and writes it into this deployment keeping identity ids, sync counts and dates
(:mod:`syncsvc.migration.target`); :mod:`syncsvc.migration.model` holds what passes between the two."""
