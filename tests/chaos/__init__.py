"""Tests of the chaos fault layer."""
