"""What the deploy tests share: compose/Kubernetes env interpolation and settings checks."""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import shutil
from collections.abc import Mapping

import pytest
from cryptography.fernet import Fernet

from shared.config import ServiceSettings

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([?-])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEYS?$|TOKEN", re.IGNORECASE)


def placeholder(name: str) -> str:
    """A value of the right shape for a secret an operator provides (never committed)."""
    if name.endswith("SECRET_KEYS"):
        return json.dumps([Fernet.generate_key().decode()])
    if name.endswith("WEBHOOK_SECRET"):
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    return f"test-{name.lower()}-" + os.urandom(6).hex()


def interpolate(value: str, provided: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` against ``provided``."""

    def one(match: re.Match[str]) -> str:
        name, kind, arg = match[1], match[2], match[3]
        if provided.get(name):
            return provided[name]
        if kind == "-":
            return arg
        if kind == "?":
            raise KeyError(f"{name} is required: {arg}")
        return ""

    return _INTERPOLATION.sub(one, value)


def required_variables(text: str) -> set[str]:
    return {m[1] for m in _INTERPOLATION.finditer(text) if m[2] == "?"}


def settings_under(service: str, env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    """The service's settings built from exactly ``env`` (what a container would get)."""
    for name in list(os.environ):
        if name.startswith("SALESLINE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = importlib.import_module(f"services.{service}.config")
    return config.get_settings.__wrapped__()
