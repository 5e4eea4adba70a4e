"""Parsers and helpers shared by the Lab 6 checks."""
