"""Formatting results for people and machines. Every function here is pure: text in, text out."""
