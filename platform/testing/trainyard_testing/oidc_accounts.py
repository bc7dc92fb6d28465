"""What the test OpenID Provider is configured with and answers: its users, its signing keys,
and the tokens it issues."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass(frozen=True)
class Account:
    """A user of the IdP's directory."""

    email: str
    name: str
    groups: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "groups": list(self.groups)}


DEFAULT_ACCOUNTS: Mapping[str, Account] = {
    "alice": Account("alice@example.test", "Alice Adams", ("ml-team",)),
    "bob": Account("bob@example.test", "Bob Brown", ()),
}


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint answered."""

    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_in: int


def new_signing_key(kid: str | None = None) -> dict[str, Any]:
    """A fresh RSA private JWK (RS256, use sig) with a random key id."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key, as_dict=True)
    jwk.update(kid=kid or secrets.token_hex(8), use="sig", alg="RS256")
    return jwk
