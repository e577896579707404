"""Online scoring (pure): features, River models, release gate, label joining, evaluation."""
