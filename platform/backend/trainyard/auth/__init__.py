"""Identity and access: who is calling (principal), what they may do (permissions), and the
checks every request passes (same-origin guard, OIDC tokens, API keys, web sessions)."""
