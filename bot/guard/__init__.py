"""Who may call whom, when and how often: the rules and the store-backed admission."""
