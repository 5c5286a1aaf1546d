# The local OpenID Connect provider, for every test module here (it lives in test_oidc.py).
from tests.identity.test_oidc import provider  # noqa: F401
