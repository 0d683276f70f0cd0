"""Who may do what: user accounts with their roles and API tokens, per-case membership, web sessions."""
