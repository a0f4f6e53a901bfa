"""Cognito user pools: a user directory that signs people in and issues the JWTs identity pools trust (the Cognito
Identity Provider wire protocol, ``AWSCognitoIdentityProviderService.*``). :mod:`~syncsvc.userpools.directory` holds
pools, app clients and users; :mod:`~syncsvc.userpools.signin` the sign-in flows and the tokens;
:mod:`~syncsvc.userpools.srp` the SRP-6a arithmetic of USER_SRP_AUTH."""
