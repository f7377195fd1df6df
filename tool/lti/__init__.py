"""LTI 1.3 core: registrations, OIDC login, launch validation (pylti1p3 wrapped) and roles."""
