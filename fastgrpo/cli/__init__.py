"""Typer commands; each module is a thin layer over its package."""
