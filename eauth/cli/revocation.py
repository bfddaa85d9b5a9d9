"""CLI commands of this area (registered on ``eauth.cli.app``)."""

from __future__ import annotations
