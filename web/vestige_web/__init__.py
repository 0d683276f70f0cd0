"""Vestige's web app (Flask): pages and the JSON API, built on the core in ``vestige``.

The app factory and its blueprints arrive with the web issue; the package is
declared now so the distribution's layout is final from the start.
"""
