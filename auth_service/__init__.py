"""OpenID Connect provider, login methods, browser sessions, department clients."""
