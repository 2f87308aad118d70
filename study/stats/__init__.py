"""Pure numbers over recorded trials: the cost front, the still-learning rule, paired tests."""
