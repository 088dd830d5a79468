"""Security: accounts (passwords, API tokens), browser sessions and CSRF, the log-in throttle, and the
middleware that limits request bodies and sets the security headers."""
