"""The HTTP front end: AWS wire protocols (Cognito Sync rest-json, Cognito Identity json 1.1) on one aiohttp app."""
