"""A first-party plugin (a package only so tests can import its helpers)."""
