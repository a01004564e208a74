"""Keyrings: master keys in key managers, behind one interface."""

from .base import DataKey, Keyring, MultiKeyring
from .registry import DEFAULT_KEY_REFERENCE, resolve, resolve_all, schemes

__all__ = ["DataKey", "Keyring", "MultiKeyring", "DEFAULT_KEY_REFERENCE", "resolve", "resolve_all", "schemes"]
