"""Thin command modules: parse, call the client, render."""
