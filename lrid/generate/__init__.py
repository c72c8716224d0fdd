"""Stage 1: train networks under learning rules and record their observables into a store."""

from __future__ import annotations

from lrid.generate.sweep import generate

__all__ = ["generate"]
