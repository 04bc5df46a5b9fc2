"""What several domains share: errors, the check/verdict type, stream helpers, names, markdown, config basics.

Nothing domain-specific lives here; a helper used by one domain belongs in that domain.
"""
