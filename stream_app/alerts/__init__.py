"""Alert policy (pure): when hot-lead and at-risk alerts fire, and the words they carry."""
