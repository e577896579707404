"""Tag rules: the expression language, YAML loader, rule sets and the tag engine (pure)."""
