"""OpenID Connect / OAuth 2.0, one module per specification (Authlib habit):

``jose`` (RFC 7515/7519/8725) · ``jwks`` (RFC 7517, key rotation) · ``discovery`` (OIDC Discovery 1.0)
· ``client_auth`` (RFC 6749 §2.3, RFC 7523) · ``pkce`` (RFC 7636) · ``authorize`` (RFC 6749 §4.1,
OIDC Core §3.1.2, RFC 9207) · ``tokens`` (RFC 6749 §4.1.3/§6/§4.4, OIDC Core §3.1.3) ·
``access_token`` (RFC 9068) · ``introspection`` (RFC 7662) · ``revocation`` (RFC 7009) ·
``logout`` (OIDC RP-Initiated Logout 1.0, Back-Channel Logout 1.0) · ``errors`` (RFC 6749 §5.2).
"""
